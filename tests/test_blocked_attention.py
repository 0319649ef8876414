"""The blocked attention kernel (blocked_attention.py: long contexts without attn_mask), forced on
small inputs, against the kernel that keeps the weights: values and gradients equal in float64
(to 1e-10) and float32 (to rounding), with the same dropout masks; gradcheck and gradgradcheck;
drawn shapes with empty and size-1 axes, causal, GQA, one or many query blocks; nothing
quadratic kept for backward; blocks of one or several heads and partial blocks of rows and
heads; the same results on one or two threads; the threshold that picks the kernel."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import minigrad as mg
from minigrad import runtime
from minigrad.nn import functional as F
from minigrad.nn.functional import attention, blocked_attention
from minigrad.nn.functional import reference as ref
from minigrad.nn.functional.activation import dropout_multiplier

sdpa = F.scaled_dot_product_attention
STORED, BLOCKED = float("inf"), -1  # BLOCKED_ABOVE_BYTES that picks one kernel at every size


def leaf(array, dtype=np.float64) -> mg.Tensor:
    return mg.Tensor(np.array(array, dtype=dtype), requires_grad=True)


def run(kernel, arrays, g, dtype=np.float64, seed=5, **options):
    """The kernel's output, the gradients of q, k, v along g, the node's type, and the next
    draw of the generator after the call."""
    previous = attention.BLOCKED_ABOVE_BYTES
    attention.BLOCKED_ABOVE_BYTES = kernel
    try:
        tensors = [leaf(a, dtype) for a in arrays]
        generator = np.random.default_rng(seed)
        out = sdpa(*tensors, generator=generator, **options)
        node = type(out._ctx).__name__
        out.backward(mg.Tensor(np.asarray(g, dtype)))
    finally:
        attention.BLOCKED_ABOVE_BYTES = previous
    return [out.data] + [t.grad for t in tensors], node, generator.integers(0, 2**62)


@pytest.fixture
def small_blocks(monkeypatch):
    monkeypatch.setattr(blocked_attention, "QUERY_ROWS", 3)  # several query blocks on small shapes


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), lead=hnp.array_shapes(min_dims=0, max_dims=2, min_side=0, max_side=2),
       n_queries=st.integers(0, 7), n_keys=st.integers(0, 7), head_dim=st.integers(1, 3),
       value_dim=st.integers(1, 3), causal=st.booleans(), dropout_p=st.sampled_from([0.0, 0.3]),
       groups=st.sampled_from([1, 2]))
def test_blocked_equals_the_stored_kernel(small_blocks, data, lead, n_queries, n_keys, head_dim,
                                          value_dim, causal, dropout_p, groups):
    kv_lead = lead
    if groups > 1:  # grouped-query heads: the last leading axis of q is groups times k's
        lead = lead or (1,)
        kv_lead = lead
        lead = lead[:-1] + (lead[-1] * groups,)
    elements = st.floats(-2, 2)
    q = data.draw(hnp.arrays(np.float64, lead + (n_queries, head_dim), elements=elements))
    k = data.draw(hnp.arrays(np.float64, kv_lead + (n_keys, head_dim), elements=elements))
    v = data.draw(hnp.arrays(np.float64, kv_lead + (n_keys, value_dim), elements=elements))
    g = np.random.default_rng(0).standard_normal(lead + (n_queries, value_dim))
    options = dict(is_causal=causal, dropout_p=dropout_p, enable_gqa=groups > 1)
    blocked, node, after_blocked = run(BLOCKED, (q, k, v), g, **options)
    stored, stored_node, after_stored = run(STORED, (q, k, v), g, **options)
    assert (node, stored_node) == ("BlockedAttention", "ScaledDotProductAttention")
    for mine, theirs in zip(blocked, stored):
        assert mine.shape == theirs.shape
        np.testing.assert_allclose(mine, theirs, rtol=1e-10, atol=1e-12)
    assert after_blocked == after_stored  # the generator moved on as far


@pytest.mark.parametrize("rows, scores", [(1, 1), (4, 4 * 13), (4, 3 * 4 * 13), (5, 10**6), (128, 10**6)])
@pytest.mark.parametrize("shape", [(13, 13), (13, 9), (9, 13)])  # (Tq, Tk): odd, more queries, more keys
def test_blocks_of_rows_and_heads_cover_every_edge(monkeypatch, rows, scores, shape):
    # rows per block and scores per block: one head and row a block, partial blocks of rows
    # (13 = 3 x 4 + 1) and of heads (5 heads in blocks of 1, 3 or all), a single block
    monkeypatch.setattr(blocked_attention, "QUERY_ROWS", rows)
    monkeypatch.setattr(blocked_attention, "BLOCK_SCORES", scores)
    n_queries, n_keys = shape
    rng = np.random.default_rng(8)
    q = rng.standard_normal((2, 5, n_queries, 3))
    k, v = rng.standard_normal((2, 2, 5, n_keys, 3))
    g = rng.standard_normal((2, 5, n_queries, 3))
    gqa_q = rng.standard_normal((2, 10, n_queries, 3))  # two query heads per key/value head
    gqa_g = rng.standard_normal((2, 10, n_queries, 3))
    for options in (dict(is_causal=True, dropout_p=0.3), dict(dropout_p=0.3), dict(is_causal=True), dict()):
        for arrays, grad, gqa in (((q, k, v), g, False), ((gqa_q, k, v), gqa_g, True)):
            blocked, _, after_blocked = run(BLOCKED, arrays, grad, enable_gqa=gqa, **options)
            stored, _, after_stored = run(STORED, arrays, grad, enable_gqa=gqa, **options)
            for mine, theirs in zip(blocked, stored):
                np.testing.assert_allclose(mine, theirs, rtol=1e-10, atol=1e-12)
            assert after_blocked == after_stored


def test_one_and_two_threads_give_the_same_results():
    rng = np.random.default_rng(9)
    arrays = [rng.standard_normal((2, 3, 300, 16)) for _ in range(3)]  # 3 blocks of rows, 6 items
    g = rng.standard_normal((2, 3, 300, 16))
    previous = runtime.get_threads()
    results = []
    try:
        for threads in (1, 2):
            runtime.set_threads(threads)
            results.append(run(BLOCKED, arrays, g, np.float32, is_causal=True, dropout_p=0.1)[0])
    finally:
        runtime.set_threads(previous)
    for one, two in zip(*results):
        np.testing.assert_array_equal(one, two)


@pytest.mark.parametrize("options", [
    dict(is_causal=True), dict(), dict(is_causal=True, dropout_p=0.3), dict(dropout_p=0.3, scale=0.7),
    dict(is_causal=True, enable_gqa=True), dict(dropout_p=0.2, enable_gqa=True)])
def test_blocked_gradcheck_and_gradgradcheck(small_blocks, monkeypatch, options):
    monkeypatch.setattr(attention, "BLOCKED_ABOVE_BYTES", BLOCKED)
    rng = np.random.default_rng(1)
    kv_heads = 1 if options.get("enable_gqa") else 2
    q, k, v = leaf(rng.standard_normal((1, 2, 7, 3))), *(leaf(rng.standard_normal((1, kv_heads, 5, 3))) for _ in range(2))

    def fast(a, b, c):  # the same dropout draw every call
        return sdpa(a, b, c, generator=np.random.default_rng(2), **options)

    assert type(fast(q, k, v)._ctx).__name__ == "BlockedAttention"
    assert mg.gradcheck(fast, q, k, v)
    assert mg.gradgradcheck(fast, q, k, v)  # create_graph=True: through the reference


def test_blocked_dropout_is_the_stored_kernels_mask_and_the_reference_agrees(small_blocks, monkeypatch):
    monkeypatch.setattr(attention, "BLOCKED_ABOVE_BYTES", BLOCKED)
    rng = np.random.default_rng(3)
    q, k, v = (leaf(rng.standard_normal((2, 3, 9, 4))) for _ in range(3))
    keep = dropout_multiplier(np.random.default_rng(7), (2, 3, 9, 9), 0.25, np.float64)
    assert 0.6 < (keep > 0).mean() < 0.9 and set(np.unique(keep)) == {0.0, 1 / 0.75}
    out = sdpa(q, k, v, is_causal=True, dropout_p=0.25, generator=np.random.default_rng(7))
    plain = ref.scaled_dot_product_attention(q, k, v, causal=True, dropout_multiplier=keep)
    np.testing.assert_allclose(out.data, plain.data, rtol=1e-10, atol=1e-12)
    reference = blocked_attention.BlockedAttention.reference(
        q, k, v, causal=True, dropout_p=0.25, generator=np.random.default_rng(7), scale=0.5)
    np.testing.assert_allclose(out.data, reference.data, rtol=1e-10, atol=1e-12)


def test_other_bit_generators_give_a_reproducible_mask(monkeypatch):
    monkeypatch.setattr(attention, "BLOCKED_ABOVE_BYTES", BLOCKED)
    rng = np.random.default_rng(4)
    q, k, v = (leaf(rng.standard_normal((2, 16, 8))) for _ in range(3))

    def fast(a, b, c, seed=9):  # MT19937 cannot jump ahead: a PCG64 seeded from one draw
        return sdpa(a, b, c, dropout_p=0.5, generator=np.random.Generator(np.random.MT19937(seed)))

    np.testing.assert_array_equal(fast(q, k, v).data, fast(q, k, v).data)
    assert not np.array_equal(fast(q, k, v).data, fast(q, k, v, seed=10).data)
    assert mg.gradcheck(fast, q, k, v)


@pytest.mark.parametrize("n_tokens", [40, 300])  # one block, or blocks of the default 128 rows
def test_float32_stays_float32_and_matches_the_stored_kernel(n_tokens):
    rng = np.random.default_rng(5)
    arrays = [rng.standard_normal((2, 4, n_tokens, 16)) for _ in range(3)]
    g = rng.standard_normal((2, 4, n_tokens, 16))
    for options in (dict(is_causal=True, dropout_p=0.1), dict()):
        blocked, _, _ = run(BLOCKED, arrays, g, np.float32, **options)
        stored, _, _ = run(STORED, arrays, g, np.float32, **options)
        for mine, theirs in zip(blocked, stored):
            assert mine.dtype == np.float32
            np.testing.assert_allclose(mine, theirs, rtol=1e-4, atol=2e-6)


def test_nothing_quadratic_is_kept_for_backward(monkeypatch):
    monkeypatch.setattr(attention, "BLOCKED_ABOVE_BYTES", BLOCKED)
    rng = np.random.default_rng(6)
    q, k, v = (leaf(rng.standard_normal((2, 2, 300, 8)), np.float32) for _ in range(3))
    out = sdpa(q, k, v, is_causal=True, dropout_p=0.1, generator=np.random.default_rng(0))
    saved = [a for a in out._ctx.saved if isinstance(a, np.ndarray)]
    assert len(saved) == 5 and all(a.size <= 2 * 2 * 300 * 8 for a in saved), [a.shape for a in saved]
    out.sum().backward()
    assert all(np.isfinite(t.grad).all() for t in (q, k, v))


def test_the_threshold_picks_the_kernel(monkeypatch):
    def node(shape, **options):
        tensors = [leaf(np.zeros(shape), np.float32) for _ in range(3)]
        return type(sdpa(*tensors, **options)._ctx).__name__

    assert attention.BLOCKED_ABOVE_BYTES == 64 << 20
    assert node((16, 4, 128, 8), is_causal=True) == "ScaledDotProductAttention"  # bench-tiny: 4 MB
    monkeypatch.setattr(attention, "BLOCKED_ABOVE_BYTES", 16 * 16 * 4)  # one (16, 16) float32 head
    assert node((1, 1, 16, 2), is_causal=True) == "ScaledDotProductAttention"  # exactly at the limit
    assert node((1, 1, 17, 2), is_causal=True) == "BlockedAttention"
    assert node((2, 1, 16, 2)) == "BlockedAttention"  # the whole call's weights count
    long_mask = np.ones((17, 17), bool)  # attn_mask: always the kernel that takes masks
    assert node((1, 1, 17, 2), attn_mask=long_mask) == "ScaledDotProductAttention"
