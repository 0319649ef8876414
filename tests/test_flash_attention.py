"""The blocked attention kernel (flash_attention.py, used when there is no attn_mask): equal to
the kernel that keeps the weights, in float64, forward and gradients, on drawn shapes, one or
many query blocks, weights kept or recomputed; dropout; nothing quadratic kept for backward."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import minigrad as mg
from minigrad.nn import functional as F
from minigrad.nn.functional import flash_attention as flash

sdpa = F.scaled_dot_product_attention


def leaf(array, dtype=np.float64) -> mg.Tensor:
    return mg.Tensor(np.array(array, dtype=dtype), requires_grad=True)


def stored(q, k, v, causal, **kwargs):
    """The kernel that keeps P (attention.py), reached through an equivalent attn_mask."""
    n_queries, n_keys = q.shape[-2], k.shape[-2]
    allowed = np.tril(np.ones((n_queries, n_keys), bool)) if causal else np.ones((n_queries, n_keys), bool)
    return sdpa(q, k, v, attn_mask=allowed, **kwargs)


def values_and_grads(fn, arrays, g):
    tensors = [leaf(a) for a in arrays]
    out = fn(*tensors)
    out.backward(g)
    return [out.data] + [t.grad for t in tensors]


@pytest.fixture(params=["kept", "recomputed"])
def weights_policy(request, monkeypatch):
    """Both ways backward gets P: kept from forward (short contexts) or recomputed from L."""
    if request.param == "recomputed":
        monkeypatch.setattr(flash, "KEEP_WEIGHTS_BYTES", 0)
    monkeypatch.setattr(flash, "QUERY_ROWS", 3)  # several query blocks even on small shapes
    return request.param


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), lead=hnp.array_shapes(min_dims=0, max_dims=2, min_side=1, max_side=2),
       n_queries=st.integers(1, 8), n_keys=st.integers(1, 8), head_dim=st.integers(1, 3),
       value_dim=st.integers(1, 3), causal=st.booleans())
def test_blocked_equals_the_stored_kernel_and_gradchecks(weights_policy, data, lead, n_queries, n_keys,
                                                         head_dim, value_dim, causal):
    elements = st.floats(-2, 2)
    q = data.draw(hnp.arrays(np.float64, lead + (n_queries, head_dim), elements=elements))
    k = data.draw(hnp.arrays(np.float64, lead + (n_keys, head_dim), elements=elements))
    v = data.draw(hnp.arrays(np.float64, lead + (n_keys, value_dim), elements=elements))
    g = np.random.default_rng(0).standard_normal(lead + (n_queries, value_dim))
    blocked = values_and_grads(lambda a, b, c: sdpa(a, b, c, is_causal=causal), (q, k, v), g)
    kept = values_and_grads(lambda a, b, c: stored(a, b, c, causal), (q, k, v), g)
    for mine, theirs in zip(blocked, kept):
        np.testing.assert_allclose(mine, theirs, rtol=1e-10, atol=1e-12)
    assert mg.gradcheck(lambda a, b, c: sdpa(a, b, c, is_causal=causal), leaf(q), leaf(k), leaf(v))


@pytest.mark.parametrize("causal", [False, True])
def test_blocked_dropout_matches_its_mask_and_gradchecks(weights_policy, causal):
    rng = np.random.default_rng(1)
    q, k, v = (rng.standard_normal((2, 3, 10, 4)) for _ in range(3))

    def run(a, b, c):
        return sdpa(a, b, c, is_causal=causal, dropout_p=0.25, generator=np.random.default_rng(5))

    keep = flash.dropout_mask(flash.dropout_seed(np.random.default_rng(5)), (2, 3, 10, 10), 0.25, causal)
    allowed = np.tril(np.ones((10, 10), bool)) if causal else np.ones((10, 10), bool)
    assert 0.6 < (keep > 0)[..., allowed].mean() < 0.9 and set(np.unique(keep)) <= {0.0, 1 / 0.75}
    g = rng.standard_normal((2, 3, 10, 4))
    blocked = values_and_grads(run, (q, k, v), g)
    expected = values_and_grads(lambda a, b, c: _reference(a, b, c, allowed, keep), (q, k, v), g)
    for mine, theirs in zip(blocked, expected):
        np.testing.assert_allclose(mine, theirs, rtol=1e-10, atol=1e-12)
    assert mg.gradcheck(run, leaf(q), leaf(k), leaf(v))


def _reference(q, k, v, allowed, keep):
    """softmax(q k^T / sqrt(D) + mask) * keep @ v in primitive minigrad ops (differentiable)."""
    scores = (q @ k.swapaxes(-1, -2)) * (1 / np.sqrt(q.shape[-1]))
    scores = mg.where(allowed, scores, -np.inf)
    weights = (scores - scores.max(axis=-1, keepdims=True).detach()).exp()
    weights = weights / weights.sum(axis=-1, keepdims=True)
    return (weights * keep) @ v


def test_nothing_quadratic_is_kept_for_backward(monkeypatch):
    monkeypatch.setattr(flash, "KEEP_WEIGHTS_BYTES", 0)
    rng = np.random.default_rng(2)
    q, k, v = (leaf(rng.standard_normal((2, 2, 300, 8)), np.float32) for _ in range(3))
    out = sdpa(q, k, v, is_causal=True, dropout_p=0.1, generator=np.random.default_rng(0))
    saved = [a for a in out._ctx.saved if isinstance(a, np.ndarray)]
    assert saved and all(a.size <= 2 * 2 * 300 * 8 for a in saved), [a.shape for a in saved]
    assert out._ctx.saved[-1] is None  # no weights kept
    out.sum().backward()
    assert all(np.isfinite(t.grad).all() for t in (q, k, v))


def test_short_contexts_keep_the_weights_and_long_ones_do_not():
    rng = np.random.default_rng(3)
    short = [leaf(rng.standard_normal((1, 2, 16, 4)), np.float32) for _ in range(3)]
    assert sdpa(*short, is_causal=True)._ctx.saved[-1] is not None
    n_keys = int(np.sqrt(flash.KEEP_WEIGHTS_BYTES / 4)) + 1  # one head's weights exceed the budget
    long = [leaf(np.zeros((1, 1, n_keys, 1)), np.float32) for _ in range(3)]
    assert sdpa(*long, is_causal=True)._ctx.saved[-1] is None


def test_empty_queries_or_keys():
    q, k, v = leaf(np.ones((2, 3, 2))), leaf(np.ones((2, 0, 2))), leaf(np.ones((2, 0, 4)))
    out = sdpa(q, k, v)  # no key to attend to: zeros (as the stored kernel)
    np.testing.assert_array_equal(out.data, np.zeros((2, 3, 4)))
    out.sum().backward()
    np.testing.assert_array_equal(q.grad, np.zeros((2, 3, 2)))
    q0 = leaf(np.ones((2, 0, 2)))
    assert sdpa(q0, leaf(np.ones((2, 3, 2))), leaf(np.ones((2, 3, 4))), is_causal=True).shape == (2, 0, 4)


def test_float32_stays_float32_and_matches_float64():
    rng = np.random.default_rng(4)
    arrays = [rng.standard_normal((2, 4, 200, 16)) for _ in range(3)]
    out32 = sdpa(*(leaf(a, np.float32) for a in arrays), is_causal=True)
    out64 = sdpa(*(leaf(a) for a in arrays), is_causal=True)
    assert out32.dtype == np.float32
    np.testing.assert_allclose(out32.data, out64.data, atol=2e-5)
