"""Fused kernels on tensors with size-0 axes, as PyTorch: softmax/log_softmax/softmin over an
empty dim or an empty batch, cross_entropy of an empty batch, and the normalizations
(batch_norm, group_norm, layer_norm, per-sample "instance" shapes) with an empty batch, an empty
channel axis or empty positions. Each gives an empty result of the input's shape (a loss of
nothing: nan for "mean", 0 for "sum"), gradchecked and gradgradchecked in float64.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minigrad as mg
from minigrad import nn
from minigrad.nn import functional as F
from tests.core_strategies import leaf, nonscalar_shapes_with_empty, shapes_with_empty, values

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")  # numpy's 0/0 in means of nothing


def numpy_log_softmax(x, axis):
    """log softmax in NumPy; an empty result for an empty axis (max needs an identity there)."""
    if x.size == 0:
        return x.copy()
    shifted = x - x.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


# ---------------------------------------------------------------- softmax family
@settings(max_examples=30, deadline=None)
@given(data=st.data(), shape=shapes_with_empty)
def test_softmax_family_over_empty_dims_and_batches(data, shape):
    x = data.draw(values(shape))
    dim = data.draw(st.integers(-max(len(shape), 1), max(len(shape), 1) - 1))
    expected_log = numpy_log_softmax(x, dim)
    cases = [(F.softmax, nn.Softmax, np.exp(expected_log)), (F.log_softmax, nn.LogSoftmax, expected_log),
             (F.softmin, nn.Softmin, np.exp(numpy_log_softmax(-x, dim)))]
    for fn, module, expected in cases:
        for y in (fn(x, dim=dim), module(dim=dim)(mg.Tensor(x))):
            assert y.shape == x.shape and y.dtype == np.float64
            np.testing.assert_allclose(y.data, expected, rtol=1e-12, atol=1e-14)
        assert mg.gradcheck(lambda t: fn(t, dim=dim), leaf(x))
        assert mg.gradgradcheck(lambda t: fn(t, dim=dim), leaf(x))


def test_softmax_over_an_empty_dim_keeps_float32_and_gives_empty_gradients():
    for shape, dim in (((3, 0), 1), ((0, 4), 0), ((2, 0, 4), 1), ((0,), 0)):
        x = mg.Tensor(np.zeros(shape, np.float32), requires_grad=True)
        for fn in (F.softmax, F.log_softmax, F.softmin):
            y = fn(x, dim=dim)
            assert y.shape == shape and y.dtype == np.float32
            y.sum().backward()
            assert x.grad.shape == shape and x.grad.dtype == np.float32
            x.grad = None


# ---------------------------------------------------------------- cross_entropy of an empty batch
@pytest.mark.parametrize("logits_shape", [(0, 3), (0, 3, 2)])
def test_cross_entropy_of_an_empty_batch(logits_shape):
    targets = np.zeros((0,) + logits_shape[2:], np.int64)
    expected = {"mean": np.nan, "sum": 0.0}
    for reduction in ("mean", "sum", "none"):
        loss_fn = lambda t: F.cross_entropy(t, targets, reduction=reduction)  # noqa: E731
        loss = loss_fn(leaf(np.zeros(logits_shape)))
        if reduction == "none":
            assert loss.shape == targets.shape
        else:
            np.testing.assert_equal(loss.item(), expected[reduction])  # nan, as PyTorch's mean of nothing
        logits = leaf(np.zeros(logits_shape))
        loss_fn(logits).sum().backward()
        assert logits.grad.shape == logits_shape  # an empty gradient
        assert mg.gradcheck(loss_fn, leaf(np.zeros(logits_shape)))
        assert mg.gradgradcheck(loss_fn, leaf(np.zeros(logits_shape)))


@pytest.mark.parametrize("label_smoothing", [0.0, 0.2])
def test_cross_entropy_with_class_probabilities_of_an_empty_batch(label_smoothing):
    # PyTorch's cross_entropy_loss_prob_target: "mean" over an input of no elements is nan
    probabilities = mg.Tensor(np.zeros((0, 3)))
    for reduction, expected in (("mean", np.nan), ("sum", 0.0)):
        loss_fn = lambda t: F.cross_entropy(t, probabilities, reduction=reduction, label_smoothing=label_smoothing)  # noqa: E731
        np.testing.assert_equal(loss_fn(leaf(np.zeros((0, 3)))).item(), expected)
        assert mg.gradcheck(loss_fn, leaf(np.zeros((0, 3)))) and mg.gradgradcheck(loss_fn, leaf(np.zeros((0, 3))))
    x = mg.Tensor(np.zeros((0, 3), np.float32))
    assert F.cross_entropy(x, mg.Tensor(np.zeros((0, 3), np.float32))).dtype == np.float32


def test_second_derivative_of_an_empty_mean_loss_is_nan_as_pytorchs_formula():
    # d(dL/dlogits)/dv, the first derivative being empty: 0 terms times the 1/0 of the mean.
    # PyTorch differentiates nll_loss_backward in v by nll_loss(grad, target, reduction="mean"),
    # a mean over nothing: nan too. gradgradcheck has no entry to compare there (no rows).
    logits, v = leaf(np.zeros((0, 3))), mg.Tensor(np.array(1.0), requires_grad=True)
    (first,) = mg.autograd.grad(F.cross_entropy(logits, np.zeros(0, np.int64)), [logits], [v], create_graph=True)
    assert first.shape == (0, 3)
    (second,) = mg.autograd.grad(first, [v], [np.zeros((0, 3))])
    assert np.isnan(second.item())


@pytest.mark.parametrize("method", ["std", "var"])
def test_std_and_var_over_an_empty_dim_gradgradcheck(method):
    x = leaf(np.zeros((0, 3)))
    fn = lambda t: getattr(t, method)(dim=0)  # noqa: E731
    assert np.all(np.isnan(fn(x).data)) and fn(x).shape == (3,)
    assert mg.gradcheck(fn, x) and mg.gradgradcheck(fn, x)
    assert mg.gradgradcheck(lambda t: getattr(t, method)(dim=1), leaf(np.zeros((0, 3))))


def test_gradgradcheck_still_fails_a_wrong_second_derivative_beside_an_empty_input():
    class WrongSquare(mg.autograd.Function):
        def forward(self, x):
            return x * x

        def backward_graph(self, g):
            (x,) = self.parents
            return (g * mg.Tensor(2.0 * x.data),)  # right value, but 2x cut off the graph: d/dx lost

    inputs = (leaf(np.ones((0, 2))), leaf(np.array([0.5, -1.0])))
    fn = lambda a, b: (a * a, WrongSquare.apply(b))  # noqa: E731
    assert not mg.gradgradcheck(fn, *inputs, raise_exception=False)


# ---------------------------------------------------------------- normalizations with size-0 axes
norm_shapes = st.tuples(st.integers(0, 2), st.sampled_from([0, 2, 4]), shapes_with_empty.filter(lambda s: len(s) <= 2))


@settings(max_examples=30, deadline=None)
@given(data=st.data(), sizes=norm_shapes)
def test_norms_with_size_zero_axes(data, sizes):
    batch, channels, spatial = sizes
    shape = (batch, channels) + spatial
    x = data.draw(values(shape))
    weight, bias = data.draw(values((channels,), 0.5, 1.5)), data.draw(values((channels,)))
    groups = data.draw(st.sampled_from([g for g in (1, 2) if channels % g == 0]))
    cases = {
        "group_norm": lambda t, w, b: F.group_norm(t, groups, w, b),
        "batch_norm eval": lambda t, w, b: F.batch_norm(t, np.zeros(channels), np.ones(channels), w, b),
        "layer_norm": lambda t, w, b: F.layer_norm(t, shape[1:]) * 1.0,
        "instance norm (group_norm, one group per channel)": lambda t, w, b: F.group_norm(t, max(channels, 1), w, b),
    }
    if batch * int(np.prod(spatial)) != 1:  # training needs more than one value per channel
        cases["batch_norm train"] = lambda t, w, b: F.batch_norm(t, None, None, w, b, training=True)
    for name, fn in cases.items():
        if name.startswith("instance") and channels == 0:
            continue
        y = fn(mg.Tensor(x), mg.Tensor(weight), mg.Tensor(bias))
        assert y.shape == shape, name
        assert mg.gradcheck(fn, leaf(x), leaf(weight), leaf(bias)), name
        assert mg.gradgradcheck(fn, leaf(x), leaf(weight), leaf(bias)), name
        if x.size == 0:  # nothing to normalize: weight and bias get zero gradients
            w, b = leaf(weight), leaf(bias)
            fn(leaf(x), w, b).sum().backward()
            for p in (w, b):
                assert p.grad is None or (p.grad.shape == (channels,) and not p.grad.any()), name


def test_group_norm_and_layers_take_an_empty_batch():
    x = mg.Tensor(np.zeros((0, 4, 3, 3), np.float32), requires_grad=True)
    for layer in (nn.GroupNorm(2, 4), nn.BatchNorm2d(4), nn.LayerNorm((4, 3, 3))):
        y = layer(x)
        assert y.shape == (0, 4, 3, 3) and y.dtype == np.float32
        y.sum().backward()
        assert x.grad.shape == x.shape
        for p in layer.parameters():
            assert p.grad.shape == p.shape and not p.grad.any()
        x.grad = None


def test_batch_norm_training_on_an_empty_batch_leaves_running_stats_unchanged():
    layer = nn.BatchNorm1d(3)
    layer.running_mean[:] = [1.0, 2.0, 3.0]
    x = mg.Tensor(np.zeros((0, 3), np.float32), requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no mean-of-empty-slice warning (PyTorch gives none)
        y = layer(x)
        y.sum().backward()
    assert y.shape == (0, 3) and x.grad.shape == (0, 3) and not layer.weight.grad.any()
    np.testing.assert_array_equal(layer.running_mean, [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(layer.running_var, [1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match=r"batch_norm: expected more than 1 value per channel when training, got input \(1, 3\)"):
        layer(mg.Tensor(np.zeros((1, 3), np.float32)))
