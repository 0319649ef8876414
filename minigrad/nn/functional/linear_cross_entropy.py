"""A language model's output head fused with its cross-entropy loss, in row chunks.

For hidden states x (N, C), the head's weight W (V, C) (and bias b (V,)) and targets t (N,):

    z = x W^T + b                                  logits (N, V)
    loss_n = logsumexp(z_n) - z_n[t_n]             d loss_n / d z_n = softmax(z_n) - onehot(t_n)

which is `cross_entropy(linear(x, W, b), t)` (the reference below), computed without ever
holding the whole (N, V) logits: over GPT-2's 50,257 words they are the largest arrays of a
training step (824 MB at context 1024 and batch 4, and cross-entropy keeps as much again for
its gradient). The rows go in chunks of about CHUNK_BYTES of logits. When a gradient will be
needed, each chunk's dz = w (softmax - onehot) (w_n = d L / d loss_n: 1 / count for "mean", 0
for an ignored row) is turned at once into the chunk's share of the three gradients of the
linear map:

    dL/dx = dz W,    dL/dW = sum over chunks of dz^T x,    dL/db = sum over chunks of dz

without writing dz: with e = exp(z) (in place of the logits) and S_n = sum_v e_nv, softmax =
e / S, so the normalisation and the one-hot term move onto the small factors (_Head.fused_chunk):

    dx_n = (w_n / S_n) (e W)_n - w_n W[t_n],   dW = (e - S onehot)^T (diag(w / S) x),
    db = (w / S)^T (e - S onehot)

and the only passes over a chunk's logits outside the GEMMs are exp and the row sums (the
products read e as they would read dz; the one-hot term is one element per row). exp(z) is
taken as exp2(z log2(e)), the (r, C) rows scaled by log2(e) before the GEMM (numpy's float32
exp2 takes half the time of its exp; the result differs by float32 rounding of the logits),
and without the row max, as loss.py does (logits within about +-45 never need it); a chunk
in which a row's sum falls outside loss.SUM_RANGE is done again in the textbook order
(_Head.shifted_chunk: the logits, loss.py's kernel with the max shift writing dz over them,
then dz W, dz^T x). Against that order alone, forward+backward of small's head (2048 x 256
rows, loaded machine, CPU time, best of 6-12 alternated): 2-4% less without the dz pass,
1-2% more with exp2; what is left outside the GEMMs is exp2 and the sums, whose cost is
arithmetic, not memory (numpy's float32 exp takes ~0.5 ns an element here, in cache or not:
tiling the GEMMs so that exp reads a cache-resident slab measured slower, the smaller GEMMs
losing more than the slab saved).
so forward leaves dx (N, C), dW (V, C) and db behind, and backward only multiplies them by
the incoming scalar gradient (nothing, for the usual loss.backward()). The FLOPs are those of
the unfused head (one GEMM forward, two backward), nothing is recomputed, and the memory is
one chunk. With more than one thread, each product runs in pieces on minigrad's threads,
one BLAS thread each (_run_gemms says why): pieces of the vocabulary, or, up to ROWS_MAX_VOCAB
words, of the rows (_Head.fused_by_rows; bench-tiny's head of 256 words, 2 threads, alternated
at load 5: best 6.1 -> 4.8 ms, CPU 7.3 -> 6.2 ms, forward + backward). Reduction "none" gets a gradient per row in
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
from .loss import REDUCTIONS, SUM_RANGE, _cross_entropy_rows, reduce_rows, target_rows

CHUNK_BYTES = 256 << 20  # logits per chunk (their gradient replaces them): 1,335 rows of 50,257
ACCUMULATE_BYTES = 4 << 20  # dW += dz^T x in slabs of vocabulary rows of this size (cache-sized)
LOG2E = 1.4426950408889634  # log2(e): exp(z) = exp2(z * LOG2E)
PIECES_PER_THREAD = 2  # each GEMM in this many pieces per thread: a core that another process
#                        holds up leaves its pieces to the others
ROWS_MAX_VOCAB = 4096  # up to this vocabulary, with threads, each thread takes a share of the
#                       rows through the whole chunk (_Head.fused_by_rows)


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
    """Over chunks of the rows of x2 (N, C): row_loss[n] (when given) and, for each True in
    wants = (dx, dW, db), that gradient of sum_n row_scale * row_factor[n] * loss_n (row_factor
    (N,) or None for 1; rows not counted weigh 0). Returns (dx (N, C), dW (V, C), db (V,)), None
    where not wanted.

    Each chunk goes through _Head.fused_chunk (the module docstring), or, when a row's sum of
    exponentials leaves loss.SUM_RANGE, through _Head.shifted_chunk (the textbook order).
    """
    n_rows, vocab = x2.shape[0], weight.shape[0]
    dtype = np.result_type(x2, weight)
    rows = chunk_rows(n_rows, vocab, dtype.itemsize)
    parts = 1 if get_threads() <= 1 else get_threads() * PIECES_PER_THREAD
    head = _Head(weight, bias, _spans(vocab, parts), dtype, min(rows, n_rows),
                 dx=np.empty(x2.shape, dtype=dtype) if wants[0] else None,
                 dw=np.empty(weight.shape, dtype=dtype) if wants[1] else None,
                 db=np.zeros(vocab, dtype=dtype) if len(wants) > 2 and wants[2] else None)
    for lo in range(0, n_rows, rows):
        hi = min(lo + rows, n_rows)
        weights = np.where(counted[lo:hi], row_scale, 0.0).astype(dtype)  # (r,) d L / d loss_n
        if row_factor is not None:  # reduction "none": the gradient of each row's loss
            weights *= row_factor[lo:hi]
        losses = None if row_loss is None else row_loss[lo:hi]
        if not head.fused_chunk(x2[lo:hi], safe_t[lo:hi], weights, losses, lo, first=lo == 0):
            head.shifted_chunk(x2[lo:hi], safe_t[lo:hi], counted[lo:hi], weights, losses, lo,
                               first=lo == 0)
    if head.dw is not None and n_rows == 0:
        head.dw[...] = 0.0
    return head.dx, head.dw, head.db


def _exponentials(zs, targets, bias, log2e, picked, total) -> None:
    """For rows zs (r, V) holding z log2(e) (the logits before the bias): add bias (V,), already
    times log2(e)) or None, write each row's target logit z_n[t_n] into picked (r,), replace zs
    by exp(z) = exp2(z log2(e)) in place and write its row sums S_n into total (r,). Overflow,
    underflow and nan are left for the caller's range check of the sums."""
    if bias is not None:
        np.add(zs, bias, out=zs)
    np.divide(zs[np.arange(zs.shape[0]), targets], log2e, out=picked)
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):  # caught by the caller
        np.exp2(zs, out=zs)
        np.sum(zs, axis=1, out=total)


class _Head:
    """The buffers of one pass over the chunks: the logits of a chunk of R rows (R * V), dx
    (N, C), dW (V, C), db (V,) (None where not wanted), the vocabulary pieces (lo, hi) of the
    products; keep: whether the exponentials are read again by dW or db."""

    def __init__(self, weight, bias, vocab_spans, dtype, rows, dx, dw, db):
        self.weight, self.bias, self.spans, self.dtype = weight, bias, vocab_spans, dtype
        self.dx, self.dw, self.db = dx, dw, db
        self.keep = dw is not None or db is not None
        self.logits = np.empty(rows * weight.shape[0], dtype=dtype)  # R * V: each chunk's logits

    def fused_chunk(self, xs, t, weights, losses, lo, first):
        """Rows xs (r, C) of targets t (r,): the chunk's logits z, exponentiated in place (no
        shift); False if some row's sum of exponentials leaves SUM_RANGE (the logits are then
        gone: shifted_chunk computes them again). Else the losses and the chunk's share of each
        gradient, by dz_n = w_n (e_n / S_n - onehot(t_n)) (e_n = exp(z_n), S_n = sum_v e_nv,
        w = weights), the normalisation and the one-hot moved onto (r,)- and (r, C)-sized terms:
            dx_n = (w_n / S_n) (e W)_n - w_n W[t_n]
            dW = (e - S onehot)^T (diag(w / S) x),    db = (w / S)^T (e - S onehot)
        """
        if get_threads() > 1 and self.weight.shape[0] <= ROWS_MAX_VOCAB and xs.shape[0] > 1:
            return self.fused_by_rows(xs, t, weights, losses, lo, first)
        rows, weight, log2e = xs.shape[0], self.weight, self.dtype.type(LOG2E)
        z = self.logits[: rows * weight.shape[0]].reshape(rows, -1)  # (r, V): z log2(e), then e
        x_log2e = xs * log2e  # (r, C): exp(z) = exp2(z log2(e)), numpy's exp2 twice as fast
        _run_gemms([lambda a=a, b=b: np.matmul(x_log2e, weight[a:b].T, out=z[:, a:b])
                    for a, b in self.spans])
        total = np.empty(rows, dtype=self.dtype)  # (r,) S_n
        picked = np.empty(rows, dtype=self.dtype)  # (r,) z_n[t_n]
        bias = None if self.bias is None else self.bias * log2e  # (V,)

        def block(a, b):  # rows [a, b): bias, the target logits, exp in place, the row sums
            _exponentials(z[a:b], t[a:b], bias, log2e, picked[a:b], total[a:b])

        for_row_blocks(rows, z.shape[1], block, rows=max(1, (1 << 18) // max(1, z.shape[1])))
        if not np.all((total > SUM_RANGE[0]) & (total < SUM_RANGE[1])):
            return False  # overflow, underflow or nan: the textbook order, max shift first
        if losses is not None:  # logsumexp - z_t = log S - z_t
            np.subtract(np.log(total), picked, out=losses)
        scale = weights / total  # (r,) w_n / S_n
        if self.dx is not None:  # e W = sum over vocabulary pieces of e[:, a:b] W[a:b]
            part = np.empty((len(self.spans), rows, weight.shape[1]), dtype=self.dtype)
            _run_gemms([lambda k=k, a=a, b=b: np.matmul(z[:, a:b], weight[a:b], out=part[k])
                        for k, (a, b) in enumerate(self.spans)])
            dx = self.dx[lo:lo + rows]  # (r, C)
            np.multiply(part.sum(axis=0) if len(part) > 1 else part[0], scale[:, None], out=dx)
            dx -= weights[:, None] * weight[t]
        if self.keep:
            z[np.arange(rows), t] -= total  # e - S onehot
            self._weight_grads(z, xs * scale[:, None], scale, first)
        return True

    def fused_by_rows(self, xs, t, weights, losses, lo, first):
        """fused_chunk's arithmetic with the rows, not the vocabulary, shared by the threads:
        for a small vocabulary (bench-tiny's 256 words) pieces of the vocabulary make short
        GEMMs (64 words each) and dx a sum of pieces; here each thread runs its rows through
        the exponentials, then through dx and its own dW, db, which are added at the end."""
        rows, weight, log2e = xs.shape[0], self.weight, self.dtype.type(LOG2E)
        z = self.logits[: rows * weight.shape[0]].reshape(rows, -1)  # (r, V): z log2(e), then e
        total = np.empty(rows, dtype=self.dtype)  # (r,) S_n
        picked = np.empty(rows, dtype=self.dtype)  # (r,) z_n[t_n]
        bias = None if self.bias is None else self.bias * log2e  # (V,)
        spans = _spans(rows, get_threads())

        def exponentials(a, b):  # rows [a, b): logits, bias, target logits, exp2, row sums
            np.matmul(xs[a:b] * log2e, weight.T, out=z[a:b])
            _exponentials(z[a:b], t[a:b], bias, log2e, picked[a:b], total[a:b])

        _run_gemms([lambda a=a, b=b: exponentials(a, b) for a, b in spans])
        if not np.all((total > SUM_RANGE[0]) & (total < SUM_RANGE[1])):
            return False  # overflow, underflow or nan: the textbook order, max shift first
        if losses is not None:  # logsumexp - z_t = log S - z_t
            np.subtract(np.log(total), picked, out=losses)
        scale = weights / total  # (r,) w_n / S_n
        dws, dbs = [None] * len(spans), [None] * len(spans)

        def gradients(k, a, b):  # rows [a, b): dx, and this share of dW, db
            zs = z[a:b]
            if self.dx is not None:
                dx = self.dx[lo + a:lo + b]
                np.matmul(zs, weight, out=dx)
                dx *= scale[a:b, None]
                dx -= weights[a:b, None] * weight[t[a:b]]
            if self.keep:
                zs[np.arange(b - a), t[a:b]] -= total[a:b]  # e - S onehot
                if self.dw is not None:
                    dws[k] = zs.T @ (xs[a:b] * scale[a:b, None])  # (V, C)
                if self.db is not None:
                    dbs[k] = scale[a:b] @ zs  # (V,)

        _run_gemms([lambda k=k, a=a, b=b: gradients(k, a, b) for k, (a, b) in enumerate(spans)])
        if self.dw is not None:
            dw = sum(dws[1:], dws[0])  # in thread order: the same sums every run
            if first:
                self.dw[...] = dw
            else:
                self.dw += dw
        if self.db is not None:
            self.db += sum(dbs[1:], dbs[0])
        return True

    def shifted_chunk(self, xs, t, counted, weights, losses, lo, first):
        """The same as fused_chunk in the textbook order: the chunk's logits (r, V), then
        dz = w (softmax - onehot) over them (loss.py's kernel, the row max subtracted where
        needed), then dx = dz W, dW = dz^T x, db = sum_n dz_n."""
        rows = xs.shape[0]
        weight = self.weight
        z = self.logits[: rows * weight.shape[0]].reshape(rows, -1)  # (r, V)
        _run_gemms([lambda a=a, b=b: np.matmul(xs, weight[a:b].T, out=z[:, a:b]) for a, b in self.spans])
        if self.bias is not None:
            for_row_blocks(rows, z.shape[1], lambda a, b: np.add(z[a:b], self.bias, out=z[a:b]))
        wants = self.dx is not None or self.keep
        _cross_entropy_rows(z, t, counted, 1.0, losses, z if wants else None)  # dz over the logits
        if not wants:
            return
        for_row_blocks(rows, z.shape[1], lambda a, b: np.multiply(z[a:b], weights[a:b, None], out=z[a:b]))
        if self.dx is not None:  # dz W = sum over vocabulary pieces of dz[:, a:b] W[a:b]
            part = np.empty((len(self.spans), rows, weight.shape[1]), dtype=self.dtype)
            _run_gemms([lambda k=k, a=a, b=b: np.matmul(z[:, a:b], weight[a:b], out=part[k])
                        for k, (a, b) in enumerate(self.spans)])
            np.sum(part, axis=0, out=self.dx[lo:lo + rows])
        if self.keep:
            self._weight_grads(z, xs, np.ones(rows, dtype=self.dtype), first)

    def _weight_grads(self, m, xs, row_weights, first):
        """dW (+)= m^T xs and db += row_weights @ m for m (r, V), xs (r, C): the first chunk
        writes dW by vocabulary pieces, the others add theirs slab by slab (in cache)."""
        dw, db, vocab = self.dw, self.db, m.shape[1]
        if dw is not None and first:  # (V, r) @ (r, C)
            _run_gemms([lambda a=a, b=b: np.matmul(m[:, a:b].T, xs, out=dw[a:b]) for a, b in self.spans])
        elif dw is not None:
            slab = max(1, ACCUMULATE_BYTES // max(1, xs.shape[1] * self.dtype.itemsize))

            def accumulate(a, b):
                dw[a:b] += np.matmul(m[:, a:b].T, xs)  # (b - a, C)

            _run_gemms([lambda a=a: accumulate(a, min(a + slab, vocab)) for a in range(0, vocab, slab)])
        if db is not None:
            db += row_weights @ m  # (r,) @ (r, V)


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
