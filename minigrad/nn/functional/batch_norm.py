"""Batch normalization (Ioffe & Szegedy 2015) and group normalization (Wu & He 2018).

batch_norm normalizes each channel (dim 1) over the batch and every spatial position:

    training:  mean, var = statistics of x over (N, *spatial)   (biased var normalizes)
               running_mean = (1 - m) running_mean + m mean
               running_var  = (1 - m) running_var + m var * n / (n - 1)   (unbiased, as PyTorch)
    eval:      mean, var = running_mean, running_var (constants)
    y = (x - mean) / sqrt(var + eps) * weight + bias

group_norm splits the channels into G groups and normalizes each (sample, group) over its
channels and positions: layer norm's kernel on x viewed as (N, G, C/G * spatial), then a
per-channel scale and shift.
"""
from __future__ import annotations

import numpy as np

from ...autograd import Function
from ...tensor import Tensor
from .normalization import layer_norm
from ._util import as_float_tensor


def _channel_mean(a: np.ndarray, axes: tuple) -> np.ndarray:
    """mean of a (N, C, *) over `axes` (batch and positions), kept as (1, C, 1, ...); nan for an
    empty batch, without NumPy's mean-of-empty-slice warning (PyTorch gives none)."""
    if a.size == 0:
        return np.full((1, a.shape[1]) + (1,) * (a.ndim - 2), np.nan, a.dtype)
    return a.mean(axis=axes, keepdims=True)


class BatchNorm(Function):
    # training: with gh = g * weight, r = 1 / sqrt(var + eps), means over (N, *spatial):
    #   dL/dx = r (gh - mean(gh) - xhat mean(gh xhat));  eval (constant statistics): r gh
    #   dL/dweight = sum(g xhat),  dL/dbias = sum(g)

    def forward(self, x, *params, training, eps, has_weight, has_bias, mean=None, var=None):
        axes = (0,) + tuple(range(2, x.ndim))
        shape = (1, x.shape[1]) + (1,) * (x.ndim - 2)  # (1, C, 1, ...)
        if training:
            mean = _channel_mean(x, axes)
            centered = x - mean
            var = _channel_mean(centered * centered, axes)
            self.batch_stats = (mean.reshape(-1), var.reshape(-1))
        else:
            mean, var = mean.reshape(shape).astype(x.dtype), var.reshape(shape).astype(x.dtype)
            centered = x - mean
        rstd = 1.0 / np.sqrt(var + eps)
        xhat = centered * rstd
        params = list(params)
        weight = params.pop(0).reshape(shape) if has_weight else None
        y = xhat * weight if weight is not None else xhat.copy()
        if has_bias:
            y += params.pop(0).reshape(shape)
        self.saved = (xhat, rstd, weight, axes, training)
        self.has_weight, self.has_bias = has_weight, has_bias
        return y

    def backward(self, g):
        xhat, rstd, weight, axes, training = self.saved
        gh = g * weight if weight is not None else g
        grads = [None]
        if self.needs_input_grad[0]:
            if training:
                mean_gh = _channel_mean(gh, axes)
                mean_ghx = _channel_mean(gh * xhat, axes)
                grads[0] = (gh - mean_gh - xhat * mean_ghx) * rstd
            else:
                grads[0] = gh * rstd
        if self.has_weight:
            grads.append((g * xhat).sum(axis=axes) if self.needs_input_grad[1] else None)
        if self.has_bias:
            grads.append(g.sum(axis=axes) if self.needs_input_grad[-1] else None)
        return tuple(grads)


    @staticmethod
    def reference(x, *params, training, eps, has_weight, has_bias, mean=None, var=None):
        """The same normalization composed of primitive Tensor ops (for higher-order gradients)."""
        axes = (0,) + tuple(range(2, x.ndim))
        shape = (1, x.shape[1]) + (1,) * (x.ndim - 2)
        if training:
            centered = x - x.mean(axis=axes, keepdims=True)
            xhat = centered / ((centered * centered).mean(axis=axes, keepdims=True) + eps).sqrt()
        else:
            rstd = 1.0 / np.sqrt(var.reshape(shape).astype(x.dtype) + eps)
            xhat = (x - Tensor._wrap(mean.reshape(shape).astype(x.dtype), False)) * Tensor._wrap(rstd, False)
        params = list(params)
        if has_weight:
            xhat = xhat * params.pop(0).reshape(shape)
        if has_bias:
            xhat = xhat + params.pop(0).reshape(shape)
        return xhat


def _stat_array(op, name, value, channels):
    if value is None:
        return None
    array = value.data if isinstance(value, Tensor) else value
    if not isinstance(array, np.ndarray) or array.shape != (channels,):
        raise ValueError(f"{op}: {name} must be an array of shape ({channels},), got "
                         f"{getattr(array, 'shape', type(array).__name__)}")
    return array


def batch_norm(input, running_mean, running_var, weight=None, bias=None, training: bool = False,
               momentum: float = 0.1, eps: float = 1e-5) -> Tensor:
    """Normalize x (N, C, *) per channel. In training, the batch statistics are used and the
    running statistics (arrays of shape (C,), or None) are updated in place; in eval the
    running statistics are used. weight, bias: (C,) or None."""
    op = "batch_norm"
    x = as_float_tensor(input, op)
    if x.ndim < 2:
        raise ValueError(f"{op}: input must be (N, C, ...), got shape {x.shape}")
    channels = x.shape[1]
    running_mean = _stat_array(op, "running_mean", running_mean, channels)
    running_var = _stat_array(op, "running_var", running_var, channels)
    if not training and (running_mean is None or running_var is None):
        raise ValueError(f"{op}: eval mode (training=False) needs running_mean and running_var")
    count = x.numel() // max(channels, 1)
    if training and count == 1:  # (PyTorch's limit; an empty batch is fine, as there)
        raise ValueError(f"{op}: expected more than 1 value per channel when training, got input {x.shape}")
    params = []
    for name, p in (("weight", weight), ("bias", bias)):
        if p is not None:
            p = as_float_tensor(p, op, name)
            if p.shape != (channels,):
                raise ValueError(f"{op}: {name} has shape {p.shape}, expected ({channels},) for input {x.shape}")
            params.append(p)
    y = BatchNorm.apply(x, *params, training=bool(training), eps=float(eps), has_weight=weight is not None,
                        has_bias=bias is not None, mean=None if training else running_mean,
                        var=None if training else running_var)
    if training and running_mean is not None and count:  # an empty batch leaves them unchanged
        if y._ctx is not None:
            mean, var = y._ctx.batch_stats
        else:  # no graph recorded: the same statistics from the data
            axes = (0,) + tuple(range(2, x.ndim))
            mean, var = x.data.mean(axis=axes), x.data.var(axis=axes)
        running_mean *= 1.0 - momentum
        running_mean += momentum * mean
        if running_var is not None:
            running_var *= 1.0 - momentum
            running_var += momentum * var * (count / (count - 1))
    return y


def group_norm(input, num_groups: int, weight=None, bias=None, eps: float = 1e-5) -> Tensor:
    """Normalize x (N, C, *) over each group of C / num_groups channels (and all positions),
    then scale and shift per channel by weight, bias (C,)."""
    op = "group_norm"
    x = as_float_tensor(input, op)
    if x.ndim < 2:
        raise ValueError(f"{op}: input must be (N, C, ...), got shape {x.shape}")
    channels = x.shape[1]
    if isinstance(num_groups, bool) or not isinstance(num_groups, (int, np.integer)) or num_groups < 1 \
            or channels % num_groups:
        raise ValueError(f"{op}: num_groups={num_groups!r} must be a positive divisor of the {channels} "
                         f"channels of input {x.shape}")
    group_size = channels // int(num_groups) * int(np.prod(x.shape[2:]))  # spelled out: N may be 0
    grouped = x.reshape(x.shape[0], int(num_groups), group_size)  # (N, G, C/G * spatial)
    y = layer_norm(grouped, grouped.shape[-1:], eps=eps).reshape(x.shape)
    shape = (1, channels) + (1,) * (x.ndim - 2)
    for name, p in (("weight", weight), ("bias", bias)):
        if p is None:
            continue
        p = as_float_tensor(p, op, name)
        if p.shape != (channels,):
            raise ValueError(f"{op}: {name} has shape {p.shape}, expected ({channels},) for input {x.shape}")
        y = y * p.reshape(shape) if name == "weight" else y + p.reshape(shape)
    return y
