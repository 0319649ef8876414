"""Gradient buffers (minigrad.autograd.engine.set_grad_buffer): a leaf's first gradient of a
backward is written into the array it names, which becomes its .grad; later gradients add
into it in place. The gradients are exactly those without a buffer."""
from __future__ import annotations

import gc

import numpy as np
import pytest

from minigrad import Tensor, nn
from minigrad.autograd import engine
from minigrad.autograd.engine import set_grad_buffer
from minigrad.nn import functional as F


def model_and_batch(seed=0):
    rng = np.random.default_rng(seed)
    layer = nn.Linear(5, 3)
    layer.weight.data = rng.standard_normal((3, 5)).astype(np.float32)
    layer.bias.data = rng.standard_normal(3).astype(np.float32)
    inputs = Tensor(rng.standard_normal((4, 5)).astype(np.float32))
    return layer, inputs


def loss_of(layer, inputs):
    hidden = layer(inputs)                             # (4, 3)
    return (hidden * hidden).sum() + (hidden + 0.0).sum() + layer.bias.sum()  # bias used twice


def test_the_first_gradient_is_written_into_the_buffer_and_later_ones_add_into_it():
    plain, inputs = model_and_batch()
    loss_of(plain, inputs).backward()
    want = {name: p.grad.copy() for name, p in plain.named_parameters()}

    layer, inputs = model_and_batch()
    flat = np.full(15 + 3, np.nan, np.float32)  # (18,) garbage: the first gradient overwrites it
    views = {"weight": flat[:15].reshape(3, 5), "bias": flat[15:]}
    for name, param in layer.named_parameters():
        set_grad_buffer(param, views[name])
    loss_of(layer, inputs).backward()
    for name, param in layer.named_parameters():
        assert param.grad is views[name]
        np.testing.assert_array_equal(param.grad, want[name])  # bit for bit
    loss_of(layer, inputs).backward()  # a second backward accumulates in place
    for name, param in layer.named_parameters():
        assert param.grad is views[name]
        np.testing.assert_array_equal(param.grad, 2 * want[name])
    layer.zero_grad()  # set_to_none: the next backward writes, it does not add
    loss_of(layer, inputs).backward()
    np.testing.assert_array_equal(flat, np.concatenate([want["weight"].ravel(), want["bias"]]))


def test_a_gradient_shared_with_the_graph_is_copied_into_the_buffer():
    x = Tensor(np.arange(6, dtype=np.float32).reshape(2, 3), requires_grad=True)
    buffer = np.zeros((2, 3), np.float32)
    set_grad_buffer(x, buffer)
    upstream = np.full((2, 3), 3.0, np.float32)
    (x + 1.0).backward(upstream)  # add hands the incoming gradient on as it is
    assert x.grad is buffer and not np.shares_memory(buffer, upstream)
    np.testing.assert_array_equal(buffer, upstream)


def test_create_graph_and_removal_leave_the_buffer_alone():
    x = Tensor(np.ones(3, np.float32), requires_grad=True)
    buffer = np.zeros(3, np.float32)
    set_grad_buffer(x, buffer)
    (x * x).sum().backward(create_graph=True)  # a Tensor gradient with its graph
    assert isinstance(x.grad, Tensor) and not buffer.any()
    x.grad = None
    set_grad_buffer(x, None)
    (x * x).sum().backward()
    assert x.grad is not buffer and not buffer.any()
    np.testing.assert_array_equal(x.grad, 2 * np.ones(3, np.float32))


def test_the_registry_forgets_a_tensor_that_is_gone():
    x = Tensor(np.ones(3, np.float32), requires_grad=True)
    set_grad_buffer(x, np.zeros(3, np.float32))
    key = id(x)
    del x
    gc.collect()
    assert key not in engine._grad_buffers


@pytest.mark.parametrize("buffer, message", [
    (np.zeros((3, 2), np.float32), r"float32 array of the tensor's shape \(2, 3\), got a float32 array of shape \(3, 2\)"),
    (np.zeros((2, 3), np.float64), r"got a float64 array of shape \(2, 3\)"),
    ([[0.0] * 3] * 2, r"got a list"),
])
def test_a_buffer_of_another_shape_or_dtype_is_refused(buffer, message):
    x = Tensor(np.ones((2, 3), np.float32), requires_grad=True)
    with pytest.raises(ValueError, match=message):
        set_grad_buffer(x, buffer)


def test_a_read_only_buffer_or_a_non_leaf_is_refused():
    x = Tensor(np.ones(3, np.float32), requires_grad=True)
    frozen = np.zeros(3, np.float32)
    frozen.flags.writeable = False
    with pytest.raises(ValueError, match="writeable"):
        set_grad_buffer(x, frozen)
    with pytest.raises(RuntimeError, match="only a leaf tensor .* 'mul' node"):
        set_grad_buffer(x * 2.0, np.zeros(3, np.float32))


def test_cross_entropy_through_a_buffer_equals_without():
    rng = np.random.default_rng(1)
    logits = [Tensor(rng.standard_normal((6, 4)).astype(np.float32), requires_grad=True) for _ in range(2)]
    logits[1].data = logits[0].data.copy()
    targets = rng.integers(0, 4, 6)
    set_grad_buffer(logits[1], np.empty((6, 4), np.float32))
    for tensor in logits:
        F.cross_entropy(tensor, targets).backward()
    np.testing.assert_array_equal(logits[1].grad, logits[0].grad)
