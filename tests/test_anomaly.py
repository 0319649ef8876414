"""minigrad.autograd.detect_anomaly: the first backward that yields NaN or inf raises naming
the op, its output, and the file and line of the user's code that created it; off, nothing
is recorded."""
from __future__ import annotations

import inspect
import warnings

import numpy as np
import pytest

import minigrad as mg
from minigrad import Tensor, nn
from minigrad.autograd import anomaly, detect_anomaly, is_anomaly_enabled

HERE = __file__


def test_nan_names_the_op_the_output_and_the_line():
    warnings.simplefilter("ignore", RuntimeWarning)
    with detect_anomaly():
        x = Tensor(np.array([0.0, 4.0]), requires_grad=True)
        line = inspect.currentframe().f_lineno + 1
        root = x.sqrt()  # d sqrt(x) / dx = 1 / (2 sqrt(x)) is inf at 0, times 0 below: NaN
        loss = (root * 0.0).sum()
        with pytest.raises(RuntimeError) as error:
            loss.backward()
    message = str(error.value)
    assert "the backward of 'sqrt' (output shape (2,)) returned NaN in the gradient of its input 0" in message
    assert f"{HERE}:{line}" in message
    assert "root = x.sqrt()" in message  # the source line itself


def test_nan_inside_a_layer_points_to_the_line_that_called_the_layer():
    layer = nn.Linear(2, 2, dtype=np.float64, generator=np.random.default_rng(0))
    layer.weight.data[0, 1] = np.nan  # a corrupted weight: d(x W^T)/dx = g W holds NaN
    with detect_anomaly():
        x = Tensor(np.array([[1.0, 0.0]]), requires_grad=True)
        line = inspect.currentframe().f_lineno + 1
        out = layer(x)
        with pytest.raises(RuntimeError) as error:
            out.sum().backward()
    message = str(error.value)
    assert "the backward of 'linear' (output shape (1, 2)) returned NaN in the gradient of its input 0" in message
    assert f"{HERE}:{line}" in message and "out = layer(x)" in message  # not minigrad/nn/layers.py


def test_inf_is_named_too():
    warnings.simplefilter("ignore", RuntimeWarning)
    with detect_anomaly():
        x = Tensor(np.array([0.0, 1.0]), requires_grad=True)
        with pytest.raises(RuntimeError, match=r"the backward of 'log' \(output shape \(2,\)\) returned inf"):
            x.log().sum().backward()  # d log(x)/dx = 1/x: inf at 0


def test_off_by_default_records_nothing_and_lets_nan_through():
    warnings.simplefilter("ignore", RuntimeWarning)
    assert not is_anomaly_enabled() and not anomaly.node_annotators
    x = Tensor(np.array([0.0, 4.0]), requires_grad=True)
    y = x.sqrt()
    assert not hasattr(y._ctx, "created_at")
    (y * 0.0).sum().backward()
    assert np.isnan(x.grad[0])
    with detect_anomaly():
        with detect_anomaly():
            assert is_anomaly_enabled()
        assert is_anomaly_enabled() and len(anomaly.node_annotators) == 1
    assert not is_anomaly_enabled() and not anomaly.node_annotators


def test_finite_backward_under_detect_anomaly_matches_the_plain_one():
    x = Tensor(np.array([0.3, 1.7]), requires_grad=True)
    with detect_anomaly():
        (x.tanh() * x).sum().backward()
    expected = np.tanh(x.data) + x.data * (1 - np.tanh(x.data) ** 2)
    np.testing.assert_allclose(x.grad, expected)
