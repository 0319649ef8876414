"""minigrad.autograd.functional (vjp, jvp, hvp, vhp, jacobian, hessian) against closed forms and
finite differences, and a Hessian-vector product of a 2-layer GPT's loss against the finite
difference of its gradients along the same direction."""
from __future__ import annotations

import numpy as np
import pytest

import minigrad as mg
from minigrad import Tensor
from minigrad.autograd import functional as AF
from minigrad.autograd import grad
from minigrad.nn import functional as F
from gpt import GPTModel


def t(values) -> Tensor:
    return Tensor(np.array(values, dtype=np.float64))


def cubic(x):  # f = sum(x^3) + x0 x1:  grad = 3x^2 + (x1, x0, 0),  H = diag(6x) + offdiag
    return (x**3).sum() + x[0] * x[1]


def cubic_hessian(x):
    h = np.diag(6 * x)
    h[0, 1] = h[1, 0] = 1.0
    return h


def test_hessian_and_hvp_of_a_cubic():
    x = t([0.5, -1.0, 2.0])
    np.testing.assert_allclose(AF.hessian(cubic, x).data, cubic_hessian(x.data))
    v = np.array([1.0, 2.0, -1.0])
    value, product = AF.hvp(cubic, x, v)
    assert value.item() == pytest.approx(cubic(x).item())
    np.testing.assert_allclose(product.data, cubic_hessian(x.data) @ v)
    np.testing.assert_allclose(AF.vhp(cubic, x, v)[1].data, v @ cubic_hessian(x.data))
    assert x.grad is None and not x.requires_grad  # the caller's tensor is untouched


def test_jacobian_vjp_jvp_of_an_elementwise_map():
    x = t([0.3, -0.7])
    f = lambda a: a.tanh() * a  # noqa: E731  d/da = tanh(a) + a (1 - tanh^2)
    diagonal = np.tanh(x.data) + x.data * (1 - np.tanh(x.data) ** 2)
    np.testing.assert_allclose(AF.jacobian(f, x).data, np.diag(diagonal))
    v = np.array([2.0, -1.0])
    out, product = AF.vjp(f, x, v)
    np.testing.assert_allclose(out.data, f(x).data)
    np.testing.assert_allclose(product.data, diagonal * v)
    np.testing.assert_allclose(AF.jvp(f, x, v)[1].data, diagonal * v)


def test_tuples_of_inputs_and_outputs_follow_torch_nesting():
    a, b = t([1.0, 2.0]), t([3.0])
    jac = AF.jacobian(lambda x, y: (x * y, (x * x).sum()), (a, b))
    assert isinstance(jac, tuple) and len(jac) == 2 and len(jac[0]) == 2
    np.testing.assert_allclose(jac[0][0].data, 3.0 * np.eye(2))  # d(x y)/dx, shape (2, 2)
    np.testing.assert_allclose(jac[0][1].data, [[1.0], [2.0]])  # d(x y)/dy, shape (2, 1)
    np.testing.assert_allclose(jac[1][0].data, [2.0, 4.0])  # d sum(x^2)/dx, shape (2,)
    hess = AF.hessian(lambda x, y: (x * x * y).sum(), (a, b))
    np.testing.assert_allclose(hess[0][0].data, 6.0 * np.eye(2))
    np.testing.assert_allclose(hess[0][1].data, [[2.0], [4.0]])
    np.testing.assert_allclose(hess[1][1].data, [[0.0]])
    _, (va, vb) = AF.vjp(lambda x, y: x * y, (a, b), np.ones(2))
    np.testing.assert_allclose(va.data, [3.0, 3.0])
    np.testing.assert_allclose(vb.data, [3.0])
    _, jv = AF.jvp(lambda x, y: x * y, (a, b), (np.ones(2), np.ones(1)))
    np.testing.assert_allclose(jv.data, [3.0 + 1.0, 3.0 + 2.0])


def test_create_graph_keeps_the_result_differentiable():
    x = Tensor(np.array([0.4, 0.9]), requires_grad=True)
    _, product = AF.hvp(lambda a: (a**4).sum(), x, np.ones(2), create_graph=True)  # 12 a^2
    assert product.requires_grad
    (third,) = grad(product.sum(), x)  # 24 a
    np.testing.assert_allclose(third.data, 24 * x.data)


def test_independent_inputs_and_bad_vectors():
    a, b = t([1.0]), t([2.0])
    _, (ga, gb) = AF.vjp(lambda x, y: x * 2, (a, b), np.ones(1))
    np.testing.assert_array_equal(gb.data, [0.0])  # independent: zeros
    with pytest.raises(RuntimeError, match="independent of input 1. This is not allowed in strict mode"):
        AF.vjp(lambda x, y: x * 2, (a, b), np.ones(1), strict=True)
    with pytest.raises(RuntimeError, match="the vector v can only be None if the user-provided function returns a single Tensor with a single element"):
        AF.vjp(lambda x: x * 2, t([1.0, 2.0]))
    with pytest.raises(RuntimeError, match=r"Mismatch in shape: v\[0\] has a shape of \(3,\) and inputs\[0\] has a shape of \(2,\)"):
        AF.hvp(lambda x: (x * x).sum(), t([1.0, 2.0]), np.ones(3))
    with pytest.raises(RuntimeError, match="should return a single Tensor with a single element"):
        AF.hessian(lambda x: x * x, t([1.0, 2.0]))
    with pytest.raises(TypeError, match=r"hvp: inputs\[0\] must be a Tensor"):
        AF.hvp(lambda x: x.sum(), np.ones(2), np.ones(2))


def test_hvp_of_a_two_layer_gpt_loss_equals_the_difference_of_gradients():
    cfg = {"vocab_size": 11, "context_length": 6, "emb_dim": 8, "n_heads": 2, "n_layers": 2,
           "drop_rate": 0.0, "qkv_bias": True}
    model = GPTModel(cfg, dtype=np.float64, generator=np.random.default_rng(0))
    rng = np.random.default_rng(1)
    ids, targets = rng.integers(0, 11, (2, 6)), rng.integers(0, 11, (2, 6))
    params = list(model.parameters())

    def loss():
        logits = model(ids)  # (B, T, V)
        return F.cross_entropy(logits.reshape(-1, 11), targets.reshape(-1))

    direction = [rng.standard_normal(p.shape) for p in params]
    gradients = grad(loss(), params, create_graph=True)
    products = grad(list(gradients), params, direction)  # H v, one block per parameter

    def gradient_values():
        return [g.data for g in grad(loss(), params)]

    eps = 1e-5
    for p, v in zip(params, direction):
        p.data += eps * v
    plus = gradient_values()
    for p, v in zip(params, direction):
        p.data -= 2 * eps * v
    minus = gradient_values()
    for p, v in zip(params, direction):
        p.data += eps * v
    numeric = np.concatenate([((a - b) / (2 * eps)).ravel() for a, b in zip(plus, minus)])
    analytic = np.concatenate([h.data.ravel() for h in products])
    assert np.linalg.norm(analytic) > 1e-3  # a real signal, not zeros on both sides
    np.testing.assert_allclose(analytic, numeric, rtol=1e-5, atol=1e-7 * np.abs(numeric).max())
