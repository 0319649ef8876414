"""scaled_dot_product_attention: gradcheck, a NumPy reference, PyTorch's defaults (no mask),
is_causal (top-left), boolean and float masks, the bottom-right causal mask (KV-cache rows),
grouped-query attention, dropout, float32, extreme scores and bad shapes."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import minigrad as mg
from minigrad import runtime
from minigrad.nn import functional as F
from minigrad.nn.functional.activation import dropout_multiplier
from minigrad.nn.functional.attention_masks import causal_bias, causal_block_biases

sdpa = F.scaled_dot_product_attention


def leaf(array, dtype=np.float64) -> mg.Tensor:
    return mg.Tensor(np.array(array, dtype=dtype), requires_grad=True)


def reference_attention(q, k, v, causal=False, scale=None, keep=None, lower_right=False, bias=None):
    """Plain NumPy: softmax(q k^T * scale + mask) (times an optional dropout multiplier) v."""
    q, k, v = (np.asarray(a, dtype=np.float64) for a in (q, k, v))
    n_queries, n_keys = q.shape[-2], k.shape[-2]
    scale = 1 / np.sqrt(q.shape[-1]) if scale is None else scale
    scores = q @ np.swapaxes(k, -1, -2) * scale
    if causal:
        i, j = np.arange(n_queries)[:, None], np.arange(n_keys)[None, :]
        scores = np.where(j <= i + (n_keys - n_queries if lower_right else 0), scores, -np.inf)
    if bias is not None:
        scores = scores + bias
    weights = np.exp(scores - scores.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)
    if keep is not None:
        weights = weights * keep
    return weights @ v


@settings(max_examples=20)
@given(data=st.data(), lead=hnp.array_shapes(min_dims=0, max_dims=2, min_side=1, max_side=2),
       n_keys=st.integers(1, 4), head_dim=st.integers(1, 3), value_dim=st.integers(1, 3),
       causal=st.booleans())
def test_attention_gradcheck_and_reference(data, lead, n_keys, head_dim, value_dim, causal):
    n_queries = data.draw(st.integers(1, 4))
    elements = st.floats(-2, 2)
    q = data.draw(hnp.arrays(np.float64, lead + (n_queries, head_dim), elements=elements))
    k = data.draw(hnp.arrays(np.float64, lead + (n_keys, head_dim), elements=elements))
    v = data.draw(hnp.arrays(np.float64, lead + (n_keys, value_dim), elements=elements))
    out = sdpa(q, k, v, is_causal=causal)
    assert out.shape == lead + (n_queries, value_dim)
    np.testing.assert_allclose(out.data, reference_attention(q, k, v, causal), rtol=1e-10, atol=1e-12)
    assert mg.gradcheck(lambda a, b, c: sdpa(a, b, c, is_causal=causal), leaf(q), leaf(k), leaf(v))
    if causal and n_queries <= n_keys:  # the KV-cache alignment, as a boolean mask
        mask = F.causal_lower_right(n_queries, n_keys)
        np.testing.assert_allclose(sdpa(q, k, v, attn_mask=mask).data,
                                   reference_attention(q, k, v, True, lower_right=True), rtol=1e-10, atol=1e-12)
        assert mg.gradcheck(lambda a, b, c: sdpa(a, b, c, attn_mask=mask), leaf(q), leaf(k), leaf(v))


def test_attention_is_one_node_and_keeps_float32():
    rng = np.random.default_rng(0)
    q, k, v = (leaf(rng.standard_normal((2, 3, 5, 4)), np.float32) for _ in range(3))
    out = sdpa(q, k, v)
    assert out.dtype == np.float32 and out._ctx.parents == (q, k, v)
    out.backward(np.ones(out.shape, np.float32))
    assert q.grad.dtype == k.grad.dtype == v.grad.dtype == np.float32
    np.testing.assert_allclose(out.data, reference_attention(q.data, k.data, v.data), rtol=1e-5, atol=1e-6)


def test_attention_gradients_match_float64_at_gpt_like_shape():
    rng = np.random.default_rng(1)
    arrays = [rng.standard_normal((2, 4, 64, 16)) for _ in range(3)]
    g = rng.standard_normal((2, 4, 64, 16))
    grads = {}
    for dtype in (np.float32, np.float64):
        tensors = [leaf(a, dtype) for a in arrays]
        sdpa(*tensors).backward(g.astype(dtype))
        grads[dtype] = [t.grad for t in tensors]
    for g32, g64 in zip(grads[np.float32], grads[np.float64]):
        np.testing.assert_allclose(g32, g64, rtol=1e-3, atol=1e-4)


def test_attention_kv_cache_rows_match_full_causal_attention():
    rng = np.random.default_rng(2)
    q, k, v = (rng.standard_normal((2, 3, 7, 4)) for _ in range(3))
    full = sdpa(q, k, v, is_causal=True).data
    for new in (1, 3, 7):  # the newest queries against all keys
        last = sdpa(q[:, :, -new:], k, v, attn_mask=F.causal_lower_right(new, 7)).data
        np.testing.assert_allclose(last, full[:, :, -new:], rtol=1e-12, atol=1e-12)
    mask = F.causal_lower_right(3, 7)
    assert mg.gradcheck(lambda a, b, c: sdpa(a, b, c, attn_mask=mask), leaf(q[:1, :1, -3:]),
                        leaf(k[:1, :1]), leaf(v[:1, :1]))


def test_attention_first_query_sees_only_first_key():
    rng = np.random.default_rng(3)
    q, k, v = (rng.standard_normal((1, 1, 4, 2)) for _ in range(3))
    out = sdpa(q, k, v, is_causal=True).data
    np.testing.assert_allclose(out[0, 0, 0], v[0, 0, 0], rtol=1e-12)
    non_causal = sdpa(q, k, v).data  # PyTorch's default: no mask
    np.testing.assert_allclose(non_causal, reference_attention(q, k, v, causal=False), rtol=1e-12)


def test_attention_causal_bias_is_cached_and_read_only():
    bias = causal_bias(3, 5, "float32")
    assert bias is causal_bias(3, 5, "float32")
    assert not bias.flags.writeable
    np.testing.assert_array_equal(np.isinf(bias), np.triu(np.ones((3, 5), bool), k=1))
    lower_right = causal_bias(3, 5, "float32", True)
    np.testing.assert_array_equal(np.isinf(lower_right), np.triu(np.ones((3, 5), bool), k=3))
    np.testing.assert_array_equal(~F.causal_lower_right(3, 5), np.isinf(lower_right))
    rng = np.random.default_rng(4)
    q, k, v = (rng.standard_normal((2, 2, 3, 2)).astype(np.float32) for _ in range(3))
    sdpa(q, k[:, :, :3], v[:, :, :3], is_causal=True)  # uses the cached (3, 3) bias
    np.testing.assert_array_equal(causal_bias(3, 3, "float32"), np.where(np.triu(np.ones((3, 3)), 1), -np.inf, 0))



def test_causal_block_biases_are_the_blocks_parts_of_the_bias_in_c_order():
    blocks = ((0, 2, 2), (2, 4, 4), (4, 5, 4))  # 5 queries, 4 keys: the last block sees all keys
    parts = causal_block_biases(5, 4, "float32", blocks)
    assert parts is causal_block_biases(5, 4, "float32", blocks)  # cached
    full = causal_bias(5, 4, "float32")
    for (r0, r1, keys), part in zip(blocks[:2], parts[:2]):
        assert part.flags.c_contiguous and not part.flags.writeable and part.dtype == np.float32
        np.testing.assert_array_equal(part, full[r0:r1, :keys])
    assert parts[2] is None  # row 4 sees keys 0..3: no -inf in its block


def test_attention_explicit_scale():
    rng = np.random.default_rng(5)
    q, k, v = (rng.standard_normal((2, 3, 2)) for _ in range(3))
    np.testing.assert_allclose(sdpa(q, k, v, scale=0.3).data, reference_attention(q, k, v, scale=0.3), rtol=1e-12)
    assert mg.gradcheck(lambda a, b, c: sdpa(a, b, c, scale=-0.7), leaf(q), leaf(k), leaf(v))


def test_attention_extreme_scores_stay_finite():
    q = np.zeros((1, 1, 3, 2))
    q[..., 0] = [100.0, -100.0, 100.0]
    k = np.zeros((1, 1, 3, 2))
    k[..., 0] = [100.0, 100.0, -100.0]  # scores of +-1e4 / sqrt(2)
    v = np.arange(6.0).reshape(1, 1, 3, 2)
    for dtype in (np.float32, np.float64):
        tensors = [leaf(a, dtype) for a in (q, k, v)]
        out = sdpa(*tensors, is_causal=True)
        np.testing.assert_allclose(out.data, reference_attention(q, k, v, True), atol=1e-5)
        out.backward(np.ones(out.shape, dtype))
        assert all(np.all(np.isfinite(t.grad)) for t in tensors)
    assert mg.gradcheck(lambda a, b, c: sdpa(a, b, c, is_causal=True), leaf(q), leaf(k), leaf(v))


def test_attention_dropout_reproducible_and_gradcheck():
    rng = np.random.default_rng(6)
    q, k, v = (rng.standard_normal((2, 2, 6, 3)) for _ in range(3))
    a = sdpa(q, k, v, dropout_p=0.3, generator=np.random.default_rng(7)).data
    b = sdpa(q, k, v, dropout_p=0.3, generator=np.random.default_rng(7)).data
    c = sdpa(q, k, v, dropout_p=0.3, generator=np.random.default_rng(8)).data
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    keep = dropout_multiplier(np.random.default_rng(7), (2, 2, 6, 6), 0.3, np.float64)
    np.testing.assert_allclose(a, reference_attention(q, k, v, keep=keep), rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(sdpa(q, k, v, dropout_p=0.0).data, sdpa(q, k, v).data)
    assert mg.gradcheck(lambda x, y, z: sdpa(x, y, z, dropout_p=0.3, generator=np.random.default_rng(7)),
                        leaf(q), leaf(k), leaf(v))
    mg.manual_seed(9)
    first = sdpa(q, k, v, dropout_p=0.5).data
    mg.manual_seed(9)
    assert np.array_equal(first, sdpa(q, k, v, dropout_p=0.5).data)


def test_attention_only_some_inputs_require_grad():
    rng = np.random.default_rng(10)
    q, k, v = (rng.standard_normal((1, 2, 4, 3)) for _ in range(3))
    assert mg.gradcheck(lambda x: sdpa(x, k, v), leaf(q))
    assert mg.gradcheck(lambda z: sdpa(q, k, z), leaf(v))
    assert mg.gradcheck(lambda z: sdpa(q, k, z, dropout_p=0.2, generator=np.random.default_rng(1)), leaf(v))
    with mg.no_grad():
        out = sdpa(leaf(q), leaf(k), leaf(v))
    assert out._ctx is None


def test_attention_noncontiguous_head_views():
    # the model passes (B, T, H, D) arrays transposed to (B, H, T, D) views
    rng = np.random.default_rng(11)
    raw = [rng.standard_normal((2, 5, 3, 4)) for _ in range(3)]
    tensors = [leaf(a) for a in raw]
    assert mg.gradcheck(lambda *t: sdpa(*(x.transpose(0, 2, 1, 3) for x in t)), *tensors)
    out = sdpa(*(a.transpose(0, 2, 1, 3) for a in raw)).data
    np.testing.assert_allclose(out, reference_attention(*(a.transpose(0, 2, 1, 3) for a in raw)), rtol=1e-12)


def test_attention_bad_shapes():
    ones = np.ones
    with pytest.raises(ValueError, match=r"shapes do not match: q \(1, 2, 3, 4\), k \(1, 2, 3, 5\)"):
        sdpa(ones((1, 2, 3, 4)), ones((1, 2, 3, 5)), ones((1, 2, 3, 5)))
    with pytest.raises(ValueError, match=r"q \(1, 2, 3, 4\), k \(1, 3, 3, 4\)"):
        sdpa(ones((1, 2, 3, 4)), ones((1, 3, 3, 4)), ones((1, 3, 3, 4)))
    with pytest.raises(ValueError, match=r"v \(1, 2, 4, 4\)"):
        sdpa(ones((1, 2, 3, 4)), ones((1, 2, 3, 4)), ones((1, 2, 4, 4)))
    assert sdpa(ones((1, 1, 5, 4)), ones((1, 1, 3, 4)), ones((1, 1, 3, 4)), is_causal=True).shape == (1, 1, 5, 4)
    with pytest.raises(ValueError, match="either attn_mask or is_causal"):
        sdpa(ones((3, 4)), ones((3, 4)), ones((3, 4)), attn_mask=np.ones((3, 3), bool), is_causal=True)
    with pytest.raises(ValueError, match=r"attn_mask of shape \(2, 3\) does not broadcast .*\(3, 3\)"):
        sdpa(ones((3, 4)), ones((3, 4)), ones((3, 4)), attn_mask=np.ones((2, 3), bool))
    with pytest.raises(TypeError, match="attn_mask must be bool or float, got dtype int64"):
        sdpa(ones((3, 4)), ones((3, 4)), ones((3, 4)), attn_mask=np.ones((3, 3), np.int64))
    with pytest.raises(ValueError, match="enable_gqa=True query heads a multiple"):
        sdpa(ones((1, 3, 2, 4)), ones((1, 2, 2, 4)), ones((1, 2, 2, 4)), enable_gqa=True)
    with pytest.raises(ValueError, match=r"need shape \(\.\.\., T, D\)"):
        sdpa(ones(4), ones(4), ones(4))
    with pytest.raises(ValueError, match=r"p must be in \[0, 1\)"):
        sdpa(ones((2, 2)), ones((2, 2)), ones((2, 2)), dropout_p=1.0)


def test_attention_same_result_on_one_or_two_threads_and_blas_restored():
    rng = np.random.default_rng(12)
    arrays = [rng.standard_normal((8, 4, 128, 32)).astype(np.float32) for _ in range(3)]
    g = rng.standard_normal((8, 4, 128, 32)).astype(np.float32)
    blas_before = runtime.get_blas_threads()
    previous = runtime.get_threads()
    results = []
    try:
        for threads in (1, 2):
            runtime.set_threads(threads)
            tensors = [leaf(a, np.float32) for a in arrays]
            out = sdpa(*tensors, dropout_p=0.1, generator=np.random.default_rng(3))
            out.backward(g)
            results.append([out.data] + [t.grad for t in tensors])
    finally:
        runtime.set_threads(previous)
    for one, two in zip(*results):
        np.testing.assert_array_equal(one, two)
    if blas_before is not None:
        assert runtime.get_blas_threads() == blas_before


def test_attention_boolean_and_float_masks():
    rng = np.random.default_rng(13)
    q, k, v = (rng.standard_normal((2, 3, 4)) for _ in range(3))
    allowed = rng.random((2, 3, 3)) < 0.7
    allowed[..., 0] = True  # every query sees at least one key
    bias = np.where(allowed, 0.0, -np.inf)
    np.testing.assert_allclose(sdpa(q, k, v, attn_mask=allowed).data,
                               reference_attention(q, k, v, bias=bias), rtol=1e-12)
    assert mg.gradcheck(lambda a, b, c: sdpa(a, b, c, attn_mask=allowed), leaf(q), leaf(k), leaf(v))
    float_mask = rng.standard_normal((3, 3))  # broadcast over the batch, and differentiable
    np.testing.assert_allclose(sdpa(q, k, v, attn_mask=float_mask).data,
                               reference_attention(q, k, v, bias=float_mask), rtol=1e-12)
    assert mg.gradcheck(lambda a, m: sdpa(a, k, v, attn_mask=m), leaf(q), leaf(float_mask))
    nothing = np.zeros((3, 3), bool)  # a query that sees no key gives nan, as PyTorch
    with np.errstate(invalid="ignore"):
        assert np.isnan(sdpa(q, k, v, attn_mask=nothing).data).all()


def test_attention_grouped_query_heads():
    rng = np.random.default_rng(14)
    q = rng.standard_normal((2, 6, 3, 4))
    k, v = rng.standard_normal((2, 2, 3, 4)), rng.standard_normal((2, 2, 3, 5))
    expected = reference_attention(q, np.repeat(k, 3, axis=1), np.repeat(v, 3, axis=1), True)
    out = sdpa(q, k, v, is_causal=True, enable_gqa=True)
    np.testing.assert_allclose(out.data, expected, rtol=1e-12)
    assert mg.gradcheck(lambda a, b, c: sdpa(a, b, c, is_causal=True, enable_gqa=True),
                        leaf(q[:1]), leaf(k[:1]), leaf(v[:1]))
