"""F.linear_gelu, gelu(x W^T + b) as one node: the numbers of F.linear then F.gelu(tanh) bit for
bit (forward and gradients, split over threads or not, slope kept or recomputed), gradcheck and
gradgradcheck in float64 on hypothesis shapes, clear errors; and gpt's FeedForward uses it only
while its layers are the book's plain Linear, GELU, Linear without hooks."""
from __future__ import annotations

import sys
import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minigrad as mg
from minigrad import Tensor, runtime
from minigrad.nn import functional as F
import gpt
from gpt.finetune.lora import replace_linear_with_lora
from gpt.model.gpt_model import FeedForward

linear_module = sys.modules[F.linear.__module__]
activation = sys.modules[F.gelu.__module__]


def unfused_and_fused(x, w, b, g):
    """[(y, dx, dW, db) of gelu(linear(...)), the same of linear_gelu(...)]."""
    results = []
    for fn in (lambda *a: F.gelu(F.linear(*a), approximate="tanh"), F.linear_gelu):
        tensors = [Tensor(a, requires_grad=True) for a in (x, w) + (() if b is None else (b,))]
        y = fn(*tensors)
        y.backward(g)
        results.append([y.data] + [t.grad for t in tensors])
    return results


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("split", [False, True])
@pytest.mark.parametrize("lean", [False, True])
@pytest.mark.parametrize("shape", [(2, 9, 12, 20), (1, 1, 5, 3), (3, 70, 8, 2000), (1, 4, 3, 0)])
@pytest.mark.parametrize("use_bias", [True, False])
def test_linear_gelu_is_linear_then_gelu_bit_for_bit(monkeypatch, threads, split, lean, shape, use_bias):
    if split:  # every product split by rows on minigrad's threads
        monkeypatch.setattr(linear_module, "PARALLEL_MIN_MACS", 0)
        monkeypatch.setattr(linear_module, "MIN_ROWS_PER_THREAD", 1)
    monkeypatch.setattr(activation, "PARALLEL_MIN_ELEMENTS", 1000)  # GELU's blocks on threads too
    if lean:
        monkeypatch.setattr(activation, "LEAN_ABOVE_BYTES", 0)
        monkeypatch.setattr(sys.modules[F.linear_gelu.__module__], "LEAN_ABOVE_BYTES", 0)
    batch, tokens, n_in, n_out = shape
    rng = np.random.default_rng(n_in * 7 + n_out)
    x = rng.standard_normal((batch, tokens, n_in)).astype(np.float32)
    w = (rng.standard_normal((n_out, n_in)) * 0.5).astype(np.float32)
    b = rng.standard_normal(n_out).astype(np.float32) if use_bias else None
    g = rng.standard_normal((batch, tokens, n_out)).astype(np.float32)
    previous = runtime.get_threads()
    try:
        runtime.set_threads(threads)
        plain, fused = unfused_and_fused(x, w, b, g)
    finally:
        runtime.set_threads(previous)
    for want, got in zip(plain, fused):
        assert got.dtype == np.float32 and got.shape == want.shape
        assert np.array_equal(got, want)


def test_linear_gelu_keeps_the_slope_not_the_pre_activation():
    x, w = Tensor(np.ones((4, 3), np.float32), requires_grad=True), Tensor(np.ones((5, 3), np.float32))
    node = F.linear_gelu(x, w)._ctx
    assert node.slope is not None and node.slope.shape == (4, 5) and node.z2 is None


def test_linear_gelu_writes_its_slope_over_the_product():
    # forward holds y and the (N, out) product, whose memory becomes the slope, plus block-sized
    # scratch (GELU's two 128K-element buffers): 2.4 outputs' worth at most, not a third array
    x = Tensor(np.linspace(-3, 3, 2048 * 8).reshape(2048, 8).astype(np.float32), requires_grad=True)
    w = Tensor(np.linspace(-1, 1, 300 * 8).reshape(300, 8).astype(np.float32))
    previous = runtime.get_threads()
    try:
        runtime.set_threads(1)
        F.linear_gelu(x, w)
        tracemalloc.start()
        try:
            base = tracemalloc.get_traced_memory()[0]
            y = F.linear_gelu(x, w)
            peak = tracemalloc.get_traced_memory()[1] - base
        finally:
            tracemalloc.stop()
    finally:
        runtime.set_threads(previous)
    node = y._ctx
    assert node.slope.shape == y.shape and not np.shares_memory(node.slope, y.data)
    assert peak <= 2.5 * y.data.nbytes, peak / y.data.nbytes
    y.backward(np.ones(y.shape, np.float32))
    plain = Tensor(x.data, requires_grad=True)
    F.gelu(F.linear(plain, w), approximate="tanh").backward(np.ones(y.shape, np.float32))
    assert np.array_equal(x.grad, plain.grad)


def test_gelu_pass_writes_the_slope_over_x_only_with_y():
    x = np.linspace(-4, 4, 12).astype(np.float32)
    with pytest.raises(ValueError, match="_gelu_pass: the slope can be written over x only together with y"):
        activation._gelu_pass(x, slope=x)


@settings(max_examples=12, deadline=None)
@given(rows=st.integers(0, 4), n_in=st.integers(1, 4), n_out=st.integers(1, 4),  # (out = 0: above)
       lead=st.sampled_from([(), (2,)]), use_bias=st.booleans(), seed=st.integers(0, 99))
def test_linear_gelu_gradcheck_and_gradgradcheck(rows, n_in, n_out, lead, use_bias, seed):
    rng = np.random.default_rng(seed)
    inputs = [Tensor(rng.standard_normal(lead + (rows, n_in)), requires_grad=True),
              Tensor(rng.standard_normal((n_out, n_in)), requires_grad=True)]
    if use_bias:
        inputs.append(Tensor(rng.standard_normal(n_out), requires_grad=True))
    assert mg.gradcheck(F.linear_gelu, *inputs)
    assert mg.gradgradcheck(F.linear_gelu, *inputs)
    out = F.linear_gelu(*inputs)
    assert out.dtype == np.float64
    want = F.reference.gelu_tanh(F.reference.linear(*inputs))
    np.testing.assert_allclose(out.data, want.data, rtol=1e-12, atol=1e-12)


def test_linear_gelu_bad_input_names_the_op_and_shapes():
    with pytest.raises(ValueError, match=r"linear_gelu: input \(2, 3\) does not match weight \(4, 5\)"):
        F.linear_gelu(np.ones((2, 3)), np.ones((4, 5)))
    with pytest.raises(ValueError, match=r"linear_gelu: bias has shape \(3,\), expected \(4,\)"):
        F.linear_gelu(np.ones((2, 5)), np.ones((4, 5)), np.ones(3))
    with pytest.raises(ValueError, match="linear_gelu: weight must be 2-D"):
        F.linear_gelu(np.ones((2, 5)), np.ones(5))


def tiny_config():
    return {"vocab_size": 50, "context_length": 8, "emb_dim": 16, "n_heads": 2, "n_layers": 2,
            "drop_rate": 0.0, "qkv_bias": False}


def feed_forward_nodes(model, ids):
    """Names of the graph nodes of the first block's feed-forward, in the order they were made."""
    seen = []
    original = FeedForward.forward

    def spy(self, x):
        out = original(self, x)
        node, names = out._ctx, []
        while node is not None and node.name != "layernorm":
            names.append(node.name)
            node = next((p._ctx for p in node.parents if getattr(p, "_ctx", None) is not None), None)
        seen.append(names[::-1])
        return out

    FeedForward.forward = spy
    try:
        model(ids)
    finally:
        FeedForward.forward = original
    return seen[0]


def test_feed_forward_uses_the_fused_node_only_with_the_plain_layers_and_no_hooks():
    mg.random.manual_seed(0)
    model = gpt.GPTModel(tiny_config())
    ids = np.arange(6).reshape(1, 6)
    assert feed_forward_nodes(model, ids) == ["lineargelu", "linear"]
    expected = model(ids).data
    block_ff = model.trf_blocks[0].ff
    captured = []
    handle = block_ff.layers[1].register_forward_hook(lambda m, args, out: captured.append(out.shape))
    assert feed_forward_nodes(model, ids) == ["linear", "gelu", "linear"]
    assert np.array_equal(model(ids).data, expected) and captured  # the hook ran, same numbers
    handle.remove()
    assert feed_forward_nodes(model, ids) == ["lineargelu", "linear"]
    replace_linear_with_lora(model, rank=2, alpha=4.0)
    assert np.array_equal(model(ids).data, expected)  # LoRA's B starts at zero
    assert "lineargelu" not in feed_forward_nodes(model, ids)
