"""Losses of minigrad.nn.functional with PyTorch's signatures: nll_loss and cross_entropy
(weight, ignore_index, label smoothing, probability targets, classes on dim 1, every
reduction), BCE (with logits and pos_weight), l1, smooth_l1, huber and kl_div. Each forward
against a plain NumPy formula, float64 gradchecks on hypothesis shapes, named errors."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import minigrad as mg
from minigrad.nn import functional as F

REDUCTIONS = ["mean", "sum", "none"]


def leaf(array):
    return mg.Tensor(np.array(array, dtype=np.float64), requires_grad=True)


def log_softmax(x, axis):
    shifted = x - x.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


def reference_ce(x, t, weight=None, ignore_index=-100, reduction="mean", smoothing=0.0):
    """PyTorch's documented formula, classes on axis 1, index targets."""
    logp = np.moveaxis(log_softmax(x, 1), 1, -1)  # (N, d..., C)
    c = logp.shape[-1]
    w = np.ones(c) if weight is None else weight
    counted = t != ignore_index
    safe = np.where(counted, t, 0)
    picked = np.take_along_axis(logp, safe[..., None], -1)[..., 0]
    nll = -w[safe] * picked * counted
    smooth = -(logp * w).sum(-1) / c * counted
    loss = (1 - smoothing) * nll + smoothing * smooth
    if reduction == "none":
        return loss
    if reduction == "mean":
        total = (w[safe] * counted).sum()
        return loss.sum() / total if total else np.nan  # an empty batch: nan, as PyTorch
    return loss.sum()


@settings(max_examples=20)
@given(data=st.data(), n=st.integers(0, 4), classes=st.integers(1, 4), extra=st.sampled_from([(), (2,), (1, 2), (0,)]),
       reduction=st.sampled_from(REDUCTIONS), weighted=st.booleans(), smoothing=st.sampled_from([0.0, 0.2]))
def test_cross_entropy_and_nll_with_index_targets(data, n, classes, extra, reduction, weighted, smoothing):
    x = data.draw(hnp.arrays(np.float64, (n, classes) + extra, elements=st.floats(-3, 3)))
    t = data.draw(hnp.arrays(np.int64, (n,) + extra, elements=st.integers(0, classes - 1)))
    t = np.where(data.draw(hnp.arrays(np.bool_, t.shape)), -100, t)  # some ignored
    if t.size and not (t != -100).any():
        t.flat[0] = 0
    weight = data.draw(hnp.arrays(np.float64, (classes,), elements=st.floats(0.5, 2))) if weighted else None
    expected = reference_ce(x, t, weight, reduction=reduction, smoothing=smoothing)
    loss = F.cross_entropy(x, t, weight=weight, reduction=reduction, label_smoothing=smoothing)
    np.testing.assert_allclose(loss.data, expected, rtol=1e-10, atol=1e-12)
    assert mg.gradcheck(lambda z: F.cross_entropy(z, t, weight=weight, reduction=reduction,
                                                  label_smoothing=smoothing), leaf(x))
    logp = log_softmax(x, 1)
    expected_nll = reference_ce(x, t, weight, reduction=reduction)
    np.testing.assert_allclose(F.nll_loss(logp, t, weight=weight, reduction=reduction).data,
                               expected_nll, rtol=1e-10, atol=1e-12)
    assert mg.gradcheck(lambda z: F.nll_loss(z, t, weight=weight, reduction=reduction), leaf(logp))


@settings(max_examples=15)
@given(data=st.data(), n=st.integers(1, 3), classes=st.integers(1, 4), extra=st.sampled_from([(), (2,)]),
       reduction=st.sampled_from(REDUCTIONS), weighted=st.booleans(), smoothing=st.sampled_from([0.0, 0.3]))
def test_cross_entropy_with_class_probabilities(data, n, classes, extra, reduction, weighted, smoothing):
    x = data.draw(hnp.arrays(np.float64, (n, classes) + extra, elements=st.floats(-3, 3)))
    p = data.draw(hnp.arrays(np.float64, x.shape, elements=st.floats(0.1, 1)))
    p = p / p.sum(axis=1, keepdims=True)
    weight = data.draw(hnp.arrays(np.float64, (classes,), elements=st.floats(0.5, 2))) if weighted else None
    w = np.ones(classes) if weight is None else weight
    target = p * (1 - smoothing) + smoothing / classes
    per_row = -(log_softmax(x, 1) * target * w.reshape((1, classes) + (1,) * len(extra))).sum(axis=1)
    expected = {"none": per_row, "sum": per_row.sum(), "mean": per_row.mean()}[reduction]
    loss = F.cross_entropy(x, p, weight=weight, reduction=reduction, label_smoothing=smoothing)
    np.testing.assert_allclose(loss.data, expected, rtol=1e-10, atol=1e-12)
    assert mg.gradcheck(lambda z, q: F.cross_entropy(z, q, weight=weight, reduction=reduction,
                                                     label_smoothing=smoothing), leaf(x), leaf(p))


def test_cross_entropy_documented_values_and_layouts():
    # uniform logits: log(C); label smoothing 0.1 on [1, 2, 3] with target 0
    assert F.cross_entropy(np.zeros((2, 5)), np.array([0, 3])).item() == pytest.approx(np.log(5))
    logp = log_softmax(np.array([[1.0, 2.0, 3.0]]), 1)[0]
    smoothed = 0.9 * -logp[0] + 0.1 * -logp.mean()
    assert F.cross_entropy(np.array([[1.0, 2.0, 3.0]]), np.array([0]), label_smoothing=0.1).item() == pytest.approx(smoothed)
    # (C,) input with a 0-d target; classes last (GPT's (B, T, V) with (B, T)) when unambiguous
    single = F.cross_entropy(np.array([1.0, 2.0, 3.0]), np.array(2), reduction="none")
    assert single.shape == () and single.item() == pytest.approx(-logp[2])
    x = np.random.default_rng(0).standard_normal((2, 3, 5))
    t = np.array([[0, 4, 1], [2, 2, 3]])
    np.testing.assert_allclose(F.cross_entropy(x, t).item(), F.cross_entropy(x.reshape(6, 5), t.reshape(6)).item())
    # PyTorch's layout wins: (N, C, d) with (N, d)
    t_dim1 = np.array([[0, 1, 2, 0, 1], [2, 2, 0, 1, 1]])
    np.testing.assert_allclose(F.cross_entropy(x, t_dim1, reduction="none").data, reference_ce(x, t_dim1, reduction="none"))
    assert F.cross_entropy(x.astype(np.float32), t).dtype == np.float32
    all_ignored = F.cross_entropy(np.zeros((2, 3)), np.array([-100, -100]), weight=np.ones(3))
    assert np.isnan(all_ignored.item())


def test_cross_entropy_and_nll_errors():
    with pytest.raises(ValueError, match=r"weight has shape \(2,\), expected \(3,\)"):
        F.cross_entropy(np.zeros((2, 3)), np.array([0, 1]), weight=np.ones(2))
    with pytest.raises(ValueError, match=r"label_smoothing must be in \[0, 1\], got 1.5"):
        F.cross_entropy(np.zeros((2, 3)), np.array([0, 1]), label_smoothing=1.5)
    with pytest.raises(IndexError, match="nll_loss: target 3 is out of range for 3 classes"):
        F.nll_loss(np.zeros((2, 3)), np.array([0, 3]))
    with pytest.raises(ValueError, match="nll_loss: reduction must be one of"):
        F.nll_loss(np.zeros((2, 3)), np.array([0, 1]), reduction="avg")
    with pytest.raises(ValueError, match="0-d"):
        F.nll_loss(np.float64(1.0), np.array(0))


# ---------------------------------------------------------------- elementwise losses
pairs = hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=1, max_dims=3, min_side=0, max_side=3)  # empty axes too


def reduce(loss, reduction, batch=None):
    if reduction == "none":
        return loss
    if reduction == "batchmean":
        return loss.sum() / batch if batch else np.nan
    if reduction == "mean":
        return loss.sum() / loss.size if loss.size else np.nan  # the mean of nothing: nan, as PyTorch
    return loss.sum()


@settings(max_examples=15)
@given(data=st.data(), shapes=pairs, reduction=st.sampled_from(REDUCTIONS))
def test_l1_smooth_l1_and_huber(data, shapes, reduction):
    (sa, sb), _ = shapes
    x = data.draw(hnp.arrays(np.float64, sa, elements=st.floats(-3, 3)))
    t = data.draw(hnp.arrays(np.float64, sb, elements=st.floats(-3, 3)))
    d = x - t
    d = np.where(np.abs(d) < 0.05, 0.1, d)  # away from the kink at 0 (and |d| = beta below)
    d = np.where(np.abs(np.abs(d) - 0.5) < 0.05, 0.7, d)
    x = t + d
    beta = 0.5
    cases = [
        (F.l1_loss, {}, np.abs(d)),
        (F.smooth_l1_loss, {"beta": beta}, np.where(np.abs(d) < beta, 0.5 * d * d / beta, np.abs(d) - 0.5 * beta)),
        (F.huber_loss, {"delta": beta}, np.where(np.abs(d) < beta, 0.5 * d * d, beta * (np.abs(d) - 0.5 * beta))),
        (F.mse_loss, {}, d * d),
    ]
    for fn, kwargs, loss in cases:
        np.testing.assert_allclose(fn(x, t, reduction=reduction, **kwargs).data, reduce(loss, reduction), rtol=1e-10, atol=1e-12)
        if reduction == "mean" and loss.size == 0:
            continue  # nan, and nan nearby: nothing to difference (the gradient is 0 or empty)
        assert mg.gradcheck(lambda a, b: fn(a, b, reduction=reduction, **kwargs), leaf(x), leaf(t))
        assert mg.gradgradcheck(lambda a, b: fn(a, b, reduction=reduction, **kwargs), leaf(x), leaf(t))


@settings(max_examples=15)
@given(data=st.data(), shape=hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=3),
       reduction=st.sampled_from(REDUCTIONS), weighted=st.booleans())
def test_binary_cross_entropy_and_with_logits(data, shape, reduction, weighted):
    z = data.draw(hnp.arrays(np.float64, shape, elements=st.floats(-4, 4)))
    t = data.draw(hnp.arrays(np.float64, shape, elements=st.floats(0, 1)))
    w = data.draw(hnp.arrays(np.float64, shape[-1:], elements=st.floats(0.5, 2))) if weighted else None
    pos = data.draw(hnp.arrays(np.float64, shape[-1:], elements=st.floats(0.5, 3)))
    p = 1 / (1 + np.exp(-z))
    ww = 1.0 if w is None else w
    bce = -ww * (t * np.log(p) + (1 - t) * np.log(1 - p))
    np.testing.assert_allclose(F.binary_cross_entropy(p, t, weight=w, reduction=reduction).data,
                               reduce(bce, reduction), rtol=1e-9, atol=1e-12)
    assert mg.gradcheck(lambda a, b: F.binary_cross_entropy(a, b, weight=w, reduction=reduction), leaf(p), leaf(t))
    with_pos = -ww * (pos * t * np.log(p) + (1 - t) * np.log(1 - p))
    out = F.binary_cross_entropy_with_logits(z, t, weight=w, reduction=reduction, pos_weight=pos)
    np.testing.assert_allclose(out.data, reduce(with_pos, reduction), rtol=1e-9, atol=1e-12)
    assert mg.gradcheck(lambda a, b: F.binary_cross_entropy_with_logits(a, b, weight=w, reduction=reduction,
                                                                        pos_weight=pos), leaf(z), leaf(t))


def test_bce_extremes_and_errors():
    # log clamped at -100 as PyTorch: BCE(0, 1) = 100
    assert F.binary_cross_entropy(np.array([0.0]), np.array([1.0])).item() == pytest.approx(100.0)
    big = F.binary_cross_entropy_with_logits(np.array([800.0, -800.0]), np.array([0.0, 1.0]), reduction="none")
    np.testing.assert_allclose(big.data, [800.0, 800.0])
    with pytest.raises(ValueError, match=r"binary_cross_entropy: input values must be in \[0, 1\]"):
        F.binary_cross_entropy(np.array([1.5]), np.array([1.0]))
    with pytest.raises(ValueError, match=r"target \(2, 3\) must have the input.s shape \(3,\)"):
        F.binary_cross_entropy_with_logits(np.zeros(3), np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"l1_loss: cannot broadcast input \(3,\) with target \(2,\)"):
        F.l1_loss(np.zeros(3), np.zeros(2))


@settings(max_examples=15)
@given(data=st.data(), shape=hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=3),
       reduction=st.sampled_from(REDUCTIONS + ["batchmean"]), log_target=st.booleans())
def test_kl_div(data, shape, reduction, log_target):
    x = data.draw(hnp.arrays(np.float64, shape, elements=st.floats(-3, 0)))
    t = data.draw(hnp.arrays(np.float64, shape, elements=st.floats(0.05, 1)))
    target = np.log(t) if log_target else t
    loss = t * (np.log(t) - x)
    out = F.kl_div(x, target, reduction=reduction, log_target=log_target)
    np.testing.assert_allclose(out.data, reduce(loss, reduction, shape[0]), rtol=1e-10, atol=1e-12)
    if reduction in ("mean", "batchmean") and loss.size == 0:
        return  # nan: nothing to difference
    assert mg.gradcheck(lambda a, b: F.kl_div(a, b, reduction=reduction, log_target=log_target), leaf(x), leaf(target))
    assert mg.gradgradcheck(lambda a, b: F.kl_div(a, b, reduction=reduction, log_target=log_target), leaf(x), leaf(target))


def test_kl_div_zero_target_contributes_nothing():
    out = F.kl_div(np.array([-1.0, -2.0]), np.array([0.0, 0.5]), reduction="sum")
    assert out.item() == pytest.approx(0.5 * (np.log(0.5) + 2.0))
