"""conv1d/conv2d/conv_transpose1d/conv_transpose2d and max/avg pooling: forward against a
plain NumPy formula (loops over kernel offsets and groups), float64 gradchecks on
hypothesis-drawn geometries (stride, padding incl. 'same', dilation, groups, ceil_mode),
the transposed convolution as conv2d's adjoint, float32 kept, and named errors."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minigrad as mg
from minigrad.nn import functional as F


def leaf(a):
    return mg.Tensor(np.array(a, dtype=np.float64), requires_grad=True)


def reference_conv2d(x, w, b, stride, pads, dilation, groups):
    """y[n, o, p, q] = sum_{c, i, j} w[o, c, i, j] xp[n, g(o) C/g + c, p s + i d, q s + j d]."""
    o_total, cg, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0)) + tuple(pads))
    ho = (xp.shape[2] - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    wo = (xp.shape[3] - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    y = np.zeros((x.shape[0], o_total, ho, wo))
    og = o_total // groups
    for g in range(groups):
        for i in range(kh):
            for j in range(kw):
                patch = xp[:, g * cg:(g + 1) * cg,
                           i * dilation[0]:i * dilation[0] + stride[0] * (ho - 1) + 1:stride[0],
                           j * dilation[1]:j * dilation[1] + stride[1] * (wo - 1) + 1:stride[1]]
                y[:, g * og:(g + 1) * og] += np.einsum("nchw,oc->nohw", patch, w[g * og:(g + 1) * og, :, i, j])
    return y if b is None else y + b[None, :, None, None]


@st.composite
def conv_geometry(draw):
    groups, cg, og = draw(st.integers(1, 2)), draw(st.integers(1, 2)), draw(st.integers(1, 2))
    kernel = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    stride = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    padding = draw(st.one_of(st.tuples(st.integers(0, 2), st.integers(0, 2)), st.just("valid"),
                             st.just("same")))
    if padding == "same":
        stride = (1, 1)
    size = tuple(draw(st.integers(d * (k - 1) + 1, d * (k - 1) + 4)) for k, d in zip(kernel, dilation))
    return groups, cg, og, kernel, stride, dilation, padding, size


def as_pads(padding, kernel, dilation):
    if padding == "valid":
        return ((0, 0), (0, 0))
    if padding == "same":
        return tuple((d * (k - 1) // 2, d * (k - 1) - d * (k - 1) // 2) for k, d in zip(kernel, dilation))
    return tuple((p, p) for p in padding)


@settings(max_examples=25)
@given(geometry=conv_geometry(), bias=st.booleans(), seed=st.integers(0, 2**16), batch=st.sampled_from([0, 1, 2]))
def test_conv2d_matches_numpy_and_gradchecks(geometry, bias, seed, batch):
    # batch 0 too: PyTorch convolves an empty batch into an empty output (empty x gradient,
    # zero weight gradient)
    groups, cg, og, kernel, stride, dilation, padding, size = geometry
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, groups * cg) + size)
    w = rng.standard_normal((groups * og, cg) + kernel)
    b = rng.standard_normal(groups * og) if bias else None
    y = F.conv2d(x, w, b, stride=stride, padding=padding, dilation=dilation, groups=groups)
    expected = reference_conv2d(x, w, b, stride, as_pads(padding, kernel, dilation), dilation, groups)
    np.testing.assert_allclose(y.data, expected, rtol=1e-10, atol=1e-10)
    if padding == "same":
        assert y.shape[2:] == x.shape[2:]
    params = [leaf(x), leaf(w)] + ([leaf(b)] if bias else [])
    conv = lambda *t: F.conv2d(*t, stride=stride, padding=padding, dilation=dilation, groups=groups)  # noqa: E731
    assert mg.gradcheck(conv, *params)
    if batch <= 1:  # the second derivatives: finite differences of the gradient, kept small
        assert mg.gradgradcheck(conv, *params)


@settings(max_examples=20)
@given(geometry=conv_geometry(), seed=st.integers(0, 2**16), batch=st.sampled_from([0, 2]))
def test_conv_transpose2d_is_the_adjoint_of_conv2d(geometry, seed, batch):
    groups, cg, og, kernel, stride, dilation, padding, size = geometry
    if isinstance(padding, str):
        padding = (0, 0)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, groups * cg) + size)
    w = rng.standard_normal((groups * og, cg) + kernel)
    y = F.conv2d(x, w, stride=stride, padding=padding, dilation=dilation, groups=groups).data
    # conv2d drops trailing rows that fit no window: output_padding gives them back
    extra = tuple(n + 2 * p - ((o - 1) * s + d * (k - 1) + 1)
                  for n, p, o, s, d, k in zip(size, padding, y.shape[2:], stride, dilation, kernel))
    v = rng.standard_normal(y.shape)
    if any(e >= max(s, d) for e, s, d in zip(extra, stride, dilation)):
        return
    xt = F.conv_transpose2d(v, w, stride=stride, padding=padding, output_padding=extra,
                            groups=groups, dilation=dilation)
    assert xt.shape == x.shape
    np.testing.assert_allclose((y * v).sum(), (x * xt.data).sum(), rtol=1e-10)  # <Ax, v> = <x, A^T v>
    b = rng.standard_normal(groups * cg)
    assert mg.gradcheck(lambda *t: F.conv_transpose2d(*t, stride=stride, padding=padding,
                                                      output_padding=extra, groups=groups,
                                                      dilation=dilation), leaf(v), leaf(w), leaf(b))


def test_conv1d_and_transpose1d_are_2d_with_height_one():
    rng = np.random.default_rng(0)
    x, w, b = rng.standard_normal((2, 3, 9)), rng.standard_normal((4, 3, 3)), rng.standard_normal(4)
    y = F.conv1d(x, w, b, stride=2, padding=1, dilation=2)
    expected = reference_conv2d(x[:, :, None], w[:, :, None], b, (1, 2), ((0, 0), (1, 1)), (1, 2), 1)[:, :, 0]
    np.testing.assert_allclose(y.data, expected, rtol=1e-12)
    assert mg.gradcheck(lambda *t: F.conv1d(*t, stride=2, padding=1, dilation=2), leaf(x), leaf(w), leaf(b))
    assert F.conv1d(x, w, padding="same").shape == (2, 4, 9)
    assert F.conv1d(x[0], w).shape == (4, 7)  # unbatched
    t = F.conv_transpose1d(rng.standard_normal((2, 4, 5)), w, stride=2, output_padding=1)
    assert t.shape == (2, 3, 12)  # (5 - 1) * 2 + (3 - 1) + 1 + 1
    assert mg.gradcheck(lambda a, ww: F.conv_transpose1d(a, ww, stride=2, padding=1),
                        leaf(rng.standard_normal((1, 4, 4))), leaf(w))


def test_conv_keeps_float32_and_is_one_node():
    rng = np.random.default_rng(1)
    x = mg.Tensor(rng.standard_normal((2, 3, 6, 6)).astype(np.float32), requires_grad=True)
    w = mg.Tensor(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), requires_grad=True)
    b = mg.Tensor(np.zeros(4, np.float32), requires_grad=True)
    y = F.conv2d(x, w, b, padding=1)
    assert y.dtype == np.float32 and y._ctx.parents == (x, w, b) and y.data.flags.c_contiguous
    y.backward(np.ones(y.shape, np.float32))
    assert x.grad.dtype == w.grad.dtype == b.grad.dtype == np.float32
    t = F.conv_transpose2d(y.detach(), w, stride=2)
    assert t.dtype == np.float32


def test_conv_errors_name_the_op_shapes_and_limit():
    x, w = np.ones((1, 3, 5, 5)), np.ones((4, 3, 3, 3))
    with pytest.raises(ValueError, match=r"conv2d: input \(1, 2, 5, 5\) has 2 channels, but weight \(4, 3, 3, 3\) expects 3"):
        F.conv2d(np.ones((1, 2, 5, 5)), w)
    with pytest.raises(ValueError, match=r"conv2d: kernel \(3, 3\) .* larger than the padded input \(2, 2\)"):
        F.conv2d(np.ones((1, 3, 2, 2)), w)
    with pytest.raises(ValueError, match=r"conv2d: groups=2 must divide the input channels \(3"):
        F.conv2d(x, np.ones((4, 1, 3, 3)), groups=2)
    with pytest.raises(ValueError, match=r"conv2d: padding='same' needs stride 1"):
        F.conv2d(x, w, stride=2, padding="same")
    with pytest.raises(ValueError, match=r"conv2d: bias has shape \(3,\), expected \(4,\)"):
        F.conv2d(x, w, np.ones(3))
    with pytest.raises(ValueError, match=r"conv2d: input must be 3-d \(unbatched\) or 4-d"):
        F.conv2d(np.ones((5, 5)), w)
    with pytest.raises(ValueError, match=r"conv2d: stride must be >= 1, got \(0, 0\)"):
        F.conv2d(x, w, stride=0)
    with pytest.raises(ValueError, match=r"conv_transpose2d: output_padding \(2, 2\) must be smaller than stride"):
        F.conv_transpose2d(x, np.ones((3, 2, 3, 3)), stride=2, output_padding=2)


# ---------------------------------------------------------------- pooling
def reference_pool(x, kernel, stride, padding, dilation, ceil_mode, kind, count_include_pad=True):
    """One output at a time, straight from the definition (PyTorch's window rules)."""
    out = []
    for n, k, s, p, d in zip(x.shape[2:], kernel, stride, padding, dilation):
        steps = (n + 2 * p - d * (k - 1) - 1) / s
        size = (math.ceil(steps) if ceil_mode else math.floor(steps)) + 1
        if ceil_mode and (size - 1) * s >= n + p:
            size -= 1
        out.append(size)
    y = np.zeros(x.shape[:2] + tuple(out))
    for a in range(out[0]):
        for b in range(out[1]):
            values, padded_count = [], 0
            for i in range(kernel[0]):
                for j in range(kernel[1]):
                    r, c = a * stride[0] + i * dilation[0] - padding[0], b * stride[1] + j * dilation[1] - padding[1]
                    padded_count += -padding[0] <= r < x.shape[2] + padding[0] and -padding[1] <= c < x.shape[3] + padding[1]
                    if 0 <= r < x.shape[2] and 0 <= c < x.shape[3]:
                        values.append(x[:, :, r, c])
            values = np.stack(values, -1)
            if kind == "max":
                y[:, :, a, b] = values.max(-1)
            else:
                y[:, :, a, b] = values.sum(-1) / (padded_count if count_include_pad else values.shape[-1])
    return y


@st.composite
def pool_geometry(draw):
    kernel = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    padding = tuple(draw(st.integers(0, k // 2)) for k in kernel)
    size = tuple(draw(st.integers(d * (k - 1) + 1, d * (k - 1) + 4)) for k, d in zip(kernel, dilation))
    return kernel, stride, dilation, padding, size, draw(st.booleans()), draw(st.booleans())


@settings(max_examples=30)
@given(geometry=pool_geometry(), seed=st.integers(0, 2**16), batch=st.sampled_from([0, 2]))
def test_pooling_matches_the_definition_and_gradchecks(geometry, seed, batch):
    kernel, stride, dilation, padding, size, ceil_mode, count_include_pad = geometry
    rng = np.random.default_rng(seed)
    x = rng.permutation(batch * 2 * size[0] * size[1]).reshape((batch, 2) + size) / 10.0  # no ties; batch 0: empty
    y = F.max_pool2d(x, kernel, stride, padding, dilation, ceil_mode)
    np.testing.assert_allclose(y.data, reference_pool(x, kernel, stride, padding, dilation, ceil_mode, "max"))
    assert mg.gradcheck(lambda t: F.max_pool2d(t, kernel, stride, padding, dilation, ceil_mode), leaf(x))
    assert mg.gradgradcheck(lambda t: F.max_pool2d(t, kernel, stride, padding, dilation, ceil_mode), leaf(x))
    values, indices = F.max_pool2d(x, kernel, stride, padding, dilation, ceil_mode, return_indices=True)
    assert indices.dtype == np.int64
    picked = np.take_along_axis(x.reshape(batch, 2, size[0] * size[1]), indices.data.reshape(batch, 2, values.shape[2] * values.shape[3]), -1)
    np.testing.assert_array_equal(picked.reshape(values.shape), values.data)
    a = F.avg_pool2d(x, kernel, stride, padding, ceil_mode, count_include_pad)
    expected = reference_pool(x, kernel, stride, padding, (1, 1), ceil_mode, "avg", count_include_pad)
    np.testing.assert_allclose(a.data, expected, rtol=1e-12)
    assert mg.gradcheck(lambda t: F.avg_pool2d(t, kernel, stride, padding, ceil_mode, count_include_pad), leaf(x))
    assert mg.gradgradcheck(lambda t: F.avg_pool2d(t, kernel, stride, padding, ceil_mode, count_include_pad), leaf(x))


def test_pooling_documented_values_1d_float32_ties_and_errors():
    x = np.array([[[1.0, 3.0, 2.0, 5.0, 4.0]]])
    np.testing.assert_array_equal(F.max_pool1d(x, 2).data, [[[3.0, 5.0]]])
    np.testing.assert_array_equal(F.max_pool1d(x, 2, ceil_mode=True).data, [[[3.0, 5.0, 4.0]]])
    np.testing.assert_allclose(F.avg_pool1d(x, 2, padding=1).data, [[[0.5, 2.5, 4.5]]])
    np.testing.assert_allclose(F.avg_pool2d(np.ones((1, 1, 3, 3)), 2, padding=1, count_include_pad=False).data,
                               np.ones((1, 1, 2, 2)))
    np.testing.assert_allclose(F.avg_pool2d(np.ones((1, 1, 2, 2)), 2, divisor_override=2).data, [[[[2.0]]]])
    ties = leaf(np.ones((1, 1, 2, 2)))
    F.max_pool2d(ties, 2).backward(np.ones((1, 1, 1, 1)))
    np.testing.assert_array_equal(ties.grad, [[[[1.0, 0.0], [0.0, 0.0]]]])  # the first maximum
    f32 = mg.Tensor(np.ones((2, 3, 4, 4), np.float32), requires_grad=True)
    assert F.max_pool2d(f32, 2).dtype == F.avg_pool2d(f32, 2).dtype == np.float32
    with pytest.raises(ValueError, match=r"max_pool2d: padding \(2, 2\) must be at most half the kernel size \(3, 3\)"):
        F.max_pool2d(np.ones((1, 1, 5, 5)), 3, padding=2)
    with pytest.raises(ValueError, match=r"avg_pool2d: kernel \(3, 3\).*larger than the padded input \(2, 2\)"):
        F.avg_pool2d(np.ones((1, 1, 2, 2)), 3)
    with pytest.raises(ValueError, match=r"max_pool2d: input must be 3-d \(unbatched\) or 4-d"):
        F.max_pool2d(np.ones(4), 2)
