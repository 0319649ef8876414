"""Elementwise ops: gradients (gradcheck in float64), forward values (equal to NumPy), dtype
rules for scalars, the rules at kinks, and broadcasting errors."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, strategies as st

import minigrad as mg
from minigrad import Tensor, gradcheck
from core_strategies import (away_from_zero, broadcast_pairs_with_empty as broadcast_pairs, leaf,
                             shapes_with_empty as shapes, spaced, values)

# --------------------------------------------------------------------- binary ops
BINARY = {
    # name: (minigrad fn, numpy fn, strategy for a, strategy for b)
    "add": (lambda a, b: a + b, np.add, values, values),
    "sub": (lambda a, b: a - b, np.subtract, values, values),
    "mul": (lambda a, b: a * b, np.multiply, values, values),
    "div": (lambda a, b: a / b, np.divide, values, away_from_zero),
    "pow": (lambda a, b: a**b, np.power, lambda s: values(s, 0.5, 2.0), values),
    "maximum": (mg.maximum, np.maximum, spaced, lambda s: spaced(s, odd=True)),
}


@pytest.mark.parametrize("name", sorted(BINARY))
@given(data=st.data(), pair=broadcast_pairs)
def test_binary_gradcheck_and_forward(name, data, pair):
    fn, np_fn, a_values, b_values = BINARY[name]
    a_shape, b_shape = pair.input_shapes
    a = leaf(data.draw(a_values(a_shape), label="a"))
    b = leaf(data.draw(b_values(b_shape), label="b"))
    out = fn(a, b)
    assert out.shape == pair.result_shape
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out.data, np_fn(a.data, b.data))
    assert gradcheck(fn, a, b)


@pytest.mark.parametrize("name", sorted(BINARY))
def test_binary_gradient_only_for_inputs_that_require_it(name):
    fn = BINARY[name][0]
    a = leaf([[0.5, 1.5]])
    b = Tensor(np.array([[0.7], [1.3]]))  # no grad
    assert gradcheck(fn, a, b)
    assert b.grad is None


@pytest.mark.parametrize("op", ["+", "-", "*", "/", "**"])
@pytest.mark.parametrize("scalar", [2, 2.5, np.float64(2.5), np.float32(2.5), True])
def test_python_and_numpy_scalars_keep_float32_on_either_side(op, scalar):
    x = Tensor(np.array([0.5, 1.5], dtype=np.float32), requires_grad=True)
    for out in (eval(f"x {op} scalar"), eval(f"scalar {op} x")):
        assert out.dtype == np.float32, (op, scalar)
        out.sum().backward()
    assert x.grad.dtype == np.float32


@pytest.mark.parametrize("op", ["+", "-", "*", "/", "**"])
def test_float64_is_preserved_with_scalars(op):
    x = Tensor(np.array([0.5, 1.5]), requires_grad=True)
    assert x.dtype == np.float64
    assert eval(f"x {op} 2.0").dtype == np.float64
    assert eval(f"2.0 {op} x").dtype == np.float64


def test_reflected_operators_with_scalars_are_correct():
    x = Tensor([1.0, 2.0, 4.0])
    np.testing.assert_allclose((3 - x).data, [2, 1, -1])
    np.testing.assert_allclose((2 / x).data, [2, 1, 0.5])
    np.testing.assert_allclose((2**x).data, [2, 4, 16])
    np.testing.assert_allclose((np.float32(3) - x).data, [2, 1, -1])


def test_ndarray_on_the_left_calls_the_tensor_operator():
    x = Tensor(np.ones(3), requires_grad=True)
    out = np.full(3, 2.0) * x
    assert isinstance(out, Tensor)
    out.sum().backward()
    np.testing.assert_array_equal(x.grad, [2, 2, 2])


@pytest.mark.parametrize("op", ["+", "-", "*", "/", "**"])
def test_binary_op_on_shapes_that_cannot_broadcast(op):
    a, b = Tensor(np.ones((2, 3))), Tensor(np.ones(4))
    name = {"+": "add", "-": "sub", "*": "mul", "/": "div", "**": "pow"}[op]
    with pytest.raises(ValueError) as info:
        eval(f"a {op} b")
    assert str(info.value) == f"{name}: cannot broadcast (2, 3) with (4,)"


def test_maximum_cannot_broadcast_message():
    with pytest.raises(ValueError, match=r"maximum: cannot broadcast \(2, 3\) with \(4,\)"):
        mg.maximum(Tensor(np.ones((2, 3))), Tensor(np.ones(4)))


def test_maximum_ties_split_the_gradient_and_scalars_work():
    a = Tensor(np.array([1.0, 2.0, 3.0]), requires_grad=True)
    mg.maximum(a, 2.0).sum().backward()
    np.testing.assert_array_equal(a.grad, [0.0, 0.5, 1.0])
    assert mg.maximum(1.0, 2.0).item() == 2.0
    assert mg.maximum(Tensor(np.float32(1)), 3).dtype == np.float32


# --------------------------------------------------------------------- unary ops
UNARY = {
    # name: (minigrad fn, numpy reference, strategy for the input)
    "neg": (lambda x: -x, np.negative, values),
    "exp": (Tensor.exp, np.exp, values),
    "log": (Tensor.log, np.log, lambda s: values(s, 0.2, 3.0)),
    "sqrt": (Tensor.sqrt, np.sqrt, lambda s: values(s, 0.2, 3.0)),
    "tanh": (Tensor.tanh, np.tanh, values),
    "sigmoid": (Tensor.sigmoid, lambda a: 1 / (1 + np.exp(-a)), lambda s: values(s, -4.0, 4.0)),
    "relu": (Tensor.relu, lambda a: np.maximum(a, 0), away_from_zero),
    "abs": (Tensor.abs, np.abs, away_from_zero),
    "square": (lambda x: x**2, np.square, values),
    "cube": (lambda x: x**3, lambda a: a**3, values),
    "pow_half": (lambda x: x**0.5, np.sqrt, lambda s: values(s, 0.2, 3.0)),
    "pow_minus_1.5": (lambda x: x**-1.5, lambda a: a**-1.5, lambda s: values(s, 0.3, 3.0)),
    "pow_zero": (lambda x: x**0, np.ones_like, values),
    "pow_one": (lambda x: x**1, lambda a: a, values),
    "rpow": (lambda x: 3.0**x, lambda a: 3.0**a, values),
    "astype64": (lambda x: x.astype(np.float64), lambda a: a, values),
}


@pytest.mark.parametrize("name", sorted(UNARY))
@given(data=st.data(), shape=shapes)
def test_unary_gradcheck_and_forward(name, data, shape):
    fn, np_fn, strategy = UNARY[name]
    x = leaf(data.draw(strategy(shape), label="x"))
    out = fn(x)
    assert out.shape == x.shape and out.dtype == np.float64
    np.testing.assert_allclose(out.data, np_fn(x.data), rtol=1e-14, atol=0)
    assert gradcheck(fn, x)


@pytest.mark.parametrize("exponent", [2, 3, 0.5, -1, 2.5])
def test_constant_power_forward_equals_numpy_power(exponent):
    a = np.linspace(0.3, 2.0, 7)
    np.testing.assert_allclose((Tensor(a) ** exponent).data, a**exponent, rtol=1e-15)


def test_sigmoid_is_finite_at_extreme_inputs():
    x = Tensor(np.array([-1e4, -50.0, 0.0, 50.0, 1e4], dtype=np.float32), requires_grad=True)
    out = x.sigmoid()
    assert out.dtype == np.float32
    np.testing.assert_allclose(out.data, [0, 0, 0.5, 1, 1], atol=1e-7)
    out.sum().backward()
    assert np.all(np.isfinite(x.grad))


def test_kink_rules_relu_and_abs_have_zero_gradient_at_zero():
    x = Tensor(np.array([-1.0, 0.0, 2.0]), requires_grad=True)
    x.relu().sum().backward()
    np.testing.assert_array_equal(x.grad, [0, 0, 1])
    x.grad = None
    x.abs().sum().backward()
    np.testing.assert_array_equal(x.grad, [-1, 0, 1])


def test_pow_exponent_gradient_is_zero_for_nonpositive_base():
    # a^b with a <= 0 is only real for integer b; d/db is taken as 0 there
    a = Tensor(np.array([-2.0, 0.0, 2.0]))
    b = Tensor(np.array([2.0, 2.0, 2.0]), requires_grad=True)
    (a**b).sum().backward()
    np.testing.assert_allclose(b.grad, [0.0, 0.0, 4 * np.log(2.0)])


def test_astype_roundtrip_through_float32_gradient():
    x = leaf([[0.25, -1.5, 2.0]])
    assert gradcheck(lambda t: t.astype(np.float32).astype(np.float64) * 3.0, x,
                     eps=1e-3, atol=1e-4, rtol=1e-3)
    y = Tensor(np.ones(3, dtype=np.float32), requires_grad=True)
    z = y.astype(np.float64)
    assert z.dtype == np.float64 and z.requires_grad
    z.sum().backward()
    assert y.grad.dtype == np.float32


def test_astype_to_integer_gives_a_tensor_without_grad():
    x = Tensor(np.array([1.7, -2.2]), requires_grad=True)
    ints = x.astype(np.int64)
    assert ints.dtype == np.int64 and not ints.requires_grad and ints._ctx is None
    np.testing.assert_array_equal(ints.data, [1, -2])
    assert x.float().dtype == np.float32 and x.double().dtype == np.float64


def test_integer_tensors_compute_without_grad():
    i = Tensor([1, 2, 3])
    assert i.dtype == np.int64
    assert (i * 2).dtype == np.int64 and not (i * 2).requires_grad
    x = Tensor([1.0, 2.0, 3.0], requires_grad=True)
    out = x * i
    out.sum().backward()
    np.testing.assert_array_equal(x.grad, [1, 2, 3])


def test_nan_and_inf_propagate_like_numpy():
    a = np.array([np.nan, np.inf, -np.inf, 0.0, -1.0, 1.0])
    x = Tensor(a, requires_grad=True)
    with np.errstate(all="ignore"):
        expected = {
            "exp": np.exp(a), "log": np.log(a), "sqrt": np.sqrt(a), "tanh": np.tanh(a),
            "relu": np.maximum(a, 0), "abs": np.abs(a), "div": a / 0.0, "mul": a * np.inf,
        }
        got = {
            "exp": x.exp(), "log": x.log(), "sqrt": x.sqrt(), "tanh": x.tanh(),
            "relu": x.relu(), "abs": x.abs(), "div": x / 0.0, "mul": x * np.inf,
        }
        for name, out in got.items():
            np.testing.assert_array_equal(out.data, expected[name], err_msg=name)
            out.sum().backward()  # nothing crashes; NaNs land in the gradient like NumPy would
    assert x.grad.shape == a.shape and np.isnan(x.grad[0])
