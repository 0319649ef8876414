"""Losses: cross-entropy fused with log-softmax over the classes, and mean squared error.

Cross-entropy of logits z (N, C) and target classes t (N,):

    loss_n = logsumexp(z_n) - z_n[t_n]          d loss_n / d z_n = softmax(z_n) - onehot(t_n)

Over GPT-2's 50,257 classes the (N, C) arrays dominate a training step, so the kernel makes
one pass over the logits in row blocks: the row max, exp, the row sum and, when a gradient
will be needed, softmax - onehot written straight into the one (N, C) buffer that backward
returns (already divided by the number of counted targets for reduction="mean", so the usual
`loss.backward()` with grad 1 costs no extra pass).

Softmax is shift-invariant, and exp(z) of float32 logits overflows only above 88: so each
block takes exp(z) as it is, and only a block in which a row's sum of exponentials falls
outside SUM_RANGE (below it, exponentials of the smaller logits would lose precision as
subnormal numbers; above it, an overflow, or 1 / sum would) is done again with the row max
subtracted first, the textbook way: logits within about +-45 never need it. Most
blocks skip the max pass and the subtraction pass, a third of the kernel's time over a
50,257-word vocabulary (measured, one thread: 2048 x 50257 logits, see the notes).
"""
from __future__ import annotations

import numpy as np

from ...autograd import Function, unbroadcast
from ...tensor import Tensor
from . import reference as ref
from ._util import as_float_tensor, as_index_array, for_row_blocks

REDUCTIONS = ("mean", "sum", "none")
SUM_RANGE = (1e-20, 1e20)  # a row whose sum of exp(z) falls outside is shifted by its max first


def _cross_entropy_rows(z, safe_targets, counted, row_scale, row_loss=None, grad=None):
    """One pass over logits z (N, C) in row blocks (threads split the rows).

    Writes row_loss[n] = logsumexp(z_n) - z_n[t_n] when row_loss is given, and
    grad[n] = row_scale * (softmax(z_n) - onehot(t_n)) (0 for rows not counted) when grad is
    given. grad may be z itself, the same array (the gradient then replaces the logits: one
    (N, C) array instead of two): each block's exponentials then go to a cache-sized
    scratch array, and the block's logits are read for the last time before its gradient
    is written.
    """
    n_rows, class_count = z.shape
    rows_per_block = max(1, (1 << 18) // max(1, class_count))  # ~1 MB of float32

    def block(lo, hi):
        zs = z[lo:hi]  # (rows, C)
        in_place = grad is None or grad is z  # then a (rows, C) scratch, in cache; else grad itself
        exps = np.empty_like(zs) if in_place else grad[lo:hi]
        with np.errstate(over="ignore", under="ignore"):  # an overflow is caught below
            np.exp(zs, out=exps)  # exp(z) itself, no shift: two passes fewer (module docstring)
            total = exps.sum(axis=1)  # (rows,)
        shift = 0.0
        if not np.all((total > SUM_RANGE[0]) & (total < SUM_RANGE[1])):  # overflow, underflow, nan:
            shift = zs.max(axis=1)  # (rows,)                   shift by the row max first
            np.subtract(zs, shift[:, None], out=exps)
            np.exp(exps, out=exps)
            total = exps.sum(axis=1)  # (rows,), >= 1
        rows, cols = np.arange(hi - lo), safe_targets[lo:hi]
        if row_loss is not None:  # logsumexp - z_t = log(total) + shift - z_t
            np.subtract(np.log(total) + shift, zs[rows, cols], out=row_loss[lo:hi])
        if grad is not None:  # the last read of zs is above: grad may be z
            out = grad[lo:hi]  # (rows, C)
            np.multiply(exps, (row_scale / total)[:, None].astype(exps.dtype, copy=False), out=out)  # softmax
            out[rows, cols] -= row_scale  # - onehot
            skip = ~counted[lo:hi]
            if skip.any():
                out[skip] = 0.0

    if z.size:
        for_row_blocks(n_rows, class_count, block, rows=rows_per_block)


def target_rows(targets: np.ndarray, ignore_index: int, reduction: str):
    """targets (...) -> (safe targets (N,), counted (N,) bool, how many count, row_scale):
    ignored rows get column 0 (a valid index) and do not count; row_scale = d loss / d loss_n
    (1 / count for "mean", else 1), folded into the gradient buffer so backward(1.0) is free."""
    t = targets.reshape(-1)  # (N,)
    counted = t != ignore_index  # (N,) rows that count
    n_counted = int(np.count_nonzero(counted))
    safe_t = np.where(counted, t, 0)  # (N,) a valid column even for ignored rows
    row_scale = 1.0 / n_counted if reduction == "mean" and n_counted else 1.0
    return safe_t, counted, n_counted, row_scale


def reduce_rows(row_loss: np.ndarray, counted, targets_shape, reduction: str, n_counted: int):
    """Per-row losses (N,) -> the loss: targets' shape for "none", else a sum (float64
    accumulator) or its mean over the counted rows (nan when none counts, as PyTorch)."""
    row_loss[~counted] = 0.0
    if reduction == "none":
        return row_loss.reshape(targets_shape)
    total_loss = row_loss.sum(dtype=np.float64)
    if reduction == "mean":
        total_loss = total_loss / n_counted if n_counted else np.nan  # PyTorch: nan
    return np.asarray(total_loss, dtype=row_loss.dtype)


class CrossEntropy(Function):
    # loss_n = log sum_c exp(z_nc) - z_n,t_n  =>  d loss_n / d z_nc = softmax(z_n)_c - [c == t_n]
    # (rows whose target is ignore_index contribute 0 and get gradient 0)
    reference = staticmethod(ref.cross_entropy)  # log_softmax, pick, average: in plain ops

    def forward(self, logits, targets, ignore_index=-100, reduction="mean"):
        class_count = logits.shape[-1]
        z = np.ascontiguousarray(logits).reshape(-1, class_count)  # (N, C)
        safe_t, counted, n_counted, row_scale = target_rows(targets, ignore_index, reduction)
        row_loss = np.empty(z.shape[0], dtype=z.dtype)  # (N,)
        grad = np.empty_like(z) if self.requires_grad else None  # (N, C), the only big buffer
        _cross_entropy_rows(z, safe_t, counted, row_scale, row_loss, grad)
        if grad is not None:
            self.grad_buffer = grad  # = row_scale * d loss_n / d z, until backward takes it
            self.saved = (safe_t, counted, row_scale, reduction, n_counted)
        return reduce_rows(row_loss, counted, targets.shape, reduction, n_counted)

    def backward(self, g):
        # dL/dz = g * d loss / d z: the buffer times g (per row for reduction "none")
        safe_t, counted, row_scale, reduction, n_counted = self.saved
        grad, self.grad_buffer = self.grad_buffer, None
        if grad is None:  # a second backward (retain_graph=True): recompute from the logits
            logits = self.parents[0].data
            z = np.ascontiguousarray(logits).reshape(-1, logits.shape[-1])  # (N, C)
            grad = np.empty_like(z)
            _cross_entropy_rows(z, safe_t, counted, row_scale, grad=grad)
        if reduction == "none":
            factor = np.asarray(g, dtype=grad.dtype).reshape(-1, 1)  # (N, 1)
        elif reduction == "mean" and n_counted == 0:
            factor = 0.0  # no counted target: the loss is nan, its gradient zero
        else:
            factor = float(g)
        if not (isinstance(factor, float) and factor == 1.0):  # the usual loss.backward(): free

            def block(lo, hi):
                grad[lo:hi] *= factor[lo:hi] if isinstance(factor, np.ndarray) else factor

            for_row_blocks(grad.shape[0], grad.shape[1], block)
        return grad.reshape(self.parents[0].shape)


def cross_entropy_last_axis(logits, targets, ignore_index: int = -100, reduction: str = "mean") -> Tensor:
    """Cross-entropy between `logits` (..., C) and integer class `targets` (...).
    Reference version: `reference.cross_entropy`.

    reduction: "mean" (over targets != ignore_index; nan if there are none, as PyTorch),
    "sum", or "none" (a loss per target, shape of `targets`, 0 where ignored).
    float32 logits give a float32 loss. Classes are on the last axis (GPT's (B, T, V)
    logits with (B, T) targets work as they are).
    """
    logits = as_float_tensor(logits, "cross_entropy", "logits")
    targets = as_index_array(targets, "cross_entropy", "targets")
    if reduction not in REDUCTIONS:
        raise ValueError(f"cross_entropy: reduction must be one of {REDUCTIONS}, got {reduction!r}")
    if logits.ndim == 0:
        raise ValueError("cross_entropy: logits need a class axis, got a 0-d tensor")
    if logits.shape[:-1] != targets.shape:
        raise ValueError(
            f"cross_entropy: logits {logits.shape} need targets of shape {logits.shape[:-1]}, "
            f"got targets {targets.shape}"
        )
    class_count = logits.shape[-1]
    counted = targets != ignore_index
    bad = counted & ((targets < 0) | (targets >= class_count))
    if bad.any():
        value = int(targets[bad].flat[0])
        raise IndexError(
            f"cross_entropy: target {value} is out of range for {class_count} classes "
            f"(valid targets are 0..{class_count - 1}, or ignore_index={ignore_index})"
        )
    return CrossEntropy.apply(logits, targets=targets, ignore_index=ignore_index, reduction=reduction)


class MSELoss(Function):
    # L = reduce((a - b)^2)  =>  dL/da = 2 (a - b) * dL/dloss_i,  dL/db = -dL/da
    reference = staticmethod(ref.mse_loss)

    def forward(self, a, b, reduction="mean"):
        diff = a - b
        self.reduction, self.a_shape, self.b_shape = reduction, a.shape, b.shape
        if self.requires_grad:
            self.diff = diff
        squared = diff * diff
        if reduction == "none":
            return squared
        total = squared.sum()
        if reduction == "mean":  # the mean of nothing is nan, as PyTorch
            return np.asarray(total / diff.size if diff.size else np.nan, dtype=diff.dtype)
        return np.asarray(total, dtype=diff.dtype)

    def backward(self, g):
        scale = 2.0 / max(self.diff.size, 1) if self.reduction == "mean" else 2.0
        ga = self.diff * (g * scale if self.reduction == "none" else float(g) * scale)
        gb = unbroadcast(-ga, self.b_shape) if self.needs_input_grad[1] else None
        return (unbroadcast(ga, self.a_shape) if self.needs_input_grad[0] else None), gb


def mse_loss(input, target, reduction: str = "mean") -> Tensor:
    """Mean (or summed, or elementwise) squared error; the shapes broadcast like NumPy.
    Reference version: `reference.mse_loss`."""
    if reduction not in REDUCTIONS:
        raise ValueError(f"mse_loss: reduction must be one of {REDUCTIONS}, got {reduction!r}")
    a, b = as_float_tensor(input, "mse_loss"), as_float_tensor(target, "mse_loss", "target")
    try:
        np.broadcast_shapes(a.shape, b.shape)
    except ValueError:
        raise ValueError(f"mse_loss: cannot broadcast {a.shape} with {b.shape}") from None
    return MSELoss.apply(a, b, reduction=reduction)
