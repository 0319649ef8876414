"""Fused kernels of minigrad.nn.functional: layer norm, dropout, embedding, linear, mse_loss,
relu and the kernel threads (softmax, cross-entropy, GELU: test_functional.py; attention:
test_functional_attention.py).

For each kernel: gradcheck in float64 on hypothesis-drawn shapes and values, forward equal to
a plain NumPy computation of the formula, float32 in -> float32 out, extreme inputs, and
every bad input's named error.
"""
from __future__ import annotations

import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import minigrad as mg
from minigrad import runtime
from minigrad.nn import functional as F

from core_strategies import kernel_shapes as shapes, leaf, values as core_values


def values(shape, low=-3.0, high=3.0):  # the fused kernels' tests draw from a wider range
    return core_values(shape, low, high)


# ---------------------------------------------------------------- layer_norm
@given(data=st.data(), shape=shapes, use_weight=st.booleans(), use_bias=st.booleans())
def test_layer_norm_gradcheck_and_reference(data, shape, use_weight, use_bias):
    x = data.draw(values(shape))
    width = shape[-1]
    weight = data.draw(values((width,))) if use_weight else None
    bias = data.draw(values((width,))) if use_bias else None
    mean = x.mean(-1, keepdims=True)
    expected = (x - mean) / np.sqrt(((x - mean) ** 2).mean(-1, keepdims=True) + 1e-5)
    if use_weight:
        expected = expected * weight
    if use_bias:
        expected = expected + bias
    np.testing.assert_allclose(F.layer_norm(x, x.shape[-1:], weight, bias).data, expected, rtol=1e-10, atol=1e-10)
    tensors = [leaf(x)] + [leaf(p) for p in (weight, bias) if p is not None]

    def fn(x_, *params):
        params = list(params)
        w = params.pop(0) if use_weight else None
        b = params.pop(0) if use_bias else None
        return F.layer_norm(x_, x_.shape[-1:], w, b)

    assert mg.gradcheck(fn, *tensors, atol=1e-5, rtol=1e-4)


def test_layer_norm_float32_constant_rows_and_large():
    rng = np.random.default_rng(10)
    x = (rng.standard_normal((400, 500)) * 2 + 3).astype(np.float32)
    x[0] = 7.0  # zero variance: xhat = 0, finite gradient
    weight, bias = leaf(rng.standard_normal(500), np.float32), leaf(rng.standard_normal(500), np.float32)
    t = leaf(x, np.float32)
    y = F.layer_norm(t, weight, bias)
    assert y.dtype == np.float32
    x64 = x.astype(np.float64)
    mean = x64.mean(-1, keepdims=True)
    rstd = 1 / np.sqrt(((x64 - mean) ** 2).mean(-1, keepdims=True) + 1e-5)
    xhat = (x64 - mean) * rstd
    np.testing.assert_allclose(y.data, xhat * weight.data + bias.data, rtol=1e-4, atol=1e-4)
    g = rng.standard_normal(x.shape).astype(np.float32)
    y.backward(g)
    gh = g * weight.data.astype(np.float64)
    gx = rstd * (gh - gh.mean(-1, keepdims=True) - xhat * (gh * xhat).mean(-1, keepdims=True))
    assert t.grad.dtype == weight.grad.dtype == bias.grad.dtype == np.float32
    np.testing.assert_allclose(t.grad, gx, rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(weight.grad, (g * xhat).sum(0), rtol=1e-3, atol=1e-2)
    np.testing.assert_allclose(bias.grad, g.sum(0), rtol=1e-4, atol=1e-3)
    assert np.all(np.isfinite(t.grad[0]))


@pytest.mark.parametrize("frozen", ["x", "weight", "bias"])
def test_layer_norm_gradients_with_one_input_frozen(frozen):
    # backward computes only the gradients asked for: the frozen input gets none, the others
    # are the reference's
    rng = np.random.default_rng(3)
    arrays = {"x": rng.standard_normal((7, 5)), "weight": rng.standard_normal(5), "bias": rng.standard_normal(5)}
    g = rng.standard_normal((7, 5))
    fast = {k: mg.Tensor(v, requires_grad=k != frozen) for k, v in arrays.items()}
    slow = {k: mg.Tensor(v, requires_grad=k != frozen) for k, v in arrays.items()}
    F.layer_norm(fast["x"], (5,), fast["weight"], fast["bias"]).backward(g)
    F.reference.layer_norm(slow["x"], slow["weight"], slow["bias"], 1e-5).backward(mg.Tensor(g))
    for name in arrays:
        if name == frozen:
            assert fast[name].grad is None
        else:
            np.testing.assert_allclose(fast[name].grad, slow[name].grad, rtol=1e-10, atol=1e-12)


def test_layer_norm_one_node_with_three_parents():
    x, w, b = leaf(np.ones((2, 3))), leaf(np.ones(3)), leaf(np.zeros(3))
    out = F.layer_norm(x, w, b)  # the older call, weight in second place
    assert out._ctx.parents == (x, w, b)
    assert F.layer_norm(x, (3,), w, b)._ctx.parents == (x, w, b)


def test_layer_norm_bad_input():
    with pytest.raises(ValueError, match=r"layer_norm: weight has shape \(4,\), expected \(3,\) for input \(2, 3\)"):
        F.layer_norm(np.ones((2, 3)), (3,), np.ones(4), None)
    with pytest.raises(ValueError, match=r"layer_norm: bias has shape \(3, 1\)"):
        F.layer_norm(np.ones((2, 3)), 3, None, np.ones((3, 1)))
    with pytest.raises(ValueError, match="0-d"):
        F.layer_norm(np.float64(1.0))
    with pytest.raises(ValueError, match="eps must be positive"):
        F.layer_norm(np.ones((2, 3)), eps=0.0)


# ---------------------------------------------------------------- dropout
def test_dropout_reproducible_scaled_and_gradcheck():
    x = np.ones((200, 50), np.float32)
    a = F.dropout(x, 0.25, generator=np.random.default_rng(11))
    b = F.dropout(x, 0.25, generator=np.random.default_rng(11))
    c = F.dropout(x, 0.25, generator=np.random.default_rng(12))
    assert a.dtype == np.float32
    assert np.array_equal(a.data, b.data) and not np.array_equal(a.data, c.data)
    assert set(np.unique(a.data)) <= {0.0, np.float32(1 / 0.75)}
    assert abs((a.data == 0).mean() - 0.25) < 0.02
    mg.manual_seed(5)
    d = F.dropout(x, 0.25)
    mg.manual_seed(5)
    assert np.array_equal(d.data, F.dropout(x, 0.25).data)
    t = leaf(np.random.default_rng(0).standard_normal((3, 4)))
    assert mg.gradcheck(lambda v: F.dropout(v, 0.5, generator=np.random.default_rng(3)), t)
    t.grad = None
    out = F.dropout(t, 0.5, generator=np.random.default_rng(3))
    out.backward(np.ones((3, 4)))
    assert np.array_equal(t.grad, (out.data != 0) * 2.0)


def test_dropout_identity_in_eval_and_at_zero():
    x = leaf(np.ones((2, 3)))
    assert F.dropout(x, 0.5, training=False) is x
    assert F.dropout(x, 0.0) is x
    assert isinstance(F.dropout(np.ones(3), 0.5, training=False), mg.Tensor)


def test_dropout_bad_probability():
    for p in (-0.1, 1.0, 1.5):
        with pytest.raises(ValueError, match=r"dropout: p must be in \[0, 1\)"):
            F.dropout(np.ones(3), p)
    with pytest.raises(TypeError, match="dropout: p must be a number"):
        F.dropout(np.ones(3), "0.1")


# ---------------------------------------------------------------- embedding
@given(data=st.data(), ids_shape=hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=4),
       vocab=st.integers(1, 5), width=st.integers(1, 3))
def test_embedding_gradcheck_reference_and_repeats(data, ids_shape, vocab, width):
    ids = data.draw(hnp.arrays(np.int64, ids_shape, elements=st.integers(0, vocab - 1)))
    table = data.draw(values((vocab, width)))
    out = F.embedding(ids, table)
    assert out.shape == ids.shape + (width,)
    np.testing.assert_array_equal(out.data, table[ids])
    weight = leaf(table)
    out = F.embedding(ids, weight)
    g = np.random.default_rng(0).standard_normal(out.shape)
    out.backward(g)
    expected = np.zeros_like(table)
    np.add.at(expected, ids.reshape(-1), g.reshape(-1, width))
    np.testing.assert_allclose(weight.grad, expected, rtol=1e-12, atol=1e-12)
    assert mg.gradcheck(lambda w: F.embedding(ids, w), leaf(table))


def test_embedding_float32_tensor_ids_and_many_repeats():
    rng = np.random.default_rng(13)
    table = leaf(rng.standard_normal((50, 8)), np.float32)
    ids = rng.integers(0, 5, (30, 40))  # many repeats of five ids
    out = F.embedding(mg.Tensor(ids), table)
    assert out.dtype == np.float32 and out._ctx.parents == (table,)
    g = rng.standard_normal(out.shape).astype(np.float32)
    out.backward(g)
    expected = np.zeros((50, 8))
    np.add.at(expected, ids.reshape(-1), g.reshape(-1, 8).astype(np.float64))
    assert table.grad.dtype == np.float32
    np.testing.assert_allclose(table.grad, expected, rtol=1e-4, atol=1e-4)
    assert np.all(table.grad[5:] == 0)


@pytest.mark.parametrize("min_rank_rows", [1, 3, 16, 10**9])  # every rank alone .. all by reduceat
def test_embedding_backward_by_ranks_and_a_reduceat_tail(monkeypatch, min_rank_rows):
    # Zipf-like ids (a few seen many times, most once or twice, as in text): ranks added as
    # collision-free row adds while enough rows have them, the frequent ids' rest by reduceat
    monkeypatch.setattr(sys.modules["minigrad.nn.functional.embedding"], "MIN_RANK_ROWS", min_rank_rows)
    rng = np.random.default_rng(21)
    ids = np.minimum(rng.zipf(1.4, size=(6, 50)) - 1, 99)  # (6, 50) ids of 100
    assert np.bincount(ids.reshape(-1)).max() > 40 and (np.bincount(ids.reshape(-1)) == 1).any()
    g = rng.standard_normal(ids.shape + (5,))
    expected = np.zeros((100, 5))
    np.add.at(expected, ids.reshape(-1), g.reshape(-1, 5))
    grads = []
    for dtype in (np.float64, np.float32, np.float32):
        weight = leaf(rng.standard_normal((100, 5)), dtype)
        F.embedding(ids, weight).backward(g.astype(dtype))
        grads.append(weight.grad)
    np.testing.assert_allclose(grads[0], expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(grads[1], expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(grads[1], grads[2])  # the same sums every run
    assert mg.gradcheck(lambda w: F.embedding(ids[:2, :20], w), leaf(rng.standard_normal((100, 2))))


def test_embedding_bad_input():
    table = np.zeros((10, 3))
    with pytest.raises(IndexError, match=r"embedding: id 10 is out of range for a table of 10 rows"):
        F.embedding(np.array([1, 10]), table)
    with pytest.raises(IndexError, match=r"id -2 is out of range for a table of 10 rows"):
        F.embedding(np.array([[-2, 3]]), table)
    with pytest.raises(TypeError, match="embedding: ids must be integers, got dtype float64"):
        F.embedding(np.array([1.0]), table)
    with pytest.raises(TypeError, match="ids must be integers, got dtype bool"):
        F.embedding(np.array([True]), table)
    with pytest.raises(ValueError, match=r"weight must be 2-D .* got shape \(10,\)"):
        F.embedding(np.array([1]), np.zeros(10))
    assert F.embedding(np.zeros((0, 2), np.int64), table).shape == (0, 2, 3)


# ---------------------------------------------------------------- linear
@given(data=st.data(), batch=hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=3),
       n_in=st.integers(1, 4), n_out=st.integers(1, 4), use_bias=st.booleans())
def test_linear_gradcheck_and_reference(data, batch, n_in, n_out, use_bias):
    x = data.draw(values(batch + (n_in,)))
    weight = data.draw(values((n_out, n_in)))
    bias = data.draw(values((n_out,))) if use_bias else None
    expected = x @ weight.T + (bias if use_bias else 0)
    np.testing.assert_allclose(F.linear(x, weight, bias).data, expected, rtol=1e-12, atol=1e-12)
    if use_bias:
        assert mg.gradcheck(F.linear, leaf(x), leaf(weight), leaf(bias))
    else:
        assert mg.gradcheck(F.linear, leaf(x), leaf(weight))


def test_linear_float32_one_node_and_noncontiguous_input():
    rng = np.random.default_rng(14)
    x, w, b = leaf(rng.standard_normal((2, 3, 4)), np.float32), leaf(rng.standard_normal((5, 4)), np.float32), \
        leaf(rng.standard_normal(5), np.float32)
    y = F.linear(x, w, b)
    assert y.dtype == np.float32 and y.shape == (2, 3, 5) and y._ctx.parents == (x, w, b)
    y.backward(np.ones(y.shape, np.float32))
    assert x.grad.dtype == w.grad.dtype == b.grad.dtype == np.float32
    np.testing.assert_allclose(b.grad, np.full(5, 6.0))
    xt = leaf(rng.standard_normal((4, 3)))
    assert mg.gradcheck(lambda a, w_: F.linear(a.T, w_), xt, leaf(rng.standard_normal((2, 4))))
    x_only = leaf(rng.standard_normal((3, 4)))
    F.linear(x_only, mg.Tensor(rng.standard_normal((5, 4)))).sum().backward()  # weight frozen
    assert x_only.grad.shape == (3, 4)


def test_linear_bad_input():
    with pytest.raises(ValueError, match=r"linear: input \(2, 3\) does not match weight \(5, 4\)"):
        F.linear(np.ones((2, 3)), np.ones((5, 4)))
    with pytest.raises(ValueError, match=r"linear: weight must be 2-D \(out, in\), got shape \(4,\)"):
        F.linear(np.ones((2, 4)), np.ones(4))
    with pytest.raises(ValueError, match=r"linear: bias has shape \(4,\), expected \(5,\)"):
        F.linear(np.ones((2, 4)), np.ones((5, 4)), np.ones(4))


# ---------------------------------------------------------------- mse_loss, relu, threads
@given(data=st.data(), shape=shapes, reduction=st.sampled_from(["mean", "sum", "none"]))
def test_mse_loss_gradcheck_and_reference(data, shape, reduction):
    a, b = data.draw(values(shape)), data.draw(values(shape[1:]))  # b broadcasts
    squared = (a - b) ** 2
    expected = {"mean": squared.mean(), "sum": squared.sum(), "none": squared}[reduction]
    np.testing.assert_allclose(F.mse_loss(a, b, reduction).data, expected, rtol=1e-12)
    assert mg.gradcheck(lambda x, y: F.mse_loss(x, y, reduction), leaf(a), leaf(b))


def test_mse_loss_and_relu_misc():
    assert F.mse_loss(np.ones(3, np.float32), np.zeros(3, np.float32)).dtype == np.float32
    with pytest.raises(ValueError, match=r"mse_loss: cannot broadcast \(3,\) with \(2,\)"):
        F.mse_loss(np.ones(3), np.ones(2))
    np.testing.assert_array_equal(F.relu(np.array([-1.0, 2.0])).data, [0.0, 2.0])


def test_set_num_threads_and_worker_errors():
    from minigrad.runtime import parallel_for

    previous = runtime.get_threads()
    with pytest.raises(ValueError, match="positive int"):
        runtime.set_threads(0)
    try:
        runtime.set_threads(2)
        seen = []

        def body(lo, hi):
            seen.append((lo, hi))
            if lo > 0:
                raise RuntimeError("worker failed")

        with pytest.raises(RuntimeError, match="worker failed"):
            parallel_for(10, body, 1)
        assert sorted(seen) == [(0, 5), (5, 10)]
    finally:
        runtime.set_threads(previous)


def test_dropout_multiplier_rate_and_generators():
    from minigrad.nn.functional.activation import dropout_multiplier

    for bit_generator in (np.random.PCG64(1), np.random.MT19937(1), np.random.Philox(1)):
        mask = dropout_multiplier(np.random.Generator(bit_generator), (400, 500), 0.3)
        assert mask.dtype == np.float32 and mask.shape == (400, 500)
        assert set(np.unique(mask)) == {0.0, np.float32(1 / 0.7)}
        assert abs((mask == 0).mean() - 0.3) < 0.005
    odd = dropout_multiplier(np.random.default_rng(2), (3, 5), 0.5, np.float64)
    assert odd.dtype == np.float64 and odd.shape == (3, 5)
    assert np.all(dropout_multiplier(np.random.default_rng(2), (1000,), 0.0) == 1.0)
    tiny = dropout_multiplier(np.random.default_rng(2), (1000,), 1e-12)
    assert np.all(tiny == np.float32(1 / (1 - 1e-12)))
