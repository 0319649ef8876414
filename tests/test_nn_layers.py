"""Layers (values, shapes, PyTorch default initialization), containers, init and
clip_grad_norm."""
from __future__ import annotations

import math

import numpy as np
import pytest

import minigrad as mg
from minigrad import nn
from minigrad.nn import init


def test_linear_shapes_values_and_init_bounds():
    layer = nn.Linear(64, 300, generator=np.random.default_rng(0))
    assert layer.weight.shape == (300, 64) and layer.bias.shape == (300,)
    assert layer.weight.dtype == np.float32
    bound = 1 / math.sqrt(64)
    for values in (layer.weight.data, layer.bias.data):
        assert np.abs(values).max() <= bound
        assert np.abs(values).max() > 0.95 * bound  # uniform over the whole interval
    weights = layer.weight.data.ravel()
    assert abs(weights.mean()) < 0.01 and abs(weights.std() - bound / math.sqrt(3)) < 0.01
    x = np.random.default_rng(1).standard_normal((2, 5, 64)).astype(np.float32)
    y = layer(mg.Tensor(x))
    assert y.shape == (2, 5, 300) and y.dtype == np.float32
    np.testing.assert_allclose(y.data, x @ layer.weight.data.T + layer.bias.data, rtol=1e-5, atol=1e-5)


def test_linear_without_bias_and_float64():
    layer = nn.Linear(3, 2, bias=False, dtype=np.float64)
    assert layer.bias is None and layer.weight.dtype == np.float64
    x = mg.Tensor(np.random.default_rng(0).standard_normal((4, 3)), requires_grad=True)
    assert mg.gradcheck(lambda t: layer(t), x)


def test_initialization_is_seeded():
    a = nn.Linear(4, 3, generator=np.random.default_rng(5))
    b = nn.Linear(4, 3, generator=np.random.default_rng(5))
    np.testing.assert_array_equal(a.weight.data, b.weight.data)
    mg.manual_seed(9)
    c = nn.Embedding(5, 2)
    mg.manual_seed(9)
    d = nn.Embedding(5, 2)
    np.testing.assert_array_equal(c.weight.data, d.weight.data)
    # a float64 layer from the same seed holds the same numbers up to rounding
    e = nn.Linear(4, 3, dtype=np.float64, generator=np.random.default_rng(5))
    np.testing.assert_allclose(e.weight.data, a.weight.data, rtol=1e-6)


def test_embedding_lookup_init_and_gradient_of_repeated_ids():
    emb = nn.Embedding(1000, 16, generator=np.random.default_rng(0))
    values = emb.weight.data
    assert abs(values.mean()) < 0.02 and abs(values.std() - 1) < 0.02
    ids = np.array([[3, 3, 7], [0, 3, 999]])
    out = emb(ids)
    assert out.shape == (2, 3, 16)
    np.testing.assert_array_equal(out.data, values[ids])
    out.sum().backward()
    assert np.all(emb.weight.grad[3] == 3) and np.all(emb.weight.grad[7] == 1)
    assert np.all(emb.weight.grad[1] == 0)


def test_layer_norm_values_and_gradcheck():
    norm = nn.LayerNorm(5, dtype=np.float64)
    np.testing.assert_array_equal(norm.weight.data, np.ones(5))
    np.testing.assert_array_equal(norm.bias.data, np.zeros(5))
    x = np.random.default_rng(0).standard_normal((3, 5)) * 4 + 2
    y = norm(mg.Tensor(x)).data
    expected = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-5)
    np.testing.assert_allclose(y, expected, atol=1e-10)
    norm.weight.data[...] = np.arange(5)
    norm.bias.data[...] = 1.0
    xt = mg.Tensor(x, requires_grad=True)
    assert mg.gradcheck(lambda t: norm(t), xt)
    assert nn.LayerNorm((5,)).normalized_shape == (5,)
    assert nn.LayerNorm((2, 5)).weight.shape == (2, 5)  # the two trailing axes (PyTorch's tuple form)
    with pytest.raises(ValueError, match="at least one axis"):
        nn.LayerNorm(())


def test_dropout_train_and_eval():
    x = mg.Tensor(np.ones((200, 100), np.float32))
    drop = nn.Dropout(0.25, generator=np.random.default_rng(0))
    y = drop(x).data
    kept = y != 0
    assert abs(kept.mean() - 0.75) < 0.02
    np.testing.assert_allclose(y[kept], 1 / 0.75, rtol=1e-6)
    drop.eval()
    assert drop(x) is x
    with pytest.raises(ValueError, match="probability"):
        nn.Dropout(1.5)
    with pytest.raises(ValueError, match="probability"):
        nn.Dropout(1.0)


def test_gelu_relu_tanh_identity():
    x = np.linspace(-4, 4, 17)
    expected = 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))
    np.testing.assert_allclose(nn.GELU(approximate="tanh")(mg.Tensor(x)).data, expected, atol=1e-7)
    np.testing.assert_array_equal(nn.ReLU()(mg.Tensor(x)).data, np.maximum(x, 0))
    np.testing.assert_allclose(nn.Tanh()(mg.Tensor(x)).data, np.tanh(x))
    t = mg.Tensor(x)
    assert nn.Identity(3, whatever=1)(t) is t
    gelu32 = nn.GELU(approximate="tanh")(mg.Tensor(x.astype(np.float32)))
    assert gelu32.dtype == np.float32


def test_sequential_and_module_list():
    seq = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
    assert len(seq) == 3 and isinstance(seq[1], nn.ReLU) and isinstance(seq[-1], nn.Linear)
    assert [type(m).__name__ for m in seq] == ["Linear", "ReLU", "Linear"]
    assert len(seq[:2]) == 2
    assert seq(mg.Tensor(np.ones((4, 2), np.float32))).shape == (4, 1)
    seq.append(nn.Tanh())
    assert len(seq) == 4
    with pytest.raises(IndexError):
        seq[10]
    with pytest.raises(TypeError, match="not a Module"):
        nn.Sequential(nn.ReLU(), "relu")
    blocks = nn.ModuleList([nn.Linear(2, 2) for _ in range(3)])
    blocks.append(nn.Linear(2, 2))
    assert len(blocks) == 4 and blocks[-1] is blocks[3]
    assert len(list(blocks.parameters())) == 8
    assert [n for n, _ in blocks.named_parameters()][-1] == "3.bias"
    with pytest.raises(IndexError):
        blocks[4]
    with pytest.raises(TypeError):
        blocks.append(3)
    with pytest.raises(NotImplementedError):
        blocks(1)


def test_layer_argument_errors():
    with pytest.raises(ValueError, match="in_features"):
        nn.Linear(0, 3)
    with pytest.raises(TypeError, match="floating"):
        nn.Linear(2, 3, dtype=np.int32)
    with pytest.raises(ValueError, match="embedding_dim"):
        nn.Embedding(3, -1)


def test_init_functions():
    t = mg.Tensor(np.empty((400, 50), np.float32))
    init.zeros_(t)
    assert np.all(t.data == 0)
    init.ones_(t)
    assert np.all(t.data == 1)
    init.normal_(t, 2.0, 0.5, generator=np.random.default_rng(0))
    assert abs(t.data.mean() - 2) < 0.01 and abs(t.data.std() - 0.5) < 0.01
    init.uniform_(t, -3, -1, generator=np.random.default_rng(0))
    assert t.data.min() >= -3 and t.data.max() <= -1
    init.kaiming_uniform_(t, a=math.sqrt(5), generator=np.random.default_rng(0))
    assert np.abs(t.data).max() <= 1 / math.sqrt(50)
    assert init.fan_in_and_fan_out((7, 3)) == (3, 7)
    with pytest.raises(ValueError, match="2 dimensions"):
        init.kaiming_uniform_(mg.Tensor(np.zeros(3)))
    with pytest.raises(TypeError):
        init.zeros_([1, 2])


def _params_with_grads(grads):
    params = []
    for grad in grads:
        param = nn.Parameter(np.zeros_like(grad))
        param.grad = None if grad is None else grad.copy()
        params.append(param)
    return params


def test_clip_grad_norm_scales_in_place_and_returns_the_norm_before():
    grads = [np.array([3.0, 0.0], np.float32), np.array([[4.0]], np.float32)]
    params = _params_with_grads(grads) + [nn.Parameter(np.zeros(2, np.float32))]  # one without grad
    grad_arrays = [p.grad for p in params[:2]]
    norm = nn.utils.clip_grad_norm(params, max_norm=1.0)
    assert norm == pytest.approx(5.0) and isinstance(norm, float)
    assert params[0].grad is grad_arrays[0]  # in place
    np.testing.assert_allclose(params[0].grad, [0.6, 0.0], rtol=1e-5)
    np.testing.assert_allclose(params[1].grad, [[0.8]], rtol=1e-5)
    assert params[0].grad.dtype == np.float32
    assert nn.utils.grad_norm(params) == pytest.approx(1.0, rel=1e-5)
    # below the limit: unchanged
    params = _params_with_grads(grads)
    assert nn.clip_grad_norm_(params, 10.0) == pytest.approx(5.0)
    np.testing.assert_array_equal(params[0].grad, grads[0])
    # inf norm, empty, errors
    assert nn.utils.clip_grad_norm(_params_with_grads(grads), 1.0, norm_type=math.inf) == 4.0
    assert nn.utils.clip_grad_norm([nn.Parameter(np.zeros(2, np.float32))], 1.0) == 0.0
    with pytest.raises(ValueError, match="max_norm"):
        nn.utils.clip_grad_norm(params, -1.0)
    with pytest.raises(TypeError, match="not a Tensor"):
        nn.utils.clip_grad_norm([np.zeros(2)], 1.0)
    nan_params = _params_with_grads([np.array([np.nan, 1.0])])
    assert math.isnan(nn.utils.clip_grad_norm(nan_params, 1.0))
    with pytest.raises(RuntimeError, match="NaN"):
        nn.utils.clip_grad_norm(nan_params, 1.0, error_if_nonfinite=True)


def test_clip_grad_norm_matches_concatenated_norm():
    rng = np.random.default_rng(0)
    grads = [rng.standard_normal(s) for s in [(3, 4), (5,), (2, 2, 2)]]
    params = _params_with_grads(grads)
    expected = np.linalg.norm(np.concatenate([g.ravel() for g in grads]))
    assert nn.utils.clip_grad_norm(params, 0.5) == pytest.approx(expected)
    total = np.linalg.norm(np.concatenate([p.grad.ravel() for p in params]))
    assert total == pytest.approx(0.5, rel=1e-5)
    assert nn.utils.grad_norm(_params_with_grads(grads), 3) == pytest.approx(
        np.sum(np.abs(np.concatenate([g.ravel() for g in grads])) ** 3) ** (1 / 3))
