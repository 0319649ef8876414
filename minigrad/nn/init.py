"""Weight initializers, filling a Tensor's array in place (PyTorch's `torch.nn.init`).

    init.kaiming_uniform_(linear.weight, a=math.sqrt(5))   # PyTorch's default for Linear

Random draws come from `generator` or `minigrad.random.default_generator()`. Values are drawn
in float64 and rounded to the tensor's dtype, so a float32 and a float64 model built from the
same seed hold the same numbers up to rounding (useful for gradient checks).
"""
from __future__ import annotations

import math

import numpy as np

from .. import random as _random
from ..tensor import Tensor


def _target(tensor) -> np.ndarray:
    if isinstance(tensor, Tensor):
        return tensor.data
    if isinstance(tensor, np.ndarray):
        return tensor
    raise TypeError(f"init: expected a Tensor or ndarray, got {type(tensor).__name__}")


def _generator(generator):
    return _random.default_generator() if generator is None else generator


def uniform_(tensor, a: float = 0.0, b: float = 1.0, generator=None):
    """Fill with U(a, b). Returns `tensor`."""
    if not a <= b:
        raise ValueError(f"uniform_: need a <= b, got a={a}, b={b}")
    array = _target(tensor)
    array[...] = _generator(generator).uniform(a, b, size=array.shape)
    return tensor


def normal_(tensor, mean: float = 0.0, std: float = 1.0, generator=None):
    """Fill with N(mean, std^2). Returns `tensor`."""
    if std < 0:
        raise ValueError(f"normal_: std must be >= 0, got {std}")
    array = _target(tensor)
    array[...] = _generator(generator).normal(mean, std, size=array.shape)
    return tensor


def constant_(tensor, value: float):
    _target(tensor).fill(value)
    return tensor


def zeros_(tensor):
    return constant_(tensor, 0)


def ones_(tensor):
    return constant_(tensor, 1)


def fan_in_and_fan_out(shape: tuple) -> tuple[int, int]:
    """(fan_in, fan_out) of a weight of `shape` = (out_features, in_features, *receptive)."""
    if len(shape) < 2:
        raise ValueError(f"fan in and fan out need at least 2 dimensions, shape is {tuple(shape)}")
    receptive = math.prod(shape[2:])
    return shape[1] * receptive, shape[0] * receptive


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """PyTorch's recommended gain: 1 for linear/conv/sigmoid, 5/3 tanh, sqrt(2) relu,
    sqrt(2 / (1 + slope^2)) leaky_relu (slope 0.01 by default), 3/4 selu."""
    linear = ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
              "conv_transpose3d", "sigmoid")
    if nonlinearity in linear:
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            slope = 0.01
        elif isinstance(param, bool) or not isinstance(param, (int, float)):
            raise ValueError(f"calculate_gain: negative_slope {param!r} is not a number")
        else:
            slope = float(param)
        return math.sqrt(2.0 / (1 + slope * slope))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"calculate_gain: unsupported nonlinearity {nonlinearity!r}")


def _fan(op: str, tensor, mode: str) -> int:
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"{op}: mode must be 'fan_in' or 'fan_out', got {mode!r}")
    fan_in, fan_out = fan_in_and_fan_out(_target(tensor).shape)
    return fan_in if mode == "fan_in" else fan_out


def kaiming_uniform_(tensor, a: float = 0.0, mode: str = "fan_in",
                     nonlinearity: str = "leaky_relu", generator=None):
    """Fill with U(-bound, bound), bound = gain * sqrt(3 / fan), as PyTorch.

    With a = sqrt(5) (PyTorch's Linear default) the bound is 1 / sqrt(fan_in).
    """
    fan = _fan("kaiming_uniform_", tensor, mode)
    if fan == 0:
        return tensor  # PyTorch warns and leaves a zero-element tensor alone
    bound = calculate_gain(nonlinearity, a) * math.sqrt(3.0 / fan)
    return uniform_(tensor, -bound, bound, generator=generator)


def xavier_uniform_(tensor, gain: float = 1.0, generator=None):  # Glorot & Bengio 2010
    """Fill with U(-b, b), b = gain * sqrt(6 / (fan_in + fan_out))."""
    fan_in, fan_out = fan_in_and_fan_out(_target(tensor).shape)
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform_(tensor, -bound, bound, generator=generator)


def xavier_normal_(tensor, gain: float = 1.0, generator=None):
    """Fill with N(0, std^2), std = gain * sqrt(2 / (fan_in + fan_out))."""
    fan_in, fan_out = fan_in_and_fan_out(_target(tensor).shape)
    return normal_(tensor, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)), generator=generator)


def kaiming_normal_(tensor, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu",
                    generator=None):
    """Fill with N(0, std^2), std = gain / sqrt(fan) (He et al. 2015), as PyTorch."""
    fan = _fan("kaiming_normal_", tensor, mode)
    if fan == 0:
        return tensor
    return normal_(tensor, 0.0, calculate_gain(nonlinearity, a) / math.sqrt(fan), generator=generator)


def trunc_normal_(tensor, mean: float = 0.0, std: float = 1.0, a: float = -2.0, b: float = 2.0,
                  generator=None):
    """Fill with N(mean, std^2) conditioned on [a, b] (absolute bounds, as PyTorch): values
    outside are drawn again until every one lies inside."""
    if not a < b:
        raise ValueError(f"trunc_normal_: need a < b, got a={a}, b={b}")
    array = _target(tensor)
    rng = _generator(generator)
    values = rng.normal(mean, std, size=array.shape)
    outside = (values < a) | (values > b)
    for _ in range(1000):
        if not outside.any():
            break
        values[outside] = rng.normal(mean, std, size=int(outside.sum()))
        outside = (values < a) | (values > b)
    else:
        raise ValueError(f"trunc_normal_: [a, b] = [{a}, {b}] holds almost none of N({mean}, {std}^2)")
    array[...] = values
    return tensor


def orthogonal_(tensor, gain: float = 1.0, generator=None):
    """Fill with a (semi-)orthogonal matrix times gain (Saxe et al. 2013): the tensor viewed as
    (shape[0], rest) has orthonormal rows or columns, from the QR of a Gaussian matrix."""
    array = _target(tensor)
    if array.ndim < 2:
        raise ValueError(f"orthogonal_: needs at least 2 dimensions, shape is {array.shape}")
    rows, cols = array.shape[0], array.size // array.shape[0]
    flat = _generator(generator).standard_normal((rows, cols))
    if rows < cols:
        flat = flat.T
    q, r = np.linalg.qr(flat)
    q *= np.sign(np.diag(r))  # a unique, uniformly distributed q
    if rows < cols:
        q = q.T
    array[...] = (q * gain).reshape(array.shape)
    return tensor


def eye_(tensor):
    """Fill a 2-d tensor with the identity (ones on the diagonal)."""
    array = _target(tensor)
    if array.ndim != 2:
        raise ValueError(f"eye_: needs a 2-d tensor, shape is {array.shape}")
    array[...] = np.eye(*array.shape)
    return tensor
