"""Elementwise activations of minigrad.nn.functional: forward against a plain NumPy formula
and PyTorch's documented values, float64 gradchecks on hypothesis shapes (values away from
the kinks), PyTorch's slopes at the kinks, float32 kept, and named errors."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import minigrad as mg
from minigrad.nn import functional as F
from minigrad.ops.special import erf_array

shapes = hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=3)  # empty axes too
erf = np.vectorize(math.erf, otypes=[float])


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def softplus(x):
    return np.log1p(np.exp(x))


A, S = 1.6732632423543772848170429916717, 1.0507009873554804934193349852946
# name -> (call, NumPy formula, kinks to stay away from)
CASES = {
    "leaky_relu": (lambda t: F.leaky_relu(t, 0.2), lambda x: np.where(x > 0, x, 0.2 * x), [0]),
    "elu": (lambda t: F.elu(t, 0.7), lambda x: np.where(x > 0, x, 0.7 * (np.exp(x) - 1)), [0]),
    "selu": (F.selu, lambda x: S * np.where(x > 0, x, A * (np.exp(x) - 1)), [0]),
    "celu": (lambda t: F.celu(t, 1.5), lambda x: np.maximum(0, x) + np.minimum(0, 1.5 * (np.exp(x / 1.5) - 1)), [0]),
    "gelu": (F.gelu, lambda x: 0.5 * x * (1 + erf(x / np.sqrt(2))), []),
    "silu": (F.silu, lambda x: x * sigmoid(x), []),
    "mish": (F.mish, lambda x: x * np.tanh(softplus(x)), []),
    "softplus": (lambda t: F.softplus(t, beta=2.0, threshold=3.0),
                 lambda x: np.where(2 * x > 3, x, softplus(2 * x) / 2), [1.5]),
    "softsign": (F.softsign, lambda x: x / (1 + np.abs(x)), [0]),
    "hardtanh": (lambda t: F.hardtanh(t, -0.5, 1.0), lambda x: np.clip(x, -0.5, 1.0), [-0.5, 1.0]),
    "relu6": (F.relu6, lambda x: np.clip(x, 0, 6), [0, 6]),
    "hardsigmoid": (F.hardsigmoid, lambda x: np.clip(x / 6 + 0.5, 0, 1), [-3, 3]),
    "hardswish": (F.hardswish, lambda x: x * np.clip(x + 3, 0, 6) / 6, [-3, 3]),
    "logsigmoid": (F.logsigmoid, lambda x: np.log(sigmoid(x)), []),
}


@settings(max_examples=10)
@pytest.mark.parametrize("name", sorted(CASES))
@given(data=st.data(), shape=shapes)
def test_activation_forward_and_gradcheck(name, data, shape):
    call, formula, kinks = CASES[name]
    x = data.draw(hnp.arrays(np.float64, shape, elements=st.floats(-7, 7)))
    for kink in kinks:  # finite differences need a margin around each kink
        x = np.where(np.abs(x - kink) < 0.05, kink + 0.1, x)
    out = call(mg.Tensor(x))
    assert out.shape == x.shape
    np.testing.assert_allclose(out.data, formula(x), rtol=1e-10, atol=1e-12)
    assert mg.gradcheck(call, mg.Tensor(x.copy(), requires_grad=True))
    assert mg.gradgradcheck(call, mg.Tensor(x.copy(), requires_grad=True))


@pytest.mark.parametrize("name", sorted(CASES))
def test_activation_keeps_float32_and_is_one_node(name):
    call = CASES[name][0]
    x = mg.Tensor(np.linspace(-8, 8, 12, dtype=np.float32), requires_grad=True)
    out = call(x)
    assert out.dtype == np.float32 and out._ctx.parents == (x,)
    out.backward(np.ones(12, np.float32))
    assert x.grad.dtype == np.float32 and np.isfinite(x.grad).all()


def slope_at(call, value):
    x = mg.Tensor(np.array([value]), requires_grad=True)
    call(x).backward(np.ones(1))
    return x.grad[0]


def test_slopes_at_kinks_are_pytorchs():
    assert slope_at(lambda t: F.leaky_relu(t, 0.1), 0.0) == pytest.approx(0.1)
    assert slope_at(F.elu, 0.0) == pytest.approx(1.0)  # alpha * exp(0)
    assert slope_at(F.relu6, 0.0) == 0 and slope_at(F.relu6, 6.0) == 0 and slope_at(F.relu6, 3.0) == 1
    assert slope_at(F.hardtanh, 1.0) == 0 and slope_at(F.hardtanh, -1.0) == 0
    assert slope_at(F.hardsigmoid, 3.0) == 0 and slope_at(F.hardsigmoid, 0.0) == pytest.approx(1 / 6)
    assert slope_at(F.hardswish, -3.0) == pytest.approx(-0.5) and slope_at(F.hardswish, 3.0) == pytest.approx(1.5)
    assert slope_at(F.hardswish, -3.5) == 0 and slope_at(F.hardswish, 3.5) == 1


def test_documented_values():
    # GELU(1) = Phi(1) = 0.8413447460685429; tanh GELU(1) = 0.8411919906082768
    assert F.gelu(mg.Tensor(np.array(1.0))).item() == pytest.approx(0.8413447460685429, rel=1e-14)
    assert F.gelu(mg.Tensor(np.array(1.0)), approximate="tanh").item() == pytest.approx(0.8411919906082768, rel=1e-12)
    assert F.selu(mg.Tensor(np.array(-1e3))).item() == pytest.approx(-A * S)
    assert F.softplus(mg.Tensor(np.array(30.0))).item() == 30.0  # linear above the threshold
    assert F.logsigmoid(mg.Tensor(np.array(-800.0))).item() == -800.0  # no overflow
    np.testing.assert_allclose(F.silu(mg.Tensor(np.array([-800.0, 800.0]))).data, [0.0, 800.0])


def test_erf_matches_math_erf_to_a_few_ulps():
    x = np.concatenate([np.linspace(-7, 7, 4001), [0.0, 2.5, np.inf, -np.inf]])
    np.testing.assert_allclose(erf_array(x), erf(x), rtol=4e-15, atol=1e-300)
    assert np.isnan(erf_array(np.array([np.nan]))).all()
    assert erf_array(np.ones(2, np.float32)).dtype == np.float32


def test_softmin_and_dim_rules():
    x = np.random.default_rng(0).standard_normal((2, 3, 4))
    e = np.exp(-x - (-x).max(axis=1, keepdims=True))
    np.testing.assert_allclose(F.softmin(x, dim=1).data, e / e.sum(axis=1, keepdims=True), rtol=1e-12)
    assert mg.gradcheck(lambda t: F.softmin(t, dim=-1), mg.Tensor(x, requires_grad=True))
    with pytest.warns(UserWarning, match="implicit dimension choice"):
        implicit = F.softmax(x)  # PyTorch's deprecated rule: dim 0 for a 3-d input
    np.testing.assert_allclose(implicit.data, F.softmax(x, dim=0).data)
    np.testing.assert_allclose(F.softmax(x, axis=2).data, F.softmax(x, dim=2).data)
    assert F.log_softmax(x.astype(np.float32), dim=1, dtype=np.float64).dtype == np.float64
    with pytest.raises(TypeError, match="softmax: got both dim=1 and axis=2"):
        F.softmax(x, dim=1, axis=2)


def test_activation_errors():
    with pytest.raises(ValueError, match="gelu: approximate must be 'none' or 'tanh', got 'erf'"):
        F.gelu(np.ones(2), approximate="erf")
    with pytest.raises(ValueError, match=r"hardtanh: min_val \(2.0\) must not exceed max_val \(1.0\)"):
        F.hardtanh(np.ones(2), 2.0, 1.0)
    with pytest.raises(TypeError, match="leaky_relu: negative_slope must be a number"):
        F.leaky_relu(np.ones(2), "0.1")
    with pytest.raises(ValueError, match="celu: alpha must not be 0"):
        F.celu(np.ones(2), 0.0)
    with pytest.raises(TypeError, match="must be numeric"):
        F.elu(np.array(["a"]))


@given(data=st.data(), shape=hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=3),
       p=st.sampled_from([1.0, 2.0, 3.0]))
@settings(max_examples=15)
def test_normalize(data, shape, p):
    x = data.draw(hnp.arrays(np.float64, shape, elements=st.floats(0.2, 2.0)))
    x = x * data.draw(hnp.arrays(np.float64, shape, elements=st.sampled_from([-1.0, 1.0])))
    dim = data.draw(st.integers(-len(shape), len(shape) - 1))
    norm = (np.abs(x) ** p).sum(axis=dim, keepdims=True) ** (1 / p)
    np.testing.assert_allclose(F.normalize(x, p=p, dim=dim).data, x / norm, rtol=1e-12)
    assert mg.gradcheck(lambda t: F.normalize(t, p=p, dim=dim), mg.Tensor(x, requires_grad=True))


def test_normalize_clamps_tiny_norms_and_one_hot():
    x = mg.Tensor(np.array([[1e-14, 0.0], [3.0, 4.0]]), requires_grad=True)
    out = F.normalize(x, eps=1e-12)
    np.testing.assert_allclose(out.data, [[1e-2, 0.0], [0.6, 0.8]])
    tiny = mg.Tensor(np.array([[1e-14, 0.0]]), requires_grad=True)  # clamped: y = x / eps
    assert mg.gradcheck(lambda t: F.normalize(t, eps=1e-12), tiny, eps=1e-16, rtol=1e-6)
    out.backward(np.ones((2, 2)))
    np.testing.assert_allclose(x.grad[0], [1e12, 1e12])
    hot = F.one_hot(np.array([[0, 2], [1, 1]]))
    assert hot.dtype == np.int64 and hot.shape == (2, 2, 3)
    np.testing.assert_array_equal(hot.data[0], [[1, 0, 0], [0, 0, 1]])
    assert F.one_hot(np.array([1]), num_classes=4).shape == (1, 4)
    with pytest.raises(ValueError, match=r"one_hot: class values must be in \[0, 2\), got min 0, max 3"):
        F.one_hot(np.array([0, 3]), num_classes=2)
    with pytest.raises(TypeError, match="one_hot: tensor must be integers"):
        F.one_hot(np.array([0.5]))
