"""clip_grad_norm / grad_norm in blocks over threads: the same norm and the same clipped
gradients (bit for bit) for any thread count, the norm within float32 rounding of the exact one
for any block size, non-contiguous gradients scaled in place too."""
from __future__ import annotations

import numpy as np
import pytest

from minigrad import nn, runtime
from minigrad.nn import utils as clip_module

SHAPES = [(300, 70), (70,), (1000,), (5, 6, 7), (1,)]


def _params(rng, dtype):
    params = [nn.Parameter(np.zeros(s, dtype)) for s in SHAPES]
    params.append(nn.Parameter(np.zeros((40, 30), dtype)))
    for p in params:
        p.grad = (3 * rng.standard_normal(p.shape)).astype(dtype)
    params[-1].grad = np.asfortranarray(params[-1].grad)  # not C-contiguous
    params.append(nn.Parameter(np.zeros(3, dtype)))  # no gradient: skipped
    return params


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_blocks_and_threads_change_no_bit(dtype, monkeypatch):
    grads = [p.grad for p in _params(np.random.default_rng(0), dtype) if p.grad is not None]
    exact = float(np.sqrt(sum(np.sum(g.astype(np.float64) ** 2) for g in grads)))
    results = {}
    try:
        for block, threads, min_elements in [(1 << 20, 1, 1 << 40), (1 << 20, 2, 0), (64, 1, 1 << 40),
                                             (64, 2, 0), (1000, 1, 0), (1000, 2, 0)]:
            monkeypatch.setattr(clip_module, "BLOCK_ELEMENTS", block)
            monkeypatch.setattr(clip_module, "PARALLEL_MIN_ELEMENTS", min_elements)
            runtime.set_threads(threads)
            params = _params(np.random.default_rng(0), dtype)
            held = [p.grad for p in params]
            norm = nn.utils.clip_grad_norm(params, 1.0)
            assert all(p.grad is g for p, g in zip(params, held))  # scaled in place
            results.setdefault(block, []).append((norm, [p.grad for p in params[:-1]]))
    finally:
        runtime.set_threads(None)
    for (norm, clipped), (other_norm, other) in results.values():  # 1 thread, 2 threads
        assert norm == pytest.approx(exact, rel=1e-6 if dtype == np.float32 else 1e-13)
        factor = np.asarray(1.0 / (norm + 1e-6), dtype)
        for g, c in zip(grads, clipped):
            assert c.dtype == dtype
            np.testing.assert_array_equal(c, g * factor)  # what `grad *= coef` gives
        assert other_norm == norm
        for a, b in zip(other, clipped):
            np.testing.assert_array_equal(a, b)


def test_grad_norm_of_many_blocks_is_accurate(monkeypatch):
    # float32 sums over a long vector drift; per-block sums added in float64 do not
    monkeypatch.setattr(clip_module, "BLOCK_ELEMENTS", 4096)
    param = nn.Parameter(np.zeros(1_000_000, np.float32))
    param.grad = np.full(1_000_000, 0.1, np.float32)
    exact = float(np.sqrt(np.sum(param.grad.astype(np.float64) ** 2)))
    assert nn.utils.grad_norm([param]) == pytest.approx(exact, rel=1e-6)
