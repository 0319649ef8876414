"""Each fused kernel against its readable reference (minigrad/nn/functional/reference.py):
values and gradients equal in float64, and second derivatives (gradgradcheck, which runs
through the reference) on hypothesis-drawn shapes."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra import numpy as hnp

import minigrad as mg
from minigrad import gradgradcheck
from minigrad.autograd import grad
from minigrad.nn import functional as F
from minigrad.nn.functional import reference as ref

small_shapes = hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=3)


def leaf(array) -> mg.Tensor:
    return mg.Tensor(np.array(array, dtype=np.float64), requires_grad=True)


def random_leaf(rng, shape, scale=1.0) -> mg.Tensor:
    return leaf(rng.standard_normal(shape) * scale)


def assert_same_values_and_gradients(fast, reference, *inputs, seed=0):
    """fast(*inputs) == reference(*inputs), and so are the gradients of sum(out * r)."""
    out_fast, out_ref = fast(*inputs), reference(*inputs)
    np.testing.assert_allclose(out_fast.data, out_ref.data, rtol=1e-10, atol=1e-12)
    direction = np.random.default_rng(seed).standard_normal(out_fast.shape)
    wanted = [x for x in inputs if isinstance(x, mg.Tensor) and x.requires_grad]
    g_fast = grad((out_fast * direction).sum(), wanted, allow_unused=True)
    g_ref = grad((out_ref * direction).sum(), wanted, allow_unused=True)
    for a, b in zip(g_fast, g_ref):
        np.testing.assert_allclose(a.data, b.data, rtol=1e-9, atol=1e-11)


@given(shape=small_shapes, seed=st.integers(0, 1000), axis=st.integers(-1, 0))
@settings(max_examples=15)
def test_softmax_and_log_softmax(shape, seed, axis):
    x = random_leaf(np.random.default_rng(seed), shape, 2.0)
    assert_same_values_and_gradients(lambda t: F.softmax(t, dim=axis), lambda t: ref.softmax(t, axis), x)
    assert_same_values_and_gradients(lambda t: F.log_softmax(t, dim=axis), lambda t: ref.log_softmax(t, axis), x)
    assert gradgradcheck(lambda t: F.softmax(t, dim=axis), x)
    assert gradgradcheck(lambda t: F.log_softmax(t, dim=axis), x)


@given(shape=small_shapes, seed=st.integers(0, 1000))
@settings(max_examples=15)
def test_gelu_tanh(shape, seed):
    x = random_leaf(np.random.default_rng(seed), shape, 2.0)
    assert_same_values_and_gradients(lambda t: F.gelu(t, approximate="tanh"), ref.gelu_tanh, x)
    assert gradgradcheck(lambda t: F.gelu(t, approximate="tanh"), x)


@given(shape=small_shapes, seed=st.integers(0, 1000), use_weight=st.booleans(), use_bias=st.booleans())
@settings(max_examples=15)
def test_layer_norm(shape, seed, use_weight, use_bias):
    rng = np.random.default_rng(seed)
    x = random_leaf(rng, shape)
    weight = random_leaf(rng, shape[-1:]) if use_weight else None
    bias = random_leaf(rng, shape[-1:]) if use_bias else None
    params = [p for p in (weight, bias) if p is not None]

    def unpack(params):
        params = list(params)
        return (params.pop(0) if use_weight else None), (params.pop(0) if use_bias else None)

    def fast(t, *p):
        w, b = unpack(p)
        return F.layer_norm(t, shape[-1:], weight=w, bias=b)

    assert_same_values_and_gradients(fast, lambda t, *p: ref.layer_norm(t, *unpack(p)), x, *params)
    if shape[-1] > 1:  # a single element normalizes to 0 (flat in x): finite differences are exact anyway
        assert gradgradcheck(fast, x, *params, atol=1e-4)


@given(n=st.integers(1, 4), classes=st.integers(1, 4), seed=st.integers(0, 1000),
       reduction=st.sampled_from(["mean", "sum", "none"]))
@settings(max_examples=15)
def test_cross_entropy(n, classes, seed, reduction):
    rng = np.random.default_rng(seed)
    logits = random_leaf(rng, (n, classes), 2.0)
    targets = rng.integers(0, classes, n)
    targets[rng.random(n) < 0.3] = -100  # some ignored
    fast = lambda z: F.cross_entropy(z, targets, reduction=reduction)  # noqa: E731
    if reduction == "mean" and (targets == -100).all():
        assert np.isnan(fast(logits).item()) and np.isnan(ref.cross_entropy(logits, targets).item())
        return
    assert_same_values_and_gradients(fast, lambda z: ref.cross_entropy(z, targets, reduction=reduction), logits)
    assert gradgradcheck(fast, logits)


def test_cross_entropy_on_batched_logits_last_axis():
    rng = np.random.default_rng(1)
    logits, targets = random_leaf(rng, (2, 3, 5)), rng.integers(0, 5, (2, 3))
    assert_same_values_and_gradients(lambda z: F.cross_entropy(z.reshape(-1, 5), targets.reshape(-1)),
                                     lambda z: ref.cross_entropy(z, targets), logits)


@given(batch=st.sampled_from([(), (2,), (2, 1)]), n_in=st.integers(1, 3), n_out=st.integers(1, 3),
       use_bias=st.booleans(), seed=st.integers(0, 1000))
@settings(max_examples=15)
def test_linear(batch, n_in, n_out, use_bias, seed):
    rng = np.random.default_rng(seed)
    x, weight = random_leaf(rng, batch + (n_in,)), random_leaf(rng, (n_out, n_in))
    params = [random_leaf(rng, (n_out,))] if use_bias else []
    assert_same_values_and_gradients(F.linear, ref.linear, x, weight, *params)
    assert gradgradcheck(lambda a, w, *b: F.linear(a, w, *b) ** 2, x, weight, *params)


@given(ids_shape=st.sampled_from([(3,), (2, 2), (1,)]), vocab=st.integers(1, 4), seed=st.integers(0, 1000))
@settings(max_examples=15)
def test_embedding(ids_shape, vocab, seed):
    rng = np.random.default_rng(seed)
    weight, ids = random_leaf(rng, (vocab, 3)), rng.integers(0, vocab, ids_shape)  # repeats likely
    assert_same_values_and_gradients(lambda w: F.embedding(ids, w), lambda w: ref.embedding(w, ids), weight)
    assert gradgradcheck(lambda w: F.embedding(ids, w) ** 2, weight)


@given(shape=small_shapes, seed=st.integers(0, 1000), reduction=st.sampled_from(["mean", "sum", "none"]))
@settings(max_examples=10)
def test_mse_loss(shape, seed, reduction):
    rng = np.random.default_rng(seed)
    a, b = random_leaf(rng, shape), random_leaf(rng, shape[-1:])
    assert_same_values_and_gradients(lambda x, y: F.mse_loss(x, y, reduction=reduction),
                                     lambda x, y: ref.mse_loss(x, y, reduction=reduction), a, b)
    assert gradgradcheck(lambda x, y: F.mse_loss(x, y, reduction=reduction), a, b)


def test_dropout_with_the_same_draw():
    x = random_leaf(np.random.default_rng(2), (3, 4))
    fast = lambda t: F.dropout(t, 0.4, generator=np.random.default_rng(7))  # noqa: E731
    multiplier = F.activation.dropout_multiplier(np.random.default_rng(7), (3, 4), 0.4, np.float64)
    assert_same_values_and_gradients(fast, lambda t: ref.dropout(t, multiplier), x)
    assert gradgradcheck(lambda t: fast(t) * t, x)


ATTENTION_CASES = [
    # (q shape, k shape, v shape, options)
    ((1, 2, 3, 2), (1, 2, 3, 2), (1, 2, 3, 2), dict(is_causal=True)),
    ((2, 3, 2), (2, 4, 2), (2, 4, 3), dict()),
    ((3, 2), (3, 2), (3, 2), dict(is_causal=True, scale=0.7)),
    ((1, 4, 2, 2), (1, 2, 3, 2), (1, 2, 3, 2), dict(enable_gqa=True)),
    ((2, 2, 3, 2), (2, 2, 3, 2), (2, 2, 3, 2), dict(dropout_p=0.3)),
]


@pytest.mark.parametrize("q_shape, k_shape, v_shape, options", ATTENTION_CASES)
def test_attention(q_shape, k_shape, v_shape, options):
    rng = np.random.default_rng(3)
    q, k, v = (random_leaf(rng, s) for s in (q_shape, k_shape, v_shape))
    p = options.get("dropout_p", 0.0)

    def fast(a, b, c):
        generator = np.random.default_rng(5) if p else None  # the same draw every call
        return F.scaled_dot_product_attention(a, b, c, generator=generator, **options)

    def plain(a, b, c):
        shape = a.shape[:-1] + b.shape[-2:-1]
        multiplier = F.activation.dropout_multiplier(np.random.default_rng(5), shape, p, np.float64) if p else None
        groups = a.shape[-3] // b.shape[-3] if options.get("enable_gqa") else 1
        return ref.scaled_dot_product_attention(a, b, c, causal=options.get("is_causal", False),
                                                scale=options.get("scale"), groups=groups,
                                                dropout_multiplier=multiplier)

    assert_same_values_and_gradients(fast, plain, q, k, v)
    assert gradgradcheck(fast, q, k, v)


def test_attention_with_a_float_mask_that_requires_grad():
    rng = np.random.default_rng(4)
    q, k, v = (random_leaf(rng, (2, 3, 2)) for _ in range(3))
    bias = random_leaf(rng, (3, 3))
    fast = lambda a, b, c, m: F.scaled_dot_product_attention(a, b, c, attn_mask=m)  # noqa: E731
    assert_same_values_and_gradients(fast, ref.scaled_dot_product_attention, q, k, v, bias)
    assert gradgradcheck(fast, q, k, v, bias)
    boolean = np.tril(np.ones((3, 3), dtype=bool))
    assert gradgradcheck(lambda a, b, c: F.scaled_dot_product_attention(a, b, c, attn_mask=boolean), q, k, v)
