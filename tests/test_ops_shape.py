"""Shape ops: reshape, transpose/.T/swapaxes, indexing, masked_fill, split, where, concat,
stack. Gradients by gradcheck (float64), forward values equal NumPy, clear errors."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, strategies as st
from hypothesis.extra import numpy as hnp

import minigrad as mg
from minigrad import Tensor, gradcheck
from core_strategies import broadcast_triples, leaf, nonscalar_shapes, shapes, values


# --------------------------------------------------------------------- reshape / transpose
@given(data=st.data(), shape=shapes)
def test_reshape_gradcheck_and_forward(data, shape):
    x = leaf(data.draw(values(shape)))
    size = x.numel()
    target = data.draw(st.sampled_from([(size,), (1, size), (size, 1, 1), (-1,), (1, -1)]))
    out = x.reshape(target)
    np.testing.assert_array_equal(out.data, x.data.reshape(target))
    assert x.view(*target).shape == out.shape
    assert gradcheck(lambda t: t.reshape(target), x)


def test_reshape_error_names_shapes():
    with pytest.raises(ValueError, match=r"reshape: cannot reshape \(2, 3\) \(6 elements\) into \(4,\)"):
        Tensor(np.ones((2, 3))).reshape(4)


@st.composite
def permutations(draw):
    shape = draw(shapes)
    axes = draw(st.permutations(range(len(shape))))
    axes = [ax - len(shape) if draw(st.booleans()) else ax for ax in axes]  # some negative
    return shape, tuple(axes)


@given(data=st.data(), shape_axes=permutations())
def test_transpose_gradcheck_and_forward(data, shape_axes):
    shape, axes = shape_axes
    x = leaf(data.draw(values(shape)))
    np.testing.assert_array_equal(x.permute(*axes).data, x.data.transpose(axes))
    np.testing.assert_array_equal(x.permute(axes).data, x.data.transpose(axes))
    np.testing.assert_array_equal(x.T.data, x.data.T)
    np.testing.assert_array_equal(x.transpose().data, x.data.transpose())
    assert gradcheck(lambda t: t.permute(*axes), x)
    assert gradcheck(lambda t: t.T, x)


@given(data=st.data(), shape=nonscalar_shapes)
def test_swapaxes_gradcheck_and_forward(data, shape):
    x = leaf(data.draw(values(shape)))
    i = data.draw(st.integers(-x.ndim, x.ndim - 1))
    j = data.draw(st.integers(-x.ndim, x.ndim - 1))
    np.testing.assert_array_equal(x.swapaxes(i, j).data, np.swapaxes(x.data, i, j))
    assert gradcheck(lambda t: t.swapaxes(i, j), x)


@pytest.mark.parametrize("axes", [(0, 0, 1), (0, 1, 3), (-4, 0, 1), (1, -2, 0)])
def test_transpose_rejects_non_permutations(axes):
    x = Tensor(np.ones((2, 3, 4)))
    with pytest.raises(ValueError, match=r"transpose: axes .* are not a permutation of the 3 axes of \(2, 3, 4\)"):
        x.transpose(*axes)


@pytest.mark.parametrize("axes", [(0.0, 1, 2), (True, 0, 2), ("0", 1, 2)])
def test_transpose_rejects_axes_that_are_not_ints(axes):
    with pytest.raises(TypeError, match=r"transpose: axes must be ints"):
        Tensor(np.ones((2, 3, 4))).transpose(*axes)


def test_transpose_backward_uses_the_inverse_permutation():
    import itertools
    from minigrad.ops.shape import inverse_permutation
    rng = np.random.default_rng(0)
    for axes in itertools.permutations(range(4)):
        assert inverse_permutation(axes) == tuple(int(i) for i in np.argsort(axes))
        x = Tensor(rng.standard_normal((2, 3, 4, 5)), requires_grad=True)
        out = x.permute(*(axis - 4 for axis in axes))  # negative axes too
        g = rng.standard_normal(out.shape)
        out.backward(g)
        np.testing.assert_array_equal(x.grad, g.transpose(np.argsort(axes)))
        assert x.grad.shape == x.shape


def test_swapaxes_out_of_range():
    with pytest.raises(ValueError, match=r"swapaxes: axis 2 is out of range for a tensor of shape \(2, 3\)"):
        Tensor(np.ones((2, 3))).swapaxes(0, 2)


# --------------------------------------------------------------------- indexing
INDEXES = [
    (slice(None), slice(1, 3)),
    (0,),
    (-1, slice(None, None, 2)),
    (Ellipsis, 1),
    (None, slice(0, 2), Ellipsis, None),
    (np.array([0, 2, 2, 0]),),                      # repeated integer indices accumulate
    (slice(None), np.array([[1, 1], [3, 0]])),
    (np.array([1, 0]), np.array([3, 3])),           # paired integer arrays
    ([2, 2, 1],),                                   # a Python list
    (np.array([True, False, True]),),               # a boolean mask
    (np.array([[True, False, True, False]] * 3),),  # a full boolean mask
    (),
]


@pytest.mark.parametrize("index", INDEXES, ids=[repr(i) for i in range(len(INDEXES))])
def test_getitem_gradcheck_and_forward(index):
    rng = np.random.default_rng(0)
    x = leaf(rng.standard_normal((3, 4)))
    np_index = tuple(np.asarray(i) if isinstance(i, list) else i for i in index)
    np.testing.assert_array_equal(x[index].data, x.data[np_index])
    assert gradcheck(lambda t: t[index], x)


def test_getitem_repeated_indices_accumulate():
    x = Tensor(np.zeros(3), requires_grad=True)
    x[np.array([0, 2, 2, 2])].sum().backward()
    np.testing.assert_array_equal(x.grad, [1, 0, 3])


def test_getitem_apply_called_directly_normalizes_lists():
    from minigrad.ops import GetItem
    x = Tensor(np.zeros(3), requires_grad=True)
    GetItem.apply(x, index=([0, 0, 2],)).sum().backward()
    np.testing.assert_array_equal(x.grad, [2, 0, 1])


def test_getitem_with_tensor_indices():
    x = Tensor(np.arange(12.0).reshape(3, 4), requires_grad=True)
    ids = Tensor(np.array([2, 0]))
    np.testing.assert_array_equal(x[ids].data, x.data[[2, 0]])
    np.testing.assert_array_equal(x[ids, Tensor([1, 1])].data, [9.0, 1.0])
    mask = x > 5.0
    np.testing.assert_array_equal(x[mask].data, np.arange(6.0, 12.0))
    x[mask].sum().backward()
    np.testing.assert_array_equal(x.grad, (x.data > 5).astype(float))


@given(data=st.data(), shape=nonscalar_shapes)
def test_getitem_random_integer_arrays(data, shape):
    x = leaf(data.draw(values(shape)))
    index = data.draw(hnp.arrays(np.int64, data.draw(st.integers(0, 5)),
                                 elements=st.integers(-shape[0], shape[0] - 1)))
    np.testing.assert_array_equal(x[index].data, x.data[index])
    assert gradcheck(lambda t: t[index], x)


@pytest.mark.parametrize("index", [5, (0, 4), np.array([0, 3]), (slice(None), [0, 7])])
def test_getitem_out_of_range_names_the_shape(index):
    with pytest.raises(IndexError, match=r"getitem: .* \(tensor shape \(3, 4\)\)"):
        Tensor(np.ones((3, 4)))[index]


@pytest.mark.parametrize("index", [np.array([0.0, 1.0]), 1.0, [0.5], (slice(None), [1.5]),
                                   Tensor(np.array([0.0]))])
def test_getitem_float_index_is_a_type_error(index):
    with pytest.raises(TypeError, match=r"getitem: index .*float.*\(tensor shape \(3, 4\)\)"):
        Tensor(np.ones((3, 4)))[index]


def test_empty_list_index_selects_nothing():
    assert Tensor(np.ones((3, 4)))[[]].shape == (0, 4)


def test_iteration_yields_rows_with_gradient():
    x = Tensor(np.arange(6.0).reshape(3, 2), requires_grad=True)
    rows = list(x)
    assert len(rows) == 3 and rows[1].shape == (2,)
    np.testing.assert_array_equal(rows[2].data, [4.0, 5.0])
    first, second, third = x
    (first * 2 + third).sum().backward()
    np.testing.assert_array_equal(x.grad, [[2, 2], [0, 0], [1, 1]])


# --------------------------------------------------------------------- masked_fill / where
@given(data=st.data(), shapes3=broadcast_triples)
def test_where_gradcheck_and_forward(data, shapes3):
    cond_shape, a_shape, b_shape = shapes3.input_shapes
    cond = data.draw(hnp.arrays(np.bool_, cond_shape))
    a, b = leaf(data.draw(values(a_shape))), leaf(data.draw(values(b_shape)))
    out = mg.where(cond, a, b)
    np.testing.assert_array_equal(out.data, np.where(cond, a.data, b.data))
    assert gradcheck(lambda p, q: mg.where(Tensor(cond), p, q), a, b)


def test_where_with_scalars_and_errors():
    x = Tensor(np.array([1.0, -2.0], dtype=np.float32), requires_grad=True)
    out = mg.where(x > 0, x, 0.0)
    assert out.dtype == np.float32
    out.sum().backward()
    np.testing.assert_array_equal(x.grad, [1, 0])
    with pytest.raises(TypeError, match="where: condition must be boolean, got dtype float64"):
        mg.where(np.ones(2), x, x)
    with pytest.raises(ValueError, match=r"where: cannot broadcast \(2,\) with \(3,\)"):
        mg.where(np.ones(2, dtype=bool), x, Tensor(np.ones(3)))


@given(data=st.data(), shape=nonscalar_shapes)
def test_masked_fill_gradcheck_and_forward(data, shape):
    x = leaf(data.draw(values(shape)))
    mask_shape = data.draw(st.sampled_from([shape, shape[-1:], (1,) * len(shape)]))
    mask = data.draw(hnp.arrays(np.bool_, mask_shape))
    out = x.masked_fill(mask, -1e9)
    np.testing.assert_array_equal(out.data, np.where(mask, -1e9, x.data))
    assert gradcheck(lambda t: t.masked_fill(Tensor(mask), 3.0), x)


def test_masked_fill_with_minus_inf_keeps_dtype_and_zeroes_gradient():
    x = Tensor(np.ones((2, 2), dtype=np.float32), requires_grad=True)
    causal = np.triu(np.ones((2, 2), dtype=bool), k=1)
    out = x.masked_fill(causal, -np.inf)
    assert out.dtype == np.float32 and out.data[0, 1] == -np.inf
    out.exp().sum().backward()
    np.testing.assert_allclose(x.grad, [[np.e, 0], [np.e, np.e]], rtol=1e-6)


def test_masked_fill_errors():
    x = Tensor(np.ones((2, 3)))
    with pytest.raises(TypeError, match="masked_fill: mask must be boolean"):
        x.masked_fill(np.ones((2, 3)), 0.0)
    with pytest.raises(ValueError, match=r"masked_fill: mask of shape \(4, 2, 3\) does not broadcast to \(2, 3\)"):
        x.masked_fill(np.ones((4, 2, 3), dtype=bool), 0.0)


# --------------------------------------------------------------------- split / concat / stack
@given(data=st.data(), shape=nonscalar_shapes)
def test_split_gradcheck_and_forward(data, shape):
    x = leaf(data.draw(values(shape)))
    axis = data.draw(st.integers(-x.ndim, x.ndim - 1))
    length = shape[axis]
    if data.draw(st.booleans()):
        sections = data.draw(st.integers(1, length + 1))
        boundaries = list(range(sections, length, sections))
    else:
        cuts = sorted(data.draw(st.lists(st.integers(0, length), max_size=3)))
        sections = [b - a for a, b in zip([0] + cuts, cuts + [length])]
        boundaries = list(np.cumsum(sections)[:-1])
    pieces = x.split(sections, axis=axis)
    expected = np.split(x.data, boundaries, axis=axis)
    assert len(pieces) == len(expected)
    for piece, ref in zip(pieces, expected):
        np.testing.assert_array_equal(piece.data, ref)
    weights = [float(i + 1) for i in range(len(pieces))]  # each piece weighted differently
    assert gradcheck(lambda t: mg.concat([p * w for p, w in zip(t.split(sections, axis), weights)], axis), x)


def test_split_errors():
    x = Tensor(np.ones((2, 5)))
    with pytest.raises(ValueError, match=r"split: sizes \[2, 2\] do not add up to axis 1 of length 5 \(shape \(2, 5\)\)"):
        x.split([2, 2], axis=1)
    with pytest.raises(ValueError, match="split: chunk size must be positive, got 0"):
        x.split(0)
    with pytest.raises(ValueError, match=r"split: axis 2 is out of range"):
        x.split(1, axis=2)
    with pytest.raises(ValueError, match="split: cannot split a 0-d tensor"):
        Tensor(1.0).split(1)


@given(data=st.data(), shape=nonscalar_shapes, count=st.integers(1, 3))
def test_concat_gradcheck_and_forward(data, shape, count):
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    parts = []
    for _ in range(count):
        part_shape = list(shape)
        part_shape[axis] = data.draw(st.integers(0, 2))
        parts.append(leaf(data.draw(values(tuple(part_shape)))))
    out = mg.concat(parts, axis=axis)
    np.testing.assert_array_equal(out.data, np.concatenate([p.data for p in parts], axis=axis))
    assert gradcheck(lambda *ts: mg.concat(ts, axis=axis), *parts)


@given(data=st.data(), shape=shapes, count=st.integers(1, 3))
def test_stack_gradcheck_and_forward(data, shape, count):
    axis = data.draw(st.integers(-len(shape) - 1, len(shape)))
    parts = [leaf(data.draw(values(shape))) for _ in range(count)]
    out = mg.stack(parts, axis=axis)
    np.testing.assert_array_equal(out.data, np.stack([p.data for p in parts], axis=axis))
    assert gradcheck(lambda *ts: mg.stack(ts, axis=axis), *parts)


def test_concat_and_stack_errors():
    a, b = Tensor(np.ones((2, 3))), Tensor(np.ones((3, 3)))
    with pytest.raises(ValueError, match=r"concat: shapes \[\(2, 3\), \(3, 3\)\] do not match outside axis 1"):
        mg.concat([a, b], axis=1)
    with pytest.raises(ValueError, match="concat: axis 2 is out of range for tensors of 2 dimensions"):
        mg.concat([a, b], axis=2)
    with pytest.raises(ValueError, match="concat: needs at least one tensor"):
        mg.concat([])
    with pytest.raises(ValueError, match=r"stack: all shapes must be equal, got \[\(2, 3\), \(3, 3\)\]"):
        mg.stack([a, b])
    with pytest.raises(ValueError, match="stack: axis 3 is out of range for a result of 3 dimensions"):
        mg.stack([a, a], axis=3)


def test_concat_mixes_constants_and_tensors_requiring_grad():
    a = Tensor(np.ones((1, 2)), requires_grad=True)
    out = mg.concat([a, Tensor(np.zeros((2, 2))), a], axis=0)
    (out * Tensor(np.arange(8.0).reshape(4, 2))).sum().backward()
    np.testing.assert_array_equal(a.grad, [[6.0, 8.0]])
