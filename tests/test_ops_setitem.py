"""`tensor[index] = value` as PyTorch: in place outside a graph, an IndexPut node inside one
(forward against NumPy's assignment, gradcheck and gradgradcheck in float64 over drawn shapes
with empty and size-1 axes and broadcast values), PyTorch's refusals (a leaf requiring grad,
negative slice steps, values that do not broadcast), and writes a live graph would miss."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra import numpy as hnp

import minigrad as mg
from minigrad import Tensor, gradcheck, gradgradcheck
from core_strategies import leaf, values

SETTINGS = settings(max_examples=15, deadline=None)
shapes_with_empty = hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=3)


@st.composite
def index_and_value_shape(draw, shape):
    """An index of `shape` (int, slice, boolean mask, unique integer array, Ellipsis, None)
    and a value shape that broadcasts to the indexed result (scalar, size-1 axes, leading 1s)."""
    kind = draw(st.sampled_from(["int", "slice", "mask", "array", "ellipsis", "none"]))
    if kind == "int" and shape[0] > 0:
        index = draw(st.integers(-shape[0], shape[0] - 1))
    elif kind == "mask":
        index = draw(hnp.arrays(np.bool_, shape))
    elif kind == "array":
        index = np.array(draw(st.lists(st.integers(0, max(shape[0] - 1, 0)), unique=True, max_size=shape[0])), dtype=np.int64)
    elif kind == "ellipsis":
        index = (Ellipsis, slice(0, None, 2))
    elif kind == "none":
        index = (None, slice(None))
    else:
        index = (slice(draw(st.integers(0, 2)), None, draw(st.integers(1, 2))),)
    target = np.empty(shape)[index].shape
    value_shape = tuple(draw(st.sampled_from([1, n])) for n in target)  # size-1 axes broadcast
    value_shape = value_shape[draw(st.integers(0, len(value_shape))):]  # dropped leading axes
    if draw(st.booleans()):
        value_shape = (1,) + value_shape  # a leading 1 is dropped, as NumPy and PyTorch do
    return index, value_shape


@SETTINGS
@given(data=st.data(), shape=shapes_with_empty)
def test_setitem_forward_in_place_and_gradients(data, shape):
    index, value_shape = data.draw(index_and_value_shape(shape))
    base = data.draw(values(shape))
    value = data.draw(values(value_shape))
    expected, target = base.copy(), base[index].shape
    dropped = value
    while dropped.ndim > len(target) and dropped.shape[0] == 1:
        dropped = dropped[0]  # leading 1s dropped (NumPy's boolean writes refuse them)
    expected[index] = np.broadcast_to(dropped, target)
    plain = Tensor(base.copy())
    array = plain.data
    plain[index] = Tensor(value)
    assert plain.data is array and not plain.requires_grad  # outside a graph: in place
    np.testing.assert_array_equal(plain.data, expected)

    def write(a, v):
        out = a * 1.0  # a non-leaf, so it may be written in a graph
        out[index] = v
        return out * a  # uses a again: d/da sees both the kept and the overwritten positions
    a, v = leaf(base), leaf(value)
    np.testing.assert_allclose(write(a, v).data, expected * base, rtol=1e-15)
    assert gradcheck(write, a, v) and gradgradcheck(write, a, v)


def test_setitem_gradient_rule_by_hand():
    # out = [a0, v, v, a3]: d/da is g except at the written positions, d/dv sums g over them
    a = Tensor(np.array([1.0, 2.0, 3.0, 4.0]), requires_grad=True)
    v = Tensor(np.array(5.0), requires_grad=True)
    out = a * 1.0
    out[1:3] = v
    assert out.tolist() == [1, 5, 5, 4] and out.requires_grad
    (out * Tensor(np.array([1.0, 10.0, 100.0, 1000.0]))).sum().backward()
    assert a.grad.tolist() == [1, 0, 0, 1000] and v.grad.item() == 110


def test_setitem_value_requiring_grad_into_a_constant_tensor():
    w = Tensor(np.array([2.0, 3.0]), requires_grad=True)
    buffer = mg.zeros(3, 2, dtype=mg.float64)
    buffer[1] = w * w
    assert buffer.requires_grad and buffer.tolist() == [[0, 0], [4, 9], [0, 0]]
    buffer.sum().backward()
    assert w.grad.tolist() == [4, 6]


def test_setitem_casts_to_the_tensor_dtype_and_takes_numbers_arrays_masks():
    ints = Tensor(np.arange(6).reshape(2, 3))
    ints[0, 1] = 7.9  # cast as PyTorch does (truncated)
    ints[ints > 4] = 0
    ints[:, [0, 2]] = np.array([[1, 2]])
    assert ints.tolist() == [[1, 0, 2], [1, 4, 2]] and ints.dtype == np.int64
    floats = Tensor(np.zeros(3, np.float32))
    floats[...] = Tensor(np.array([1.0, 2.0, 3.0]))  # float64 value into float32
    assert floats.dtype == np.float32 and floats.tolist() == [1, 2, 3]


def test_setitem_under_no_grad_writes_a_parameter_in_place():
    w = Tensor(np.ones((2, 2)), requires_grad=True)
    array = w.data
    with mg.no_grad():
        w[0] = 0.0
    assert w.data is array and w.is_leaf and w.requires_grad and w.tolist() == [[0, 0], [1, 1]]


def test_setitem_refusals_name_the_rule():
    w = Tensor(np.ones(3), requires_grad=True)
    with pytest.raises(RuntimeError, match="a leaf Variable that requires grad is being used in an in-place operation"):
        w[0] = 2.0
    with pytest.raises(ValueError, match=r"shape mismatch: value tensor of shape \(2,\) cannot be broadcast to indexing result of shape \(3,\)"):
        Tensor(np.zeros((2, 3)))[0] = Tensor([1.0, 2.0])
    with pytest.raises(IndexError, match=r"setitem: .*\(tensor shape \(2, 3\)\)"):
        Tensor(np.zeros((2, 3)))[5] = 1.0
    hidden = w * 2.0
    used = hidden * 3.0  # a live graph reads hidden's values in its backward
    with pytest.raises(RuntimeError, match=r"setitem: this tensor \(shape \(3,\)\) is read by a live graph \(op mul\)"):
        hidden[0] = 0.0
    used.sum().backward()
    hidden = w * 2.0
    view = hidden[0:2]  # views memory the graph holds: PyTorch would write through to hidden
    with pytest.raises(RuntimeError, match="read-only: a view of memory a live graph holds"):
        view[0] = 1.0


@pytest.mark.parametrize("index", [slice(None, None, -1), (0, slice(3, 0, -2)), (Ellipsis, slice(None, None, -1))])
def test_negative_slice_steps_are_refused_as_pytorch(index):
    x = Tensor(np.zeros((2, 4)))
    with pytest.raises(ValueError, match=r"getitem: step must be greater than zero .*shape \(2, 4\)"):
        x[index]
    with pytest.raises(ValueError, match=r"setitem: step must be greater than zero"):
        x[index] = 1.0
    with pytest.raises(ValueError, match="getitem: step cannot be zero"):
        x[::0]
    np.testing.assert_array_equal(x.flip(-1).data, x.data[..., ::-1])  # the way to reverse
