"""Second derivatives of the nn.functional kernels added for PyTorch's API: gradgradcheck in
float64 (activations, normalize, nll_loss, the elementwise losses, conv2d, conv_transpose2d,
pooling, interpolate, batch_norm), through each kernel's backward_graph or reference."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import minigrad as mg
from minigrad import gradgradcheck
from minigrad.nn import functional as F

rng = np.random.default_rng(0)


def leaf(a):
    return mg.Tensor(np.array(a, dtype=np.float64), requires_grad=True)


# piecewise-linear activations have zero second derivative: multiplying by the input gives
# the check something to see
ACTIVATIONS = {
    "leaky_relu": lambda t: F.leaky_relu(t, 0.1) * t, "elu": F.elu, "selu": F.selu,
    "celu": lambda t: F.celu(t, 2.0), "gelu": F.gelu, "silu": F.silu, "mish": F.mish,
    "softplus": lambda t: F.softplus(t, 2.0, 3.0), "softsign": F.softsign,
    "hardtanh": lambda t: F.hardtanh(t) * t, "relu6": lambda t: F.relu6(t) * t,
    "hardsigmoid": lambda t: F.hardsigmoid(t) * t, "hardswish": F.hardswish, "logsigmoid": F.logsigmoid,
    "normalize": F.normalize, "normalize_p3": lambda t: F.normalize(t, p=3.0, dim=0),
}
KINKS = {"leaky_relu": [0], "elu": [0], "selu": [0], "celu": [0], "softsign": [0], "hardtanh": [-1, 1],
         "relu6": [0, 6], "hardsigmoid": [-3, 3], "hardswish": [-3, 3], "softplus": [1.5]}


@settings(max_examples=5)
@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
@given(x=hnp.arrays(np.float64, hnp.array_shapes(min_dims=2, max_dims=2, max_side=3), elements=st.floats(-4, 4)))
def test_activations_gradgradcheck(name, x):
    for kink in KINKS.get(name, []):
        x = np.where(np.abs(x - kink) < 0.05, kink + 0.1, x)
    if name.startswith("normalize"):
        x = np.where(np.abs(x) < 0.3, 0.5, x)
    assert gradgradcheck(ACTIVATIONS[name], leaf(x))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_losses_gradgradcheck(reduction):
    p, t = rng.uniform(0.2, 0.8, (3, 4)), rng.uniform(0, 1, (3, 4))
    d = rng.choice([-1.0, 1.0], (3, 4)) * rng.uniform(0.2, 1.0, (3, 4))  # |x - t| away from the kinks
    for fn, kwargs, x in [(F.l1_loss, {}, p + d), (F.smooth_l1_loss, {"beta": 0.1}, t + d),
                          (F.huber_loss, {"delta": 2.0}, t + d), (F.binary_cross_entropy, {}, p),
                          (F.binary_cross_entropy_with_logits, {"pos_weight": np.arange(1.0, 5.0)}, d),
                          (F.kl_div, {}, -p), (F.kl_div, {"log_target": True}, -p)]:
        assert gradgradcheck(lambda a, b: fn(a, b, reduction=reduction, **kwargs), leaf(x), leaf(t))
    logp = rng.standard_normal((4, 3))
    assert gradgradcheck(lambda a: F.nll_loss(a, np.array([0, 2, -100, 1]), weight=np.array([1.0, 2.0, 0.5]),
                                              reduction=reduction) * 1.0, leaf(logp))


def test_convolutions_gradgradcheck():
    x, w, b = leaf(rng.standard_normal((2, 4, 5, 5))), leaf(rng.standard_normal((4, 2, 3, 2))), leaf(rng.standard_normal(4))
    assert gradgradcheck(lambda a, ww, bb: F.conv2d(a, ww, bb, stride=(2, 1), padding=1, dilation=(1, 2), groups=2), x, w, b)
    assert gradgradcheck(lambda a, ww: F.conv2d(a, ww, padding="same", groups=2), x, w)
    assert gradgradcheck(lambda a, ww, bb: F.conv_transpose2d(a, ww, bb, stride=2, padding=1, output_padding=1),
                         leaf(rng.standard_normal((1, 4, 3, 3))), leaf(rng.standard_normal((4, 2, 2, 3))), leaf(np.ones(2)))
    assert gradgradcheck(lambda a, ww: F.conv1d(a, ww, stride=2, padding=1),
                         leaf(rng.standard_normal((2, 3, 6))), leaf(rng.standard_normal((2, 3, 3))))


def test_pooling_interpolate_and_batch_norm_gradgradcheck():
    distinct = leaf(rng.permutation(2 * 3 * 25).reshape(2, 3, 5, 5) / 10.0)
    assert gradgradcheck(lambda a: F.max_pool2d(a, 2, 1, ceil_mode=True) ** 2, distinct)
    x = leaf(rng.standard_normal((2, 3, 5, 5)))
    assert gradgradcheck(lambda a: F.avg_pool2d(a, 3, 2, 1, ceil_mode=True, count_include_pad=False) ** 2, x)
    assert gradgradcheck(lambda a: F.interpolate(a, scale_factor=1.5, mode="bilinear") ** 2, x)
    xb, w, b = leaf(rng.standard_normal((3, 2, 4))), leaf(rng.standard_normal(2)), leaf(rng.standard_normal(2))
    assert gradgradcheck(lambda a, ww, bb: F.batch_norm(a, None, None, ww, bb, training=True), xb, w, b)
    assert gradgradcheck(lambda a, ww, bb: F.batch_norm(a, np.zeros(2), np.ones(2), ww, bb) ** 2, xb, w, b)


def test_cross_entropy_options_gradgradcheck():
    # the composed path (weight, label smoothing, probabilities, classes on dim 1) is
    # differentiable twice through log_softmax's reference and the NLL node
    z = rng.standard_normal((4, 3))
    targets = np.array([0, 2, -100, 1])
    for kwargs in (dict(weight=np.array([1.0, 2.0, 0.5])), dict(label_smoothing=0.2),
                   dict(weight=np.array([1.0, 2.0, 0.5]), label_smoothing=0.1, reduction="none")):
        assert gradgradcheck(lambda a: F.cross_entropy(a, targets, **kwargs) * 1.0, leaf(z))
    assert gradgradcheck(lambda a, p: F.cross_entropy(a, p, label_smoothing=0.1), leaf(z),
                         leaf(rng.dirichlet(np.ones(3), 4)))
    assert gradgradcheck(lambda a: F.cross_entropy(a, np.array([[0, 1], [2, 2]])), leaf(rng.standard_normal((2, 3, 2))))
