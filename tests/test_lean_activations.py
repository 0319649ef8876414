"""Memory-lean saved state: GELU above SLOPE_KEEP_BYTES recomputes its slope in backward
(the same gradient as the kept slope), dropout keeps its mask as booleans."""
from __future__ import annotations

import numpy as np

import minigrad as mg
from minigrad.nn import functional as F
from minigrad.nn.functional import activation


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
    monkeypatch.setattr(activation, "SLOPE_KEEP_BYTES", 0)
    out, recomputed, slope_kept = gelu_grad(x)
    assert not slope_kept  # nothing but the input kept
    np.testing.assert_array_equal(out.data, kept_out.data)
    np.testing.assert_array_equal(recomputed, kept)
    assert recomputed.dtype == np.float32
    assert mg.gradcheck(lambda a: F.gelu(a, approximate="tanh"),
                        mg.Tensor(np.random.default_rng(1).standard_normal((3, 4)), requires_grad=True))


def test_dropout_keeps_booleans_and_matches_its_multiplier():
    x = np.random.default_rng(2).standard_normal((64, 1000)).astype(np.float32)
    t = mg.Tensor(x, requires_grad=True)
    out = F.dropout(t, 0.3, generator=np.random.default_rng(5))
    assert out._ctx.keep.dtype == np.bool_ and not hasattr(out._ctx, "mask")
    multiplier = activation.dropout_multiplier(np.random.default_rng(5), x.shape, 0.3, np.float32)
    np.testing.assert_array_equal(out.data, x * multiplier)
    g = np.random.default_rng(3).standard_normal(x.shape).astype(np.float32)
    out.backward(g)
    np.testing.assert_array_equal(t.grad, g * multiplier)
    assert out.dtype == np.float32 and 0.65 < (multiplier > 0).mean() < 0.75
