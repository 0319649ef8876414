"""The kernel that keeps the attention weights, on the paths its speed comes from: causal
blocks of query rows (the upper triangle skipped; more queries than keys, more keys than
queries), the softmax with and without the row max subtracted, the output and gradient
layouts that make the model's transposes views, the dropout weights kept instead of the mask
(and the mask drawn again for create_graph), non-contiguous inputs, GQA and masks. Each
compared with a plain NumPy formula in float64 and gradchecked."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import minigrad as mg
from minigrad.nn import functional as F
from minigrad.nn.functional import attention
from minigrad.nn.functional.activation import dropout_multiplier

sdpa = F.scaled_dot_product_attention


def leaf(array, dtype=np.float64) -> mg.Tensor:
    return mg.Tensor(np.array(array, dtype=dtype), requires_grad=True)


def plain(q, k, v, causal=False, keep=None, bias=None, groups=1):
    """softmax(q k^T / sqrt(D) [+ causal mask] [+ bias]) [* keep] v in float64 NumPy."""
    q, k, v = (np.asarray(a, np.float64) for a in (q, k, v))
    if groups > 1:
        k, v = np.repeat(k, groups, axis=-3), np.repeat(v, groups, axis=-3)
    scores = q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1])
    if causal:
        n_queries, n_keys = scores.shape[-2:]
        scores = np.where(np.arange(n_keys)[None, :] <= np.arange(n_queries)[:, None], scores, -np.inf)
    if bias is not None:
        scores = scores + bias
    weights = np.exp(scores - scores.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)
    return (weights if keep is None else weights * keep) @ v


def grads_of(fn, arrays, g):
    tensors = [leaf(a) for a in arrays]
    out = fn(*tensors)
    out.backward(mg.Tensor(g))
    return [out.data] + [t.grad for t in tensors]


@pytest.fixture
def small_rows(monkeypatch):
    monkeypatch.setattr(attention, "ROWS", 3)  # several causal row blocks on small shapes


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), n_queries=st.integers(1, 8), n_keys=st.integers(1, 8), heads=st.integers(1, 3),
       groups=st.sampled_from([1, 2]), dropout_p=st.sampled_from([0.0, 0.3]), big=st.booleans())
def test_causal_row_blocks_match_plain_attention(small_rows, data, n_queries, n_keys, heads, groups,
                                                 dropout_p, big):
    # big scores (norms past NO_MAX_BELOW) take the softmax that subtracts the row max
    elements = st.floats(-30, 30) if big else st.floats(-2, 2)
    q = data.draw(hnp.arrays(np.float64, (2, heads * groups, n_queries, 3), elements=elements))
    k = data.draw(hnp.arrays(np.float64, (2, heads, n_keys, 3), elements=elements))
    v = data.draw(hnp.arrays(np.float64, (2, heads, n_keys, 2), elements=st.floats(-2, 2)))
    options = dict(is_causal=True, dropout_p=dropout_p, enable_gqa=groups > 1)
    keep = (dropout_multiplier(np.random.default_rng(4), q.shape[:-1] + (n_keys,), dropout_p, np.float64)
            if dropout_p else None)
    out = sdpa(q, k, v, generator=np.random.default_rng(4), **options).data
    np.testing.assert_allclose(out, plain(q, k, v, True, keep, groups=groups), rtol=1e-10, atol=1e-12)
    assert mg.gradcheck(lambda a, b, c: sdpa(a, b, c, generator=np.random.default_rng(4), **options),
                        leaf(q), leaf(k), leaf(v))


def test_keys_no_query_sees_get_zero_gradients(small_rows):
    # causal, top-left: 4 queries see keys 0..3 of 9; keys 4..8 get zero dK and dV
    rng = np.random.default_rng(0)
    q, k, v = rng.standard_normal((1, 2, 4, 3)), rng.standard_normal((1, 2, 9, 3)), rng.standard_normal((1, 2, 9, 3))
    _, grad_q, grad_k, grad_v = grads_of(lambda a, b, c: sdpa(a, b, c, is_causal=True), (q, k, v),
                                         rng.standard_normal((1, 2, 4, 3)))
    assert np.all(grad_k[:, :, 4:] == 0) and np.all(grad_v[:, :, 4:] == 0)
    assert np.all(np.abs(grad_v[:, :, :4]) > 0)
    np.testing.assert_allclose(sdpa(q, k, v, is_causal=True).data, plain(q, k, v, True), rtol=1e-12)


def test_softmax_without_the_row_max_equals_the_one_with_it(monkeypatch):
    rng = np.random.default_rng(1)
    arrays = [rng.standard_normal((3, 2, 70, 8)) for _ in range(3)]
    g = rng.standard_normal((3, 2, 70, 8))
    for options in (dict(is_causal=True), dict(), dict(is_causal=True, dropout_p=0.2)):
        def fn(a, b, c):
            return sdpa(a, b, c, generator=np.random.default_rng(2), **options)
        results = []
        for limit in (attention.NO_MAX_BELOW, 0.0):  # the bound holds here / never holds
            monkeypatch.setattr(attention, "NO_MAX_BELOW", limit)
            results.append(grads_of(fn, arrays, g))
        for skipped, subtracted in zip(*results):
            np.testing.assert_allclose(skipped, subtracted, rtol=1e-12, atol=1e-14)
    monkeypatch.undo()
    # float32 scores of +-700 in head 1 (head 0 small, in the same item): past the bound, so
    # that head's row max is subtracted and nothing overflows
    q = np.full((1, 2, 4, 2), 20.0, np.float32)
    k = np.concatenate([np.full((1, 2, 2, 2), 25.0), np.full((1, 2, 2, 2), -25.0)], axis=2).astype(np.float32)
    q[:, 0] *= 0.01
    v = rng.standard_normal((1, 2, 4, 2)).astype(np.float32)
    tensors = [leaf(a, np.float32) for a in (q, k, v)]
    out = sdpa(*tensors, is_causal=True)
    np.testing.assert_allclose(out.data, plain(q, k, v, True), rtol=1e-5)
    out.backward(np.ones(out.shape, np.float32))
    assert all(np.isfinite(t.grad).all() for t in tensors)


def test_output_and_gradients_laid_out_for_the_models_views():
    # the model: (B, T, C) -> view (B, T, H, D) -> transpose (B, H, T, D); back the same way
    rng = np.random.default_rng(3)
    batch, tokens, heads, head_dim = 2, 6, 3, 4
    xs = [leaf(rng.standard_normal((batch, tokens, heads * head_dim)), np.float32) for _ in range(3)]
    q, k, v = (x.view(batch, tokens, heads, head_dim).transpose(1, 2) for x in xs)
    out = sdpa(q, k, v, is_causal=True, dropout_p=0.1, generator=np.random.default_rng(0))
    merged = out.transpose(1, 2).reshape(batch, tokens, heads * head_dim)
    assert merged.data.flags.c_contiguous and np.shares_memory(merged.data, out.data)  # a view
    g = rng.standard_normal(out.shape).astype(np.float32)
    grads = out._ctx.backward(g)
    for grad, x in zip(grads, (q, k, v)):
        assert grad.strides == x.data.strides  # laid out as the input: (B, T, H, D) in memory
    keep = dropout_multiplier(np.random.default_rng(0), (batch, heads, tokens, tokens), 0.1)
    np.testing.assert_allclose(out.data, plain(q.data, k.data, v.data, True, keep), rtol=1e-5, atol=1e-6)


def test_dropout_keeps_the_dropped_weights_not_the_mask_and_create_graph_draws_it_again():
    rng = np.random.default_rng(5)
    q, k, v = (leaf(rng.standard_normal((2, 2, 5, 3))) for _ in range(3))
    generator = np.random.default_rng(6)
    out = sdpa(q, k, v, is_causal=True, dropout_p=0.4, generator=generator)
    node = out._ctx
    keep = dropout_multiplier(np.random.default_rng(6), (2, 2, 5, 5), 0.4, np.float64)
    saved = [a for a in node.saved if isinstance(a, np.ndarray)]
    assert not any(a.shape == keep.shape and np.array_equal(a, keep) for a in saved)  # M is not kept
    generator.random(10)  # the generator moves on before backward: the forward's mask is used
    g = rng.standard_normal(out.shape)
    first = mg.autograd.grad(out, [q, k, v], mg.Tensor(g), retain_graph=True)
    second = mg.autograd.grad(out, [q, k, v], mg.Tensor(g), create_graph=True)
    expected = grads_of(lambda a, b, c: F.reference.scaled_dot_product_attention(
        a, b, c, causal=True, dropout_multiplier=keep), (q.data, k.data, v.data), g)[1:]
    for a, b, c in zip(first, second, expected):
        np.testing.assert_allclose(a.data, c, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(b.data, c, rtol=1e-10, atol=1e-12)


def test_masks_and_non_contiguous_inputs_on_the_single_block_path():
    rng = np.random.default_rng(7)
    raw = [rng.standard_normal((2, 5, 3, 4)) for _ in range(3)]  # (B, T, H, D)
    views = [a.transpose(0, 2, 1, 3) for a in raw]  # (B, H, T, D) views
    allowed = rng.random((5, 5)) < 0.6
    allowed[:, 0] = True
    bias = np.where(allowed, 0.0, -np.inf)
    np.testing.assert_allclose(sdpa(*views, attn_mask=allowed).data, plain(*views, bias=bias), rtol=1e-12)
    float_mask = rng.standard_normal((3, 5, 5))
    np.testing.assert_allclose(sdpa(*views, attn_mask=float_mask).data, plain(*views, bias=float_mask),
                               rtol=1e-12)
    assert mg.gradcheck(lambda *t: sdpa(*(x.transpose(0, 2, 1, 3) for x in t), attn_mask=float_mask),
                        *(leaf(a) for a in raw))
    assert mg.gradcheck(lambda a, m: sdpa(a, views[1], views[2], attn_mask=m), leaf(views[0]), leaf(float_mask))


@pytest.mark.parametrize("shape", [(16, 4, 128, 8), (2, 12, 130, 4), (3, 1, 65, 2)])
def test_many_items_and_blocks_at_model_like_shapes(shape):
    # several items (sequences and heads), blocks of ROWS rows with a partial last block
    rng = np.random.default_rng(8)
    q, k, v = (rng.standard_normal(shape) for _ in range(3))
    g = rng.standard_normal(shape)
    out, grad_q, grad_k, grad_v = grads_of(lambda a, b, c: sdpa(a, b, c, is_causal=True), (q, k, v), g)
    np.testing.assert_allclose(out, plain(q, k, v, True), rtol=1e-10, atol=1e-12)
    expected = grads_of(lambda a, b, c: F.reference.scaled_dot_product_attention(a, b, c, causal=True),
                        (q, k, v), g)
    for mine, theirs in zip((grad_q, grad_k, grad_v), expected[1:]):
        np.testing.assert_allclose(mine, theirs, rtol=1e-9, atol=1e-11)


def test_dropout_bits_drawn_item_by_item_are_one_draw_of_the_whole_mask(monkeypatch):
    # one head per item and 5 x 5 weights per head: items start at odd elements (in the high
    # half of a 64-bit draw); the mask is still dropout_multiplier's, and the generator ends
    # where that draw leaves it (a buffered 32-bit half included)
    monkeypatch.setattr(attention, "ITEM_ELEMENTS", 1)
    rng = np.random.default_rng(9)
    q, k, v = (rng.standard_normal((3, 2, 5, 4)) for _ in range(3))
    for buffered in (False, True):
        generator, expected = np.random.default_rng(12), np.random.default_rng(12)
        if buffered:
            generator.random(dtype=np.float32), expected.random(dtype=np.float32)
        out = sdpa(q, k, v, is_causal=True, dropout_p=0.3, generator=generator).data
        keep = dropout_multiplier(expected, (3, 2, 5, 5), 0.3, np.float64)
        np.testing.assert_allclose(out, plain(q, k, v, True, keep), rtol=1e-12, atol=1e-14)
        assert generator.bit_generator.state == expected.bit_generator.state


def test_products_run_against_c_order_transposes_that_carry_the_scale():
    # K^T and V^T are real C-order copies (astype of a transposed view keeps the transposed
    # memory order, and OpenBLAS then runs a slower transposed-operand product)
    k = np.arange(2 * 5 * 3 * 4, dtype=np.float32).reshape(2, 5, 3, 4).transpose(0, 2, 1, 3)  # model layout
    keys_t = attention._transposed(k, 0.5, np.dtype(np.float64))
    assert keys_t.flags.c_contiguous and keys_t.dtype == np.float64 and keys_t.shape == (2, 3, 4, 5)
    np.testing.assert_array_equal(keys_t, 0.5 * np.swapaxes(k, -1, -2))


def test_mask_gradient_with_a_zero_scale():
    # dB is dS itself: it is not scaled with dQ and dK (which are zero here)
    rng = np.random.default_rng(10)
    q, k, v = (leaf(rng.standard_normal((1, 2, 4, 3))) for _ in range(3))
    mask = leaf(rng.standard_normal((4, 4)))
    assert mg.gradcheck(lambda a, b, c, m: sdpa(a, b, c, attn_mask=m, scale=0.0), q, k, v, mask)
    assert mg.gradcheck(lambda a, b, c, m: sdpa(a, b, c, attn_mask=m, scale=0.7), q, k, v, mask)


@pytest.mark.parametrize("shape, threads, n_items", [
    ((16, 4, 128, 8), 2, 2),   # bench-tiny's heads: one item of 8 sequences per thread
    ((2, 12, 256, 8), 2, 2),   # GPT-2 124M's: one sequence per thread
    ((8, 4, 256, 8), 2, 4),    # small's: past THREAD_ITEM_ELEMENTS, two items per thread
    ((16, 4, 128, 8), 1, 4),   # one thread: items of about ITEM_ELEMENTS weights (4 sequences)
])
def test_items_are_an_equal_share_per_thread(shape, threads, n_items):
    seen = []
    previous = mg.runtime.get_threads()
    mg.runtime.set_threads(threads)
    try:
        blocks = attention._row_blocks(shape[2], shape[2], True)
        attention._run_items(lambda a, h: seen.append((a, h)), shape[:2] + shape[2:3] * 2, blocks, 16)
    finally:
        mg.runtime.set_threads(previous)
    assert len(seen) == n_items
    covered = sorted((a, h) for sa, sh in seen for a in range(sa.start, sa.stop) for h in range(sh.start, sh.stop))
    assert covered == [(a, h) for a in range(shape[0]) for h in range(shape[1])]  # each head once
    sizes = {(sa.stop - sa.start) * (sh.stop - sh.start) for sa, sh in seen}
    assert len(sizes) == 1  # equal items


def test_one_head_past_the_bound_same_results_on_one_or_two_threads():
    # the row max is subtracted for that head alone, whichever item (thread split) it is in
    rng = np.random.default_rng(11)
    q, k, v = (rng.standard_normal((16, 4, 128, 8)).astype(np.float32) for _ in range(3))
    q[5, 2] *= 40.0  # |q| |k| / sqrt(D) well past NO_MAX_BELOW for sequence 5, head 2
    g = rng.standard_normal(q.shape).astype(np.float32)
    previous, results = mg.runtime.get_threads(), []
    try:
        for threads in (1, 2):
            mg.runtime.set_threads(threads)
            results.append(grads_of(lambda a, b, c: sdpa(a, b, c, is_causal=True, dropout_p=0.1,
                                                         generator=np.random.default_rng(3)),
                                    (q, k, v), g))
    finally:
        mg.runtime.set_threads(previous)
    for one, two in zip(*results):
        np.testing.assert_array_equal(one, two)
    keep = dropout_multiplier(np.random.default_rng(3), (16, 4, 128, 128), 0.1, np.float64)
    np.testing.assert_allclose(results[0][0], plain(q, k, v, True, keep), rtol=1e-9, atol=1e-10)
