"""F.dropout_add, dropout(x) + residual as one node: the numbers of F.dropout then the sum bit
for bit (forward and gradients, the same mask from the same generator state, float or boolean
mask kept), its reference, gradcheck and gradgradcheck in float64 on hypothesis shapes, the
fallbacks, clear errors; and gpt's TransformerBlock uses it only while its drop_shortcut is the
plain nn.Dropout without hooks, in training."""
from __future__ import annotations

import importlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minigrad as mg
from minigrad import Tensor, nn, runtime
from minigrad.nn import functional as F
import gpt

dropout_module = importlib.import_module("minigrad.nn.functional.dropout")  # (F's function hides it)


def unfused_and_fused(x, r, g, p=0.3, seed=5):
    """[(y, dx, dr) of dropout(x) + r, the same of dropout_add(x, r)], one generator seed."""
    results = []
    for fn in (lambda a, b, gen: F.dropout(a, p, generator=gen) + b,
               lambda a, b, gen: F.dropout_add(a, b, p, generator=gen)):
        tx, tr = Tensor(x, requires_grad=True), Tensor(r, requires_grad=True)
        generator = np.random.default_rng(seed)
        y = fn(tx, tr, generator)
        y.backward(g)
        results.append([y.data, tx.grad, tr.grad, generator.bit_generator.state])
    return results


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("lean", [False, True])
@pytest.mark.parametrize("shape", [(2, 9, 12), (16, 128, 128), (3, 700, 300), (1, 0, 5), ()])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dropout_add_is_dropout_then_the_sum_bit_for_bit(monkeypatch, threads, lean, shape, dtype):
    rng = np.random.default_rng(1)
    x, r, g = (rng.standard_normal(shape).astype(dtype) for _ in range(3))
    if lean:  # the mask kept as booleans
        monkeypatch.setattr(dropout_module, "BOOL_MASK_ABOVE_BYTES", 0)
    previous = runtime.get_threads()
    try:
        runtime.set_threads(threads)
        plain, fused = unfused_and_fused(x, r, g)
    finally:
        runtime.set_threads(previous)
    for a, b in zip(plain[:3], fused[:3]):
        assert a.dtype == b.dtype == dtype and a.shape == shape
        np.testing.assert_array_equal(a, b)
    assert plain[3] == fused[3]  # the generator left where dropout leaves it


def test_dropout_add_is_one_node_and_keeps_the_lean_mask(monkeypatch):
    x, r = (Tensor(np.ones((4, 5), np.float32), requires_grad=True) for _ in range(2))
    y = F.dropout_add(x, r, 0.5, generator=np.random.default_rng(0))
    assert type(y._ctx).__name__ == "DropoutAdd" and y._ctx.mask.dtype == np.float32
    monkeypatch.setattr(dropout_module, "BOOL_MASK_ABOVE_BYTES", 0)
    y = F.dropout_add(x, r, 0.5, generator=np.random.default_rng(0))
    assert y._ctx.mask is None and y._ctx.keep.dtype == np.bool_


def test_the_reference_gives_the_same_values_and_gradients():
    rng = np.random.default_rng(2)
    x, r, g = (rng.standard_normal((6, 7)) for _ in range(3))
    multiplier = dropout_module.dropout_multiplier(np.random.default_rng(9), x.shape, 0.4, np.float64)
    results = []
    for fn in (lambda a, b: F.dropout_add(a, b, 0.4, generator=np.random.default_rng(9)),
               lambda a, b: dropout_module.dropout_add_reference(a, b, multiplier)):
        tx, tr = Tensor(x, requires_grad=True), Tensor(r, requires_grad=True)
        y = fn(tx, tr)
        y.backward(g)
        results.append((y.data, tx.grad, tr.grad))
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-15, atol=0)


@settings(max_examples=15, deadline=None)
@given(shape=st.lists(st.integers(0, 4), min_size=0, max_size=3).map(tuple),
       p=st.sampled_from([0.1, 0.5, 0.001]), seed=st.integers(0, 2**16), lean=st.booleans())
def test_dropout_add_gradcheck_and_gradgradcheck(shape, p, seed, lean):
    rng = np.random.default_rng(seed)
    x, r = (Tensor(rng.standard_normal(shape), requires_grad=True) for _ in range(2))

    def fn(a, b):  # the same mask every call: a fresh generator of one seed; a * a: curvature
        return F.dropout_add(a * a, b * b, p, generator=np.random.default_rng(seed))

    previous = dropout_module.BOOL_MASK_ABOVE_BYTES
    try:
        dropout_module.BOOL_MASK_ABOVE_BYTES = 0 if lean else previous
        assert mg.gradcheck(fn, x, r)
        assert mg.gradgradcheck(fn, x, r)
    finally:
        dropout_module.BOOL_MASK_ABOVE_BYTES = previous


def test_only_one_input_needing_a_gradient():
    x = Tensor(np.ones(5), requires_grad=True)
    y = F.dropout_add(x, np.full(5, 2.0), 0.5, generator=np.random.default_rng(0))
    y.sum().backward()
    assert x.grad is not None and set(np.unique(x.grad)) <= {0.0, 2.0}
    r = Tensor(np.ones(5), requires_grad=True)
    F.dropout_add(np.ones(5), r, 0.5, generator=np.random.default_rng(0)).sum().backward()
    np.testing.assert_array_equal(r.grad, np.ones(5))


def test_fallbacks_are_the_two_ops():
    rng = np.random.default_rng(3)
    x, r = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    for kwargs in (dict(training=False), dict(p=0.0)):
        out = F.dropout_add(x, r, **{"p": 0.5, **kwargs})
        np.testing.assert_array_equal(out.data, x + r)
    for other in (rng.standard_normal((4,)), r.astype(np.float32)):  # broadcast, mixed dtypes
        out = F.dropout_add(x, other, 0.5, generator=np.random.default_rng(4))
        plain = F.dropout(x, 0.5, generator=np.random.default_rng(4)) + other
        assert type(out._ctx).__name__ != "DropoutAdd" and out.dtype == plain.dtype
        np.testing.assert_array_equal(out.data, plain.data)


def test_bad_probability_names_the_op():
    with pytest.raises(ValueError, match=r"dropout_add: p must be in \[0, 1\)"):
        F.dropout_add(np.ones(3), np.ones(3), 1.0)
    with pytest.raises(TypeError, match="dropout_add: p must be a number"):
        F.dropout_add(np.ones(3), np.ones(3), "0.1")


def tiny_config(drop_rate=0.2):
    return {"vocab_size": 50, "context_length": 8, "emb_dim": 16, "n_heads": 2, "n_layers": 2,
            "drop_rate": drop_rate, "qkv_bias": False}


def loss_and_grads(model, ids):
    loss = model(ids, targets=ids)
    loss.backward()
    grads = [p.grad.copy() for p in model.parameters()]
    model.zero_grad()
    return loss.item(), grads


def test_transformer_block_uses_the_fused_node_only_when_plain():
    ids = np.arange(12).reshape(2, 6) % 50
    fused = gpt.GPTModel(tiny_config(), generator=np.random.default_rng(0))
    plain = gpt.GPTModel(tiny_config(), generator=np.random.default_rng(0))
    calls = []
    for block in plain.trf_blocks:  # a hook on drop_shortcut: the module, then the sum
        block.drop_shortcut.register_forward_hook(lambda m, args, out: calls.append(out.shape))
    fused.train(), plain.train()
    out = fused.trf_blocks[0](Tensor(np.ones((1, 3, 16), np.float32)))
    assert type(out._ctx).__name__ == "LinearDropoutAdd"  # with the feed-forward's last Linear
    block = fused.trf_blocks[1]  # hooks on both last Linears: dropout_add after them
    handles = [layer.register_forward_hook(lambda m, args, out: None)
               for layer in (block.att.out_proj, block.ff.layers[2])]
    out = block(Tensor(np.ones((1, 3, 16), np.float32)))
    assert type(out._ctx).__name__ == "DropoutAdd"
    assert type(out._ctx.parents[1]._ctx).__name__ == "DropoutAdd"  # the shortcut: attention's
    for handle in handles:
        handle.remove()
    fused = gpt.GPTModel(tiny_config(), generator=np.random.default_rng(0))  # the same draws again
    fused.train()
    for _ in range(2):  # two steps' masks
        a, b = loss_and_grads(fused, ids), loss_and_grads(plain, ids)
        assert a[0] == b[0] and calls
        for ga, gb in zip(a[1], b[1]):
            np.testing.assert_array_equal(ga, gb)
    fused.eval()
    out = fused.trf_blocks[0](Tensor(np.ones((1, 3, 16), np.float32)))
    assert type(out._ctx).__name__ != "DropoutAdd"  # evaluation: no dropout, a plain sum


def test_a_module_put_in_a_sublayers_place_is_called_as_a_module():
    model = gpt.GPTModel(tiny_config(), generator=np.random.default_rng(0))
    model.train()
    block = model.trf_blocks[0]
    block.ff = nn.Sequential(nn.Linear(16, 16, generator=np.random.default_rng(1)))  # no last_linear()
    x = Tensor(np.ones((1, 3, 16), np.float32))
    out = block(x)
    assert type(out._ctx).__name__ == "DropoutAdd"
    out.sum().backward()
    assert block.ff[0].weight.grad is not None
