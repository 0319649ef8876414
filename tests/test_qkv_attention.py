"""F.qkv_attention, causal self-attention from its input as one node: the numbers of three
F.linear, the heads' split, F.scaled_dot_product_attention(is_causal=True) and the merge (forward,
every gradient, the dropout generator's state after; 1 and 2 threads, with and without biases
and dropout, the blocked kernel of long contexts), its reference, gradcheck and gradgradcheck in
float64 on hypothesis shapes, clear errors; and gpt's MultiHeadAttention uses it only while its
three projections are the plain nn.Linear with no hooks."""
from __future__ import annotations

import importlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minigrad as mg
from minigrad import Tensor, runtime
from minigrad.nn import functional as F
import gpt

fused_module = importlib.import_module("minigrad.nn.functional.qkv_attention")
attention_module = importlib.import_module("minigrad.nn.functional.attention")


def inputs(batch, tokens, width, in_width, with_bias, dtype, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, tokens, in_width)).astype(dtype)
    weights = [(rng.standard_normal((width, in_width)) / np.sqrt(in_width)).astype(dtype) for _ in range(3)]
    biases = [rng.standard_normal(width).astype(dtype) for _ in range(3)] if with_bias else [None] * 3
    g = rng.standard_normal((batch, tokens, width)).astype(dtype)
    return x, weights, biases, g


def unfused(x, weights, biases, n_heads, p, generator):
    batch, tokens, _ = x.shape
    split = (batch, tokens, n_heads, weights[0].shape[0] // n_heads)
    q, k, v = (F.linear(x, w, b).view(split).transpose(1, 2) for w, b in zip(weights, biases))
    context = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=p, generator=generator)
    return context.transpose(1, 2).reshape(batch, tokens, weights[0].shape[0])


def fused(x, weights, biases, n_heads, p, generator):
    return F.qkv_attention(x, *weights, *biases, n_heads=n_heads, dropout_p=p, generator=generator)


def run(fn, x, weights, biases, g, n_heads, p, seed=3):
    """[y, dx, dW*, db*..., where the generator was left], the output's node name."""
    tx = Tensor(x, requires_grad=True)
    tw = [Tensor(w, requires_grad=True) for w in weights]
    tb = [None if b is None else Tensor(b, requires_grad=True) for b in biases]
    generator = np.random.default_rng(seed)
    y = fn(tx, tw, tb, n_heads, p, generator)
    node = type(y._ctx).__name__
    y.backward(g)
    grads = [tx.grad] + [w.grad for w in tw] + [b.grad for b in tb if b is not None]
    return [y.data] + grads + [generator.bit_generator.random_raw(4).tolist()], node


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("with_bias", [True, False])
@pytest.mark.parametrize("p", [0.0, 0.1])
@pytest.mark.parametrize("shape", [(16, 128, 128, 128, 4), (2, 5, 8, 6, 2), (1, 1, 4, 4, 1), (3, 64, 32, 48, 4),
                                   (0, 3, 4, 4, 2), (2, 0, 4, 4, 2)])
def test_is_the_projections_then_attention(threads, with_bias, p, shape):
    batch, tokens, width, in_width, n_heads = shape
    x, weights, biases, g = inputs(batch, tokens, width, in_width, with_bias, np.float32)
    previous = runtime.get_threads()
    try:
        runtime.set_threads(threads)
        plain, _ = run(unfused, x, weights, biases, g, n_heads, p)
        one, node = run(fused, x, weights, biases, g, n_heads, p)
    finally:
        runtime.set_threads(previous)
    assert node == "QKVAttention"
    for a, c in zip(plain[:-1], one[:-1]):
        assert a.dtype == c.dtype == np.float32 and a.shape == c.shape
        np.testing.assert_allclose(a, c, rtol=1e-5, atol=1e-6)
    assert plain[-1] == one[-1]  # the dropout draw leaves the generator at the same place


def test_long_contexts_run_the_blocked_kernel(monkeypatch):
    x, weights, biases, g = inputs(2, 40, 16, 16, True, np.float64)
    monkeypatch.setattr(attention_module, "BLOCKED_ABOVE_BYTES", 0)  # every size is "long" here
    tx = Tensor(x, requires_grad=True)
    y = F.qkv_attention(tx, *weights, *biases, n_heads=2, dropout_p=0.2, generator=np.random.default_rng(1))
    assert type(y._ctx.kernel).__name__ == "BlockedAttention"
    one, _ = run(fused, x, weights, biases, g, 2, 0.2)
    monkeypatch.setattr(attention_module, "BLOCKED_ABOVE_BYTES", 1 << 40)
    y = F.qkv_attention(tx, *weights, *biases, n_heads=2, dropout_p=0.2, generator=np.random.default_rng(1))
    assert type(y._ctx.kernel).__name__ == "ScaledDotProductAttention"
    plain, _ = run(fused, x, weights, biases, g, 2, 0.2)  # the kept-weights kernel: the same mask
    for a, c in zip(plain[:-1], one[:-1]):
        np.testing.assert_allclose(a, c, rtol=1e-12, atol=1e-12)
    assert plain[-1] == one[-1]


def test_the_reference_gives_the_same_values_and_gradients():
    x, weights, biases, g = inputs(2, 6, 8, 5, True, np.float64)
    bits = importlib.import_module("minigrad.nn.functional.dropout_bits").DropoutBits
    multiplier = bits(np.random.default_rng(3), (2, 2, 6, 6), 0.3, np.float64).full()
    fast, _ = run(fused, x, weights, biases, g, 2, 0.3)
    reference, _ = run(lambda tx, tw, tb, h, p, gen: fused_module.qkv_attention_reference(
        tx, *tw, *tb, n_heads=h, dropout_multiplier=multiplier), x, weights, biases, g, 2, 0.3)
    for a, c in zip(fast[:-1], reference[:-1]):
        np.testing.assert_allclose(a, c, rtol=1e-12, atol=1e-12)


@settings(max_examples=12, deadline=None)
@given(batch=st.integers(1, 2), tokens=st.integers(1, 4), heads_width=st.sampled_from([(1, 2), (2, 2), (2, 4)]),
       in_width=st.integers(1, 3), with_bias=st.booleans(), p=st.sampled_from([0.0, 0.3]), seed=st.integers(0, 2**16))
def test_gradcheck_and_gradgradcheck(batch, tokens, heads_width, in_width, with_bias, p, seed):
    n_heads, width = heads_width
    x, weights, biases, _ = inputs(batch, tokens, width, in_width, with_bias, np.float64, seed)
    tensors = [Tensor(a, requires_grad=True) for a in [x, *weights] + ([*biases] if with_bias else [])]

    def fn(a, *params):  # the same mask every call (a fresh generator of one seed)
        wq, wk, wv, *bs = params
        return F.qkv_attention(a, wq, wk, wv, *(bs or [None] * 3), n_heads=n_heads, dropout_p=p,
                               generator=np.random.default_rng(seed))

    assert mg.gradcheck(fn, *tensors)
    assert mg.gradgradcheck(fn, *tensors)


def test_bad_input_names_the_op():
    x, (wq, wk, wv), (bq, bk, bv), _ = inputs(1, 3, 4, 4, True, np.float32)
    with pytest.raises(ValueError, match=r"qkv_attention: need x \(B, T, C_in\)"):
        F.qkv_attention(x[0], wq, wk, wv, n_heads=2)
    with pytest.raises(ValueError, match=r"qkv_attention: need x .* weights \(4, 4\), \(4, 3\)"):
        F.qkv_attention(x, wq, wk[:, :3], wv, n_heads=2)
    with pytest.raises(ValueError, match="qkv_attention: give all three biases or none"):
        F.qkv_attention(x, wq, wk, wv, bq, None, None, n_heads=2)
    with pytest.raises(ValueError, match=r"qkv_attention: biases must have shape \(4,\)"):
        F.qkv_attention(x, wq, wk, wv, bq, bk, bv[:3], n_heads=2)
    with pytest.raises(ValueError, match="qkv_attention: n_heads must be a positive int dividing C = 4, got 3"):
        F.qkv_attention(x, wq, wk, wv, n_heads=3)
    with pytest.raises(TypeError, match="qkv_attention: x, weights and biases must share one float dtype"):
        F.qkv_attention(x.astype(np.float64), wq, wk, wv, n_heads=2)
    with pytest.raises(ValueError, match=r"qkv_attention: p must be in \[0, 1\)"):
        F.qkv_attention(x, wq, wk, wv, n_heads=2, dropout_p=1.0)


def tiny_config():
    return {"vocab_size": 50, "context_length": 8, "emb_dim": 16, "n_heads": 2, "n_layers": 2,
            "drop_rate": 0.2, "qkv_bias": True}


def test_multi_head_attention_uses_the_node_only_when_plain():
    ids = np.arange(12).reshape(2, 6) % 50
    results = []
    for hooked in (False, True):
        model = gpt.GPTModel(tiny_config(), generator=np.random.default_rng(0))
        model.train()
        if hooked:  # a hook on one projection: the three Linear modules, then the attention
            for block in model.trf_blocks:
                block.att.W_key.register_forward_hook(lambda m, args, out: None)
        out = model.trf_blocks[0].att.context(Tensor(np.ones((1, 3, 16), np.float32)))
        assert (type(out._ctx).__name__ == "QKVAttention") == (not hooked)
        model = gpt.GPTModel(tiny_config(), generator=np.random.default_rng(0))  # the same draws
        model.train()
        if hooked:
            for block in model.trf_blocks:
                block.att.W_key.register_forward_hook(lambda m, args, out: None)
        loss = model(ids, targets=ids)
        loss.backward()
        results.append([loss.item()] + [p.grad for p in model.parameters()])
    assert results[0][0] == pytest.approx(results[1][0], rel=1e-6)
    for a, b in zip(results[0][1:], results[1][1:]):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("trainable", ["x", "weights", "biases"])
def test_only_some_inputs_needing_gradients(trainable):
    x, weights, biases, g = inputs(2, 7, 8, 6, True, np.float64)
    results = []
    for fn in (unfused, fused):
        tx = Tensor(x, requires_grad=trainable == "x")
        tw = [Tensor(w, requires_grad=trainable == "weights") for w in weights]
        tb = [Tensor(b, requires_grad=trainable == "biases") for b in biases]
        fn(tx, tw, tb, 2, 0.1, np.random.default_rng(4)).backward(g)
        grads = [t.grad for t in [tx, *tw, *tb]]
        assert [grad is not None for grad in grads] == [t.requires_grad for t in [tx, *tw, *tb]]
        results.append([grad for grad in grads if grad is not None])
    for a, c in zip(*results):
        np.testing.assert_allclose(a, c, rtol=1e-12, atol=1e-12)


def test_create_graph_through_the_blocked_kernel(monkeypatch):
    monkeypatch.setattr(attention_module, "BLOCKED_ABOVE_BYTES", -1)  # the blocked kernel at every size
    x, weights, biases, _ = inputs(1, 3, 4, 3, True, np.float64, seed=5)
    tensors = [Tensor(a, requires_grad=True) for a in [x, *weights, *biases]]

    def fn(a, *params):
        return F.qkv_attention(a, *params, n_heads=2, dropout_p=0.3, generator=np.random.default_rng(2))

    assert type(fn(*tensors)._ctx.kernel).__name__ == "BlockedAttention"
    assert mg.gradcheck(fn, *tensors)
    assert mg.gradgradcheck(fn, *tensors)
