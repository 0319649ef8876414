"""Linear's threaded GEMMs (forward split by rows, backward's two products side by side, each
split by rows or output features) give the values of one GEMM per product, for every thread
count, every split (more threads than rows or features) and every subset of needed gradients."""
from __future__ import annotations

import sys

import numpy as np
import pytest

from minigrad import Tensor, runtime
from minigrad.nn import functional as F

linear_module = sys.modules[F.linear.__module__]  # the module (F.linear is its function)


@pytest.fixture
def threads_always(monkeypatch):
    """Every product takes the threaded path; counts the tasks run_parallel is given."""
    monkeypatch.setattr(linear_module, "PARALLEL_MIN_MACS", 0)
    monkeypatch.setattr(linear_module, "MIN_ROWS_PER_THREAD", 1)
    calls = []
    original = linear_module.run_parallel

    def counting(tasks):
        calls.append(len(tasks))
        original(tasks)

    monkeypatch.setattr(linear_module, "run_parallel", counting)
    previous = runtime.get_threads()
    yield calls
    runtime.set_threads(previous)


def expected(x, w, b, g):
    """Forward and gradients in float64 from the plain formulas."""
    x2 = x.reshape(-1, w.shape[1]).astype(np.float64)
    g2 = g.reshape(-1, w.shape[0]).astype(np.float64)
    y = x2 @ w.T.astype(np.float64) + (0.0 if b is None else b.astype(np.float64))
    return y, g2 @ w.astype(np.float64), g2.T @ x2, g2.sum(axis=0)


@pytest.mark.parametrize("threads", [2, 3, 5])
@pytest.mark.parametrize("shape", [(4, 33, 20, 18), (1, 1, 7, 3), (2, 3, 5, 1), (1, 2, 1, 9)])
@pytest.mark.parametrize("use_bias", [True, False])
def test_threaded_linear_equals_the_plain_formulas(threads_always, threads, shape, use_bias):
    batch, tokens, n_in, n_out = shape
    rng = np.random.default_rng(threads * 100 + n_in)
    x = rng.standard_normal((batch, tokens, n_in)).astype(np.float32)
    w = rng.standard_normal((n_out, n_in)).astype(np.float32)
    b = rng.standard_normal(n_out).astype(np.float32) if use_bias else None
    g = rng.standard_normal((batch, tokens, n_out)).astype(np.float32)
    runtime.set_threads(threads)
    xt, wt = Tensor(x, requires_grad=True), Tensor(w, requires_grad=True)
    bt = Tensor(b, requires_grad=True) if use_bias else None
    y = F.linear(xt, wt, bt)
    y.backward(g)
    rows = batch * tokens  # forward: one task per thread, at most one per row (1 row: no split)
    backward_tasks = min(threads // 2, rows) + min(threads - threads // 2, n_out)
    assert threads_always == ([min(threads, rows)] if rows > 1 else []) + [backward_tasks]
    y_ref, gx_ref, gw_ref, gb_ref = expected(x, w, b, g)
    for got, want in ((y.data, y_ref), (xt.grad, gx_ref), (wt.grad, gw_ref)):
        assert got.dtype == np.float32
        np.testing.assert_allclose(got.reshape(want.shape), want, rtol=1e-5, atol=1e-5)
    if use_bias:
        np.testing.assert_allclose(bt.grad, gb_ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("frozen", ["x", "weight", "bias", "weight+bias"])
def test_threaded_linear_with_some_inputs_frozen(threads_always, frozen):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((40, 12)).astype(np.float32)
    w = rng.standard_normal((9, 12)).astype(np.float32)
    b = rng.standard_normal(9).astype(np.float32)
    g = rng.standard_normal((40, 9)).astype(np.float32)
    runtime.set_threads(2)
    xt = Tensor(x, requires_grad="x" not in frozen.split("+"))
    wt = Tensor(w, requires_grad="weight" not in frozen.split("+"))
    bt = Tensor(b, requires_grad="bias" not in frozen.split("+"))
    F.linear(xt, wt, bt).backward(g)
    _, gx_ref, gw_ref, gb_ref = expected(x, w, b, g)
    for tensor, want in ((xt, gx_ref), (wt, gw_ref), (bt, gb_ref)):
        if tensor.requires_grad:
            np.testing.assert_allclose(tensor.grad, want, rtol=1e-5, atol=1e-5)
        else:
            assert tensor.grad is None


def test_a_forward_of_few_rows_is_not_split_by_rows(monkeypatch):
    # 4 rows (a generation prompt) on 2 threads: each thread would read all of W for 2 rows
    calls = []
    monkeypatch.setattr(linear_module, "run_parallel", lambda tasks: calls.append(len(tasks)))
    previous = runtime.get_threads()
    try:
        runtime.set_threads(2)
        rng = np.random.default_rng(5)
        x = rng.standard_normal((1, 4, 768)).astype(np.float32)
        w = rng.standard_normal((3072, 768)).astype(np.float32)
        y = F.linear(Tensor(x), Tensor(w))
    finally:
        runtime.set_threads(previous)
    assert calls == []
    np.testing.assert_allclose(y.data, x @ w.T, rtol=1e-4, atol=1e-3)


def test_threaded_and_single_thread_linear_agree_at_a_model_shape():
    # bench-tiny's feed-forward shape, above the threshold: no patching, the real decision
    rng = np.random.default_rng(3)
    x = rng.standard_normal((16, 128, 128)).astype(np.float32)
    w = (rng.standard_normal((512, 128)) * 0.1).astype(np.float32)
    b = rng.standard_normal(512).astype(np.float32)
    g = rng.standard_normal((16, 128, 512)).astype(np.float32)
    previous = runtime.get_threads()
    results = []
    try:
        for threads in (1, 2):
            runtime.set_threads(threads)
            xt, wt, bt = (Tensor(a, requires_grad=True) for a in (x, w, b))
            y = F.linear(xt, wt, bt)
            y.backward(g)
            results.append((y.data, xt.grad, wt.grad, bt.grad))
    finally:
        runtime.set_threads(previous)
    for one, two in zip(*results):
        np.testing.assert_allclose(two, one, rtol=1e-6, atol=1e-5)


@pytest.mark.parametrize("threads", [1, 2])
def test_linear_with_no_output_features_or_no_rows_has_empty_gradients(threads):
    # out_features = 0: g (N, 0) has no -1 to infer from, the backward names N itself
    previous = runtime.get_threads()
    try:
        runtime.set_threads(threads)
        for rows, n_in, n_out in ((3, 4, 0), (0, 4, 3), (0, 2, 0)):
            x = Tensor(np.ones((2, rows, n_in), np.float32), requires_grad=True)
            w = Tensor(np.ones((n_out, n_in), np.float32), requires_grad=True)
            b = Tensor(np.ones(n_out, np.float32), requires_grad=True)
            F.linear(x, w, b).backward(np.ones((2, rows, n_out), np.float32))
            assert x.grad.shape == x.shape and not x.grad.any()
            assert w.grad.shape == w.shape and not w.grad.any()
            assert b.grad.shape == b.shape and not b.grad.any()
    finally:
        runtime.set_threads(previous)
