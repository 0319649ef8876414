"""Reductions sum/mean/max/var: every axis form (None, int, tuple, negative) with and without
keepdims, on shapes with empty axes too, passes gradcheck and gradgradcheck and equals NumPy
(PyTorch's values over an empty dim: sum 0, mean and var nan; max raises); bad axes raise
clear errors."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, strategies as st

import minigrad as mg
from minigrad import Tensor, gradcheck, gradgradcheck
from core_strategies import distinct, leaf, shapes_with_empty as shapes, values

REDUCTIONS = {
    # name: (method name, numpy reference, value strategy)
    "sum": ("sum", np.sum, values),
    "mean": ("mean", np.mean, values),
    "max": ("amax", np.max, distinct),  # no ties: the max is differentiable (max(dim) gives indices too)
    "var": ("var_biased", np.var, values),  # var(correction=0); Bessel's default is tested in test_ops_stats.py
}


@st.composite
def shape_and_axis(draw):
    """A shape and an axis argument: None, an int or a tuple, each axis possibly negative."""
    shape = draw(shapes)
    ndim = len(shape)
    if ndim == 0:
        return shape, draw(st.sampled_from([None, 0, -1, ()]))
    axes = draw(st.lists(st.integers(0, ndim - 1), unique=True, max_size=ndim))
    axes = [ax - ndim if draw(st.booleans()) else ax for ax in axes]  # some negative
    form = draw(st.sampled_from(["none", "int", "tuple"]))
    if form == "none" or not axes:
        return shape, None
    if form == "int":
        return shape, axes[0]
    return shape, tuple(axes)


@pytest.mark.parametrize("name", sorted(REDUCTIONS))
@given(data=st.data(), shape_axis=shape_and_axis(), keepdims=st.booleans())
def test_reduction_gradcheck_and_forward(name, data, shape_axis, keepdims):
    method, np_fn, strategy = REDUCTIONS[name]
    shape, axis = shape_axis
    x = leaf(data.draw(strategy(shape), label="x"))

    def fn(t):
        if method == "var_biased":
            return t.var(axis=axis, keepdims=keepdims, correction=0)
        return getattr(t, method)(axis=axis, keepdims=keepdims)

    reduced = [] if x.ndim == 0 else range(x.ndim) if axis is None else [axis] if isinstance(axis, int) else axis
    if name == "max" and any(x.shape[d] == 0 for d in reduced):  # no identity: PyTorch raises
        with pytest.raises(ValueError, match=r"amax: expected reduction dim( \d+ to have non-zero size| to be specified)"):
            fn(x)
        return
    out = fn(x)
    np_axis = None if x.ndim == 0 else axis  # NumPy's mean/var/max reject axis 0 of a 0-d array
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # NumPy's "mean of empty slice"
        expected = np_fn(x.data, axis=np_axis, keepdims=keepdims)
    assert out.shape == np.shape(expected) and out.dtype == np.float64
    np.testing.assert_allclose(out.data, expected, rtol=1e-12, atol=1e-15)  # nan == nan here
    assert gradcheck(fn, x) and gradgradcheck(fn, x)


def test_reductions_over_an_empty_dim_as_pytorch():
    # PyTorch's documented results: the identity where there is one, nan for mean/var/std,
    # -inf for logsumexp, and an error naming the op, dim and shape for max/min/argmax
    x = Tensor(np.zeros((0, 3)), requires_grad=True)
    assert x.sum(0).tolist() == [0, 0, 0] and x.prod(0).tolist() == [1, 1, 1] and x.norm(dim=0).tolist() == [0, 0, 0]
    assert np.isnan(x.mean(0).data).all() and np.isnan(x.var(0).data).all() and np.isnan(x.std().item())
    assert x.logsumexp(0).tolist() == [-np.inf] * 3 and x.cumsum(0).shape == (0, 3)
    assert x.amax(1).shape == (0,) and x.max(1).values.shape == (0,) and x.argmin(1).shape == (0,)
    for op in (lambda: x.amax(0), lambda: x.max(0), lambda: x.min(dim=0), lambda: x.argmax(0), lambda: x.amin(0)):
        with pytest.raises(ValueError, match=r"expected reduction dim 0 to have non-zero size \(input shape \(0, 3\)"):
            op()
    for op in (lambda: x.max(), lambda: x.argmax(), lambda: x.amax()):
        with pytest.raises(ValueError, match=r"expected reduction dim to be specified for an empty input of shape \(0, 3\)"):
            op()
    (x.sum(0).sum() + x.mean(0).masked_fill(np.ones(3, bool), 0.0).sum() + x.logsumexp(0).clamp(min=0).sum()).backward()
    assert x.grad.shape == (0, 3)
    with mg.no_grad():
        assert mg.zeros(2, 0).mean().item() != mg.zeros(2, 0).mean().item()  # nan, no warning


@pytest.mark.parametrize("name", sorted(REDUCTIONS))
def test_reduction_keeps_float32(name):
    x = Tensor(np.arange(12, dtype=np.float32).reshape(3, 4), requires_grad=True)
    out = getattr(x, REDUCTIONS[name][0].replace("_biased", ""))(axis=-1)
    assert out.dtype == np.float32
    out.sum().backward()
    assert x.grad.dtype == np.float32


def test_broadcasting_reduction_gradient_sums_back():
    # bias (3,) broadcast over (4, 2, 3): its gradient sums over the 8 copies
    bias = Tensor(np.zeros(3), requires_grad=True)
    x = Tensor(np.ones((4, 2, 3)))
    ((x + bias) * 2.0).sum().backward()
    np.testing.assert_array_equal(bias.grad, [16.0, 16.0, 16.0])
    scale = Tensor(np.ones((4, 1, 1)), requires_grad=True)
    (x * scale).mean().backward()
    np.testing.assert_allclose(scale.grad, np.full((4, 1, 1), 6 / 24))


def test_max_ties_share_the_gradient_equally():
    x = Tensor(np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]]), requires_grad=True)
    x.amax(axis=1).sum().backward()
    np.testing.assert_allclose(x.grad, [[0, 0.5, 0.5], [1 / 3, 1 / 3, 1 / 3]])


def test_max_with_nan_propagates_without_warnings():
    x = Tensor(np.array([[1.0, np.nan], [3.0, 2.0]]), requires_grad=True)
    out = x.amax(axis=1)
    np.testing.assert_array_equal(out.data, [np.nan, 3.0])
    with np.errstate(all="raise"):
        out.sum().backward()  # the NaN row's gradient is NaN, computed without a warning
    assert np.all(np.isnan(x.grad[0])) and np.array_equal(x.grad[1], [1.0, 0.0])


def test_max_of_empty_tensor_raises():
    with pytest.raises(ValueError, match=r"max: expected reduction dim to be specified for an empty input of shape \(0, 3\)"):
        Tensor(np.zeros((0, 3))).max()


def test_var_correction_like_pytorch():
    a = np.array([1.0, 2.0, 4.0, 7.0])
    assert Tensor(a).var(correction=0).item() == pytest.approx(np.var(a))  # biased, ddof=0
    assert Tensor(a).var().item() == pytest.approx(np.var(a, ddof=1))  # PyTorch's default


@pytest.mark.parametrize("name", sorted(REDUCTIONS))
@pytest.mark.parametrize("axis", [2, -3, (0, 2), 5])
def test_axis_out_of_range(name, axis):
    x = Tensor(np.ones((2, 3)))
    with pytest.raises(ValueError, match=rf"{name}: axis -?\d is out of range for a tensor of 2 dimensions \(shape \(2, 3\)\)"):
        getattr(x, REDUCTIONS[name][0].replace("_biased", ""))(axis=axis)


@pytest.mark.parametrize("axis", [(0, 0), (1, -1)])
def test_repeated_axis(axis):
    with pytest.raises(ValueError, match="sum: repeated axis"):
        Tensor(np.ones((2, 3))).sum(axis=axis)


@pytest.mark.parametrize("axis", [1.0, "0", True, (0, 1.5)])
def test_axis_of_wrong_type(axis):
    with pytest.raises(TypeError, match="mean: axis must be None, an int or a tuple of ints"):
        Tensor(np.ones((2, 3))).mean(axis=axis)


def test_reductions_of_0d_tensor():
    x = Tensor(np.array(2.5), requires_grad=True)
    for axis in (None, 0, -1, ()):
        assert x.sum(axis=axis).item() == 2.5
    x.mean(axis=0).backward()
    assert x.grad.shape == () and x.grad == 1.0
