"""Shape and indexing ops (squeeze ... unfold, gather/scatter/index_select, pad, diag,
einsum) and scans/reductions (cumsum ... logcumsumexp, prod, logsumexp, norm): forward
against NumPy, gradcheck and gradgradcheck in float64, errors naming the op and limits."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra import numpy as hnp

import minigrad as mg
from minigrad import Tensor, gradcheck, gradgradcheck
from core_strategies import away_from_zero, leaf, nonscalar_shapes_with_empty as nonscalar_shapes, values, with_zeros

SETTINGS = settings(max_examples=12, deadline=None)


@SETTINGS
@given(data=st.data(), shape=nonscalar_shapes)
def test_layout_methods(data, shape):
    # away from 0: |x| in norm(1) has a kink (zeros in cumprod/prod: the test below)
    x = leaf(data.draw(away_from_zero(shape)))
    dim = data.draw(st.integers(-x.ndim, x.ndim - 1))
    d = dim % x.ndim
    cases = {
        "squeeze": (lambda t: t.squeeze(), np.squeeze(x.data)),
        "unsqueeze": (lambda t: t.unsqueeze(dim), np.expand_dims(x.data, dim)),
        "flatten": (lambda t: t.flatten(), x.data.reshape(-1)),
        "flip": (lambda t: t.flip(dim), np.flip(x.data, d)),
        "roll": (lambda t: t.roll(1, dim), np.roll(x.data, 1, d)),
        "roll_flat": (lambda t: t.roll(2), np.roll(x.data, 2)),
        "repeat": (lambda t: t.repeat(*(2,) * (x.ndim + 1)), np.tile(x.data, (2,) * (x.ndim + 1))),
        "tile": (lambda t: t.tile(2), np.tile(x.data, 2)),
        "repeat_interleave": (lambda t: t.repeat_interleave(2, dim), np.repeat(x.data, 2, d)),
        "expand": (lambda t: t.unsqueeze(0).expand(2, *x.shape), np.broadcast_to(x.data, (2,) + x.shape)),
        "narrow": (lambda t: t.narrow(dim, 0, 1), np.take(x.data, [0], d)) if x.shape[d] else None,
        "movedim": (lambda t: t.movedim(dim, 0), np.moveaxis(x.data, d, 0)),
        "unfold": (lambda t: t.unfold(dim, 1, 1), np.expand_dims(x.data, -1)) if x.shape[d] else None,
        "chunk": (lambda t: t.chunk(2, dim)[0], np.array_split(x.data, 2, d)[0]),
        "unbind": (lambda t: t.unbind(dim)[-1], np.take(x.data, -1, d)) if x.shape[d] else None,
        "cumsum": (lambda t: t.cumsum(dim), np.cumsum(x.data, d)),
        "cumprod": (lambda t: t.cumprod(dim), np.cumprod(x.data, d)),
        "logcumsumexp": (lambda t: t.logcumsumexp(dim), np.logaddexp.accumulate(x.data, d)),
        "prod": (lambda t: t.prod(dim), np.prod(x.data, d)),
        "logsumexp": (lambda t: t.logsumexp(dim), np.log(np.exp(x.data).sum(d))) if x.shape[d] else None,
        "norm": (lambda t: t.norm(dim=dim), np.sqrt((x.data ** 2).sum(d))),
        "norm1": (lambda t: t.norm(1), np.abs(x.data).sum()),
    }
    if x.shape[d] == 0:  # PyTorch refuses these on an empty dim; unbind gives no pieces
        assert x.unbind(dim) == () and len(x.chunk(2, dim)) == 2 and x.chunk(2, dim)[1].shape == x.shape
        with pytest.raises(IndexError, match=rf"narrow: start 0 \+ length 1 exceeds dim {d} of size 0"):
            x.narrow(dim, 0, 1)
        with pytest.raises(ValueError, match=rf"unfold: window size 1 \(step 1\) does not fit dim {d} of length 0"):
            x.unfold(dim, 1, 1)
        out = x.logsumexp(dim)  # the log of an empty sum: -inf, and an empty gradient
        np.testing.assert_array_equal(out.data, np.full(np.sum(x.data, d).shape, -np.inf))
        out.sum().backward()
        assert x.grad.shape == x.shape
        x.grad = None
    for name, case in cases.items():
        if case is None:
            continue
        fn, expected = case
        out = fn(x)
        np.testing.assert_allclose(out.data, expected, rtol=1e-12, atol=1e-14, err_msg=name)
        assert gradcheck(fn, x), name
        assert gradgradcheck(fn, x), name


@SETTINGS
@given(data=st.data(), shape=hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=4))
def test_cumprod_and_prod_exact_at_zeros(data, shape):
    # one or several zeros anywhere (also none: empty shapes); PyTorch's rule has no division
    x = leaf(data.draw(with_zeros(shape)))
    dim = data.draw(st.integers(-x.ndim, x.ndim - 1))
    for fn, expected in ((lambda t: t.cumprod(dim), np.cumprod(x.data, dim)),
                         (lambda t: t.prod(dim), np.prod(x.data, dim))):
        np.testing.assert_allclose(fn(x).data, expected, rtol=1e-12)
        assert gradcheck(fn, x) and gradgradcheck(fn, x)
        x.grad = None
        fn(x).sum().backward()
        assert np.isfinite(x.grad).all()


def test_cumprod_gradient_at_zeros_by_hand():
    # sum(cumprod([2, 0, 3, .5])) = 2 + 2b + 2bc + 2bcd at b = 0: d/da = 1, d/db = 2 + 6 + 3
    x = Tensor(np.array([2.0, 0.0, 3.0, 0.5]), requires_grad=True)
    x.cumprod(0).sum().backward()
    np.testing.assert_array_equal(x.grad, [1, 11, 0, 0])
    y = Tensor(np.array([[0.0, 0.0, 2.0]], np.float32), requires_grad=True)
    y.cumprod(1).sum().backward()
    assert y.grad.dtype == np.float32 and y.grad.tolist() == [[1, 0, 0]]


def test_squeeze_unsqueeze_flatten_shapes_and_errors():
    x = Tensor(np.zeros((2, 1, 3, 1)))
    assert x.squeeze(1).shape == (2, 3, 1) and x.squeeze(0).shape == x.shape and x.squeeze((1, 3)).shape == (2, 3)
    assert x.flatten(1, 2).shape == (2, 3, 1) and x.unflatten(2, (3, 1)).shape == (2, 1, 3, 1, 1)
    assert x.unsqueeze(-1).shape == (2, 1, 3, 1, 1) and x.expand(4, -1, 5, -1, 2).shape == (4, 2, 5, 3, 2)
    assert Tensor(np.zeros(3)).expand(2, 3).shape == (2, 3) and mg.tensor(1.0).flatten().shape == (1,)
    with pytest.raises(IndexError, match=r"unsqueeze: dim 6 is out of range for a tensor of 5 dimensions"):
        x.unsqueeze(6)
    with pytest.raises(ValueError, match=r"expand: cannot expand shape \(3,\) to \(2, 4\)"):
        Tensor(np.zeros(3)).expand(2, 4)
    assert [p.shape for p in Tensor(np.zeros(5)).chunk(3)] == [(2,), (2,), (1,)]
    assert [p.shape for p in Tensor(np.zeros(5)).tensor_split(3)] == [(2,), (2,), (1,)]
    windows = mg.arange(7).unfold(0, 3, 2)
    assert windows.tolist() == [[0, 1, 2], [2, 3, 4], [4, 5, 6]]


@SETTINGS
@given(data=st.data(), shape=nonscalar_shapes)
def test_gather_scatter_index_select(data, shape):
    x = leaf(data.draw(values(shape)))
    dim = data.draw(st.integers(-x.ndim, x.ndim - 1))
    d = dim % x.ndim
    index = data.draw(hnp.arrays(np.int64, shape, elements=st.integers(0, max(shape[d] - 1, 0))))  # empty if shape[d] is 0
    np.testing.assert_array_equal(x.gather(dim, index).data, np.take_along_axis(x.data, index, d))
    assert gradcheck(lambda t: t.gather(dim, index), x) and gradgradcheck(lambda t: t.gather(dim, index), x)
    np.testing.assert_array_equal(x.take_along_dim(Tensor(index), dim).data, np.take_along_axis(x.data, index, d))
    src = leaf(data.draw(values(shape)))
    expected = x.data.copy()
    np.add.at(expected, tuple(np.indices(shape)[:d]) + (index,) + tuple(np.indices(shape)[d + 1:]), src.data)
    np.testing.assert_allclose(x.scatter_add(dim, index, src).data, expected, rtol=1e-12)
    assert gradcheck(lambda t, s: t.scatter_add(dim, index, s), x, src)
    assert gradgradcheck(lambda t, s: t.scatter_add(dim, index, s), x, src)
    rows = data.draw(hnp.arrays(np.int64, (3 if shape[d] else 0,), elements=st.integers(0, max(shape[d] - 1, 0))))
    np.testing.assert_array_equal(x.index_select(dim, rows).data, np.take(x.data, rows, d))
    assert gradcheck(lambda t: t.index_select(dim, rows), x) and gradgradcheck(lambda t: t.index_select(dim, rows), x)
    unique = np.arange(shape[d]).reshape([-1 if i == d else 1 for i in range(len(shape))]) * np.ones(shape, np.int64)
    written = x.scatter(dim, unique, src)
    np.testing.assert_array_equal(written.data, src.data)  # every position written once
    assert gradcheck(lambda t, s: t.scatter(dim, unique, s), x, src)
    mask = x.data > 0
    np.testing.assert_array_equal(x.masked_select(Tensor(mask)).data, x.data[mask])
    assert gradcheck(lambda t: t.masked_select(mask), x)
    np.testing.assert_array_equal(x.nonzero().data, np.argwhere(x.data))


def test_index_errors_name_the_op_and_limit():
    x = Tensor(np.zeros((2, 3)))
    with pytest.raises(IndexError, match=r"gather: index 3 is out of range for dim 1 of size 3 \(input shape \(2, 3\), index shape \(2, 1\)\)"):
        x.gather(1, np.array([[0], [3]]))
    with pytest.raises(IndexError, match=r"gather: index -1 is out of range"):
        x.gather(0, np.array([[-1, 0, 0]]))
    with pytest.raises(TypeError, match="gather: index must be an integer tensor, got dtype float64"):
        x.gather(0, np.zeros((1, 3)))
    with pytest.raises(IndexError, match="index_select: dim 2 is out of range"):
        x.index_select(2, [0])


@SETTINGS
@given(data=st.data(), shape=hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=4),
       mode=st.sampled_from(["constant", "reflect", "replicate", "circular"]))
def test_pad(data, shape, mode):
    x = leaf(data.draw(values(shape)))
    widths = data.draw(st.lists(st.integers(0, 3), min_size=2, max_size=2 * len(shape)).filter(lambda w: len(w) % 2 == 0))
    pairs = [(0, 0)] * (len(shape) - len(widths) // 2) + [(widths[2 * i], widths[2 * i + 1]) for i in range(len(widths) // 2)][::-1]
    # PyTorch's limits: reflect below the size, circular at most the size, nothing but
    # constant on an empty dim
    limit = {"constant": lambda n, w: True, "reflect": lambda n, w: w < n, "replicate": lambda n, w: n > 0,
             "circular": lambda n, w: w <= n and n > 0}[mode]
    if not all(limit(n, w) for n, pair in zip(shape, pairs) for w in pair if pair != (0, 0)):
        with pytest.raises(ValueError, match=rf"pad: {mode} padding \(\d+, \d+\) (must be smaller|of an empty dim|would wrap)"):
            x.pad(widths, mode)
        return
    numpy_mode = {"constant": "constant", "reflect": "reflect", "replicate": "edge", "circular": "wrap"}[mode]
    kwargs = {"constant_values": 1.5} if mode == "constant" else {}
    out = x.pad(widths, mode, value=1.5)
    np.testing.assert_array_equal(out.data, np.pad(x.data, pairs, mode=numpy_mode, **kwargs))
    assert gradcheck(lambda t: mg.nn.functional.pad(t, widths, mode), x)
    assert gradgradcheck(lambda t: t.pad(widths, mode), x)


def test_pad_crop_and_errors():
    x = Tensor(np.arange(12.0).reshape(3, 4), requires_grad=True)
    np.testing.assert_array_equal(x.pad((-1, 1)).data, np.pad(x.data[:, 1:], ((0, 0), (0, 1))))
    assert gradcheck(lambda t: t.pad((-1, 2, 1, -1)), Tensor(np.ones((3, 4)), requires_grad=True))
    with pytest.raises(ValueError, match=r"pad: reflect padding \(4, 0\) must be smaller than the size 4"):
        x.pad((4, 0), mode="reflect")
    with pytest.raises(ValueError, match=r"pad: pad \(1,\) must have an even length"):
        x.pad((1,))


@pytest.mark.parametrize("equation, shapes", [
    ("ij,jk->ik", [(2, 3), (3, 4)]), ("bij,bjk->bik", [(2, 2, 3), (2, 3, 2)]), ("ii->i", [(3, 3)]),
    ("ii", [(3, 3)]), ("ij->", [(2, 3)]), ("i,j->ij", [(2,), (3,)]), ("...ij->...ji", [(2, 2, 3)]),
    ("ij,ij,ij->i", [(2, 3), (2, 3), (2, 3)]), ("ijk->ki", [(2, 3, 4)]), ("ij,j", [(2, 3), (3,)]),
    ("i,i->", [(3,), (3,)]), ("bhqd,bhkd->bhqk", [(1, 2, 3, 2), (1, 2, 4, 2)]), ("ij,kj->i", [(2, 3), (1, 3)]),
])
def test_einsum_forward_gradcheck_gradgradcheck(equation, shapes):
    rng = np.random.default_rng(0)
    tensors = [leaf(rng.standard_normal(s)) for s in shapes]
    out = mg.einsum(equation, *tensors)
    np.testing.assert_allclose(out.data, np.einsum(equation, *(t.data for t in tensors)), rtol=1e-12)
    assert gradcheck(lambda *t: mg.einsum(equation, *t), *tensors)
    assert gradgradcheck(lambda *t: mg.einsum(equation, *t), *tensors)


def test_einsum_errors():
    with pytest.raises(ValueError, match=r"einsum: subscripts 'ijk' do not match an operand of shape \(2, 3\)"):
        mg.einsum("ijk->i", Tensor(np.ones((2, 3))))
    with pytest.raises(ValueError, match=r"einsum: index 'j' has sizes 3 and 4"):
        mg.einsum("ij,jk->ik", Tensor(np.ones((2, 3))), Tensor(np.ones((4, 2))))
    with pytest.raises(ValueError, match="einsum: equation 'ij,jk->ik' has 2 operands, got 1"):
        mg.einsum("ij,jk->ik", Tensor(np.ones((2, 3))))


@SETTINGS
@given(data=st.data(), shape=hnp.array_shapes(min_dims=2, max_dims=3, min_side=0, max_side=4), offset=st.integers(-2, 2))
def test_diag_diagonal(data, shape, offset):
    x = leaf(data.draw(values(shape)))
    np.testing.assert_array_equal(x.diagonal(offset, -2, -1).data, np.diagonal(x.data, offset, -2, -1))
    assert gradcheck(lambda t: t.diagonal(offset, -2, -1), x) and gradgradcheck(lambda t: t.diagonal(offset, 0, -1), x)
    v = leaf(data.draw(values(shape[-1:])))
    np.testing.assert_array_equal(v.diag(offset).data, np.diag(v.data, offset))
    assert gradcheck(lambda t: t.diag(offset), v)
    if x.ndim == 2:
        np.testing.assert_array_equal(x.diag(offset).data, np.diag(x.data, offset))


def test_scans_and_reductions_by_pytorch_rules():
    x = Tensor(np.array([[1.0, 3.0, 2.0, 3.0]]), requires_grad=True)
    values, indices = x.cummax(1)
    assert values.tolist() == [[1, 3, 3, 3]] and indices.tolist() == [[0, 1, 1, 3]]  # the last on ties
    values.sum().backward()
    np.testing.assert_array_equal(x.grad, [[1, 2, 0, 1]])
    assert x.cummin(1).indices.tolist() == [[0, 0, 0, 0]]
    zeros = Tensor(np.array([2.0, 0.0, 3.0, 0.0]), requires_grad=True)
    zeros.prod().backward()
    np.testing.assert_array_equal(zeros.grad, [0, 0, 0, 0])  # two zeros: every gradient 0
    one_zero = Tensor(np.array([2.0, 0.0, 3.0]), requires_grad=True)
    one_zero.prod(0).backward()
    np.testing.assert_array_equal(one_zero.grad, [0, 6, 0])
    assert Tensor([-np.inf, -np.inf]).logsumexp(0).item() == -np.inf
    big = Tensor(np.array([1000.0, 1000.0]))
    assert big.logsumexp(0).item() == pytest.approx(1000 + np.log(2))
    n = Tensor(np.zeros(3), requires_grad=True)
    n.norm().backward()
    np.testing.assert_array_equal(n.grad, [0, 0, 0])  # 0 at the kink, as PyTorch
    assert mg.arange(4).cumsum(0).tolist() == [0, 1, 3, 6] and Tensor([1, 2]).prod().item() == 2


@pytest.mark.parametrize("reduce", ["sum", "prod", "mean", "amax", "amin"])
@pytest.mark.parametrize("include_self", [True, False])
def test_scatter_reduce(reduce, include_self):
    rng = np.random.default_rng(0)
    x = leaf(rng.permutation(12).reshape(3, 4) / 4 + 0.5)  # distinct, away from 0: no ties
    src = leaf(rng.permutation(8).reshape(2, 4) / 3 + 0.7)
    index = np.array([[0, 1, 2, 0], [2, 1, 2, 1]])
    expected = x.data.copy()
    for j in range(4):  # dim 0, column by column, as the definition reads
        for row in set(index[:, j]):
            picked = [src.data[i, j] for i in range(2) if index[i, j] == row]
            pool = picked + ([x.data[row, j]] if include_self else [])
            expected[row, j] = {"sum": np.sum, "prod": np.prod, "mean": np.mean, "amax": np.max, "amin": np.min}[reduce](pool)
    out = x.scatter_reduce(0, index, src, reduce, include_self=include_self)
    np.testing.assert_allclose(out.data, expected, rtol=1e-12)
    assert gradcheck(lambda t, s: t.scatter_reduce(0, index, s, reduce, include_self=include_self), x, src)
    assert gradgradcheck(lambda t, s: t.scatter_reduce(0, index, s, reduce, include_self=include_self), x, src)
    with pytest.raises(ValueError, match="scatter_reduce: reduce must be one of"):
        x.scatter_reduce(0, index, src, "max")
