"""Losses that compare input and target element by element (PyTorch's formulas), each one node.

    l1_loss                          |x - t|
    smooth_l1_loss(beta)             0.5 d^2 / beta if |d| < beta else |d| - 0.5 beta,  d = x - t
    huber_loss(delta)                0.5 d^2 if |d| < delta else delta (|d| - 0.5 delta)
    binary_cross_entropy             -w (t log x + (1 - t) log(1 - x)),  logs clamped at -100
    binary_cross_entropy_with_logits w ((1 - t) softplus(x) + pos_weight t softplus(-x))
    kl_div                           t (log t - x)   (or exp(t) (t - x) with log_target=True)

input and target broadcast; reduction "mean" (over every element), "sum" or "none" (kl_div
also "batchmean": the sum divided by the batch size). The forward computes the loss and the
two local derivatives dl/dx, dl/dt together; backward scales them by the incoming gradient
(1/n for the mean) and sums broadcast axes back. weight and pos_weight are constants. Each
class also has `reference(x, t, **options)`: the same loss composed of primitive Tensor ops,
which higher-order gradients differentiate.
"""
from __future__ import annotations

import numpy as np

from ...autograd import Function, unbroadcast
from ...ops import maximum, where
from ...tensor import Tensor
from .pointwise import Softplus, _sigmoid, _softplus
from ._util import as_float_tensor

REDUCTIONS = ("mean", "sum", "none")


class PointwiseLoss(Function):
    """Subclasses define local(x, t, **options) -> (loss, dloss/dx, dloss/dt), arrays."""


    def forward(self, x, t, reduction="mean", **options):
        self.options = dict(options, reduction=reduction)
        loss, dx, dt = self.local(x, t, **options)
        self.shapes, self.reduction = (x.shape, t.shape), reduction
        self.batch = x.shape[0] if x.ndim else 1
        if self.requires_grad:
            self.local_grads = (dx, dt)
        dtype = np.result_type(x, t)
        if reduction == "none":
            return loss.astype(dtype, copy=False)
        total = loss.sum(dtype=np.float64)
        if reduction == "mean":
            total = total / loss.size if loss.size else np.nan
        elif reduction == "batchmean":
            total = total / self.batch if self.batch else np.nan  # an empty batch: nan, as PyTorch
        return np.asarray(total, dtype=dtype)

    def _scale(self, g, size):
        if self.reduction == "none":
            return g
        if self.reduction == "mean":
            return float(g) / max(size, 1)
        return float(g) / self.batch if self.reduction == "batchmean" else float(g)

    def backward(self, g):
        # dL/dx = dL/dloss_i * dloss_i/dx (summed over broadcast axes), likewise for t
        dx, dt = self.local_grads
        scale = self._scale(g, dx.size)
        return tuple(unbroadcast(d * scale, shape).astype(d.dtype, copy=False) if need else None
                     for d, shape, need in zip((dx, dt), self.shapes, self.needs_input_grad))


def reduce_loss(loss: Tensor, reduction: str, batch: int) -> Tensor:
    """The reductions of the reference versions, on Tensors."""
    if reduction == "none":
        return loss
    if reduction == "batchmean":
        return loss.sum() * (1.0 / batch)
    return loss.mean() if reduction == "mean" else loss.sum()


def _batch(x: Tensor) -> int:
    return x.shape[0] if x.ndim else 1


def _const(array, like: Tensor) -> Tensor:
    return Tensor._wrap(np.asarray(array, dtype=like.dtype), False)


def _broadcast_check(op, x, t):
    try:
        np.broadcast_shapes(x.shape, t.shape)
    except ValueError:
        raise ValueError(f"{op}: cannot broadcast input {x.shape} with target {t.shape}") from None


class L1Loss(PointwiseLoss):
    # l = |x - t|  =>  dl/dx = sign(x - t) (0 at 0, as PyTorch), dl/dt = -dl/dx
    def local(self, x, t):
        d = x - t
        s = np.sign(d)
        return np.abs(d), s, -s

    @staticmethod
    def reference(x, t, reduction):
        return reduce_loss((x - t).abs(), reduction, _batch(x))


class SmoothL1Loss(PointwiseLoss):
    # l = 0.5 d^2 / beta (|d| < beta) else |d| - 0.5 beta  =>  dl/dd = d / beta or sign(d);
    # huber (delta): delta * smooth_l1(beta=delta)
    def local(self, x, t, beta, factor):
        d = x - t
        a = np.abs(d)
        if beta == 0:
            return a * factor, np.sign(d) * factor, -np.sign(d) * factor
        small = a < beta
        loss = np.where(small, d * d * (0.5 / beta), a - 0.5 * beta) * factor
        slope = np.where(small, d * (1.0 / beta), np.sign(d)) * factor
        return loss, slope, -slope

    @staticmethod
    def reference(x, t, reduction, beta, factor):
        d = x - t
        if beta == 0:
            return reduce_loss(d.abs() * factor, reduction, _batch(x))
        small = np.abs(d.data) < beta  # which branch each element takes: a constant
        loss = where(small, d * d * (0.5 / beta), d.abs() - 0.5 * beta) * factor
        return reduce_loss(loss, reduction, _batch(x))


class BinaryCrossEntropy(PointwiseLoss):
    # l = -w (t log x + (1 - t) log(1 - x))  =>  dl/dx = w (x - t) / (x (1 - x)) (denominator
    # clamped at 1e-12, as PyTorch), dl/dt = -w (log x - log(1 - x)) (logs clamped at -100)
    def local(self, x, t, weight):
        with np.errstate(divide="ignore"):  # log(0) = -inf, clamped next
            log_x = np.maximum(np.log(x), -100.0)
            log_1mx = np.maximum(np.log1p(-x), -100.0)
        w = 1.0 if weight is None else weight
        loss = -(t * log_x + (1.0 - t) * log_1mx) * w
        dx = (x - t) / np.maximum(x * (1.0 - x), 1e-12) * w
        dt = (log_1mx - log_x) * w
        return loss, np.broadcast_to(dx, loss.shape), np.broadcast_to(dt, loss.shape)

    @staticmethod
    def reference(x, t, reduction, weight):
        loss = -(t * maximum(x.log(), -100.0) + (1.0 - t) * maximum((1.0 - x).log(), -100.0))
        return reduce_loss(loss if weight is None else loss * _const(weight, x), reduction, _batch(x))


class BCEWithLogits(PointwiseLoss):
    # l = w ((1 - t) softplus(x) + p t softplus(-x))   (log sigmoid(x) = -softplus(-x))
    # => dl/dx = w ((1 - t) s - p t (1 - s)) with s = sigmoid(x),
    #    dl/dt = w (p softplus(-x) - softplus(x))
    def local(self, x, t, weight, pos_weight):
        sp_pos, sp_neg, s = _softplus(x), _softplus(-x), _sigmoid(x)
        p = 1.0 if pos_weight is None else pos_weight
        w = 1.0 if weight is None else weight
        loss = ((1.0 - t) * sp_pos + p * t * sp_neg) * w
        dx = ((1.0 - t) * s - p * t * (1.0 - s)) * w
        dt = (p * sp_neg - sp_pos) * w
        return loss, np.broadcast_to(dx, loss.shape), np.broadcast_to(dt, loss.shape)

    @staticmethod
    def reference(x, t, reduction, weight, pos_weight):
        softplus = lambda z: Softplus.apply(z, beta=1.0, threshold=20.0)
        positive = t * softplus(-x)
        if pos_weight is not None:
            positive = positive * _const(pos_weight, x)
        loss = (1.0 - t) * softplus(x) + positive
        return reduce_loss(loss if weight is None else loss * _const(weight, x), reduction, _batch(x))


class KLDiv(PointwiseLoss):
    # l = t (log t - x)  (0 where t = 0)  =>  dl/dx = -t, dl/dt = log t + 1 - x
    # log_target: l = e^t (t - x)  =>  dl/dx = -e^t, dl/dt = e^t (t - x + 1)
    def local(self, x, t, log_target):
        if log_target:
            e = np.exp(t)
            return e * (t - x), np.broadcast_to(-e, np.broadcast_shapes(x.shape, t.shape)), e * (t - x + 1.0)
        positive = t > 0
        log_t = np.log(np.where(positive, t, 1.0))
        loss = np.where(positive, t * (log_t - x), 0.0 * x)
        dt = np.where(positive, log_t + 1.0 - x, 0.0)
        return loss, np.broadcast_to(-t, loss.shape), np.broadcast_to(dt, loss.shape)

    @staticmethod
    def reference(x, t, reduction, log_target):
        if log_target:
            return reduce_loss(t.exp() * (t - x), reduction, _batch(x))
        positive = t.data > 0  # 0 log 0 = 0: those elements are constant zeros
        log_t = where(positive, t, 1.0).log()
        return reduce_loss(where(positive, t * (log_t - x), 0.0), reduction, _batch(x))


def _prepare(op, input, target, reduction, extra=()):
    allowed = REDUCTIONS + tuple(extra)
    if reduction not in allowed:
        raise ValueError(f"{op}: reduction must be one of {allowed}, got {reduction!r}")
    x, t = as_float_tensor(input, op), as_float_tensor(target, op, "target")
    _broadcast_check(op, x, t)
    return x, t


def _constant(op, name, value, shape, dtype):
    if value is None:
        return None
    array = np.asarray(value.data if isinstance(value, Tensor) else value, dtype=dtype)
    try:
        np.broadcast_shapes(array.shape, shape)
    except ValueError:
        raise ValueError(f"{op}: {name} of shape {array.shape} does not broadcast with {shape}") from None
    return array


def l1_loss(input, target, reduction: str = "mean") -> Tensor:
    """Mean (sum, elementwise) absolute error."""
    x, t = _prepare("l1_loss", input, target, reduction)
    return L1Loss.apply(x, t, reduction=reduction)


def smooth_l1_loss(input, target, reduction: str = "mean", beta: float = 1.0) -> Tensor:
    """Quadratic below |x - t| = beta, linear above (Girshick 2015); beta=0 is l1_loss."""
    if beta < 0:
        raise ValueError(f"smooth_l1_loss: beta must be >= 0, got {beta}")
    x, t = _prepare("smooth_l1_loss", input, target, reduction)
    return SmoothL1Loss.apply(x, t, reduction=reduction, beta=float(beta), factor=1.0)


def huber_loss(input, target, reduction: str = "mean", delta: float = 1.0) -> Tensor:
    """0.5 d^2 below |d| = delta, delta (|d| - 0.5 delta) above (= delta * smooth_l1(beta=delta))."""
    if not delta > 0:
        raise ValueError(f"huber_loss: delta must be > 0, got {delta}")
    x, t = _prepare("huber_loss", input, target, reduction)
    return SmoothL1Loss.apply(x, t, reduction=reduction, beta=float(delta), factor=float(delta))


def binary_cross_entropy(input, target, weight=None, reduction: str = "mean") -> Tensor:
    """BCE of probabilities `input` in [0, 1] against targets in [0, 1]."""
    x, t = _prepare("binary_cross_entropy", input, target, reduction)
    if x.shape != t.shape:
        raise ValueError(f"binary_cross_entropy: target {t.shape} must have the input's shape {x.shape}")
    if x.data.size and (x.data.min() < 0 or x.data.max() > 1):
        raise ValueError("binary_cross_entropy: input values must be in [0, 1] (probabilities); "
                         "for logits use binary_cross_entropy_with_logits")
    w = _constant("binary_cross_entropy", "weight", weight, x.shape, x.dtype)
    return BinaryCrossEntropy.apply(x, t, reduction=reduction, weight=w)


def binary_cross_entropy_with_logits(input, target, weight=None, reduction: str = "mean",
                                     pos_weight=None) -> Tensor:
    """sigmoid + BCE in one stable node; pos_weight (broadcast over the last axis, e.g. (C,))
    weighs the positive term."""
    op = "binary_cross_entropy_with_logits"
    x, t = _prepare(op, input, target, reduction)
    if x.shape != t.shape:
        raise ValueError(f"{op}: target {t.shape} must have the input's shape {x.shape}")
    w = _constant(op, "weight", weight, x.shape, x.dtype)
    p = _constant(op, "pos_weight", pos_weight, x.shape, x.dtype)
    return BCEWithLogits.apply(x, t, reduction=reduction, weight=w, pos_weight=p)


def kl_div(input, target, reduction: str = "mean", log_target: bool = False) -> Tensor:
    """KL(target || q) with input = log q: sum of t (log t - input). PyTorch's "mean" divides by
    the element count; "batchmean" (the true KL divergence per sample) by input.shape[0]."""
    x, t = _prepare("kl_div", input, target, reduction, extra=("batchmean",))
    return KLDiv.apply(x, t, reduction=reduction, log_target=bool(log_target))
