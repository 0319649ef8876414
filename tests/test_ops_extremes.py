"""max/min (whole, along a dim with indices, elementwise), amax/amin, argmax/argmin, sort,
argsort, topk: forward against NumPy, gradchecks, and PyTorch's tie rules (max(dim) sends the
gradient to the returned index, the first maximum; max() shares it among ties)."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import minigrad as mg
from minigrad import Tensor, gradcheck, gradgradcheck
from core_strategies import (distinct, leaf, nonscalar_shapes_with_empty as nonscalar_shapes,
                             shapes_with_empty as shapes, spaced)

SETTINGS = settings(max_examples=25, deadline=None)


@SETTINGS
@given(data=st.data(), shape=nonscalar_shapes, keepdim=st.booleans())
def test_max_min_along_dim(data, shape, keepdim):
    x = leaf(data.draw(distinct(shape)))
    dim = data.draw(st.integers(-x.ndim, x.ndim - 1))
    if x.shape[dim] == 0:  # PyTorch: max/min/argmax over an empty dim raise (no identity)
        for op in ("max", "min", "argmax", "argmin"):
            with pytest.raises(ValueError, match=rf"{op}: expected reduction dim {dim % x.ndim} to have non-zero size \(input shape"):
                getattr(x, op)(dim, keepdim=keepdim)
        return
    for name, np_value, np_index in [("max", np.max, np.argmax), ("min", np.min, np.argmin)]:
        values, indices = getattr(x, name)(dim, keepdim=keepdim)
        np.testing.assert_array_equal(values.data, np_value(x.data, axis=dim, keepdims=keepdim))
        np.testing.assert_array_equal(indices.data, np_index(x.data, axis=dim, keepdims=keepdim))
        assert indices.dtype == np.int64 and getattr(x, name)(dim=dim).values.shape == np_value(x.data, axis=dim).shape
        assert gradcheck(lambda t: getattr(t, name)(dim, keepdim=keepdim).values, x)
        assert gradgradcheck(lambda t: getattr(t, name)(dim, keepdim=keepdim).values, x)
        np.testing.assert_array_equal(getattr(x, "arg" + name)(dim, keepdim=keepdim).data,
                                      np_index(x.data, axis=dim, keepdims=keepdim))


@SETTINGS
@given(data=st.data(), shape=shapes)
def test_amax_amin_full(data, shape):
    x = leaf(data.draw(distinct(shape)))
    if x.numel() == 0:
        for op in ("max", "amin", "argmax"):
            with pytest.raises(ValueError, match=rf"{op}: expected reduction dim to be specified for an empty input"):
                getattr(x, op)()
        return
    np.testing.assert_array_equal(x.max().data, np.max(x.data))
    np.testing.assert_array_equal(x.amin().data, np.min(x.data))
    np.testing.assert_array_equal(x.argmax().data, np.argmax(x.data))
    assert gradcheck(lambda t: t.min(), x) and gradcheck(lambda t: t.amax(), x)


def test_tie_rules_as_pytorch():
    x = Tensor(np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]]), requires_grad=True)
    values, indices = x.max(1)
    assert indices.tolist() == [1, 0]  # the first maximum
    values.sum().backward()
    np.testing.assert_array_equal(x.grad, [[0, 1, 0], [1, 0, 0]])  # only to the returned index
    x.grad = None
    x.max().backward()  # the whole-tensor max: ties share
    np.testing.assert_allclose(x.grad, [[0, 0.5, 0.5], [0, 0, 0]])
    x.grad = None
    x.amin(1).sum().backward()
    np.testing.assert_allclose(x.grad, [[1, 0, 0], [1 / 3, 1 / 3, 1 / 3]])
    assert Tensor([1.0, np.nan, 3.0]).argmax().item() == 1 and np.isnan(Tensor([1.0, np.nan]).max().item())


@SETTINGS
@given(data=st.data(), pair=st.tuples(spaced((2, 3)), spaced((3,), odd=True)))
def test_minimum_maximum_elementwise(data, pair):
    a, b = leaf(pair[0]), leaf(pair[1])
    np.testing.assert_array_equal(mg.minimum(a, b).data, np.minimum(a.data, b.data))
    np.testing.assert_array_equal(a.max(b).data, np.maximum(a.data, b.data))
    assert gradcheck(lambda s, t: s.minimum(t), a, b) and gradcheck(lambda s, t: s.maximum(t), a, b)


@SETTINGS
@given(data=st.data(), shape=nonscalar_shapes, descending=st.booleans())
def test_sort_argsort_topk(data, shape, descending):
    x = leaf(data.draw(distinct(shape)))
    dim = data.draw(st.integers(-x.ndim, x.ndim - 1))
    values, indices = x.sort(dim, descending=descending)
    expected = np.sort(x.data, axis=dim)
    expected = np.flip(expected, dim) if descending else expected
    np.testing.assert_array_equal(values.data, expected)
    np.testing.assert_array_equal(np.take_along_axis(x.data, indices.data, dim), expected)
    np.testing.assert_array_equal(x.argsort(dim, descending=descending).data, indices.data)
    assert gradcheck(lambda t: t.sort(dim, descending=descending).values, x)
    assert gradgradcheck(lambda t: t.sort(dim, descending=descending).values, x)
    k = data.draw(st.integers(0, x.shape[dim]))
    top, where = x.topk(k, dim, largest=not descending)
    largest = np.flip(np.sort(x.data, axis=dim), dim) if not descending else np.sort(x.data, axis=dim)
    np.testing.assert_array_equal(top.data, np.take(largest, np.arange(k), axis=dim))
    np.testing.assert_array_equal(np.take_along_axis(x.data, where.data, dim), top.data)
    assert gradcheck(lambda t: t.topk(k, dim, largest=not descending).values, x)


def test_sort_is_stable_and_nan_sorts_last():
    x = Tensor([2.0, 1.0, 2.0, np.nan, 1.0])
    assert x.sort().indices.tolist() == [1, 4, 0, 2, 3]
    assert x.sort(descending=True).indices.tolist() == [3, 0, 2, 1, 4]


def test_errors_name_the_op_and_limit():
    x = Tensor(np.ones((2, 3)))
    with pytest.raises(IndexError, match=r"max: dim 2 is out of range for a tensor of 2 dimensions \(shape \(2, 3\)"):
        x.max(2)
    with pytest.raises(ValueError, match=r"topk: k=4 is out of range for dim 1 of size 3"):
        x.topk(4)
    with pytest.raises(ValueError, match=r"argmax: expected reduction dim to be specified for an empty input of shape \(0,\)"):
        Tensor(np.zeros(0)).argmax()
