"""autograd.grad, backward(create_graph=True), gradgradcheck itself, third derivatives against
closed forms, the errors worded as PyTorch's, and the engine's rule for adopting gradient
buffers (a planted aliasing mistake is caught)."""
from __future__ import annotations

import re

import numpy as np
import pytest

import minigrad as mg
from minigrad import Function, Tensor, gradgradcheck, optim
from minigrad.autograd import grad
from minigrad.gradcheck import GradcheckError
from minigrad.ops import Reshape
from core_strategies import leaf


# --------------------------------------------------------------------- grad()
def test_grad_returns_gradients_and_leaves_dot_grad_alone():
    x = leaf([1.0, 2.0])
    (dx,) = grad((x**3).sum(), x)
    np.testing.assert_allclose(dx.data, [3.0, 12.0])
    assert x.grad is None and not dx.requires_grad


def test_grad_of_grad_is_the_second_derivative():
    x = leaf([1.0, 2.0])
    (dx,) = grad((x**3).sum(), x, create_graph=True)  # 3 x^2
    assert dx.requires_grad
    (d2x,) = grad(dx.sum(), x)  # 6 x
    np.testing.assert_allclose(d2x.data, [6.0, 12.0])


def test_grad_with_several_outputs_and_inputs_sums_over_outputs():
    x, y = leaf([1.0, 2.0]), leaf([3.0])
    a, b = x * y, (x * x).sum()
    dx, dy = grad([a, b], [x, y], grad_outputs=[np.ones(2), None])
    np.testing.assert_allclose(dx.data, [3.0 + 2.0, 3.0 + 4.0])
    np.testing.assert_allclose(dy.data, [3.0])


def test_grad_through_an_intermediate_input_is_the_total_derivative():
    x = leaf([2.0])
    h = x * x
    out = h * x  # x^3: d/dx = 3 x^2 through both paths; d/dh = x
    dx, dh = grad(out.sum(), [x, h])
    np.testing.assert_allclose(dx.data, [12.0])
    np.testing.assert_allclose(dh.data, [2.0])


def test_backward_create_graph_makes_dot_grad_a_differentiable_tensor():
    x = leaf([0.5, -1.0])
    (x**3).sum().backward(create_graph=True)
    assert isinstance(x.grad, Tensor) and x.grad.requires_grad
    np.testing.assert_allclose(x.grad.data, 3 * x.data**2)
    first = x.grad
    x.grad = None
    first.sum().backward()  # d/dx sum(3 x^2) = 6 x, an ndarray again
    assert isinstance(x.grad, np.ndarray)
    np.testing.assert_allclose(x.grad, 6 * x.data)


def test_optimizers_and_clipping_accept_a_tensor_grad():
    w = mg.nn.Parameter(np.array([1.0, -2.0], dtype=np.float32)) if hasattr(mg.nn, "Parameter") else \
        Tensor(np.array([1.0, -2.0], dtype=np.float32), requires_grad=True)
    opt = optim.SGD([w], lr=0.1)
    (w * w).sum().backward(create_graph=True)
    assert isinstance(w.grad, Tensor)
    norm = mg.nn.utils.clip_grad_norm([w], max_norm=1e9)
    assert norm == pytest.approx(np.sqrt(4 + 16))
    opt.step()
    np.testing.assert_allclose(w.data, [1.0 - 0.2, -2.0 + 0.4], rtol=1e-6)
    opt.zero_grad(set_to_none=False)
    np.testing.assert_array_equal(w.grad, [0.0, 0.0])


def test_float32_stays_float32_through_a_second_derivative():
    x = Tensor(np.array([0.3, 0.7], dtype=np.float32), requires_grad=True)
    (dx,) = grad(x.tanh().sum(), x, create_graph=True)
    (d2x,) = grad(dx.sum(), x)
    assert dx.dtype == np.float32 and d2x.dtype == np.float32
    y = Tensor(np.array([0.3, 0.7], dtype=np.float32), requires_grad=True)
    (dy,) = grad((y.astype(np.float64) ** 3).sum(), y, create_graph=True)
    assert dy.dtype == np.float32
    (d2y,) = grad(dy.sum(), y)
    np.testing.assert_allclose(d2y.data, 6 * y.data, rtol=1e-6)


# --------------------------------------------------------------------- closed forms
def test_third_derivative_of_tanh():
    x = leaf(np.linspace(-2.0, 2.0, 7))
    (d1,) = grad(x.tanh().sum(), x, create_graph=True)
    (d2,) = grad(d1.sum(), x, create_graph=True)
    (d3,) = grad(d2.sum(), x)
    t = np.tanh(x.data)
    np.testing.assert_allclose(d1.data, 1 - t**2, rtol=1e-12)
    np.testing.assert_allclose(d2.data, -2 * t * (1 - t**2), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(d3.data, -2 * (1 - t**2) * (1 - 3 * t**2), rtol=1e-10, atol=1e-14)


def test_third_derivative_of_an_exp_composition():
    # f = exp(-x^2):  f' = -2x f,  f'' = (4x^2 - 2) f,  f''' = (12x - 8x^3) f
    x = leaf(np.linspace(-1.5, 1.5, 7))
    derivatives, f = [], (-(x * x)).exp().sum()
    for _ in range(3):
        (f,) = grad(f, x, create_graph=True)
        derivatives.append(f.data)
        f = f.sum()
    v = x.data
    e = np.exp(-v * v)
    np.testing.assert_allclose(derivatives[0], -2 * v * e, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(derivatives[1], (4 * v**2 - 2) * e, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(derivatives[2], (12 * v - 8 * v**3) * e, rtol=1e-10, atol=1e-14)


# --------------------------------------------------------------------- errors, as torch words them
def test_non_scalar_output_without_grad_outputs():
    x = leaf([1.0, 2.0])
    with pytest.raises(RuntimeError, match=r"grad can be implicitly created only for scalar outputs; output 0 has shape \(2,\)"):
        grad(x * 2, x)


def test_mismatched_grad_outputs_shape():
    x = leaf([1.0, 2.0])
    with pytest.raises(RuntimeError, match=r"Mismatch in shape: grad_output\[0\] has a shape of \(3,\) and output\[0\] has a shape of \(2,\)"):
        grad(x * 2, x, grad_outputs=np.ones(3))
    with pytest.raises(RuntimeError, match="grad_outputs has 2 entries for 1 outputs"):
        grad(x * 2, x, grad_outputs=[np.ones(2), np.ones(2)])


def test_unused_input_is_an_error_unless_allowed():
    x, unused = leaf([1.0]), leaf([[2.0, 3.0]])
    with pytest.raises(RuntimeError, match=r"appears to not have been used in the graph \(inputs\[1\], shape \(1, 2\)\); set allow_unused=True"):
        grad((x * 2).sum(), [x, unused])
    dx, du = grad((x * 2).sum(), [x, unused], allow_unused=True)
    assert du is None and dx.item() == 2.0


def test_input_that_does_not_require_grad():
    x, constant = leaf([1.0]), Tensor(np.array([1.0]))
    with pytest.raises(RuntimeError, match=r"One of the differentiated Tensors does not require grad \(inputs\[1\]"):
        grad((x * constant).sum(), [x, constant])
    with pytest.raises(RuntimeError, match="element 0 of tensors does not require grad and does not have a grad_fn"):
        grad(constant * 2, x)


def test_second_differentiation_through_a_freed_graph():
    x = leaf([0.5])
    y = x.tanh()
    # d(y^2)/dx = 2 y tanh'(x): the gradient's graph goes through y, whose node the first
    # pass freed (retain_graph=False)
    (dx,) = grad((y * y).sum(), x, create_graph=True, retain_graph=False)
    with pytest.raises(RuntimeError, match="backward through the graph a second time.*'tanh' node was already freed.*retain_graph=True"):
        grad(dx.sum(), x)
    y = x.exp().sum()
    grad(y, x)  # create_graph=False frees the graph by default
    with pytest.raises(RuntimeError, match="already freed"):
        grad(y, x)


def test_an_op_without_a_graph_rule_says_so():
    class Square(Function):  # a first-order-only op (no backward_graph, no reference)
        def forward(self, a):
            self.a = a
            return a * a

        def backward(self, g):
            return 2 * self.a * g

    x = leaf([1.0])
    with pytest.raises(NotImplementedError, match="square: has no backward_graph.*create_graph=True"):
        grad(Square.apply(x).sum(), x, create_graph=True)


# --------------------------------------------------------------------- gradgradcheck itself
class TanhWithWrongSecondDerivative(Function):
    # the first derivative is right; backward_graph forgets the tanh^2 term's dependence on a
    def forward(self, a):
        self.out = np.tanh(a)
        return self.out

    def backward(self, g):
        return g * (1 - self.out**2)

    def backward_graph(self, g):
        return g * Tensor(1 - self.out**2)  # a constant: wrong from the second order on


def test_gradgradcheck_reports_a_wrong_backward_graph():
    x = leaf([[0.2, -0.5], [1.0, 0.3]])
    assert mg.gradcheck(lambda a: TanhWithWrongSecondDerivative.apply(a), x)
    with pytest.raises(GradcheckError) as info:
        gradgradcheck(lambda a: TanhWithWrongSecondDerivative.apply(a), x)
    message = str(info.value)
    assert re.search(r"gradgradcheck: input 0 \(shape \(2, 2\)\), element \(\d, \d\): analytic \S+ vs numeric \S+", message), message
    assert gradgradcheck(lambda a: TanhWithWrongSecondDerivative.apply(a), x, raise_exception=False) is False
    assert gradgradcheck(lambda a: a.tanh(), x)


def test_gradgradcheck_checks_through_grad_outputs_and_rejects_float32():
    x = leaf([0.4, -0.3])
    assert gradgradcheck(lambda a: a.tanh() * a, x, grad_outputs=np.array([1.0, -2.0]))
    with pytest.raises(TypeError, match="gradgradcheck: input 0 has dtype float32; use float64"):
        gradgradcheck(lambda a: a * a, Tensor([1.0], requires_grad=True))


# --------------------------------------------------------------------- gradient buffer ownership
def test_planted_reshape_freshness_claim_cannot_corrupt_gradients(monkeypatch):
    # The old engine trusted a per-op `fresh_grads` flag; set wrongly on Reshape (which returns
    # a view of its incoming gradient) it made b.grad 5 instead of 2. The engine now decides
    # from memory ownership, so the planted claim changes nothing.
    monkeypatch.setattr(Reshape, "fresh_grads", True, raising=False)
    x, b = leaf(np.arange(4.0)), leaf(np.zeros(4))
    ((x.reshape(4) + b) * 2 + x * 3 + b * 0).sum().backward()
    np.testing.assert_array_equal(b.grad, [2.0] * 4)
    np.testing.assert_array_equal(x.grad, [5.0] * 4)


class ViewOfIncoming(Function):
    # identity whose backward returns a view of g (like reshape)
    def forward(self, a):
        return a.copy()

    def backward(self, g):
        return g[...]


class ReturnsSaved(Function):
    # out = a * c for a constant c saved on the node; backward hands back the saved array when g is 1
    def forward(self, a, c):
        self.c = c
        return a * c

    def backward(self, g):
        return (self.c if np.all(g == 1) else g * self.c), None


class SameArrayTwice(Function):
    # out = a + b; backward returns one fresh array for both inputs
    def forward(self, a, b):
        return a + b

    def backward(self, g):
        shared = g.copy()
        return shared, shared


def test_engine_copies_every_gradient_buffer_it_does_not_own():
    x, b = leaf(np.ones(3)), leaf(np.zeros(3))
    (ViewOfIncoming.apply(x + b) * 1 + b * 2 + x * 0).sum().backward()
    np.testing.assert_array_equal(b.grad, [3.0] * 3)

    c = np.array([2.0, 3.0, 4.0])
    x = leaf(np.ones(3))
    loss = ReturnsSaved.apply(x, Tensor(c)).sum() + (x * 5).sum()
    loss.backward(retain_graph=True)
    np.testing.assert_array_equal(x.grad, [7.0, 8.0, 9.0])
    np.testing.assert_array_equal(c, [2.0, 3.0, 4.0])  # the saved array was not written into
    x.grad = None
    loss.backward()
    np.testing.assert_array_equal(x.grad, [7.0, 8.0, 9.0])

    a, b = leaf(np.ones(2)), leaf(np.ones(2))
    (SameArrayTwice.apply(a, b) + a * 3).sum().backward()
    np.testing.assert_array_equal(a.grad, [4.0, 4.0])
    np.testing.assert_array_equal(b.grad, [1.0, 1.0])
