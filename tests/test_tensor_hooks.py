"""Tensor.register_hook and retain_grad as PyTorch documents them: a hook sees the whole
gradient of its tensor, may return a replacement used for .grad and everything upstream,
runs in registration order, stops after handle.remove(); also under create_graph."""
from __future__ import annotations

import numpy as np
import pytest

import minigrad as mg
from minigrad import Tensor
from minigrad.autograd import grad


def test_the_pytorch_docs_example_doubles_a_leaf_gradient_until_removed():
    v = Tensor(np.array([0.0, 0.0, 0.0]), requires_grad=True)
    handle = v.register_hook(lambda g: g * 2)  # double the gradient
    v.backward(np.array([1.0, 2.0, 3.0]))
    np.testing.assert_array_equal(v.grad, [2.0, 4.0, 6.0])
    handle.remove()
    v.grad = None
    v.backward(np.array([1.0, 2.0, 3.0]))
    np.testing.assert_array_equal(v.grad, [1.0, 2.0, 3.0])


def test_a_non_leaf_hook_changes_everything_upstream_and_the_retained_grad():
    x = Tensor(np.array([1.0, -2.0]), requires_grad=True)
    y = x * 3.0
    y.retain_grad()
    seen = []
    y.register_hook(lambda g: seen.append(g.data.copy()))
    y.register_hook(lambda g: g * 10.0)
    (y * 2.0).sum().backward()
    np.testing.assert_array_equal(seen[0], [2.0, 2.0])  # d/dy of sum(2y), before the second hook
    np.testing.assert_array_equal(y.grad, [20.0, 20.0])  # retain_grad keeps the hooked value
    np.testing.assert_array_equal(x.grad, [60.0, 60.0])  # 3 * 20: the replacement flowed on


def test_a_hook_sees_the_summed_gradient_of_a_tensor_used_twice_once():
    x = Tensor(np.array([0.5, 1.5]), requires_grad=True)
    y = x * 1.0
    calls = []
    y.register_hook(lambda g: calls.append(g.data.copy()))
    (y * y + y * 4.0).sum().backward()
    assert len(calls) == 1
    np.testing.assert_allclose(calls[0], 2 * y.data + 4.0)
    np.testing.assert_allclose(x.grad, 2 * x.data + 4.0)


def test_hooks_chain_in_registration_order_and_each_backward_calls_them():
    x = Tensor(np.array([1.0]), requires_grad=True)
    x.register_hook(lambda g: g + 1.0)
    x.register_hook(lambda g: g * 2.0)
    (x * 3.0).sum().backward()
    np.testing.assert_array_equal(x.grad, [8.0])  # (3 + 1) * 2
    (x * 3.0).sum().backward()
    np.testing.assert_array_equal(x.grad, [16.0])  # accumulated: another (3 + 1) * 2


def test_hook_errors_are_clear():
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    with pytest.raises(RuntimeError, match="cannot register a hook on a tensor that does not require grad"):
        Tensor(np.ones(2)).register_hook(lambda g: g)
    x.register_hook(lambda g: np.ones(3))
    with pytest.raises(RuntimeError, match=r"returned a gradient of shape \(3,\) for a tensor of shape \(2,\)"):
        (x * 2.0).sum().backward()
    y = Tensor(np.array([1.0, 2.0]), requires_grad=True)

    def modifies(g):
        g.data[...] = 0.0
    y.register_hook(modifies)
    with pytest.raises(ValueError, match="read-only"):  # a hook must not modify its argument
        (y * 2.0).sum().backward()


def test_hooks_under_create_graph_stay_differentiable():
    x = Tensor(np.array([0.5, -1.0, 2.0]), requires_grad=True)
    y = x * x
    y.register_hook(lambda g: g * 3.0)
    (dx,) = grad(y.sum(), x, create_graph=True)
    np.testing.assert_allclose(dx.data, 6.0 * x.data)  # 3 * 2x
    (d2x,) = grad(dx.sum(), x)
    np.testing.assert_allclose(d2x, [6.0, 6.0, 6.0])
