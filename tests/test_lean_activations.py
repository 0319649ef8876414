"""Memory-lean saved state for long contexts: GELU above LEAN_ABOVE_BYTES recomputes its slope
in backward (the same gradient as the kept slope, bit for bit), dropout above
BOOL_MASK_ABOVE_BYTES keeps its mask as booleans (the same forward and gradients); the
benchmark configs stay below both thresholds, so their training step runs as before."""
from __future__ import annotations

import importlib
import sys
from pathlib import Path

import numpy as np

import minigrad as mg
from minigrad.nn import functional as F
from minigrad.nn.functional import activation

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/ is not installed

from benchmarks.configs import CONFIGS  # noqa: E402

dropout = importlib.import_module("minigrad.nn.functional.dropout")  # (F's function hides it)


def gelu_grad(x):
    """(output, gradient, whether forward kept the slope)."""
    t = mg.Tensor(x, requires_grad=True)
    out = F.gelu(t, approximate="tanh")
    slope_kept = out._ctx.slope is not None  # (backward frees the node's state)
    out.backward(np.linspace(-1, 1, x.size).reshape(x.shape).astype(x.dtype))
    return out, t.grad, slope_kept


def test_gelu_recomputed_slope_equals_the_kept_one(monkeypatch):
    x = np.random.default_rng(0).standard_normal((300, 700)).astype(np.float32) * 3  # blocks, threads
    kept_out, kept, slope_kept = gelu_grad(x)
    assert slope_kept
    monkeypatch.setattr(activation, "LEAN_ABOVE_BYTES", 0)
    out, recomputed, slope_kept = gelu_grad(x)
    assert not slope_kept  # nothing but the input kept
    np.testing.assert_array_equal(out.data, kept_out.data)
    np.testing.assert_array_equal(recomputed, kept)
    assert recomputed.dtype == np.float32
    a = mg.Tensor(np.random.default_rng(1).standard_normal((3, 4)), requires_grad=True)
    assert mg.gradcheck(lambda a: F.gelu(a, approximate="tanh"), a)
    assert mg.gradgradcheck(lambda a: F.gelu(a, approximate="tanh"), a)


def dropout_run(x, g, p=0.3, seed=5):
    t = mg.Tensor(x, requires_grad=True)
    out = F.dropout(t, p, generator=np.random.default_rng(seed))
    ctx = out._ctx
    saved = ctx.mask if ctx.mask is not None else ctx.keep
    out.backward(g)
    return out.data, t.grad, saved


def test_dropout_boolean_mask_gives_the_float_masks_numbers(monkeypatch):
    x = np.random.default_rng(2).standard_normal((64, 1000)).astype(np.float32)
    g = np.random.default_rng(3).standard_normal(x.shape).astype(np.float32)
    out, grad, saved = dropout_run(x, g)
    assert saved.dtype == np.float32  # 256 KB: below the threshold, the float mask
    monkeypatch.setattr(dropout, "BOOL_MASK_ABOVE_BYTES", 0)
    lean_out, lean_grad, lean_saved = dropout_run(x, g)
    assert lean_saved.dtype == np.bool_ and lean_saved.nbytes == x.size
    multiplier = dropout.dropout_multiplier(np.random.default_rng(5), x.shape, 0.3, np.float32)
    for a, b in ((out, x * multiplier), (lean_out, out), (grad, g * multiplier), (lean_grad, grad)):
        np.testing.assert_array_equal(a, b)
        assert a.dtype == np.float32
    assert 0.65 < (multiplier > 0).mean() < 0.75


def test_dropout_boolean_mask_second_derivatives(monkeypatch):
    monkeypatch.setattr(dropout, "BOOL_MASK_ABOVE_BYTES", 0)
    a = mg.Tensor(np.random.default_rng(4).standard_normal((5, 6)), requires_grad=True)

    def fn(a):  # the same mask every call: a fresh generator of one seed
        return F.dropout(a * a, 0.4, generator=np.random.default_rng(7))

    assert mg.gradcheck(fn, a)
    assert mg.gradgradcheck(fn, a)


def test_benchmark_configs_stay_below_the_lean_thresholds():
    """Their GELU (B, T, 4C) and dropout (B, T, C) float32 arrays keep today's fast state."""
    for name, spec in CONFIGS.items():
        rows = spec["batch"] * spec["context_length"]
        assert rows * 4 * spec["emb_dim"] * 4 <= activation.LEAN_ABOVE_BYTES, name
        assert rows * spec["emb_dim"] * 4 <= dropout.BOOL_MASK_ABOVE_BYTES, name
    # and GPT-2 124M at context 1024, batch 4 (benchmarks.long_context) is above both
    rows = 4 * 1024
    assert rows * 4 * 768 * 4 > activation.LEAN_ABOVE_BYTES
    assert rows * 768 * 4 > dropout.BOOL_MASK_ABOVE_BYTES
