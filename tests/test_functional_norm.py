"""batch_norm, group_norm, layer_norm over trailing shapes, and interpolate: forward against
plain NumPy formulas and PyTorch's documented values, float64 gradchecks on hypothesis
shapes, running statistics as PyTorch, named errors."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import minigrad as mg
from minigrad.nn import functional as F


def leaf(a):
    return mg.Tensor(np.array(a, dtype=np.float64), requires_grad=True)


@settings(max_examples=20)
@given(data=st.data(), shape=hnp.array_shapes(min_dims=2, max_dims=4, min_side=1, max_side=3),
       affine=st.booleans(), training=st.booleans())
def test_batch_norm(data, shape, affine, training):
    if shape[0] * int(np.prod(shape[2:])) < 2:
        shape = (2,) + shape[1:]
    x = data.draw(hnp.arrays(np.float64, shape, elements=st.floats(-3, 3)))
    c = shape[1]
    w, b = (data.draw(hnp.arrays(np.float64, (c,), elements=st.floats(0.5, 2))) for _ in range(2))
    running_mean, running_var = np.linspace(-1, 1, c), np.linspace(0.5, 2, c)
    axes = (0,) + tuple(range(2, len(shape)))
    view = (1, c) + (1,) * (len(shape) - 2)
    if training:
        mean, var = x.mean(axes, keepdims=True), x.var(axes, keepdims=True)
    else:
        mean, var = running_mean.reshape(view), running_var.reshape(view)
    expected = (x - mean) / np.sqrt(var + 1e-5)
    if affine:
        expected = expected * w.reshape(view) + b.reshape(view)
    rm, rv = running_mean.copy(), running_var.copy()
    out = F.batch_norm(x, rm, rv, w if affine else None, b if affine else None, training=training, momentum=0.3)
    np.testing.assert_allclose(out.data, expected, rtol=1e-9, atol=1e-9)
    if training:  # running statistics: the unbiased batch variance, as PyTorch
        n = x.size // c
        np.testing.assert_allclose(rm, 0.7 * running_mean + 0.3 * x.mean(axes))
        np.testing.assert_allclose(rv, 0.7 * running_var + 0.3 * x.var(axes) * n / (n - 1))
    else:
        np.testing.assert_array_equal(rm, running_mean)
    fixed_mean, fixed_var = running_mean.copy(), running_var.copy()
    params = [leaf(x)] + ([leaf(w), leaf(b)] if affine else [])

    def fn(t, *p):
        return F.batch_norm(t, fixed_mean.copy(), fixed_var.copy(), *(p or (None, None)), training=training)

    assert mg.gradcheck(fn, *params)


@settings(max_examples=15)
@given(data=st.data(), n=st.integers(1, 2), groups=st.integers(1, 3), per_group=st.integers(1, 2),
       spatial=st.sampled_from([(), (2,), (2, 3)]))
def test_group_norm(data, n, groups, per_group, spatial):
    c = groups * per_group
    x = data.draw(hnp.arrays(np.float64, (n, c) + spatial, elements=st.floats(-3, 3)))
    w, b = (data.draw(hnp.arrays(np.float64, (c,), elements=st.floats(0.5, 2))) for _ in range(2))
    g = x.reshape(n, groups, -1)
    normed = ((g - g.mean(-1, keepdims=True)) / np.sqrt(g.var(-1, keepdims=True) + 1e-5)).reshape(x.shape)
    view = (1, c) + (1,) * len(spatial)
    np.testing.assert_allclose(F.group_norm(x, groups, w, b).data, normed * w.reshape(view) + b.reshape(view),
                               rtol=1e-9, atol=1e-9)
    assert mg.gradcheck(lambda *t: F.group_norm(t[0], groups, t[1], t[2]), leaf(x), leaf(w), leaf(b))


@settings(max_examples=15)
@given(data=st.data(), shape=hnp.array_shapes(min_dims=2, max_dims=3, min_side=1, max_side=3),
       trailing=st.integers(1, 2))
def test_layer_norm_over_trailing_shape(data, shape, trailing):
    x = data.draw(hnp.arrays(np.float64, shape, elements=st.floats(-3, 3)))
    normalized = shape[-trailing:]
    w, b = (data.draw(hnp.arrays(np.float64, normalized, elements=st.floats(0.5, 2))) for _ in range(2))
    axes = tuple(range(-trailing, 0))
    expected = (x - x.mean(axes, keepdims=True)) / np.sqrt(x.var(axes, keepdims=True) + 1e-5) * w + b
    np.testing.assert_allclose(F.layer_norm(x, normalized, w, b).data, expected, rtol=1e-9, atol=1e-9)
    assert mg.gradcheck(lambda *t: F.layer_norm(t[0], normalized, t[1], t[2]), leaf(x), leaf(w), leaf(b))


def test_normalization_errors():
    with pytest.raises(ValueError, match=r"batch_norm: expected more than 1 value per channel when training, got input \(1, 3\)"):
        F.batch_norm(np.ones((1, 3)), None, None, training=True)
    with pytest.raises(ValueError, match=r"batch_norm: running_mean must be an array of shape \(3,\)"):
        F.batch_norm(np.ones((2, 3)), np.zeros(2), np.ones(3))
    with pytest.raises(ValueError, match="batch_norm: eval mode .* needs running_mean and running_var"):
        F.batch_norm(np.ones((2, 3)), None, None)
    with pytest.raises(ValueError, match=r"group_norm: num_groups=2 must be a positive divisor of the 3 channels"):
        F.group_norm(np.ones((2, 3, 4)), 2)
    with pytest.raises(ValueError, match=r"layer_norm: normalized_shape \(4,\) must be the trailing axes .* \(2, 3\)"):
        F.layer_norm(np.ones((2, 3)), (4,))


# ---------------------------------------------------------------- interpolate
def test_interpolate_documented_values():
    x = np.array([[[[1.0, 2.0], [3.0, 4.0]]]])
    expected = [[1.0, 1.25, 1.75, 2.0], [1.5, 1.75, 2.25, 2.5], [2.5, 2.75, 3.25, 3.5], [3.0, 3.25, 3.75, 4.0]]
    np.testing.assert_allclose(F.interpolate(x, scale_factor=2, mode="bilinear").data[0, 0], expected)
    np.testing.assert_allclose(F.interpolate(x, size=3, mode="bilinear", align_corners=True).data[0, 0],
                               [[1.0, 1.5, 2.0], [2.0, 2.5, 3.0], [3.0, 3.5, 4.0]])
    np.testing.assert_array_equal(F.interpolate(np.arange(4.0)[None, None], size=8).data[0, 0],
                                  [0, 0, 1, 1, 2, 2, 3, 3])
    np.testing.assert_array_equal(F.interpolate(np.arange(5.0)[None, None], size=3).data[0, 0], [0, 1, 3])
    np.testing.assert_array_equal(F.interpolate(np.arange(5.0)[None, None], size=3, mode="nearest-exact").data[0, 0], [0, 2, 4])
    np.testing.assert_allclose(F.interpolate(np.array([[[0.0, 1.0]]]), size=4, mode="linear").data[0, 0],
                               [0.0, 0.25, 0.75, 1.0])
    assert F.interpolate(x.astype(np.float32), scale_factor=2).dtype == np.float32


@settings(max_examples=20)
@given(data=st.data(), mode=st.sampled_from(["nearest", "nearest-exact", "bilinear", "linear"]),
       align=st.booleans())
def test_interpolate_gradcheck_and_a_loop_reference(data, mode, align):
    spatial = (data.draw(st.integers(1, 4)),) if mode == "linear" else (data.draw(st.integers(1, 4)), data.draw(st.integers(1, 4)))
    if mode == "nearest":
        spatial = spatial[:data.draw(st.integers(1, len(spatial)))]
    x = data.draw(hnp.arrays(np.float64, (2, 1) + spatial, elements=st.floats(-2, 2)))
    size = tuple(data.draw(st.integers(1, 5)) for _ in spatial)
    align_corners = align if mode in ("linear", "bilinear") else None
    y = F.interpolate(x, size=size, mode=mode, align_corners=align_corners)
    assert y.shape == (2, 1) + size
    if mode in ("linear", "bilinear"):  # each output from its two (four) neighbours
        out = x
        for axis, (n, m) in enumerate(zip(spatial, size)):
            k = np.arange(m)
            src = k * ((n - 1) / (m - 1)) if align_corners and m > 1 else (np.zeros(m) if align_corners
                                                                        else np.maximum((k + 0.5) * n / m - 0.5, 0))
            lo = np.minimum(np.floor(src).astype(int), n - 1)
            hi = np.minimum(lo + 1, n - 1)
            t = (src - lo).reshape((-1,) + (1,) * (len(spatial) - 1 - axis))
            out = np.take(out, lo, axis=2 + axis) * (1 - t) + np.take(out, hi, axis=2 + axis) * t
        np.testing.assert_allclose(y.data, out, rtol=1e-12, atol=1e-12)
    assert mg.gradcheck(lambda t: F.interpolate(t, size=size, mode=mode, align_corners=align_corners), leaf(x))


def test_interpolate_errors():
    with pytest.raises(ValueError, match="interpolate: give exactly one of size and scale_factor"):
        F.interpolate(np.ones((1, 1, 4)))
    with pytest.raises(ValueError, match=r"interpolate: mode 'bilinear' does not take a 3-d input \(1, 1, 4\)"):
        F.interpolate(np.ones((1, 1, 4)), size=2, mode="bilinear")
    with pytest.raises(ValueError, match="interpolate: mode must be one of"):
        F.interpolate(np.ones((1, 1, 4)), size=2, mode="cubic")


@settings(max_examples=15)
@given(data=st.data(), h=st.integers(1, 6), w=st.integers(1, 6))
def test_adaptive_avg_pool_bins(data, h, w):
    out_h, out_w = data.draw(st.integers(1, h + 1)), data.draw(st.integers(1, w))
    x = data.draw(hnp.arrays(np.float64, (2, 2, h, w), elements=st.floats(-2, 2)))
    expected = np.zeros((2, 2, out_h, out_w))
    for i in range(out_h):  # PyTorch's bins: floor(i n / m) .. ceil((i + 1) n / m)
        for j in range(out_w):
            rows = slice(i * h // out_h, -(-(i + 1) * h // out_h))
            cols = slice(j * w // out_w, -(-(j + 1) * w // out_w))
            expected[:, :, i, j] = x[:, :, rows, cols].mean((2, 3))
    np.testing.assert_allclose(F.adaptive_avg_pool2d(x, (out_h, out_w)).data, expected, rtol=1e-12, atol=1e-12)
    assert mg.gradcheck(lambda t: F.adaptive_avg_pool2d(t, (out_h, out_w)), leaf(x))
    np.testing.assert_allclose(F.adaptive_avg_pool1d(x[:, :, 0], out_w).data, expected[:, :, 0] if h == out_h == 1 else
                               np.stack([x[:, :, 0, j * w // out_w:-(-(j + 1) * w // out_w)].mean(-1) for j in range(out_w)], -1))
    with pytest.raises(ValueError, match="adaptive_avg_pool2d: output_size must be an int or 2 ints"):
        F.adaptive_avg_pool2d(x, (1, 2, 3))
