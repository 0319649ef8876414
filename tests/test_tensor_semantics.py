"""PyTorch's semantics of the Tensor API: transpose/permute/mT, elementwise `==` with
identity hashing, type promotion, dim=/keepdim= with axis=/keepdims= aliases, var/std with
correction, sum(dtype=), conversions and size/numel/dim (results as PyTorch documents them)."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import minigrad as mg
from minigrad import Tensor, gradcheck
from core_strategies import leaf, nonscalar_shapes, shapes, values


# ----------------------------------------------------------------- transpose, permute, mT
def test_transpose_swaps_two_dims_as_pytorch():
    x = Tensor(np.arange(6.0).reshape(2, 3))
    np.testing.assert_array_equal(x.transpose(0, 1).data, x.data.T)  # not NumPy's identity
    y = Tensor(np.arange(24.0).reshape(2, 3, 4))
    assert y.transpose(1, 2).shape == (2, 4, 3) and y.transpose(-1, 0).shape == (4, 3, 2)
    assert y.transpose(2, 0, 1).shape == (4, 2, 3)  # a full permutation is still accepted
    assert y.mT.shape == (2, 4, 3) and y.permute(1, 0, 2).shape == (3, 2, 4)
    with pytest.raises(ValueError, match="mT: needs at least 2 dimensions"):
        Tensor([1.0]).mT
    with pytest.raises(IndexError, match="out of range"):
        y.transpose(0, 3)


@settings(max_examples=25, deadline=None)
@given(data=st.data(), shape=nonscalar_shapes)
def test_transpose_pair_gradcheck(data, shape):
    x = leaf(data.draw(values(shape)))
    i, j = data.draw(st.integers(-x.ndim, x.ndim - 1)), data.draw(st.integers(-x.ndim, x.ndim - 1))
    np.testing.assert_array_equal(x.transpose(i, j).data, np.swapaxes(x.data, i, j))
    assert gradcheck(lambda t: t.transpose(i, j), x)
    if x.ndim >= 2:
        assert gradcheck(lambda t: t.mT, x)


# ----------------------------------------------------------------- comparisons and hashing
def test_comparisons_are_elementwise_and_tensors_stay_hashable():
    a, b = Tensor([1.0, 2.0, 3.0]), Tensor([3.0, 2.0, 1.0])
    for out, expected in [(a == b, [0, 1, 0]), (a != b, [1, 0, 1]), (a < b, [1, 0, 0]),
                          (a <= 2, [1, 1, 0]), (a.eq(b), [0, 1, 0]), (a.ge(b), [0, 1, 1])]:
        assert out.dtype == np.bool_ and not out.requires_grad
        np.testing.assert_array_equal(out.data, np.array(expected, dtype=bool))
    assert {a: 1, b: 2}[a] == 1 and len({a, b, a}) == 2  # identity hashing, as PyTorch
    assert (a == None) is False and a.equal(Tensor([1.0, 2.0, 3.0])) and not a.equal(b)  # noqa: E711


# ----------------------------------------------------------------- type promotion
@pytest.mark.parametrize("make, dtype", [
    (lambda: Tensor([1, 2]) + 0.5, np.float32),                           # int + Python float
    (lambda: Tensor([1, 2]) / Tensor([2, 4]), np.float32),                # int / int
    (lambda: Tensor([1, 2]) / 2, np.float32),
    (lambda: Tensor(np.ones(2, np.float32)) * 2.0, np.float32),
    (lambda: Tensor(np.ones(2, np.float32)) + Tensor(np.ones(2)), np.float64),  # float64 operand
    (lambda: Tensor(np.ones(2, np.float32)) + Tensor(np.float64(1)), np.float32),  # 0-d is weaker
    (lambda: Tensor(np.ones(2, np.int32)) + Tensor(np.float64(1)), np.float64),   # ... unless higher category
    (lambda: Tensor(np.ones(2, np.int32)) + 5, np.int32),
    (lambda: Tensor(np.ones(2, np.int32)) + Tensor(np.int64(1)), np.int32),
    (lambda: Tensor([True, False]) + 1, np.int64),                         # bool + int
    (lambda: Tensor([True, False]) + Tensor([1, 2]), np.int64),
    (lambda: Tensor(np.ones(2, np.uint8)) + Tensor(np.ones(2, np.int8)), np.int16),
    (lambda: 1.5 * Tensor([1, 2]), np.float32),
    (lambda: Tensor([1, 2]) ** 0.5, np.float32),
    (lambda: Tensor([1, 2]).exp(), np.float32),
    (lambda: Tensor([1, 2]).sum(), np.int64),
    (lambda: Tensor([True, True]).sum(), np.int64),
    (lambda: Tensor([1, 2]).sum(dtype=mg.float64), np.float64),
    (lambda: mg.cat([Tensor([1, 2]), Tensor([0.5])]), np.float32),
])
def test_type_promotion_as_pytorch(make, dtype):
    assert make().dtype == dtype


def test_mixed_float_gradients_keep_each_dtype():
    a = Tensor(np.ones(2, np.float32), requires_grad=True)
    b = Tensor(np.ones(2), requires_grad=True)
    (a * b).sum().backward()
    assert a.grad.dtype == np.float32 and b.grad.dtype == np.float64


def test_mean_of_integers_needs_a_dtype():
    with pytest.raises(TypeError, match=r"mean: input must be floating point, got dtype int64 \(shape \(2,\)\)"):
        Tensor([1, 2]).mean()
    assert Tensor([1, 2]).mean(dtype=mg.float32).item() == 1.5


# ----------------------------------------------------------------- dim / keepdim, var / std
@settings(max_examples=25, deadline=None)
@given(data=st.data(), shape=nonscalar_shapes, keepdim=st.booleans(), correction=st.sampled_from([0, 1]))
def test_var_std_correction_gradcheck(data, shape, keepdim, correction):
    x = leaf(data.draw(values(shape)))
    dim = data.draw(st.integers(-x.ndim, x.ndim - 1))
    if x.shape[dim] <= correction:
        out = x.var(dim, keepdim=keepdim, correction=correction)
        assert np.all(~np.isfinite(out.data))  # n - correction <= 0: inf or nan, as PyTorch
        return
    expected = np.var(x.data, axis=dim, keepdims=keepdim, ddof=correction)
    np.testing.assert_allclose(x.var(dim, keepdim=keepdim, correction=correction).data, expected, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(x.var(axis=dim, keepdims=keepdim, correction=correction).data, expected, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(x.std(dim, keepdim=keepdim, correction=correction).data, np.sqrt(expected), rtol=1e-10, atol=1e-14)
    assert gradcheck(lambda t: t.var(dim, keepdim=keepdim, correction=correction), x)
    if np.all(expected > 1e-3):
        assert gradcheck(lambda t: t.std(dim, keepdim=keepdim, correction=correction), x)


def test_var_defaults_and_aliases():
    a = np.array([[1.0, 2.0, 4.0], [0.0, 3.0, 9.0]])
    x = Tensor(a)
    np.testing.assert_allclose(x.var(1).data, np.var(a, axis=1, ddof=1))
    np.testing.assert_allclose(x.var(1, unbiased=False).data, np.var(a, axis=1))
    np.testing.assert_allclose(x.std().data, np.std(a, ddof=1))
    std, mean = x.std_mean(0)
    np.testing.assert_allclose(std.data, np.std(a, axis=0, ddof=1))
    np.testing.assert_allclose(mean.data, a.mean(0))
    assert x.sum(dim=1, keepdim=True).shape == (2, 1) and x.mean(-1).shape == (2,)
    with pytest.raises(TypeError, match="sum: got both dim=0 and axis=1"):
        x.sum(0, axis=1)


# ----------------------------------------------------------------- conversions and sizes
def test_conversions_and_sizes():
    x = Tensor(np.array([[1.7, -2.5, 0.0]]), requires_grad=True)
    assert x.float().dtype == np.float32 and x.double() is x and x.half().dtype == np.float16
    assert x.long().tolist() == [[1, -2, 0]] and x.int().dtype == np.int32
    assert x.bool().tolist() == [[True, True, False]] and x.short().dtype == np.int16
    assert x.to(mg.float32).dtype == np.float32 and x.to("cpu") is x and x.to(Tensor([1])).dtype == np.int64
    assert x.type() == "minigrad.DoubleTensor" and x.type(mg.long).dtype == np.int64
    assert x.size() == (1, 3) and x.size(1) == 3 and x.numel() == 3 and x.dim() == 2
    assert x.shape == (1, 3) and x.ndim == 2 and x.tolist() == [[1.7, -2.5, 0.0]]
    copy = x.clone()
    assert copy.data is not x.data and copy.requires_grad and x.contiguous() is x
    (copy * 2).sum().backward()
    np.testing.assert_array_equal(x.grad, [[2, 2, 2]])
    with pytest.raises(ValueError, match="to: minigrad runs on the CPU only, got device 'cuda'"):
        x.to("cuda")
    with pytest.raises(IndexError, match=r"size: dim 2 is out of range for a tensor of shape \(1, 3\)"):
        x.size(2)
