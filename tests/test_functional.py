"""Fused kernels of minigrad.nn.functional: softmax, cross-entropy, GELU (layer norm, dropout,
embedding, linear and the rest: test_functional_layers.py; attention: test_functional_attention.py).

For each kernel: gradcheck in float64 on hypothesis-drawn shapes and values, forward equal to
a plain NumPy computation of the formula, float32 in -> float32 out, extreme inputs, and
every bad input's named error.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import minigrad as mg
from minigrad import runtime
from minigrad.nn import functional as F

from core_strategies import kernel_shapes as shapes, leaf, values as core_values


def values(shape, low=-3.0, high=3.0):  # the fused kernels' tests draw from a wider range
    return core_values(shape, low, high)


def reference_log_softmax(x, axis=-1):
    x = np.asarray(x, dtype=np.float64)
    shifted = x - x.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


def reference_gelu(x):
    return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3)))


# ---------------------------------------------------------------- softmax / log_softmax
@given(data=st.data(), shape=shapes)
def test_softmax_and_log_softmax_gradcheck_and_reference(data, shape):
    x = data.draw(values(shape))
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    expected_log = reference_log_softmax(x, axis)
    np.testing.assert_allclose(F.softmax(x, axis=axis).data, np.exp(expected_log), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(F.log_softmax(x, axis=axis).data, expected_log, rtol=1e-12, atol=1e-12)
    assert mg.gradcheck(lambda t: F.softmax(t, axis=axis), leaf(x))
    assert mg.gradcheck(lambda t: F.log_softmax(t, axis=axis), leaf(x))


def test_softmax_is_one_node_and_keeps_float32():
    x = leaf(np.random.default_rng(0).standard_normal((3, 4)), np.float32)
    for fn in (F.softmax, F.log_softmax):
        out = fn(x)
        assert out.dtype == np.float32
        assert out._ctx.parents == (x,)
        out.backward(np.ones((3, 4), np.float32))
        assert x.grad.dtype == np.float32
        x.grad = None


def test_softmax_extreme_logits():
    x = np.array([[1e4, -1e4, 0.0, 1e4 - 1.0],
                  [-np.inf, -np.inf, 3.0, -np.inf],
                  [-1e4, -1e4, -1e4, -1e4]])
    for dtype in (np.float32, np.float64):
        t = leaf(x, dtype)
        y = F.softmax(t)
        np.testing.assert_allclose(y.data, np.exp(reference_log_softmax(x)), atol=1e-6)
        assert np.array_equal(y.data[1], [0, 0, 1, 0])
        g = np.random.default_rng(1).standard_normal(x.shape).astype(dtype)
        y.backward(g)
        p = np.exp(reference_log_softmax(x))
        expected = p * (g - (g * p).sum(axis=1, keepdims=True))
        assert np.all(np.isfinite(t.grad))
        np.testing.assert_allclose(t.grad, expected, atol=1e-5)
        log_y = F.log_softmax(leaf(x, dtype))
        np.testing.assert_allclose(log_y.data[[0, 2]], reference_log_softmax(x)[[0, 2]], atol=1e-3)
        assert log_y.data[1, 2] == 0 and np.all(np.isneginf(log_y.data[1, [0, 1, 3]]))
    finite = np.array([[1e4, -1e4, 0.0, 1e4 - 1.0], [-1e4, 1e4, 1e4, -3.0]])
    assert mg.gradcheck(F.softmax, leaf(finite))
    assert mg.gradcheck(F.log_softmax, leaf(finite))


def test_log_softmax_gradient_with_a_minus_inf_entry():
    x = leaf([[-np.inf, 1.0, 2.0]])
    y = F.log_softmax(x)
    y.backward(np.array([[0.0, 1.0, -1.0]]))
    p = np.exp(reference_log_softmax([[-np.inf, 1.0, 2.0]]))
    np.testing.assert_allclose(x.grad, [[0.0, 1.0, -1.0]] - p * 0.0, atol=1e-12)


def test_softmax_large_rows_span_blocks_and_threads():
    x = np.random.default_rng(2).standard_normal((600, 1000)).astype(np.float32) * 5  # 2 threads split it
    expected = np.exp(reference_log_softmax(x))
    previous = runtime.get_threads()
    try:
        for threads in (1, 2):
            runtime.set_threads(threads)
            np.testing.assert_allclose(F.softmax(x).data, expected, rtol=1e-5, atol=1e-8)
    finally:
        runtime.set_threads(previous)


def test_softmax_bad_input():
    with pytest.raises(ValueError, match=r"softmax: axis 2 is out of range .*\(3, 4\)"):
        F.softmax(np.ones((3, 4)), axis=2)
    with pytest.raises(ValueError, match="log_softmax: axis -3"):
        F.log_softmax(np.ones((3, 4)), axis=-3)
    with pytest.raises(TypeError, match="softmax: axis must be an int"):
        F.softmax(np.ones(3), axis=0.5)
    assert F.softmax(np.float64(2.0)).item() == 1.0


# ---------------------------------------------------------------- cross_entropy
@settings(max_examples=25)
@given(data=st.data(), n=st.integers(1, 5), classes=st.integers(1, 5),
       reduction=st.sampled_from(["mean", "sum", "none"]))
def test_cross_entropy_gradcheck_and_reference(data, n, classes, reduction):
    logits = data.draw(values((n, classes), -4, 4))
    targets = np.array(data.draw(st.lists(st.sampled_from(list(range(classes)) + [-100]),
                                          min_size=n, max_size=n)))
    counted = targets != -100
    per_row = -reference_log_softmax(logits)[np.arange(n), np.where(counted, targets, 0)] * counted
    expected = {"none": per_row, "sum": per_row.sum(),
                "mean": per_row.sum() / counted.sum() if counted.any() else np.nan}[reduction]
    out = F.cross_entropy(logits, targets, reduction=reduction)
    np.testing.assert_allclose(out.data, expected, rtol=1e-12, atol=1e-12)
    if counted.any() or reduction != "mean":
        assert mg.gradcheck(lambda z: F.cross_entropy(z, targets, reduction=reduction), leaf(logits))


def test_cross_entropy_gradient_is_softmax_minus_onehot_over_counted():
    rng = np.random.default_rng(3)
    logits = rng.standard_normal((6, 7))
    targets = np.array([1, -100, 6, 0, -100, 3])
    z = leaf(logits)
    F.cross_entropy(z, targets).backward()
    expected = np.exp(reference_log_softmax(logits))
    expected[np.arange(6), np.maximum(targets, 0)] -= 1
    expected[targets == -100] = 0
    np.testing.assert_allclose(z.grad, expected / 4, atol=1e-12)


def test_cross_entropy_custom_ignore_index_and_all_ignored():
    logits = np.random.default_rng(4).standard_normal((3, 4))
    z = leaf(logits)
    loss = F.cross_entropy(z, np.array([2, 2, 1]), ignore_index=2)
    np.testing.assert_allclose(loss.item(), -reference_log_softmax(logits)[2, 1])
    z2 = leaf(logits)
    loss = F.cross_entropy(z2, np.array([-100, -100, -100]))
    assert np.isnan(loss.item())
    loss.backward()
    assert np.array_equal(z2.grad, np.zeros_like(logits))
    assert F.cross_entropy(logits, np.array([-100, -100, -100]), reduction="sum").item() == 0.0


def test_cross_entropy_batched_logits_match_flattened():
    rng = np.random.default_rng(5)
    logits, targets = rng.standard_normal((2, 3, 5)), rng.integers(0, 5, (2, 3))
    a, b = leaf(logits), leaf(logits.reshape(6, 5))
    loss_a, loss_b = F.cross_entropy(a, targets), F.cross_entropy(b, targets.reshape(6))
    np.testing.assert_allclose(loss_a.item(), loss_b.item(), rtol=1e-14)
    loss_a.backward()
    loss_b.backward()
    np.testing.assert_allclose(a.grad.reshape(6, 5), b.grad, rtol=1e-14)
    none = F.cross_entropy(logits, targets, reduction="none")
    assert none.shape == (2, 3)
    assert mg.gradcheck(lambda z: F.cross_entropy(z, targets), leaf(logits))
    single = F.cross_entropy(logits[0, 0], np.array(targets[0, 0]))  # (C,) with a 0-d target
    np.testing.assert_allclose(single.item(), -reference_log_softmax(logits[0, 0])[targets[0, 0]])


def test_cross_entropy_extreme_logits():
    logits = np.array([[1e4, -1e4, 0.0], [-np.inf, 5.0, -np.inf], [-1e4, -1e4, 1e4]])
    targets = np.array([1, 1, 2])
    for dtype in (np.float32, np.float64):
        z = leaf(logits, dtype)
        per_row = F.cross_entropy(z, targets, reduction="none")
        assert per_row.dtype == dtype
        np.testing.assert_allclose(per_row.data, [2e4, 0.0, 0.0], rtol=1e-6)
        per_row.backward(np.ones(3, dtype))
        np.testing.assert_allclose(z.grad, [[1, -1, 0], [0, 0, 0], [0, 0, 0]], atol=1e-6)
    finite = leaf([[1e4, -1e4, 0.0], [-1e4, -1e4, 1e4]])
    assert mg.gradcheck(lambda t: F.cross_entropy(t, np.array([0, 2])), finite)


def test_cross_entropy_float32_and_scaled_backward_twice():
    rng = np.random.default_rng(6)
    logits = rng.standard_normal((5, 9)).astype(np.float32)
    targets = rng.integers(0, 9, 5)
    z = leaf(logits, np.float32)
    loss = F.cross_entropy(z, targets)
    assert loss.dtype == np.float32 and loss.shape == ()
    loss.backward(np.float32(2.0), retain_graph=True)
    first = z.grad.copy()
    assert first.dtype == np.float32
    loss.backward(np.float32(0.5), retain_graph=True)
    np.testing.assert_allclose(z.grad - first, first / 4, rtol=1e-5, atol=1e-7)
    z.grad = None
    loss.backward(np.float32(0.0), retain_graph=True)
    assert np.array_equal(z.grad, np.zeros_like(logits))
    z.grad = None
    loss.backward(np.float32(1.0))
    np.testing.assert_allclose(z.grad, first / 2, rtol=1e-5, atol=1e-7)


def test_cross_entropy_none_backward_twice_with_zero_weights():
    logits = np.random.default_rng(7).standard_normal((3, 4))
    targets = np.array([0, 1, 2])
    z = leaf(logits)
    loss = F.cross_entropy(z, targets, reduction="none")
    loss.backward(np.array([1.0, 0.0, 2.0]), retain_graph=True)
    first = z.grad.copy()
    z.grad = None
    loss.backward(np.array([1.0, 1.0, 1.0]))
    expected = np.exp(reference_log_softmax(logits))
    expected[np.arange(3), targets] -= 1
    np.testing.assert_allclose(z.grad, expected, atol=1e-12)
    np.testing.assert_allclose(first, expected * [[1.0], [0.0], [2.0]], atol=1e-12)


def test_cross_entropy_many_classes_blocks_and_threads():
    rng = np.random.default_rng(8)
    logits = (rng.standard_normal((200, 3000)) * 3).astype(np.float32)
    targets = rng.integers(0, 3000, 200)
    targets[::7] = -100
    expected_rows = -reference_log_softmax(logits)[np.arange(200), np.maximum(targets, 0)]
    expected = expected_rows[targets != -100].mean()
    previous = runtime.get_threads()
    try:
        for threads in (1, 2):
            runtime.set_threads(threads)
            z = leaf(logits, np.float32)
            loss = F.cross_entropy(z, targets)
            np.testing.assert_allclose(loss.item(), expected, rtol=1e-5)
            loss.backward()
            grad = np.exp(reference_log_softmax(logits))
            grad[np.arange(200), np.maximum(targets, 0)] -= 1
            grad[targets == -100] = 0
            np.testing.assert_allclose(z.grad, grad / (targets != -100).sum(), atol=1e-7)
    finally:
        runtime.set_threads(previous)


def test_cross_entropy_no_graph_under_no_grad():
    z = leaf(np.zeros((2, 3)))
    with mg.no_grad():
        loss = F.cross_entropy(z, np.array([0, 1]))
    assert loss._ctx is None and not loss.requires_grad
    np.testing.assert_allclose(loss.item(), np.log(3))


def test_cross_entropy_bad_input():
    logits = np.zeros((2, 5))
    with pytest.raises(IndexError, match=r"target 7 is out of range for 5 classes"):
        F.cross_entropy(logits, np.array([1, 7]))
    with pytest.raises(IndexError, match=r"target -1 is out of range for 5 classes"):
        F.cross_entropy(logits, np.array([-1, 0]))
    # float targets are class probabilities (PyTorch): they need the input's shape
    with pytest.raises(ValueError, match=r"cross_entropy: input \(2, 5\).*target of shape \(2, 5\), got \(2,\)"):
        F.cross_entropy(logits, np.array([1.0, 2.0]))
    with pytest.raises(TypeError, match="target must be integers"):
        F.cross_entropy(logits, np.array([True, False]))
    with pytest.raises(ValueError, match=r"input \(2, 5\) \(classes on dim 1\) needs target of shape \(2,\), got \(3,\)"):
        F.cross_entropy(logits, np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="reduction must be one of"):
        F.cross_entropy(logits, np.array([0, 1]), reduction="avg")
    with pytest.raises(ValueError, match="0-d"):
        F.cross_entropy(np.float64(1.0), np.array(0))
    assert F.cross_entropy(logits, mg.Tensor(np.array([0, 1]))).item() == pytest.approx(np.log(5))


# ---------------------------------------------------------------- GELU
@given(data=st.data(), shape=hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=4))
def test_gelu_gradcheck_and_reference(data, shape):
    x = data.draw(values(shape, -5, 5))
    np.testing.assert_allclose(F.gelu(x, approximate="tanh").data, reference_gelu(x), rtol=1e-12, atol=1e-14)
    assert mg.gradcheck(lambda t: F.gelu(t, approximate="tanh"), leaf(x))


def test_gelu_float32_large_and_extreme():
    rng = np.random.default_rng(9)
    x = (rng.standard_normal((300, 700)) * 3).astype(np.float32)  # several blocks, 2 threads
    x[0, :4] = [1e4, -1e4, 0.0, -0.0]
    t = leaf(x, np.float32)
    y = F.gelu(t, approximate="tanh")
    assert y.dtype == np.float32
    np.testing.assert_allclose(y.data, reference_gelu(x.astype(np.float64)), rtol=1e-5, atol=1e-6)
    assert y.data[0, 0] == 1e4 and y.data[0, 1] == 0
    g = rng.standard_normal(x.shape).astype(np.float32)
    y.backward(g)
    assert t.grad.dtype == np.float32 and np.all(np.isfinite(t.grad))
    x64 = x.astype(np.float64)
    u = np.sqrt(2 / np.pi) * (x64 + 0.044715 * x64**3)
    slope = 0.5 * (1 + np.tanh(u)) + 0.5 * x64 * (1 - np.tanh(u) ** 2) * np.sqrt(2 / np.pi) * (
        1 + 3 * 0.044715 * x64**2)
    np.testing.assert_allclose(t.grad, g * slope, rtol=1e-4, atol=1e-5)
    noncontiguous = leaf(np.random.default_rng(1).standard_normal((4, 6)))
    assert mg.gradcheck(lambda a: F.gelu(a.T, approximate="tanh"), noncontiguous)


def test_gelu_float32_negative_tail_and_huge_inputs_without_warnings():
    # y = x / (1 + exp(-2u)), not 0.5 x (1 + tanh(u)) whose 1 + tanh cancels for negative u: y keeps
    # float32's relative accuracy down to y ~ 1e-30; very negative x (exp2 overflows) gives -0
    # and a zero slope without a warning or a nan; huge positive x gives y = x and slope 1
    wide = np.logspace(-30, 6, 500)
    x = np.concatenate([np.linspace(-12, 12, 20001), -wide, wide]).astype(np.float32)
    u = np.sqrt(2 / np.pi) * (x.astype(np.float64) + 0.044715 * x.astype(np.float64) ** 3)
    with np.errstate(over="ignore"):  # (the float64 logistic, no cancellation; exp(2e18) = inf)
        want = x.astype(np.float64) / (1 + np.exp(-2 * u))
    t = leaf(x, np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = F.gelu(t, approximate="tanh")
        y.backward(np.ones_like(x))
    big = np.abs(want) > 1e-30
    np.testing.assert_allclose(y.data[big], want[big], rtol=2e-5)
    np.testing.assert_allclose(y.data, want, rtol=2e-5, atol=1e-37)
    assert np.all(np.isfinite(t.grad)) and not np.any(np.isnan(y.data))
    assert np.all(y.data[x <= -30] == 0) and np.all(np.signbit(y.data[x <= -30]))
    assert np.all(t.grad[x <= -30] == 0) and np.all(t.grad[x >= 30] == 1)
    assert np.array_equal(y.data[x >= 30], x[x >= 30])
