"""Negative log-likelihood and cross-entropy with PyTorch's full signature.

Layouts (PyTorch's): input (N, C) with target (N,), input (C,) with target (), or
input (N, C, d1, ...) with target (N, d1, ...): the classes are on dim 1. As a convenience
for sequence models, input (..., C) with target input.shape[:-1] (classes last, GPT's
(B, T, V) logits with (B, T) targets) is accepted too when PyTorch's layout does not fit.

    nll_n = -w[t_n] * input[n, t_n]           (0 where t_n == ignore_index)
    mean  = sum_n nll_n / sum_n w[t_n]        (over targets that are not ignored)

cross_entropy(x, t) = nll_loss(log_softmax(x, dim=1), t), smoothed with label_smoothing e:

    loss_n = (1 - e) nll_n + e / C * sum_c (-w_c logp_nc)        (index targets)
    loss_n = -sum_c w_c ((1 - e) t_nc + e / C) logp_nc             (class-probability targets)

The common case (index targets, no weight, no smoothing) is the fused kernel of loss.py;
everything else composes log_softmax, the NLL node below and a few elementwise ops.
"""
from __future__ import annotations

import numpy as np

from ...autograd import Function
from ...ops import Transpose
from ...tensor import Tensor
from .activation import log_softmax
from .loss import REDUCTIONS, CrossEntropy
from ._util import as_float_tensor, as_index_array


class NLLLoss(Function):
    # loss_n = -w[t_n] x[n, t_n]  =>  dL/dx[n, c] = -w[t_n] g_n [c == t_n]  (g_n / total weight
    # for "mean"); x is (N, C) rows, t (N,), and ignored rows have weight 0
    def forward(self, x, target_weight, targets, reduction):
        rows = np.arange(x.shape[0])
        self.saved = (rows, targets, target_weight, reduction, float(target_weight.sum()))
        losses = -target_weight * x[rows, targets]  # (N,)
        return self._reduce(losses, reduction, self.saved[4], x.dtype)

    @staticmethod
    def _reduce(losses, reduction, total_weight, dtype):
        if reduction == "none":
            return losses.astype(dtype, copy=False)
        total = losses.sum(dtype=np.float64)
        if reduction == "mean":
            total = total / total_weight if total_weight else np.nan  # PyTorch: nan
        return np.asarray(total, dtype=dtype)

    def backward(self, g):
        rows, targets, target_weight, reduction, total_weight = self.saved
        x = self.parents[0]
        scale = g if reduction == "none" else float(g) / (total_weight if reduction == "mean" and total_weight else 1.0)
        grad = np.zeros(x.shape, dtype=x.dtype)
        grad[rows, targets] = -target_weight * scale
        return grad

    def backward_graph(self, g):
        rows, targets, target_weight, reduction, total_weight = self.saved
        onehot = np.zeros(self.parents[0].shape, dtype=self.parents[0].dtype)
        onehot[rows, targets] = -target_weight  # constant: d loss_n / d x[n, :]
        if reduction == "none":
            return g.reshape(-1, 1) * Tensor(onehot)
        if reduction == "mean" and total_weight:
            onehot /= total_weight
        return g * Tensor(onehot)


def _rows_layout(op: str, input: Tensor, target_shape: tuple, probabilities: bool):
    """How input maps to (N, C) rows: returns (rows (N, C) Tensor, class count, output shape
    of reduction 'none', 'first' or 'last' for where the classes are)."""
    shape = input.shape
    if input.ndim == 0:
        raise ValueError(f"{op}: input needs a class dimension, got a 0-d tensor")
    if input.ndim == 1:
        expected, where = (shape if probabilities else ()), "first"
    else:
        expected = shape if probabilities else (shape[0],) + shape[2:]
        where = "first"
        if target_shape != expected and not probabilities and target_shape == shape[:-1]:
            where = "last"  # classes on the last axis, e.g. GPT's (B, T, V) with (B, T)
            expected = shape[:-1]
    if tuple(target_shape) != tuple(expected):
        raise ValueError(
            f"{op}: input {shape} (classes on dim 1) needs target of shape {expected}, got "
            f"{tuple(target_shape)}" + ("" if probabilities else
                                       " (class indices; or give class probabilities of the input's shape)"))
    class_count = shape[0] if input.ndim == 1 else shape[1] if where == "first" else shape[-1]
    if input.ndim == 1:
        rows = input.reshape(1, class_count)
    elif input.ndim == 2:
        rows = input  # already (N, C)
    elif where == "last":
        rows = input.reshape(-1, class_count)
    else:
        order = (0,) + tuple(range(2, input.ndim)) + (1,)
        rows = Transpose.apply(input, axes=order).reshape(-1, class_count)  # (N * d1 * ..., C)
    return rows, class_count, tuple(expected) if not probabilities else (shape[:1] + shape[2:] if input.ndim > 1 else ())


def _check_reduction(op, reduction):
    if reduction not in REDUCTIONS:
        raise ValueError(f"{op}: reduction must be one of {REDUCTIONS}, got {reduction!r}")


def _class_weight(op, weight, class_count, dtype):
    if weight is None:
        return None
    w = np.asarray(weight.data if isinstance(weight, Tensor) else weight, dtype=dtype)
    if w.shape != (class_count,):
        raise ValueError(f"{op}: weight has shape {w.shape}, expected ({class_count},) (one per class)")
    return w


def _checked_targets(op, targets, ignore_index, class_count):
    """Flat (N,) targets, the counted mask, and targets safe to index with (0 where ignored)."""
    flat = targets.reshape(-1)
    counted = flat != ignore_index
    bad = counted & ((flat < 0) | (flat >= class_count))
    if bad.any():
        raise IndexError(f"{op}: target {int(flat[bad][0])} is out of range for {class_count} "
                         f"classes (valid: 0..{class_count - 1}, or ignore_index={ignore_index})")
    return counted, np.where(counted, flat, 0)


def nll_loss(input, target, weight=None, ignore_index: int = -100, reduction: str = "mean") -> Tensor:
    """-input[n, target[n]] (times weight[target[n]]), reduced; input holds log-probabilities."""
    _check_reduction("nll_loss", reduction)
    x = as_float_tensor(input, "nll_loss")
    targets = as_index_array(target, "nll_loss", "target")
    rows, class_count, out_shape = _rows_layout("nll_loss", x, targets.shape, False)
    counted, safe = _checked_targets("nll_loss", targets, ignore_index, class_count)
    w = _class_weight("nll_loss", weight, class_count, x.dtype)
    target_weight = (w[safe] if w is not None else np.ones(safe.shape, x.dtype)) * counted
    out = NLLLoss.apply(rows, target_weight=target_weight.astype(x.dtype), targets=safe, reduction=reduction)
    return out.reshape(out_shape) if reduction == "none" else out


def cross_entropy(input, target, weight=None, ignore_index: int = -100, reduction: str = "mean",
                  label_smoothing: float = 0.0) -> Tensor:
    """Cross-entropy of logits `input` against class indices or class probabilities `target`.

    Shapes as nll_loss (classes on dim 1; classes last accepted as said in the module
    docstring); probability targets have the input's shape. reduction "mean" divides by the
    total weight of the counted targets (index targets) or by the number of rows
    (probabilities); an all-ignored batch gives nan, as PyTorch. float32 stays float32.
    """
    _check_reduction("cross_entropy", reduction)
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"cross_entropy: label_smoothing must be in [0, 1], got {label_smoothing}")
    x = as_float_tensor(input, "cross_entropy")
    target_data = target.data if isinstance(target, Tensor) else np.asarray(target)
    probabilities = target_data.dtype.kind == "f"
    if not probabilities:
        targets = as_index_array(target_data, "cross_entropy", "target")
        rows, class_count, out_shape = _rows_layout("cross_entropy", x, targets.shape, False)
        counted, safe = _checked_targets("cross_entropy", targets, ignore_index, class_count)
        if weight is None and label_smoothing == 0.0:  # the fused kernel: one pass, one node
            loss = CrossEntropy.apply(rows, targets=targets.reshape(-1), ignore_index=ignore_index,
                                      reduction=reduction)
            return loss.reshape(out_shape) if reduction == "none" else loss
    else:
        rows, class_count, out_shape = _rows_layout("cross_entropy", x, target_data.shape, True)
    w = _class_weight("cross_entropy", weight, class_count, x.dtype)
    logp = log_softmax(rows, dim=1)  # (N, C)
    w_row = None if w is None else Tensor._wrap(w[None, :], False)  # (1, C)
    if probabilities:
        t = target if isinstance(target, Tensor) else Tensor(target_data.astype(x.dtype))
        t_rows, _, _ = _rows_layout("cross_entropy", t, target_data.shape, True)
        if label_smoothing:
            t_rows = t_rows * (1.0 - label_smoothing) + label_smoothing / class_count
        weighted = logp * t_rows if w_row is None else logp * t_rows * w_row
        losses = -weighted.sum(axis=1)  # (N,)
        if reduction == "none":
            return losses.reshape(out_shape)
        total = losses.sum()
        if reduction == "sum":
            return total
        return total / losses.shape[0] if losses.shape[0] else total * np.nan  # no rows: nan, as PyTorch
    target_weight = ((w[safe] if w is not None else np.ones(safe.shape, x.dtype)) * counted).astype(x.dtype)
    nll = NLLLoss.apply(logp, target_weight=target_weight, targets=safe, reduction="none")  # (N,)
    losses = nll
    if label_smoothing:
        all_classes = (logp if w_row is None else logp * w_row).sum(axis=1)  # (N,)
        smooth = all_classes * Tensor._wrap(counted.astype(x.dtype) * (-1.0 / class_count), False)
        losses = nll * (1.0 - label_smoothing) + smooth * label_smoothing
    if reduction == "none":
        return losses.reshape(out_shape)
    total = losses.sum()
    if reduction == "sum":
        return total
    total_weight = float(target_weight.sum())
    return total / total_weight if total_weight else total * np.nan
