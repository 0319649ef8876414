"""`Tensor` itself: construction and dtype rules, conversions, repr, comparisons, iteration,
truth value, NumPy interop, identity-based hashing."""
from __future__ import annotations

import numpy as np
import pytest

import minigrad as mg
from minigrad import Tensor


@pytest.mark.parametrize("data, dtype", [
    (1.5, np.float32), ([1.0, 2.0], np.float32), ([[1, 2.5]], np.float32),
    (3, np.int64), ([1, 2], np.int64), (True, np.bool_),
    (np.ones(2), np.float64), (np.float64(2.0), np.float64), (np.ones(2, dtype=np.float32), np.float32),
    (np.arange(3), np.int64), (np.ones(2, dtype=np.float16), np.float16),
])
def test_dtype_rules(data, dtype):
    assert Tensor(data).dtype == dtype


def test_explicit_dtype_and_sharing():
    array = np.ones(3)
    assert Tensor(array).data is array  # wraps without copying, like torch.from_numpy
    assert Tensor([1, 2], dtype=np.float64).dtype == np.float64
    assert Tensor(Tensor([1.0])).dtype == np.float32
    assert mg.tensor([1.0], requires_grad=True).requires_grad


@pytest.mark.parametrize("data", [[1, 2], np.arange(3), True, np.zeros(2, dtype=bool)])
def test_integer_and_boolean_tensors_cannot_require_grad(data):
    with pytest.raises(TypeError, match="only floating-point tensors can require grad, got dtype"):
        Tensor(data, requires_grad=True)
    with pytest.raises(TypeError):
        Tensor(data).requires_grad_()


@pytest.mark.parametrize("data", ["text", [[1.0], [2.0, 3.0]], None, [1 + 2j]])
def test_non_numeric_data_is_rejected(data):
    with pytest.raises((TypeError, ValueError)):
        Tensor(data)


def test_properties_and_conversions():
    x = Tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    assert x.shape == (2, 3) and x.ndim == 2 and x.numel() == 6 and len(x) == 2
    assert x.size() == (2, 3) and x.size(-1) == 3 and x.dim() == 2
    assert x.numpy() is x.data and x.is_leaf and x.grad is None
    assert Tensor([[4.0]]).item() == 4.0 and isinstance(Tensor([[4.0]]).item(), float)
    assert float(Tensor(2.5)) == 2.5 and int(Tensor([3.0])) == 3
    with pytest.raises(ValueError, match=r"item: only a tensor with one element converts, shape is \(2, 3\)"):
        x.item()
    with pytest.raises(TypeError, match="len\\(\\) of a 0-d tensor"):
        len(Tensor(1.0))


def test_repr():
    assert repr(Tensor([1.0, 2.0])) == "Tensor([1., 2.], dtype=float32)"
    assert repr(Tensor([1.0], requires_grad=True)) == "Tensor([1.], dtype=float32, requires_grad=True)"
    assert "grad_fn=Mul" in repr(Tensor([1.0], requires_grad=True) * 2.0)
    assert "..." in repr(Tensor(np.zeros(1000)))  # long tensors are summarized


def test_comparisons_give_boolean_tensors_without_grad():
    x = Tensor(np.array([1.0, 2.0, 3.0]), requires_grad=True)
    for out, expected in [(x < 2, [1, 0, 0]), (x <= 2, [1, 1, 0]), (x > 2.0, [0, 0, 1]),
                          (x >= Tensor([3.0, 2.0, 1.0]), [0, 1, 1]), (2.0 < x, [0, 0, 1]),
                          (np.array([2.0, 2.0, 2.0]) >= x, [1, 1, 0])]:
        assert isinstance(out, Tensor) and out.dtype == np.bool_ and not out.requires_grad
        np.testing.assert_array_equal(out.data, np.array(expected, dtype=bool))
    assert not (Tensor(np.nan) < 1.0).item()  # NaN compares False, as in NumPy


def test_equality_is_elementwise_and_hash_identity_based():
    a, b = Tensor([1.0, 2.0]), Tensor([1.0, 3.0])
    np.testing.assert_array_equal((a == b).data, [True, False])
    np.testing.assert_array_equal((a != b).data, [False, True])
    assert (a == b).dtype == np.bool_ and (a == 1.0).data.tolist() == [True, False]
    table = {a: "a", b: "b"}
    assert table[a] == "a" and len({a, b}) == 2


def test_truth_value():
    assert bool(Tensor([2.0])) and not bool(Tensor(0.0))
    with pytest.raises(ValueError, match=r"the truth value of a tensor of shape \(2,\) is ambiguous"):
        bool(Tensor([1.0, 2.0]))
    if Tensor(1.0) > 0.5:  # one-element comparisons work in `if`
        pass


def test_iteration():
    assert [row.shape for row in Tensor(np.zeros((3, 2)))] == [(2,)] * 3
    with pytest.raises(TypeError, match="iteration over a 0-d tensor"):
        iter(Tensor(1.0))


def test_numpy_interop():
    x = Tensor(np.array([1.0, 2.0], dtype=np.float32), requires_grad=True)
    array = np.asarray(x)
    assert array is x.data
    assert np.asarray(x, dtype=np.float64).dtype == np.float64
    assert np.array(x, copy=True) is not x.data
    np.testing.assert_allclose(x, [1.0, 2.0])  # test helpers accept tensors
    with pytest.raises(TypeError, match="does not support ufuncs"):
        np.exp(x)  # would silently leave the graph: use x.exp()
    out = np.float64(2.0) * x  # a NumPy scalar on the left keeps float32
    assert isinstance(out, Tensor) and out.dtype == np.float32 and out.requires_grad


def test_requires_grad_on_an_op_output_follows_inputs():
    a, b = Tensor([1.0]), Tensor([1.0], requires_grad=True)
    assert not (a * 2.0).requires_grad
    assert (a * b).requires_grad and not (a * b).is_leaf
    assert not (a * b)._ctx.needs_input_grad[0]
