"""F.linear_cross_entropy: the output head fused with cross-entropy in row chunks gives the
numbers of F.linear then F.cross_entropy (values and gradients, one chunk or many, with bias
or without, ignore_index, every reduction, a retained graph), is gradchecked twice in
float64, and never holds more than one chunk of logits."""
from __future__ import annotations

import importlib
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import gpt
import minigrad as mg
from minigrad import runtime
from minigrad.nn import functional as F

lce = importlib.import_module("minigrad.nn.functional.linear_cross_entropy")  # (F's function hides it)


def problem(rows=(3, 5), width=6, classes=11, seed=0, dtype=np.float32, bias=True, ignored=1):
    rng = np.random.default_rng(seed)
    x = mg.Tensor(rng.standard_normal(rows + (width,)).astype(dtype), requires_grad=True)
    w = mg.Tensor((rng.standard_normal((classes, width)) * 0.5).astype(dtype), requires_grad=True)
    b = mg.Tensor(rng.standard_normal(classes).astype(dtype), requires_grad=True) if bias else None
    t = rng.integers(0, classes, rows)
    t.reshape(-1)[:ignored] = -100
    return x, w, b, t


def run(fn, x, w, b, upstream=None):
    """(loss values, gradients of x, w, b) after one backward."""
    for p in (x, w, b):
        if p is not None:
            p.grad = None
    loss = fn()
    loss.backward(upstream)
    return loss.data, [None if p is None else p.grad for p in (x, w, b)]


@pytest.mark.parametrize("chunk_bytes", [1 << 30, 64, 200])  # one chunk; 1 row; a few rows
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("bias", [True, False])
def test_equals_linear_then_cross_entropy(monkeypatch, chunk_bytes, reduction, bias):
    monkeypatch.setattr(lce, "CHUNK_BYTES", chunk_bytes)
    x, w, b, t = problem(bias=bias)
    upstream = (np.random.default_rng(9).standard_normal(t.shape).astype(np.float32)
                if reduction == "none" else np.float32(0.7))
    fused = run(lambda: F.linear_cross_entropy(x, w, b, t, reduction=reduction), x, w, b, upstream)
    plain = run(lambda: F.cross_entropy(F.linear(x, w, b), t, reduction=reduction), x, w, b, upstream)
    np.testing.assert_allclose(fused[0], plain[0], rtol=2e-6, atol=1e-6)
    assert fused[0].dtype == np.float32 and fused[0].shape == plain[0].shape
    for a, e in zip(fused[1], plain[1]):
        assert (a is None) == (e is None)
        if a is not None:
            assert a.dtype == np.float32
            np.testing.assert_allclose(a, e, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("classes", [2, 11, 40])  # fewer classes than GEMM pieces, and more
@pytest.mark.parametrize("rows_max_vocab", [0, 4096])  # pieces of the vocabulary, or of the rows
def test_products_split_over_threads_equal_the_unfused_pair(monkeypatch, threads, classes,
                                                            rows_max_vocab):
    # several chunks (the first writes dW, the others add to it in slabs of 3 classes), the
    # products in pieces over the vocabulary on `threads` threads (or the rows over the
    # threads, fused_by_rows: each thread's dW and db added), or whole with one
    monkeypatch.setattr(lce, "ROWS_MAX_VOCAB", rows_max_vocab)
    monkeypatch.setattr(lce, "CHUNK_BYTES", classes * 4 * 4)  # 4 rows per chunk of the 15
    monkeypatch.setattr(lce, "ACCUMULATE_BYTES", 3 * 6 * 4)  # dW += ... 3 classes at a time
    x, w, b, t = problem(classes=classes, seed=4)
    plain = run(lambda: F.cross_entropy(F.linear(x, w, b), t), x, w, b)
    previous = runtime.threads._threads
    try:
        runtime.set_threads(threads)
        fused = run(lambda: F.linear_cross_entropy(x, w, b, t), x, w, b)
    finally:
        runtime.set_threads(previous)
    np.testing.assert_allclose(fused[0], plain[0], rtol=2e-6)
    for a, e in zip(fused[1], plain[1]):
        np.testing.assert_allclose(a, e, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("scale", [1.0, 60.0, 1e3])
def test_the_gradient_written_over_the_logits_with_and_without_the_max_shift(monkeypatch, scale):
    # large logits overflow exp(z): their blocks are done again from the logits, which must
    # still be there when the gradient replaces them (rows far below zero likewise)
    monkeypatch.setattr(lce, "CHUNK_BYTES", 11 * 4 * 6)  # 6 rows per chunk of the 15
    x, w, b, t = problem(seed=5)
    x.data[::4] *= scale
    b.data[:] -= 80.0 * (scale > 1)
    with warnings.catch_warnings():  # no overflow warning from the unshifted exp(z)
        warnings.simplefilter("error", RuntimeWarning)
        fused = run(lambda: F.linear_cross_entropy(x, w, b, t, reduction="sum"), x, w, b)
    plain = run(lambda: F.cross_entropy(F.linear(x, w, b), t, reduction="sum"), x, w, b)
    assert np.isfinite(fused[0]) and all(np.isfinite(g).all() for g in fused[1])
    np.testing.assert_allclose(fused[0], plain[0], rtol=2e-6)
    for a, e in zip(fused[1], plain[1]):
        np.testing.assert_allclose(a, e, rtol=1e-5, atol=1e-5 * np.abs(e).max())


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("case", ["moderate", "overflow", "underflow"])
@pytest.mark.parametrize("rows_max_vocab", [0, 4096])  # pieces of the vocabulary, or of the rows
def test_each_chunk_takes_the_exp_without_a_shift_or_falls_back_to_the_textbook_order(monkeypatch, threads,
                                                                                     case, rows_max_vocab):
    monkeypatch.setattr(lce, "ROWS_MAX_VOCAB", rows_max_vocab)
    # a chunk of moderate logits is done by fused_chunk alone (e = exp(z) in place, the
    # normalisation and the one-hot on the small factors); a chunk with one row above exp's
    # range (or all of a row far below zero) is done again by shifted_chunk, the others not
    monkeypatch.setattr(lce, "CHUNK_BYTES", 11 * 4 * 4)  # 4 rows per chunk of the 15: 4 chunks
    x, w, b, t = problem(seed=6)
    if case == "overflow":  # row 7's logit of class 3 is 100 + b[3], above exp's float32 range
        x.data[1, 2] = 100.0 * w.data[3] / (w.data[3] @ w.data[3])
    elif case == "underflow":  # every w[:, 0] >= 0.5: all of row 7's logits below -400
        w.data[:, 0] = np.abs(w.data[:, 0]) + 0.5
        x.data[1, 2] = 0.0
        x.data[1, 2, 0] = -1e3
    shifted = []
    original = lce._Head.shifted_chunk
    monkeypatch.setattr(lce._Head, "shifted_chunk", lambda self, xs, *a, **k: (
        shifted.append(xs.shape[0]), original(self, xs, *a, **k))[1])
    plain = run(lambda: F.cross_entropy(F.linear(x, w, b), t, reduction="sum"), x, w, b)
    previous = runtime.threads._threads
    try:
        runtime.set_threads(threads)
        with warnings.catch_warnings():  # the unshifted exp(z) overflows silently
            warnings.simplefilter("error", RuntimeWarning)
            fused = run(lambda: F.linear_cross_entropy(x, w, b, t, reduction="sum"), x, w, b)
    finally:
        runtime.set_threads(previous)
    assert shifted == ([] if case == "moderate" else [4])  # only the chunk of row 7
    assert np.isfinite(fused[0]) and all(np.isfinite(g).all() for g in fused[1])
    np.testing.assert_allclose(fused[0], plain[0], rtol=2e-6)
    for a, e in zip(fused[1], plain[1]):
        np.testing.assert_allclose(a, e, rtol=1e-5, atol=1e-5 * np.abs(e).max())


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_all_rows_ignored_give_zero_gradients(reduction):
    x, w, b, t = problem(seed=7)
    t = np.full(t.shape, -100)
    loss = F.linear_cross_entropy(x, w, b, t, reduction=reduction)
    loss.backward(np.ones(t.shape, np.float32) if reduction == "none" else None)
    if reduction == "mean":
        assert np.isnan(loss.item())
    else:
        np.testing.assert_array_equal(loss.data, 0.0)
    for p in (x, w, b):
        np.testing.assert_array_equal(p.grad, 0.0)


def test_the_usual_backward_and_a_retained_second_one(monkeypatch):
    monkeypatch.setattr(lce, "CHUNK_BYTES", 150)
    x, w, b, t = problem(seed=1)
    loss = F.linear_cross_entropy(x, w, b, t)
    loss.backward(retain_graph=True)  # the gradients computed in forward
    first = [p.grad.copy() for p in (x, w, b)]
    loss.backward()  # the second backward runs the chunks again: the same gradients, summed
    for p, g in zip((x, w, b), first):
        np.testing.assert_allclose(p.grad, 2 * g, rtol=1e-5, atol=1e-7)
    _, plain = run(lambda: F.cross_entropy(F.linear(x, w, b), t), x, w, b)
    for g, e in zip(first, plain):
        np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-7)


def test_frozen_weight_no_grad_and_all_ignored():
    x, w, b, t = problem(seed=2)
    w.requires_grad_(False)
    loss = F.linear_cross_entropy(x, w, None, t)
    loss.backward()
    assert w.grad is None and x.grad.shape == x.shape
    with mg.no_grad():
        evaluated = F.linear_cross_entropy(x, w, b, t)
    assert not evaluated.requires_grad
    np.testing.assert_allclose(evaluated.data, F.cross_entropy(F.linear(x, w, b), t).data, rtol=2e-6)
    x.grad = None
    nothing = F.linear_cross_entropy(x, w, b, np.full(t.shape, -100))
    assert np.isnan(nothing.item())  # as PyTorch (and F.cross_entropy)
    nothing.backward()
    np.testing.assert_array_equal(x.grad, 0.0)


@settings(max_examples=12, deadline=None)
@given(rows=st.integers(0, 5), classes=st.integers(1, 6), bias=st.booleans(),
       reduction=st.sampled_from(["mean", "sum", "none"]), chunk=st.sampled_from([8, 40, 1 << 20]),
       seed=st.integers(0, 2**16))
def test_gradcheck_and_gradgradcheck_float64(rows, classes, bias, reduction, chunk, seed):
    x, w, b, t = problem(rows=(rows,), width=3, classes=classes, seed=seed, dtype=np.float64,
                         bias=bias, ignored=min(rows, 1))
    if reduction == "mean" and rows <= 1:  # not all ignored: a finite mean
        t, reduction = np.zeros(t.shape, dtype=np.int64), ("mean" if rows else "sum")
    inputs = (x, w) + ((b,) if bias else ())
    previous, lce.CHUNK_BYTES = lce.CHUNK_BYTES, chunk
    try:
        def fn(x, w, *b):
            return F.linear_cross_entropy(x, w, b[0] if b else None, t, reduction=reduction)

        assert mg.gradcheck(fn, *inputs)
        assert mg.gradgradcheck(fn, *inputs)
    finally:
        lce.CHUNK_BYTES = previous


def test_chunk_rows_split_evenly_and_bound_the_logits():
    assert lce.chunk_rows(512, 50257, 4) == 512  # GPT-2 124M at context 256, batch 2: one chunk
    rows = lce.chunk_rows(4096, 50257, 4)  # context 1024, batch 4
    assert rows * 50257 * 4 <= lce.CHUNK_BYTES and 4096 % rows < rows
    assert lce.chunk_rows(0, 10, 4) == 1 and lce.chunk_rows(7, 10**9, 4) == 1


def test_bad_input_names_the_op_and_the_shapes():
    x, w, b, t = problem()
    with pytest.raises(ValueError, match=r"linear_cross_entropy: input \(3, 5, 6\) needs target of shape"):
        F.linear_cross_entropy(x, w, b, t[:, :2])
    with pytest.raises(ValueError, match=r"input \(3, 5, 6\) does not match weight \(11, 4\)"):
        F.linear_cross_entropy(x, w[:, :4], b, t)
    with pytest.raises(ValueError, match=r"bias has shape \(3,\), expected \(11,\)"):
        F.linear_cross_entropy(x, w, b[:3], t)
    with pytest.raises(IndexError, match="target 11 is out of range for 11 classes"):
        F.linear_cross_entropy(x, w, b, np.full(t.shape, 11))
    with pytest.raises(ValueError, match="reduction must be one of"):
        F.linear_cross_entropy(x, w, b, t, reduction="avg")
    with pytest.raises(TypeError, match="target must be integers"):
        F.linear_cross_entropy(x, w, b, t.astype(np.float32))


def tiny_model(seed=0):
    cfg = dict(vocab_size=37, context_length=8, emb_dim=16, n_heads=2, n_layers=1, drop_rate=0.0,
               qkv_bias=False)
    mg.random.manual_seed(seed)
    return gpt.GPTModel(cfg)


def test_gpt_model_targets_gives_the_loss_of_its_logits(monkeypatch):
    monkeypatch.setattr(lce, "CHUNK_BYTES", 37 * 4 * 5)  # 5 rows per chunk of the 12
    model = tiny_model()
    rng = np.random.default_rng(3)
    ids, targets = rng.integers(0, 37, (2, 6)), rng.integers(0, 37, (2, 6))
    params = list(model.parameters())

    def grads(loss):
        model.zero_grad()
        loss.backward()
        return loss.item(), [p.grad.copy() for p in params]

    fused_loss, fused = grads(model(ids, targets=targets))
    plain_loss, plain = grads(F.cross_entropy(model(ids), targets))
    assert fused_loss == pytest.approx(plain_loss, rel=1e-6)
    for a, e in zip(fused, plain):
        np.testing.assert_allclose(a, e, rtol=1e-4, atol=1e-6)
    assert model(ids).shape == (2, 6, 37)  # without targets: the book's logits, as before

    seen = []  # a hooked (or replaced) head still runs: the logits, then the loss
    model.out_head.register_forward_hook(lambda module, args, out: seen.append(out.shape))
    assert model(ids, targets=targets).item() == pytest.approx(plain_loss, rel=1e-6)
    assert seen == [(2, 6, 37)]
    with pytest.raises(ValueError, match=r"GPTModel: targets must be integer ids of the token ids' shape \(2, 6\)"):
        model(ids, targets=targets[:, :3])
