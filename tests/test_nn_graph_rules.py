"""The higher-order side of the new kernels: each `backward_graph` (written in Tensor ops, used
when a backward builds a graph) gives the same first-order gradient as the fast ndarray
`backward`, and each `reference` (the kernel composed of primitive ops) computes the same
forward as the fused kernel. ConvWeightGrad, only ever built by backward_graph, is
gradchecked on its own."""
from __future__ import annotations

import numpy as np
import pytest

import minigrad as mg
from minigrad.nn import functional as F
from minigrad.nn.functional.batch_norm import BatchNorm
from minigrad.nn.functional.conv import ConvWeightGrad

rng = np.random.default_rng(0)


def leaf(a):
    return mg.Tensor(np.array(a, dtype=np.float64), requires_grad=True)


def assert_graph_rule_matches(out: mg.Tensor):
    ctx = out._ctx
    g = rng.standard_normal(out.shape)
    fast = ctx.backward(g)
    fast = fast if isinstance(fast, tuple) else (fast,)
    with mg.no_grad():
        graph = ctx.backward_graph(mg.Tensor(g))
    graph = graph if isinstance(graph, tuple) else (graph,)
    assert len(fast) == len(graph)
    for a, b, need in zip(fast, graph, ctx.needs_input_grad):
        if need:
            np.testing.assert_allclose(b.data, a, rtol=1e-10, atol=1e-12)


x_spread = np.linspace(-4.1, 4.3, 12).reshape(3, 4)
ACTIVATIONS = [lambda t: F.leaky_relu(t, 0.1), F.elu, F.selu, lambda t: F.celu(t, 2.0), F.gelu, F.silu,
               F.mish, lambda t: F.softplus(t, 2.0, 3.0), F.softsign, F.hardtanh, F.relu6, F.hardsigmoid,
               F.hardswish, F.logsigmoid, lambda t: F.normalize(t, p=3.0), lambda t: F.normalize(t)]


@pytest.mark.parametrize("index", range(len(ACTIVATIONS)))
def test_activation_graph_rules(index):
    assert_graph_rule_matches(ACTIVATIONS[index](leaf(x_spread)))


def test_nll_conv_pool_and_resize_graph_rules():
    logp = leaf(rng.standard_normal((4, 3)))
    for reduction in ("mean", "sum", "none"):
        out = F.nll_loss(logp, np.array([0, 2, -100, 1]), weight=np.array([1.0, 2.0, 0.5]), reduction=reduction)
        assert_graph_rule_matches(out if reduction != "none" else out._ctx.parents[0])  # (past the reshape)
    x, w, b = leaf(rng.standard_normal((2, 4, 6, 7))), leaf(rng.standard_normal((4, 2, 3, 2))), leaf(rng.standard_normal(4))
    assert_graph_rule_matches(F.conv2d(x, w, b, stride=(2, 1), padding=1, dilation=(1, 2), groups=2))
    assert_graph_rule_matches(F.conv2d(x, w, padding="same", groups=2))
    assert_graph_rule_matches(F.conv_transpose2d(x, leaf(rng.standard_normal((4, 3, 2, 3))), leaf(np.ones(3)),
                                                 stride=2, padding=1, output_padding=1))
    assert_graph_rule_matches(F.max_pool2d(x, 3, 2, 1, ceil_mode=True))
    assert_graph_rule_matches(F.avg_pool2d(x, 2, 1, 1, count_include_pad=False))
    assert_graph_rule_matches(F.interpolate(x, scale_factor=1.5, mode="bilinear"))


def test_conv_weight_gradient_node_gradchecks():
    # dW(x, g) is bilinear; its backward_graph is conv_transpose2d / conv2d of the upstream H
    x, g = rng.standard_normal((2, 4, 5, 6)), rng.standard_normal((2, 2, 2, 5))
    options = dict(kernel=(3, 2), stride=(2, 1), padding=((1, 0), (0, 0)), dilation=(1, 1), groups=2)
    assert mg.gradcheck(lambda a, b: ConvWeightGrad.apply(a, b, **options), leaf(x), leaf(g))
    # and it is conv2d's weight gradient
    xt, wt = leaf(x), leaf(np.zeros((2, 2, 3, 2)))
    from minigrad.nn.functional.conv import Conv2d
    out = Conv2d.apply(xt, wt, stride=(2, 1), padding=((1, 0), (0, 0)), dilation=(1, 1), groups=2)
    out.backward(g)
    np.testing.assert_allclose(ConvWeightGrad.apply(x, g, **options).data, wt.grad, rtol=1e-12)


def test_references_compute_the_kernels_forward():
    x, t = rng.uniform(0.1, 0.9, (3, 4)), rng.uniform(0, 1, (3, 4))
    losses = [(F.l1_loss, {}), (F.smooth_l1_loss, {"beta": 0.3}), (F.huber_loss, {"delta": 0.4}),
              (F.binary_cross_entropy, {"weight": np.full(4, 2.0)}),
              (F.binary_cross_entropy_with_logits, {"pos_weight": np.arange(4.0)}),
              (F.kl_div, {"log_target": True}), (F.kl_div, {"reduction": "batchmean"})]
    for fn, kwargs in losses:
        for reduction in ("mean", "sum", "none"):
            kwargs = {"reduction": reduction, **kwargs}
            out = fn(leaf(x), leaf(t), **kwargs)
            ctx = out._ctx
            np.testing.assert_allclose(type(ctx).reference(*ctx.parents, **ctx.options).data, out.data,
                                       rtol=1e-12, atol=1e-14)
    xb, w, b = rng.standard_normal((4, 3, 2)), rng.standard_normal(3), rng.standard_normal(3)
    running_mean, running_var = rng.standard_normal(3), rng.uniform(0.5, 2, 3)
    for training in (True, False):
        out = F.batch_norm(leaf(xb), running_mean.copy(), running_var.copy(), leaf(w), leaf(b), training=training)
        options = dict(training=training, eps=1e-5, has_weight=True, has_bias=True,
                       mean=None if training else running_mean, var=None if training else running_var)
        np.testing.assert_allclose(BatchNorm.reference(*out._ctx.parents, **options).data, out.data, rtol=1e-12, atol=1e-12)
