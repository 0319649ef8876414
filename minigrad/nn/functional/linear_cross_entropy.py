"""A language model's output head fused with its cross-entropy loss, in row chunks.

For hidden states x (N, C), the head's weight W (V, C) (and bias b (V,)) and targets t (N,):

    z = x W^T + b                                  logits (N, V)
    loss_n = logsumexp(z_n) - z_n[t_n]             d loss_n / d z_n = softmax(z_n) - onehot(t_n)

which is `cross_entropy(linear(x, W, b), t)` (the reference below), computed without ever
holding the whole (N, V) logits: over GPT-2's 50,257 words they are the largest arrays of a
training step (824 MB at context 1024 and batch 4, and cross-entropy keeps as much again for
its gradient). The rows go in chunks of about CHUNK_BYTES of logits. When a gradient will be
needed, each chunk's dz = row_scale * (softmax - onehot) (the fused kernel of loss.py, which
writes it over the logits) is turned at once into the chunk's share of the three gradients
of the linear map:

    dL/dx = dz W,    dL/dW = sum over chunks of dz^T x,    dL/db = sum over chunks of dz

so forward leaves dx (N, C), dW (V, C) and db behind, and backward only multiplies them by
the incoming scalar gradient (nothing, for the usual loss.backward()). The FLOPs are those of
the unfused head (one GEMM forward, two backward), nothing is recomputed, and the memory is
one chunk. With more than one thread, each product runs in pieces on minigrad's threads,
one BLAS thread each (_run_gemms says why). Reduction "none" gets a gradient per row in
backward, known only then, so forward keeps nothing but the losses and backward runs the
chunks again (the forward GEMM twice); so does a second backward through a retained graph.
Under no_grad only the loss is computed.
"""
from __future__ import annotations

import numpy as np

from ...autograd import Function
from ...runtime.blas import single_blas_thread
from ...runtime.threads import get_threads, run_parallel
from ...tensor import Tensor
from . import reference as ref
from ._util import as_float_tensor, as_index_array, for_row_blocks
from .loss import REDUCTIONS, _cross_entropy_rows, reduce_rows, target_rows

CHUNK_BYTES = 256 << 20  # logits per chunk (their gradient replaces them): 1,335 rows of 50,257
ACCUMULATE_BYTES = 4 << 20  # dW += dz^T x in slabs of vocabulary rows of this size (cache-sized)
PIECES_PER_THREAD = 2  # each GEMM in this many pieces per thread: a core that another process
#                        holds up leaves its pieces to the others


def reference(x: Tensor, weight: Tensor, *bias: Tensor, targets, ignore_index: int = -100,
              reduction: str = "mean") -> Tensor:
    """cross_entropy(linear(x, W, b), targets) in plain ops: x (..., C), W (V, C), targets (...)."""
    logits = ref.linear(x, weight, bias[0] if bias else None)  # (..., V)
    return ref.cross_entropy(logits, targets, ignore_index, reduction)


def chunk_rows(n_rows: int, vocab: int, itemsize: int) -> int:
    """Rows per chunk: about CHUNK_BYTES of logits, the rows split evenly over the chunks."""
    per_chunk = max(1, CHUNK_BYTES // max(1, vocab * itemsize))
    n_chunks = -(-n_rows // per_chunk) if n_rows else 1
    return max(1, -(-n_rows // n_chunks))


def _spans(n: int, parts: int) -> list:
    """[(lo, hi)] splitting range(n) into `parts` near-equal, non-empty spans."""
    bounds = [n * i // parts for i in range(parts + 1)]
    return [(lo, hi) for lo, hi in zip(bounds, bounds[1:]) if hi > lo]


def _run_gemms(tasks: list) -> None:
    """Run GEMM tasks on minigrad's threads, one BLAS thread each (inline with one thread).

    The head's products are split by hand rather than by OpenBLAS: dx = dz W sums over the
    50,257 words, and OpenBLAS splits a product over its output only, its threads meeting
    once per block of that sum; measured (2 threads, 512 x 50257 @ 50257 x 768, other
    processes running): 45 GFLOP/s and 1.8x the CPU time of the hand split.
    """
    if get_threads() <= 1 or len(tasks) <= 1:
        for task in tasks:
            task()
        return
    with single_blas_thread():
        run_parallel(tasks)


def _head_chunks(x2, weight, bias, safe_t, counted, row_scale, row_loss=None, wants=(False,) * 3,
                 row_factor=None):
    """Over chunks of the rows of x2 (N, C): the logits, row_loss[n] (when given) and, for each
    True in wants = (dx, dW, db), that gradient of sum_n row_scale * row_factor[n] * loss_n
    (row_factor (N,) or None for 1). Returns (dx (N, C), dW (V, C), db (V,)), None where not wanted.

    Each product is split into pieces that run on minigrad's threads (see _run_gemms): the
    logits by vocabulary columns, dx by vocabulary (partial sums added in a fixed order),
    dW by vocabulary rows; with one thread, each is one BLAS call.
    """
    n_rows, width, vocab = x2.shape[0], x2.shape[1], weight.shape[0]
    dtype = np.result_type(x2, weight)
    rows = chunk_rows(n_rows, vocab, dtype.itemsize)
    any_grad = any(wants)
    parts = 1 if get_threads() <= 1 else get_threads() * PIECES_PER_THREAD
    vocab_spans = _spans(vocab, parts)
    logits = np.empty((min(rows, n_rows), vocab), dtype=dtype)  # (R, V), reused by every chunk
    dx = np.empty(x2.shape, dtype=dtype) if wants[0] else None
    dx_parts = np.empty((len(vocab_spans),) + logits.shape[:1] + (width,), dtype=dtype) \
        if wants[0] and len(vocab_spans) > 1 else None          # (pieces, R, C)
    dw = np.empty(weight.shape, dtype=dtype) if wants[1] else None
    db = np.zeros(vocab, dtype=dtype) if len(wants) > 2 and wants[2] else None
    slab = max(1, ACCUMULATE_BYTES // max(1, width * dtype.itemsize))  # vocabulary rows
    for lo in range(0, n_rows, rows):
        hi = min(lo + rows, n_rows)
        xs, z = x2[lo:hi], logits[: hi - lo]          # (r, C), (r, V)
        _run_gemms([lambda a=a, b=b: np.matmul(xs, weight[a:b].T, out=z[:, a:b])  # the head's GEMM
                    for a, b in vocab_spans])
        if bias is not None:
            for_row_blocks(z.shape[0], vocab, lambda a, b: np.add(z[a:b], bias, out=z[a:b]))
        dz = z if any_grad else None  # (r, V): the gradient replaces the logits
        _cross_entropy_rows(z, safe_t[lo:hi], counted[lo:hi], row_scale,
                            None if row_loss is None else row_loss[lo:hi], dz)
        if not any_grad:
            continue
        if row_factor is not None:  # reduction "none": the gradient of each row's loss
            for_row_blocks(dz.shape[0], vocab, lambda a, b: np.multiply(
                dz[a:b], row_factor[lo + a:lo + b, None], out=dz[a:b]))
        if dx is not None and dx_parts is None:
            np.matmul(dz, weight, out=dx[lo:hi])      # (r, V) @ (V, C)
        elif dx is not None:  # dz W = sum over vocabulary pieces k of dz[:, k] W[k]
            part = dx_parts[:, : hi - lo]             # (pieces, r, C)
            _run_gemms([lambda k=k, a=a, b=b: np.matmul(dz[:, a:b], weight[a:b], out=part[k])
                        for k, (a, b) in enumerate(vocab_spans)])
            np.sum(part, axis=0, out=dx[lo:hi])
        if dw is not None and lo == 0:  # (V, r) @ (r, C), the first chunk
            _run_gemms([lambda a=a, b=b: np.matmul(dz[:, a:b].T, xs, out=dw[a:b])
                        for a, b in vocab_spans])
        elif dw is not None:  # add the chunk's dz^T x slab by slab (each slab's product stays in cache)

            def accumulate(a, b):
                dw[a:b] += np.matmul(dz[:, a:b].T, xs)  # (b - a, C)

            _run_gemms([lambda a=a: accumulate(a, min(a + slab, vocab)) for a in range(0, vocab, slab)])
        if db is not None:
            db += dz.sum(axis=0)
    if dw is not None and n_rows == 0:
        dw[...] = 0.0
    return dx, dw, db


class LinearCrossEntropy(Function):
    # z = x W^T + b, loss_n = logsumexp(z_n) - z_n[t_n]; with dz = d loss / d z = row_scale *
    # (softmax(z) - onehot(t)): dL/dx = dz W, dL/dW = dz^T x, dL/db = column sums of dz (times g)
    reference = staticmethod(reference)  # linear, then cross_entropy: in plain ops

    def forward(self, x, weight, *bias, targets, ignore_index=-100, reduction="mean"):
        x2 = x.reshape(-1, weight.shape[1])  # (N, C); a view when x is contiguous
        safe_t, counted, n_counted, row_scale = target_rows(targets, ignore_index, reduction)
        row_loss = np.empty(x2.shape[0], dtype=np.result_type(x, weight))  # (N,)
        self.grads = None
        b = bias[0] if bias else None
        if self.requires_grad and reduction != "none":  # the gradients at once, one chunk held
            self.grads = _head_chunks(x2, weight, b, safe_t, counted, row_scale, row_loss,
                                      self.needs_input_grad)
        else:
            _head_chunks(x2, weight, b, safe_t, counted, row_scale, row_loss)
        if self.requires_grad:
            self.saved = (x2, safe_t, counted, row_scale, reduction, n_counted)
        return reduce_rows(row_loss, counted, targets.shape, reduction, n_counted)

    def backward(self, g):
        x2, safe_t, counted, row_scale, reduction, n_counted = self.saved
        grads, self.grads = self.grads, None
        if reduction == "none":
            factor, row_factor = None, np.asarray(g, dtype=x2.dtype).reshape(-1)  # (N,) dL/dloss_n
        else:  # no counted target under "mean": the loss is nan, its gradient zero
            factor = 0.0 if reduction == "mean" and n_counted == 0 else float(g)
            row_factor = None if factor == 1.0 else np.full(x2.shape[0], factor, dtype=x2.dtype)
        if grads is None:  # reduction "none", or a second backward: the chunks once more
            weight, bias = self.parents[1].data, self.parents[2].data if len(self.parents) > 2 else None
            grads = _head_chunks(x2, weight, bias, safe_t, counted, row_scale,
                                 wants=self.needs_input_grad, row_factor=row_factor)
        elif factor != 1.0:  # the usual loss.backward() (g = 1) skips this
            for grad in grads:
                if grad is not None:
                    grad *= factor
        dx, dw, db = grads
        dx = None if dx is None else dx.reshape(self.parents[0].shape)
        return (dx, dw) if len(self.parents) == 2 else (dx, dw, db)


def linear_cross_entropy(input, weight, bias, target, ignore_index: int = -100,
                         reduction: str = "mean") -> Tensor:
    """cross_entropy(linear(input, weight, bias), target) without the whole logits in memory.

    input (..., C) hidden states, weight (V, C), bias (V,) or None, target (...) integer
    classes. reduction "mean" (over targets != ignore_index; nan if there are none, as
    PyTorch), "sum", or "none" (a loss per target, target's shape, 0 where ignored). The same
    numbers as the unfused pair to float32 rounding; float32 stays float32.
    """
    if reduction not in REDUCTIONS:
        raise ValueError(f"linear_cross_entropy: reduction must be one of {REDUCTIONS}, got {reduction!r}")
    x = as_float_tensor(input, "linear_cross_entropy")
    weight = as_float_tensor(weight, "linear_cross_entropy", "weight")
    targets = as_index_array(target, "linear_cross_entropy", "target")
    if weight.ndim != 2:
        raise ValueError(f"linear_cross_entropy: weight must be 2-D (classes, in), got shape {weight.shape}")
    if x.ndim == 0 or x.shape[-1] != weight.shape[1]:
        raise ValueError(f"linear_cross_entropy: input {x.shape} does not match weight {weight.shape}: "
                         f"the input's last axis must be in_features={weight.shape[1]}")
    if targets.shape != x.shape[:-1]:
        raise ValueError(f"linear_cross_entropy: input {x.shape} needs target of shape {x.shape[:-1]}, "
                         f"got {targets.shape}")
    classes = weight.shape[0]
    bad = (targets != ignore_index) & ((targets < 0) | (targets >= classes))
    if bad.any():
        raise IndexError(f"linear_cross_entropy: target {int(targets[bad].flat[0])} is out of range for "
                         f"{classes} classes (valid: 0..{classes - 1}, or ignore_index={ignore_index})")
    parents = (x, weight)
    if bias is not None:
        bias = as_float_tensor(bias, "linear_cross_entropy", "bias")
        if bias.shape != (classes,):
            raise ValueError(f"linear_cross_entropy: bias has shape {bias.shape}, expected ({classes},)")
        parents += (bias,)
    return LinearCrossEntropy.apply(*parents, targets=targets, ignore_index=ignore_index, reduction=reduction)
