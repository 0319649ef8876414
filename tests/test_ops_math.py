"""Creation functions, unary math (trig, hyperbolic, logs, erf/erfinv), rounding, clamp,
fmod/remainder, comparisons, logical and bitwise ops: forward against NumPy/math formulas,
gradcheck and gradgradcheck in float64 on hypothesis shapes, PyTorch's rules at kinks."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra import numpy as hnp

import minigrad as mg
from minigrad import Tensor, gradcheck, gradgradcheck
from core_strategies import (away_from_zero, broadcast_pairs_with_empty as broadcast_pairs, leaf,
                             shapes_with_empty as shapes, values, with_zeros)

SETTINGS = settings(max_examples=12, deadline=None)


def interval(low, high):
    return lambda shape: hnp.arrays(np.float64, shape, elements=st.floats(low, high))


UNARY = {
    # name: (numpy reference, input strategy)
    "sin": (np.sin, values), "cos": (np.cos, values), "tan": (np.tan, interval(-1.2, 1.2)),
    "asin": (np.arcsin, interval(-0.9, 0.9)), "acos": (np.arccos, interval(-0.9, 0.9)),
    "atan": (np.arctan, values), "sinh": (np.sinh, values), "cosh": (np.cosh, values),
    "asinh": (np.arcsinh, values), "acosh": (np.arccosh, interval(1.1, 3.0)),
    "atanh": (np.arctanh, interval(-0.9, 0.9)), "log2": (np.log2, interval(0.2, 3.0)),
    "log10": (np.log10, interval(0.2, 3.0)), "log1p": (np.log1p, interval(-0.8, 3.0)),
    "exp2": (np.exp2, values), "expm1": (np.expm1, values), "rsqrt": (lambda a: 1 / np.sqrt(a), interval(0.2, 3.0)),
    "reciprocal": (np.reciprocal, away_from_zero), "square": (np.square, values),
    "erf": (np.vectorize(math.erf, otypes=[float]), values),
    "erfc": (np.vectorize(math.erfc, otypes=[float]), values),
    "erfinv": (None, interval(-0.9, 0.9)), "sigmoid": (lambda a: 1 / (1 + np.exp(-a)), values),
    "frac": (lambda a: a - np.trunc(a), values),
}


@pytest.mark.parametrize("name", sorted(UNARY))
@SETTINGS
@given(data=st.data(), shape=shapes)
def test_unary_forward_gradcheck_gradgradcheck(name, data, shape):
    reference, strategy = UNARY[name]
    x = leaf(data.draw(strategy(shape)))
    out = getattr(x, name)()
    assert out.dtype == np.float64 and out.shape == x.shape
    if reference is not None:
        np.testing.assert_allclose(out.data, reference(x.data), rtol=1e-13, atol=1e-15)
    else:  # erfinv: erf(erfinv(y)) == y
        np.testing.assert_allclose(np.vectorize(math.erf, otypes=[float])(out.data), x.data, rtol=1e-14, atol=1e-15)
    assert getattr(mg, name, getattr(Tensor, name))(x).shape == x.shape
    if name == "frac" and np.any(np.abs(x.data - np.round(x.data)) < 1e-3):
        return  # the jump of trunc at integers
    assert gradcheck(lambda t: getattr(t, name)(), x)
    assert gradgradcheck(lambda t: getattr(t, name)(), x)


def test_erf_erfinv_accuracy_against_math():
    xs = np.linspace(-3.0, 3.0, 601)
    ys = np.array([math.erf(v) for v in xs])
    np.testing.assert_allclose(Tensor(xs).erf().data, ys, rtol=4e-16 * 8, atol=1e-16)
    inverse = Tensor(ys).erfinv().data
    np.testing.assert_allclose(inverse, xs, rtol=2e-13, atol=1e-15)  # |y| <= erf(3): cond ~1e2
    assert Tensor([1.0, -1.0, 1.5]).erfinv().tolist()[:2] == [math.inf, -math.inf]
    assert math.isnan(Tensor([1.5]).erfinv().item())
    assert Tensor(np.float32(0.5)).erfinv().dtype == np.float32 and Tensor([1, 2]).sin().dtype == np.float32


@SETTINGS
@given(data=st.data(), shape=shapes)
def test_rounding_forward_and_zero_gradient(data, shape):
    x = leaf(data.draw(values(shape)) * 3)
    for name, reference in [("floor", np.floor), ("ceil", np.ceil), ("trunc", np.trunc),
                            ("round", np.round), ("sign", np.sign)]:
        out = getattr(x, name)()
        np.testing.assert_array_equal(out.data, reference(x.data))
        out.sum().backward()
        np.testing.assert_array_equal(x.grad, np.zeros(shape))
        x.grad = None
    np.testing.assert_array_equal(x.round(decimals=1).data, np.round(x.data, 1))


def test_kinks_as_pytorch():
    x = Tensor(np.array([-1.0, 0.0, 0.5, 1.0, 2.0]), requires_grad=True)
    x.clamp(0.0, 1.0).sum().backward()
    np.testing.assert_array_equal(x.grad, [0, 1, 1, 1, 0])  # the boundaries pass the gradient
    x.grad = None
    (x ** 0).sum().backward()
    np.testing.assert_array_equal(x.grad, [0, 0, 0, 0, 0])  # d x^0 / dx = 0, also at 0
    x.grad = None
    x.abs().sum().backward()
    np.testing.assert_array_equal(x.grad, [-1, 0, 1, 1, 1])
    x.grad = None
    (x ** Tensor(np.zeros(5))).sum().backward()
    np.testing.assert_array_equal(x.grad, [0, 0, 0, 0, 0])


@SETTINGS
@given(data=st.data(), shape=shapes)
def test_clamp_gradcheck_with_numbers_and_tensors(data, shape):
    x = leaf(data.draw(values(shape)))
    x.data[np.abs(np.abs(x.data) - 0.5) < 1e-3] = 0.7  # away from the boundaries
    np.testing.assert_array_equal(x.clamp(-0.5, 0.5).data, np.clip(x.data, -0.5, 0.5))
    np.testing.assert_array_equal(x.clamp(min=0.5).data, np.maximum(x.data, 0.5))
    assert gradcheck(lambda t: t.clamp(-0.5, 0.5), x) and gradgradcheck(lambda t: t.clamp(max=0.5), x)
    low = leaf(np.full(shape, -0.5))
    np.testing.assert_array_equal(x.clamp(low, 0.5).data, np.clip(x.data, -0.5, 0.5))
    assert gradcheck(lambda t, lo: t.clamp(lo, 0.5), x, low)


@SETTINGS
@given(data=st.data(), pair=broadcast_pairs)
def test_binary_math_gradcheck(data, pair):
    (shape_a, shape_b), _ = pair
    a = leaf(data.draw(values(shape_a)) * 2)
    b = leaf(data.draw(away_from_zero(shape_b)))
    ratio = np.broadcast_to(a.data, np.broadcast_shapes(shape_a, shape_b)) / b.data
    safe = np.all(np.abs(ratio - np.round(ratio)) > 1e-3)
    for name, reference in [("fmod", np.fmod), ("remainder", np.remainder), ("atan2", np.arctan2),
                            ("logaddexp", np.logaddexp), ("copysign", np.copysign)]:
        np.testing.assert_allclose(getattr(a, name)(b).data, reference(a.data, b.data), rtol=1e-13, atol=1e-15)
        a_nonzero = np.all(np.abs(a.data) > 1e-3)  # copysign's kink; atan2's branch cut for b < 0
        kink_free = {"fmod": safe, "remainder": safe, "copysign": a_nonzero, "atan2": a_nonzero}
        if kink_free.get(name, True):
            assert gradcheck(lambda s, t: getattr(s, name)(t), a, b), name
    np.testing.assert_array_equal((a % b).data, np.remainder(a.data, b.data))
    np.testing.assert_array_equal((a // b).data, np.floor_divide(a.data, b.data))
    w = leaf(data.draw(values(shape_b)))
    np.testing.assert_allclose(a.lerp(b, w).data, a.data + w.data * (b.data - a.data), rtol=1e-13, atol=1e-14)
    assert gradcheck(lambda s, t, u: s.lerp(t, u), a, b, w)
    assert gradgradcheck(lambda s, t: s.logaddexp(t), a, b)
    if a_nonzero:
        assert gradgradcheck(lambda s, t: s.atan2(t), a, b)


def test_integer_modulo_and_floor_division_as_python():
    a, b = Tensor([7, -7, 7, -7]), Tensor([2, 2, -2, -2])
    assert (a % b).tolist() == [1, 1, -1, -1] and (a // b).tolist() == [3, -4, -4, 3]
    assert a.fmod(b).tolist() == [1, -1, 1, -1] and (a // b).dtype == np.int64
    assert (a % 3).dtype == np.int64 and (a // 2.0).dtype == np.float32
    assert a.div(b, rounding_mode="trunc").tolist() == [3, -3, -3, 3] and a.div(b, rounding_mode="trunc").dtype == np.int64
    assert a.div(b, rounding_mode="floor").tolist() == [3, -4, -4, 3]


@pytest.mark.parametrize("op, name", [
    (lambda a, b: a // b, r"floor_divide \(//\)"), (lambda a, b: a % b, r"remainder \(%\)"),
    (lambda a, b: a.fmod(b), "fmod"), (lambda a, b: a.remainder(b), "remainder"),
    (lambda a, b: a.div(b, rounding_mode="trunc"), "div"), (lambda a, b: a.div(b, rounding_mode="floor"), "div"),
    (lambda a, b: 7 // b, r"floor_divide \(//\)"), (lambda a, b: 7 % b, r"remainder \(%\)")])
def test_integer_division_by_zero_raises_as_pytorch(op, name):
    # PyTorch: RuntimeError "ZeroDivisionError"; the error here is both a RuntimeError and a
    # ZeroDivisionError, and names the op and the shapes
    a, b = Tensor([7, -7, 3]), Tensor([2, 0, 1])
    with pytest.raises(RuntimeError, match=name + r".*ZeroDivisionError.*divisor shape \(3,\)"):
        op(a, b)
    with pytest.raises(ZeroDivisionError):
        op(a, b)
    with np.errstate(divide="ignore", invalid="ignore"):
        floats = op(a.float(), b.float())  # floats follow IEEE: inf or nan where b == 0, no error
    assert floats.dtype == np.float32 and not np.isfinite(floats.data[1]) and np.isfinite(floats.data[[0, 2]]).all()


def test_floor_divide_autograd_as_pytorch():
    # PyTorch: the result of // requires grad, and backward raises "derivative for
    # floor_divide is not implemented"; div(rounding_mode=...) has gradient 0 to both inputs
    x = Tensor(np.array([7.5, -7.5, 2.5]), requires_grad=True)
    y = Tensor(np.array([2.0, 2.0, -1.0]), requires_grad=True)
    out = x // y
    assert out.requires_grad and out.tolist() == [3, -4, -3]
    with pytest.raises(RuntimeError, match="derivative for floor_divide is not implemented"):
        out.sum().backward()
    with pytest.raises(RuntimeError, match="derivative for floor_divide is not implemented"):
        (2.0 // x).sum().backward()
    assert not (x.detach() // 2).requires_grad
    for mode, expected in (("floor", [3, -4, -3]), ("trunc", [3, -3, -2])):
        x.grad = y.grad = None
        out = x.div(y, rounding_mode=mode)
        assert out.requires_grad and out.tolist() == expected
        out.sum().backward()
        assert x.grad.tolist() == [0, 0, 0] and y.grad.tolist() == [0, 0, 0]
        assert gradcheck(lambda s, t: s.div(t, rounding_mode=mode), x, y)
        assert gradgradcheck(lambda s, t: s.div(t, rounding_mode=mode), x, y)


def test_logical_and_bitwise():
    a, b = Tensor([0b1100, 0b1010]), Tensor([0b1010, 0b0110])
    assert (a & b).tolist() == [0b1000, 0b0010] and (a | b).tolist() == [0b1110, 0b1110]
    assert (a ^ b).tolist() == [0b0110, 0b1100] and (~a).tolist() == [~0b1100, ~0b1010]
    assert (a << 1).tolist() == [24, 20] and (a >> 2).tolist() == [3, 2]
    p, q = Tensor([True, True, False]), Tensor([True, False, False])
    assert (p & q).tolist() == [True, False, False] and (~p).tolist() == [False, False, True]
    x = Tensor([0.0, 1.5, np.nan, np.inf])
    assert x.logical_and(Tensor([1, 1, 1, 0])).tolist() == [False, True, True, False]
    assert x.logical_not().tolist() == [True, False, False, False]
    assert x.isnan().tolist() == [False, False, True, False] and x.isinf().tolist() == [False, False, False, True]
    assert x.isfinite().tolist() == [True, True, False, False]
    assert Tensor([1.0, 2.0]).isclose(Tensor([1.0 + 1e-9, 2.1])).tolist() == [True, False]
    assert Tensor([1, 0]).any().item() and not Tensor([1, 0]).all().item()
    with pytest.raises(TypeError, match=r"bitwise_and: needs integer or bool tensors, got dtype float32 and int64"):
        Tensor([1.0]) & Tensor([1])
    with pytest.raises(TypeError, match="bitwise_not: needs integer or bool tensors, got dtype float32"):
        ~Tensor([1.0])


def test_creation_functions():
    mg.manual_seed(3)
    first = mg.randn(2, 3)
    mg.manual_seed(3)
    assert np.array_equal(first.data, mg.randn((2, 3)).data) and first.dtype == np.float32
    assert mg.zeros(2, 3).shape == (2, 3) and mg.ones((2,), dtype=mg.int64).dtype == np.int64
    assert mg.full((2, 2), 1.5).tolist() == [[1.5, 1.5], [1.5, 1.5]] and mg.full((1,), 2).dtype == np.int64
    assert mg.full((1,), True).dtype == np.bool_ and mg.empty(3).shape == (3,)
    x = mg.rand(4, 5, dtype=mg.float64, requires_grad=True)
    assert x.requires_grad and x.dtype == np.float64 and 0 <= x.data.min() and x.data.max() < 1
    assert mg.zeros_like(x).dtype == np.float64 and mg.ones_like(x, dtype=mg.float32).dtype == np.float32
    assert mg.full_like(x, 7.0).data.max() == 7.0 and mg.randn_like(x).shape == (4, 5)
    assert mg.arange(5).tolist() == [0, 1, 2, 3, 4] and mg.arange(5).dtype == np.int64
    np.testing.assert_allclose(mg.arange(1, 2, 0.25).data, [1, 1.25, 1.5, 1.75])
    assert mg.arange(1, 2, 0.25).dtype == np.float32 and mg.arange(5, 0, -2).tolist() == [5, 3, 1]
    np.testing.assert_allclose(mg.linspace(0, 1, 5).data, np.linspace(0, 1, 5))
    assert mg.eye(2, 3).tolist() == [[1, 0, 0], [0, 1, 0]]
    ints = mg.randint(2, 5, (100,))
    assert ints.dtype == np.int64 and ints.data.min() >= 2 and ints.data.max() < 5
    assert mg.randint(3, (4,)).data.max() < 3
    samples = mg.normal(mg.zeros(1000) + 5, 0.1)
    assert abs(samples.data.mean() - 5) < 0.05 and samples.shape == (1000,)
    assert sorted(mg.randperm(5).tolist()) == [0, 1, 2, 3, 4]
    with pytest.raises(TypeError, match="only floating-point tensors can require grad"):
        mg.zeros(2, dtype=mg.long, requires_grad=True)


@SETTINGS
@given(data=st.data(), shape=hnp.array_shapes(min_dims=2, max_dims=3, max_side=4), diagonal=st.integers(-2, 2))
def test_tril_triu_meshgrid(data, shape, diagonal):
    x = leaf(data.draw(values(shape)))
    np.testing.assert_array_equal(x.tril(diagonal).data, np.tril(x.data, diagonal))
    np.testing.assert_array_equal(mg.triu(x, diagonal).data, np.triu(x.data, diagonal))
    assert gradcheck(lambda t: t.tril(diagonal), x) and gradgradcheck(lambda t: t.triu(diagonal), x)
    a, b = leaf(np.arange(2.0)), leaf(np.arange(3.0))
    for indexing in ("ij", "xy"):
        grids = mg.meshgrid(a, b, indexing=indexing)
        for got, expected in zip(grids, np.meshgrid(a.data, b.data, indexing=indexing)):
            np.testing.assert_array_equal(got.data, expected)
    assert gradcheck(lambda s, t: mg.meshgrid(s, t)[0] * mg.meshgrid(s, t)[1], a, b)
