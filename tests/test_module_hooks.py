"""Module hooks (forward pre-hook, forward hook, full backward hook) as PyTorch documents them:
what each hook receives, what its return value replaces, removable handles, and no hook state
on a module that never registered one."""
from __future__ import annotations

import numpy as np
import pytest

import minigrad as mg
from minigrad import Tensor, nn


def _linear(seed=0):
    return nn.Linear(3, 2, dtype=np.float64, generator=np.random.default_rng(seed))


def _x(seed=1, requires_grad=True):
    return Tensor(np.random.default_rng(seed).standard_normal((4, 3)), requires_grad=requires_grad)


class Product(nn.Module):
    """forward(a, scale, b) = a * b * scale (a non-Tensor positional argument in the middle)."""

    def forward(self, a, scale, b):
        return a * b * scale


def test_a_module_without_hooks_keeps_no_hook_state():
    layer = _linear()
    assert layer._hooks is None and "_hooks" not in layer.__dict__
    handle = layer.register_forward_hook(lambda m, args, out: None)
    handle.remove()
    x = _x()
    np.testing.assert_array_equal(layer(x).data, layer.forward(x).data)


def test_forward_pre_hook_sees_positional_args_and_can_replace_them():
    layer, x = _linear(), _x()
    seen = []
    def double(module, args):
        seen.append((module, len(args)))
        return args[0] * 2.0  # a single value is wrapped into a tuple
    handle = layer.register_forward_pre_hook(double)
    np.testing.assert_allclose(layer(x).data, layer.forward(x * 2.0).data)
    assert seen == [(layer, 1)]
    handle.remove()
    np.testing.assert_allclose(layer(x).data, layer.forward(x).data)
    assert len(seen) == 1  # removed: not called again


def test_forward_hook_sees_args_and_output_and_can_replace_the_output():
    layer, x = _linear(), _x()
    seen = {}
    def record(module, args, output):
        seen["args"], seen["output"] = args, output
    def negate(module, args, output):
        return -output
    h1 = layer.register_forward_hook(record)
    h2 = layer.register_forward_hook(negate)
    out = layer(x)
    assert seen["args"][0] is x
    np.testing.assert_allclose(out.data, -seen["output"].data)
    out.sum().backward()  # the replacement is part of the graph
    np.testing.assert_allclose(x.grad, -np.ones((4, 2)) @ layer.weight.data)
    h1.remove(), h2.remove()
    h2.remove()  # a second remove is harmless
    np.testing.assert_allclose(layer(x).data, seen["output"].data)


def test_full_backward_hook_gets_grad_input_and_grad_output():
    layer, x = _linear(), _x()
    calls = []
    layer.register_full_backward_hook(lambda m, gi, go: calls.append((m, gi, go)))
    upstream = np.random.default_rng(2).standard_normal((4, 2))
    (layer(x) * Tensor(upstream)).sum().backward()
    assert len(calls) == 1
    module, grad_input, grad_output = calls[0]
    assert module is layer and len(grad_input) == 1 and len(grad_output) == 1
    np.testing.assert_allclose(grad_output[0].data, upstream)
    np.testing.assert_allclose(grad_input[0].data, upstream @ layer.weight.data)
    np.testing.assert_allclose(x.grad, upstream @ layer.weight.data)
    np.testing.assert_allclose(layer.weight.grad, upstream.T @ x.data)  # parameters as usual


def test_full_backward_hook_replacement_changes_only_the_input_gradient():
    layer, x = _linear(), _x()
    reference_layer, reference_x = _linear(), _x()
    (reference_layer(reference_x) * 3.0).sum().backward()
    handle = layer.register_full_backward_hook(lambda m, gi, go: (gi[0] * 10.0,))
    (layer(x) * 3.0).sum().backward()
    np.testing.assert_allclose(x.grad, 10.0 * reference_x.grad)
    np.testing.assert_allclose(layer.weight.grad, reference_layer.weight.grad)  # untouched
    np.testing.assert_allclose(layer.bias.grad, reference_layer.bias.grad)
    handle.remove()
    x.grad = None
    (layer(x) * 3.0).sum().backward()
    np.testing.assert_allclose(x.grad, reference_x.grad)


def test_full_backward_hook_with_several_inputs_and_a_non_tensor_argument():
    module = Product()
    a, b = _x(3), Tensor(np.random.default_rng(4).standard_normal((4, 3)))  # b: no grad
    seen = []
    module.register_full_backward_hook(lambda m, gi, go: seen.append(gi))
    module(a, 0.5, b).sum().backward()
    grad_a, grad_scale, grad_b = seen[0]
    assert grad_scale is None and grad_b is None  # not a Tensor / does not require grad
    np.testing.assert_allclose(grad_a.data, 0.5 * b.data)
    np.testing.assert_allclose(a.grad, 0.5 * b.data)


def test_full_backward_hook_runs_for_a_first_layer_whose_input_needs_no_grad():
    layer, x = _linear(), _x(requires_grad=False)
    seen = []
    layer.register_full_backward_hook(lambda m, gi, go: seen.append(gi))
    layer(x).sum().backward()
    assert seen == [(None,)]
    np.testing.assert_allclose(layer.weight.grad, np.ones((2, 4)) @ x.data)


def test_backward_hook_in_a_nested_model_and_under_no_grad():
    model = nn.Sequential(_linear(), nn.Tanh(), nn.Linear(2, 1, dtype=np.float64))
    order = []
    model[0].register_full_backward_hook(lambda m, gi, go: order.append("first"))
    model[2].register_full_backward_hook(lambda m, gi, go: order.append("last"))
    x = _x()
    model(x).sum().backward()
    assert order == ["last", "first"]  # gradients flow from the output back
    with mg.no_grad():
        assert not model(x).requires_grad
    assert order == ["last", "first"]


def test_backward_hook_errors_are_clear():
    layer = _linear()
    layer.register_full_backward_hook(lambda m, gi, go: (gi[0], gi[0]))
    with pytest.raises(RuntimeError, match="backward hook of Linear: must return None or a tuple of 1"):
        layer(_x()).sum().backward()

    class Pair(nn.Module):
        def forward(self, x):
            return x, x
    pair = Pair()
    pair.register_full_backward_hook(lambda m, gi, go: None)
    with pytest.raises(TypeError, match="Pair.forward returned a tuple"):
        pair(_x())
    with pytest.raises(TypeError, match="expected a callable"):
        pair.register_forward_hook(3)
