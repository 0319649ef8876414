"""Elementwise activations (PyTorch's `torch.nn.functional` names, defaults and kink rules).

Each is one graph node: the forward computes y = f(x) and, when a gradient will be needed,
the slope s = dy/dx at the same time (x and the intermediate values are at hand); the
backward is dL/dx = g * s. `backward_graph` (used for higher-order gradients) writes the same
slope with Tensor ops on the input, so it can be differentiated again; masks of which branch
an element took are constants there. Constants are Python floats, so float32 stays float32.

At a kink the derivative is PyTorch's: leaky_relu/elu/celu/selu take the x <= 0 branch at 0;
hardtanh, relu6 and hardsigmoid have slope 0 at their corners; hardswish uses (2x + 3)/6 on
[-3, 3].
"""
from __future__ import annotations

import math

import numpy as np

from ...autograd import Function
from ...ops import where
from ...tensor import Tensor
from ...ops.special import erf_array
from ._util import as_float_tensor

SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946
INV_SQRT2 = 1.0 / math.sqrt(2.0)
INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


def _const(array: np.ndarray, like: Tensor) -> Tensor:
    """A constant Tensor (no graph) of `like`'s dtype: masks and fixed slopes."""
    return Tensor._wrap(np.asarray(array, dtype=like.dtype), False)


class Pointwise(Function):
    """y = f(x) with slope dy/dx; subclasses define compute(x, **options) -> (y, slope) and
    slope_graph(x: Tensor, **options) -> Tensor."""


    def forward(self, x, **options):
        self.options = options
        y, slope = self.compute(x, **options)
        if self.requires_grad:
            self.slope = slope
        return y

    def backward(self, g):
        return g * self.slope

    def backward_graph(self, g):
        return g * self.slope_graph(self.parents[0], **self.options)


class LeakyRelu(Pointwise):
    # y = x (x > 0), a x (x <= 0)  =>  dy/dx = 1 or a
    def compute(self, x, negative_slope):
        positive = x > 0
        return np.where(positive, x, x * negative_slope), np.where(positive, 1.0, negative_slope).astype(x.dtype)

    def slope_graph(self, x, negative_slope):
        return _const(np.where(x.data > 0, 1.0, negative_slope), x)


class Elu(Pointwise):
    # y = x (x > 0), alpha (exp(x / ia) - 1) (x <= 0), ia = 1 for elu, alpha for celu
    # => dy/dx = 1, or (alpha / ia) exp(x / ia); times `scale` for selu
    def compute(self, x, alpha, input_scale, scale):
        positive = x > 0
        e = np.exp(np.minimum(x, 0.0) * (1.0 / input_scale))
        y = np.where(positive, x, (e - 1.0) * alpha)
        slope = np.where(positive, 1.0, e * (alpha / input_scale))
        if scale != 1.0:
            y, slope = y * scale, slope * scale
        return y.astype(x.dtype, copy=False), slope.astype(x.dtype, copy=False)

    def slope_graph(self, x, alpha, input_scale, scale):
        negative = (x * (1.0 / input_scale)).exp() * (alpha * scale / input_scale)
        return where(x.data > 0, _const(scale, x), negative)


class Gelu(Pointwise):
    # y = x Phi(x), Phi(x) = (1 + erf(x / sqrt 2)) / 2  =>  dy/dx = Phi(x) + x phi(x),
    # phi(x) = exp(-x^2 / 2) / sqrt(2 pi)   (the exact GELU; the tanh one is activation.GELU)
    def compute(self, x):
        cdf = (erf_array(x * INV_SQRT2) + 1.0) * 0.5
        slope = cdf + x * np.exp(x * x * -0.5) * INV_SQRT_2PI
        return x * cdf, slope

    def slope_graph(self, x):
        pdf = (x * x * -0.5).exp() * INV_SQRT_2PI
        # Phi's own derivative is phi: a node whose backward is g * phi keeps it differentiable
        return NormalCdf.apply(x) + x * pdf


class NormalCdf(Pointwise):
    # Phi(x) = (1 + erf(x / sqrt 2)) / 2  =>  dPhi/dx = phi(x) = exp(-x^2/2) / sqrt(2 pi)
    def compute(self, x):
        return (erf_array(x * INV_SQRT2) + 1.0) * 0.5, np.exp(x * x * -0.5) * INV_SQRT_2PI

    def slope_graph(self, x):
        return (x * x * -0.5).exp() * INV_SQRT_2PI


class Silu(Pointwise):
    # y = x s, s = sigmoid(x)  =>  dy/dx = s + x s (1 - s) = s (1 + x (1 - s))
    def compute(self, x):
        s = _sigmoid(x)
        return x * s, s * (1.0 + x * (1.0 - s))

    def slope_graph(self, x):
        s = x.sigmoid()
        return s * (x * (1.0 - s) + 1.0)


class Mish(Pointwise):
    # y = x t, t = tanh(softplus(x))  =>  dy/dx = t + x (1 - t^2) sigmoid(x)
    def compute(self, x):
        t = np.tanh(_softplus(x))
        return x * t, t + x * (1.0 - t * t) * _sigmoid(x)

    def slope_graph(self, x):
        t = Softplus.apply(x, beta=1.0, threshold=20.0).tanh()
        return t + x * (1.0 - t * t) * x.sigmoid()


class Softplus(Pointwise):
    # y = log(1 + exp(b x)) / b  (y = x where b x > threshold)  =>  dy/dx = sigmoid(b x) (or 1)
    def compute(self, x, beta, threshold):
        bx = x * beta
        linear = bx > threshold
        y = np.where(linear, x, _softplus(bx) * (1.0 / beta))
        return y.astype(x.dtype, copy=False), np.where(linear, 1.0, _sigmoid(bx)).astype(x.dtype)

    def slope_graph(self, x, beta, threshold):
        return where((x.data * beta) > threshold, _const(1.0, x), (x * beta).sigmoid())


class Softsign(Pointwise):
    # y = x / (1 + |x|)  =>  dy/dx = 1 / (1 + |x|)^2
    def compute(self, x):
        d = np.abs(x) + 1.0
        return x / d, 1.0 / (d * d)

    def slope_graph(self, x):
        d = x.abs() + 1.0
        return 1.0 / (d * d)


class Hardtanh(Pointwise):
    # y = clamp(x, lo, hi)  =>  dy/dx = 1 on (lo, hi), 0 outside and at lo and hi (PyTorch)
    def compute(self, x, min_val, max_val):
        inside = (x > min_val) & (x < max_val)
        return np.clip(x, min_val, max_val).astype(x.dtype, copy=False), inside.astype(x.dtype)

    def slope_graph(self, x, min_val, max_val):
        return _const((x.data > min_val) & (x.data < max_val), x)


class Hardsigmoid(Pointwise):
    # y = clamp(x / 6 + 1/2, 0, 1)  =>  dy/dx = 1/6 on (-3, 3), else 0
    def compute(self, x):
        inside = (x > -3.0) & (x < 3.0)
        return np.clip(x * (1.0 / 6.0) + 0.5, 0.0, 1.0).astype(x.dtype, copy=False), inside * x.dtype.type(1.0 / 6.0)

    def slope_graph(self, x):
        return _const(((x.data > -3.0) & (x.data < 3.0)) / 6.0, x)


class Hardswish(Pointwise):
    # y = x clamp(x + 3, 0, 6) / 6  =>  dy/dx = 0 (x < -3), (2x + 3)/6 (-3 <= x <= 3), 1 (x > 3)
    def compute(self, x):
        y = x * np.clip(x + 3.0, 0.0, 6.0) * (1.0 / 6.0)
        slope = np.where(x < -3.0, 0.0, np.where(x <= 3.0, x * (1.0 / 3.0) + 0.5, 1.0))
        return y.astype(x.dtype, copy=False), slope.astype(x.dtype, copy=False)

    def slope_graph(self, x):
        middle = _const((x.data >= -3.0) & (x.data <= 3.0), x)
        return middle * (x * (1.0 / 3.0) + 0.5) + _const(x.data > 3.0, x)


class LogSigmoid(Pointwise):
    # y = log sigmoid(x) = min(x, 0) - log(1 + exp(-|x|))  =>  dy/dx = 1 - sigmoid(x)
    def compute(self, x):
        return np.minimum(x, 0.0) - np.log1p(np.exp(-np.abs(x))), _sigmoid(-x)

    def slope_graph(self, x):
        return (-x).sigmoid()


def _sigmoid(x: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-x)) without overflow: exp of -|x| only."""
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e)).astype(x.dtype, copy=False)


def _softplus(x: np.ndarray) -> np.ndarray:
    """log(1 + exp(x)) = max(x, 0) + log1p(exp(-|x|)), stable for any x."""
    return np.maximum(x, 0.0) + np.log1p(np.exp(-np.abs(x)))


# ---------------------------------------------------------------- public functions
def _number(op: str, name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{op}: {name} must be a number, got {value!r}")
    return float(value)


def leaky_relu(input, negative_slope: float = 0.01, inplace: bool = False) -> Tensor:
    """x for x > 0, negative_slope * x otherwise."""
    slope = _number("leaky_relu", "negative_slope", negative_slope)
    return LeakyRelu.apply(as_float_tensor(input, "leaky_relu"), negative_slope=slope)


def elu(input, alpha: float = 1.0, inplace: bool = False) -> Tensor:
    """x for x > 0, alpha (exp(x) - 1) otherwise."""
    alpha = _number("elu", "alpha", alpha)
    return Elu.apply(as_float_tensor(input, "elu"), alpha=alpha, input_scale=1.0, scale=1.0)


def selu(input, inplace: bool = False) -> Tensor:
    """scale * elu(x, alpha) with Klambauer et al.'s alpha = 1.6733 and scale = 1.0507."""
    return Elu.apply(as_float_tensor(input, "selu"), alpha=SELU_ALPHA, input_scale=1.0, scale=SELU_SCALE)


def celu(input, alpha: float = 1.0, inplace: bool = False) -> Tensor:
    """max(0, x) + min(0, alpha (exp(x / alpha) - 1))."""
    alpha = _number("celu", "alpha", alpha)
    if alpha == 0:
        raise ValueError("celu: alpha must not be 0 (it divides x)")
    return Elu.apply(as_float_tensor(input, "celu"), alpha=alpha, input_scale=alpha, scale=1.0)


def silu(input, inplace: bool = False) -> Tensor:
    """x * sigmoid(x) (also called swish)."""
    return Silu.apply(as_float_tensor(input, "silu"))


def mish(input, inplace: bool = False) -> Tensor:
    """x * tanh(softplus(x)) (Misra 2019)."""
    return Mish.apply(as_float_tensor(input, "mish"))


def softplus(input, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
    """log(1 + exp(beta x)) / beta, and x itself where beta x > threshold."""
    beta = _number("softplus", "beta", beta)
    if beta == 0:
        raise ValueError("softplus: beta must not be 0 (it divides the result)")
    return Softplus.apply(as_float_tensor(input, "softplus"), beta=beta,
                          threshold=_number("softplus", "threshold", threshold))


def softsign(input) -> Tensor:
    """x / (1 + |x|)."""
    return Softsign.apply(as_float_tensor(input, "softsign"))


def hardtanh(input, min_val: float = -1.0, max_val: float = 1.0, inplace: bool = False) -> Tensor:
    """clamp(x, min_val, max_val); slope 1 strictly inside, 0 elsewhere."""
    lo, hi = _number("hardtanh", "min_val", min_val), _number("hardtanh", "max_val", max_val)
    if lo > hi:
        raise ValueError(f"hardtanh: min_val ({lo}) must not exceed max_val ({hi})")
    return Hardtanh.apply(as_float_tensor(input, "hardtanh"), min_val=lo, max_val=hi)


def relu6(input, inplace: bool = False) -> Tensor:
    """min(max(x, 0), 6) = hardtanh(x, 0, 6)."""
    return Hardtanh.apply(as_float_tensor(input, "relu6"), min_val=0.0, max_val=6.0)


def hardsigmoid(input, inplace: bool = False) -> Tensor:
    """relu6(x + 3) / 6."""
    return Hardsigmoid.apply(as_float_tensor(input, "hardsigmoid"))


def hardswish(input, inplace: bool = False) -> Tensor:
    """x * relu6(x + 3) / 6 (Howard et al. 2019)."""
    return Hardswish.apply(as_float_tensor(input, "hardswish"))


def logsigmoid(input) -> Tensor:
    """log(sigmoid(x)), stable for large |x|."""
    return LogSigmoid.apply(as_float_tensor(input, "logsigmoid"))


def gelu_exact(input) -> Tensor:
    """x * Phi(x) with the normal CDF Phi (PyTorch's gelu(approximate='none'))."""
    return Gelu.apply(as_float_tensor(input, "gelu"))
