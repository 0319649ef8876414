"""The CNN layers of minigrad.nn: Conv1d/2d, ConvTranspose1d/2d, pooling, BatchNorm1d/2d
(running statistics in train and eval, momentum=None), GroupNorm, LayerNorm with a tuple,
Flatten/Unflatten, ModuleDict, ParameterList and the activation modules."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra import numpy as hnp

import minigrad as mg
from minigrad import nn
from minigrad.nn import functional as F


def test_conv_layers_shapes_init_and_repr():
    generator = np.random.default_rng(0)
    conv = nn.Conv2d(4, 6, 3, stride=2, padding=1, groups=2, generator=generator)
    assert conv.weight.shape == (6, 2, 3, 3) and conv.bias.shape == (6,)
    bound = 1 / math.sqrt(2 * 9)  # kaiming_uniform_(a=sqrt(5)) = U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    assert np.abs(conv.weight.data).max() <= bound and np.abs(conv.bias.data).max() <= bound
    x = mg.Tensor(np.random.default_rng(1).standard_normal((2, 4, 7, 7)).astype(np.float32))
    y = conv(x)
    assert y.shape == (2, 6, 4, 4) and y.dtype == np.float32
    np.testing.assert_allclose(y.data, F.conv2d(x, conv.weight, conv.bias, 2, 1, 1, 2).data)
    assert "Conv2d(4, 6, kernel_size=(3, 3), stride=(2, 2), padding=(1, 1), groups=2)" == repr(conv)
    assert nn.Conv1d(3, 5, 3, padding="same")(mg.Tensor(np.ones((2, 3, 8)))).shape == (2, 5, 8)
    up = nn.ConvTranspose2d(6, 3, 2, stride=2)
    assert up.weight.shape == (6, 3, 2, 2) and up(y).shape == (2, 3, 8, 8)
    assert nn.ConvTranspose1d(5, 2, 3)(mg.Tensor(np.ones((1, 5, 4)))).shape == (1, 2, 6)
    assert set(dict(conv.named_parameters())) == {"weight", "bias"}
    assert nn.Conv2d(2, 2, 1, bias=False).bias is None
    with pytest.raises(ValueError, match="Conv2d: groups=3 must divide in_channels=4"):
        nn.Conv2d(4, 6, 3, groups=3)
    with pytest.raises(ValueError, match=r"Conv2d: padding_mode must be one of .*'circular'.*but got padding_mode='mirror'"):
        nn.Conv2d(1, 1, 3, padding_mode="mirror")
    with pytest.raises(ValueError, match="Only `zeros` padding mode is supported for ConvTranspose2d"):
        nn.ConvTranspose2d(6, 3, 2, padding_mode="reflect")(y)
    assert repr(nn.Conv1d(1, 1, 3, padding=1, padding_mode="circular")).endswith("padding_mode=circular)")


NUMPY_PAD_MODE = {"zeros": "constant", "reflect": "reflect", "replicate": "edge", "circular": "wrap"}


def conv_by_numpy(x, weight, bias, stride, padding, dilation, mode):
    """y[n, o, i, j] = sum_{c, a, b} W[o, c, a, b] xp[n, c, i s + a d, j s + b d] + b[o], with
    xp = np.pad(x) in the mode (any number of spatial dims; groups 1)."""
    spatial = x.ndim - 2
    xp = np.pad(x, ((0, 0), (0, 0)) + tuple(padding), mode=NUMPY_PAD_MODE[mode])
    kernel = weight.shape[2:]
    windows = np.lib.stride_tricks.sliding_window_view(
        xp, [dilation * (k - 1) + 1 for k in kernel], axis=tuple(range(2, 2 + spatial)))
    windows = windows[(Ellipsis,) + (slice(None, None, dilation),) * spatial]  # (N, C, *out, *kernel)
    windows = windows[(slice(None), slice(None)) + (slice(None, None, stride),) * spatial]
    letters = "hw"[:spatial]
    y = np.einsum(f"nc{letters}{letters.upper()},oc{letters.upper()}->no{letters}", windows, weight)
    return y + bias.reshape((1, -1) + (1,) * spatial)


@settings(max_examples=12, deadline=None)
@given(data=st.data(), mode=st.sampled_from(["zeros", "reflect", "replicate", "circular"]),
       dims=st.sampled_from([1, 2]))
def test_conv_padding_modes_against_numpy_pad(data, mode, dims):
    # PyTorch: a non-"zeros" mode pads the input with F.pad in that mode, then convolves
    kernel = tuple(data.draw(st.integers(1, 3)) for _ in range(dims))
    sides = tuple(data.draw(st.integers(2, 5)) for _ in range(dims))
    same = data.draw(st.booleans())
    stride = 1 if same else data.draw(st.integers(1, 2))
    dilation = data.draw(st.integers(1, 2))
    limit = min(sides) - 1  # reflect needs padding below the side; circular at most the side
    padding = "same" if same else data.draw(st.integers(0, limit))
    layer_type = nn.Conv1d if dims == 1 else nn.Conv2d
    layer = layer_type(2, 3, kernel if dims == 2 else kernel[0], stride=stride, padding=padding,
                       dilation=dilation, padding_mode=mode, dtype=np.float64,
                       generator=np.random.default_rng(0))
    widths = [(d * (k - 1) // 2, d * (k - 1) - d * (k - 1) // 2) for k, d in zip(kernel, [dilation] * dims)] \
        if same else [(padding, padding)] * dims
    if any(lo > limit or hi > limit for lo, hi in widths) or any(
            n + lo + hi < dilation * (k - 1) + 1 for n, (lo, hi), k in zip(sides, widths, kernel)):
        return  # a 'same' padding the side cannot reflect, or a kernel larger than the input
    x = mg.Tensor(data.draw(hnp.arrays(np.float64, (2, 2) + sides, elements=st.floats(-2, 2))), requires_grad=True)
    expected = conv_by_numpy(x.data, layer.weight.data, layer.bias.data, stride, widths, dilation, mode)
    np.testing.assert_allclose(layer(x).data, expected, rtol=1e-12, atol=1e-12)
    # gradcheck nudges the layer's own parameters in place
    assert mg.gradcheck(lambda t, w, b: layer(t), x, layer.weight, layer.bias)
    assert mg.gradgradcheck(lambda t, w: layer(t), x, layer.weight)


def test_conv_padding_mode_errors_as_f_pad():
    with pytest.raises(ValueError, match=r"pad: reflect padding \(3, 3\) must be smaller than the size 2"):
        nn.Conv2d(1, 1, 3, padding=3, padding_mode="reflect")(mg.Tensor(np.ones((1, 1, 2, 2))))
    circular = nn.Conv2d(1, 1, 3, padding=1, padding_mode="circular", bias=False)
    with mg.no_grad():
        circular.weight[...] = 0.0
        circular.weight[0, 0, 1, 0] = 1.0  # picks the left neighbour: a roll right with wrap-around
    x = np.arange(12.0, dtype=np.float32).reshape(1, 1, 3, 4)
    np.testing.assert_array_equal(circular(mg.Tensor(x)).data, np.roll(x, 1, axis=-1))


def test_pooling_layers():
    x = mg.Tensor(np.arange(16.0).reshape(1, 1, 4, 4))
    np.testing.assert_array_equal(nn.MaxPool2d(2)(x).data, [[[[5, 7], [13, 15]]]])
    np.testing.assert_array_equal(nn.AvgPool2d(2)(x).data, [[[[2.5, 4.5], [10.5, 12.5]]]])
    values, indices = nn.MaxPool2d(2, return_indices=True)(x)
    np.testing.assert_array_equal(indices.data, [[[[5, 7], [13, 15]]]])
    assert nn.MaxPool1d(2)(mg.Tensor(np.ones((1, 2, 5)))).shape == (1, 2, 2)
    assert nn.AvgPool1d(3, stride=1)(mg.Tensor(np.ones((1, 2, 5)))).shape == (1, 2, 3)
    assert nn.Upsample(scale_factor=2)(x).shape == (1, 1, 8, 8)


def test_batch_norm_running_statistics_train_and_eval():
    bn = nn.BatchNorm2d(3, momentum=0.2)
    assert set(bn.state_dict()) == {"weight", "bias", "running_mean", "running_var", "num_batches_tracked"}
    rng = np.random.default_rng(2)
    batches = [rng.standard_normal((4, 3, 2, 2)).astype(np.float32) * 2 + 1 for _ in range(3)]
    mean, var = np.zeros(3), np.ones(3)
    for batch in batches:
        y = bn(mg.Tensor(batch))
        m, v = batch.mean((0, 2, 3)), batch.var((0, 2, 3))
        np.testing.assert_allclose(y.data.mean((0, 2, 3)), 0, atol=1e-5)
        mean, var = 0.8 * mean + 0.2 * m, 0.8 * var + 0.2 * v * 16 / 15
    np.testing.assert_allclose(bn.running_mean, mean, rtol=1e-5)
    np.testing.assert_allclose(bn.running_var, var, rtol=1e-5)
    assert int(bn.num_batches_tracked) == 3
    bn.eval()
    out = bn(mg.Tensor(batches[0]))
    np.testing.assert_allclose(out.data, (batches[0] - mean.reshape(1, 3, 1, 1)) / np.sqrt(var.reshape(1, 3, 1, 1) + 1e-5), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(bn.running_mean, mean, rtol=1e-5)  # unchanged in eval
    cumulative = nn.BatchNorm1d(2, momentum=None)
    first, second = rng.standard_normal((5, 2)), rng.standard_normal((5, 2))
    cumulative(mg.Tensor(first))
    cumulative(mg.Tensor(second))
    np.testing.assert_allclose(cumulative.running_mean, (first.mean(0) + second.mean(0)) / 2, rtol=1e-6)
    assert nn.BatchNorm1d(2)(mg.Tensor(np.ones((3, 2, 4)))).shape == (3, 2, 4)
    with pytest.raises(ValueError, match=r"BatchNorm2d\(3\): expected input of rank 4 with 3 channels on dim 1, got shape \(4, 2, 2, 2\)"):
        bn(mg.Tensor(np.ones((4, 2, 2, 2))))
    no_stats = nn.BatchNorm1d(2, track_running_stats=False).eval()
    assert no_stats.running_mean is None
    np.testing.assert_allclose(no_stats(mg.Tensor(first)).data.mean(0), 0, atol=1e-6)


def test_batch_norm_gradients_flow_to_weight_and_bias():
    bn = nn.BatchNorm2d(2, dtype=np.float64)
    x = mg.Tensor(np.random.default_rng(3).standard_normal((3, 2, 2, 2)), requires_grad=True)
    assert mg.gradcheck(lambda t, w, b: F.batch_norm(t, None, None, w, b, training=True), x, bn.weight, bn.bias)


def test_group_norm_and_layer_norm_tuple():
    gn = nn.GroupNorm(2, 4)
    x = mg.Tensor(np.random.default_rng(4).standard_normal((2, 4, 3)).astype(np.float32))
    np.testing.assert_allclose(gn(x).data, F.group_norm(x, 2, gn.weight, gn.bias).data)
    with pytest.raises(ValueError, match="GroupNorm: num_groups=3 must be a positive divisor of num_channels=4"):
        nn.GroupNorm(3, 4)
    ln = nn.LayerNorm((4, 3))
    assert ln.weight.shape == (4, 3) and ln.normalized_shape == (4, 3)
    out = ln(x).data
    flat = x.data.reshape(2, -1)
    np.testing.assert_allclose(out.reshape(2, -1), (flat - flat.mean(1, keepdims=True)) / np.sqrt(flat.var(1, keepdims=True) + 1e-5), atol=1e-5)
    assert nn.LayerNorm(3).normalized_shape == (3,)


def test_containers_and_flatten():
    layers = nn.ModuleDict({"conv": nn.Conv2d(1, 2, 3), "act": nn.ReLU()})
    layers["head"] = nn.Linear(2, 1)
    assert list(layers) == ["conv", "act", "head"] and "conv" in layers and len(layers) == 3
    assert len(list(layers.parameters())) == 4
    assert set(layers.state_dict()) == {"conv.weight", "conv.bias", "head.weight", "head.bias"}
    assert isinstance(layers.pop("act"), nn.ReLU) and len(layers) == 2
    with pytest.raises(KeyError, match="ModuleDict: no module named 'missing'"):
        layers["missing"]
    params = nn.ParameterList([np.zeros(2), mg.Tensor(np.ones(3))])
    params.append(nn.Parameter(np.ones((2, 2))))
    assert [p.shape for p in params] == [(2,), (3,), (2, 2)] and all(p.requires_grad for p in params)
    assert list(params.state_dict()) == ["0", "1", "2"] and len(list(params.parameters())) == 3
    x = mg.Tensor(np.ones((2, 3, 4, 5)))
    assert nn.Flatten()(x).shape == (2, 60) and nn.Flatten(0, 1)(x).shape == (6, 4, 5)
    assert nn.Unflatten(1, (3, 20))(nn.Flatten()(x)).shape == (2, 3, 20)


def test_activation_modules_match_the_functions():
    x = mg.Tensor(np.linspace(-4, 4, 9))
    pairs = [(nn.LeakyReLU(0.2), F.leaky_relu(x, 0.2)), (nn.ELU(alpha=0.5), F.elu(x, 0.5)),
             (nn.SELU(), F.selu(x)), (nn.CELU(), F.celu(x)), (nn.SiLU(), F.silu(x)), (nn.Mish(), F.mish(x)),
             (nn.Softplus(beta=2.0), F.softplus(x, 2.0)), (nn.Softsign(), F.softsign(x)),
             (nn.Hardtanh(-2.0, 2.0), F.hardtanh(x, -2.0, 2.0)), (nn.ReLU6(), F.relu6(x)),
             (nn.Hardsigmoid(), F.hardsigmoid(x)), (nn.Hardswish(), F.hardswish(x)),
             (nn.LogSigmoid(), F.logsigmoid(x)), (nn.Sigmoid(), x.sigmoid()), (nn.GELU(), F.gelu(x)),
             (nn.Softmax(dim=0), F.softmax(x, dim=0)), (nn.LogSoftmax(dim=0), F.log_softmax(x, dim=0)),
             (nn.Softmin(dim=0), F.softmin(x, dim=0))]
    for module, expected in pairs:
        np.testing.assert_array_equal(module(x).data, expected.data)
    assert repr(nn.LeakyReLU(0.2)) == "LeakyReLU(negative_slope=0.2)"
    with pytest.raises(TypeError, match="LeakyReLU: unexpected argument 'slope'"):
        nn.LeakyReLU(slope=0.1)
