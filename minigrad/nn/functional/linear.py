"""The affine map of a Linear layer, PyTorch layout: y = x W^T + b with W of shape (out, in).

x (..., in) is viewed as one (N, in) matrix, so the forward and each backward product is a
single 2-D GEMM; W^T is a transposed view, never a copy.

Threads: with one thread (or small products) each GEMM runs on the calling thread. With two
or more, the GEMMs run on minigrad's threads with one BLAS thread each (`single_blas_thread`)
instead of on OpenBLAS's own threads:
  - backward's two products, dL/dx = g W and dL/dW = g^T x, are independent and equally
    large (N in out multiply-adds each), so they run side by side, each one whole GEMM with
    no synchronisation inside it (with more threads, each is also split: dL/dx by rows,
    dL/dW by output features). The bias gradient, one gemv (ones^T g), goes with dL/dx's
    first rows: dL/dW's product, which also reads the input x (cold by then), is the slower
    side in the step;
  - the forward is split by rows, each thread adding the bias to its rows while they are
    still in its cache (given at least MIN_ROWS_PER_THREAD rows each).
Why: at bench-tiny's shapes (2048 rows, 128-512 features, a 1 MB activation) OpenBLAS's own
threading wins little, and on a busy machine its threads wait for each other at every call
(see runtime/blas.py), while minigrad's pool lets the calling thread take a task that no
worker picked up. Every split is along rows or output features, so each output element is the
same dot product as in one GEMM.
"""
from __future__ import annotations

import numpy as np

from ...autograd import Function
from ...runtime.blas import single_blas_thread
from ...runtime.threads import get_threads, run_parallel
from ...tensor import Tensor
from . import reference as ref
from ._util import as_float_tensor, for_row_blocks

PARALLEL_MIN_MACS = 1 << 22  # multiply-adds per product below which threads do not pay
# forward: rows per thread below which OpenBLAS's own threads run it instead. Each thread of a
# row split reads and packs all of W, OpenBLAS's threads a share of it: measured at GPT-2's
# 768 x 3072 weight (2 threads, no load), the row split took 1.9x OpenBLAS's time for 4 rows
# (a generation prompt), 1.17x for 128, 1.05x for 512, the same for 1024 and 2048
MIN_ROWS_PER_THREAD = 1024


def _bounds(n: int, parts: int) -> list:
    """parts + 1 split points of range(n), as even as possible."""
    return [n * i // parts for i in range(parts + 1)]


def matmul_rows(x2: np.ndarray, weight: np.ndarray, finish) -> np.ndarray:
    """y2 = x2 @ weight^T (N, out) for x2 (N, in), weight (out, in); then finish(y2, lo, hi)
    on rows lo:hi of y2: on each thread's rows right after they are computed when the product
    is split by rows (while they are in its cache), else once on all rows (finish may split
    them over threads itself)."""
    return matmul_rows_many(x2, (weight,), lambda i, y2, lo, hi: finish(y2, lo, hi))[0]


def matmul_rows_many(x2: np.ndarray, weights, finish) -> list:
    """[x2 @ w^T for w in weights] ((N, out_i) each) for weights of one (out, in) shape, as
    matmul_rows, in one parallel region when split by rows (each thread all the products of
    its rows): finish(i, y2, lo, hi) on rows lo:hi of product i."""
    n_rows, in_features = x2.shape
    out_features = weights[0].shape[0]
    threads = min(get_threads(), n_rows // MIN_ROWS_PER_THREAD)
    if threads > 1 and n_rows * in_features * out_features >= PARALLEL_MIN_MACS:
        outs = [np.empty((n_rows, w.shape[0]), dtype=np.result_type(x2, w)) for w in weights]
        rows = _bounds(n_rows, threads)

        def part(lo, hi):  # y rows lo:hi, then finish them while they are in cache
            for i, (w, y2) in enumerate(zip(weights, outs)):
                np.matmul(x2[lo:hi], w.T, out=y2[lo:hi])
                finish(i, y2, lo, hi)

        with single_blas_thread():
            run_parallel([lambda lo=lo, hi=hi: part(lo, hi) for lo, hi in zip(rows, rows[1:])])
        return outs
    outs = []
    for i, w in enumerate(weights):
        outs.append(x2 @ w.T)  # (N, out): one GEMM
        finish(i, outs[-1], 0, n_rows)
    return outs


def add_bias(y2: np.ndarray, b, lo: int, hi: int) -> None:
    """y2[lo:hi] += b (b (out,) or None), over cache-sized row blocks."""
    if b is not None:
        rows = y2[lo:hi]
        for_row_blocks(rows.shape[0], rows.shape[1], lambda i, j: np.add(rows[i:j], b, out=rows[i:j]))


def column_sums(g2: np.ndarray, out=None) -> np.ndarray:
    """The sums over the rows of g2 (N, out) -> (out,), as one BLAS gemv (ones^T g2):
    measured 13 us against 50 us for g2.sum(axis=0) at (2048, 128), 63 against 110 at
    (2048, 512) (one thread; NumPy adds the rows one after another)."""
    ones = np.ones(g2.shape[0], dtype=g2.dtype)  # (N,)
    return np.matmul(ones, g2, out=out)


class Linear(Function):
    # y = x W^T + b  =>  dL/dx = g W,  dL/dW = g^T x,  dL/db = sum of g over rows
    reference = staticmethod(ref.linear)  # x @ weight^T + bias

    def forward(self, x, weight, *bias):
        out_features, in_features = weight.shape
        x2 = x.reshape(-1, in_features)  # (N, in); a view when x is contiguous
        b = bias[0] if bias else None
        y2 = matmul_rows(x2, weight, lambda y2, lo, hi: add_bias(y2, b, lo, hi))  # (N, out)
        if self.requires_grad:
            self.x2, self.weight = x2, weight
        return y2.reshape(*x.shape[:-1], out_features)  # (..., out)

    def backward(self, g):
        return self.products_backward(g)

    def products_backward(self, g, needs=None):
        """The backward above for the output gradient g (..., out) (also LinearGELU's and
        LinearDropoutAdd's, given dL/dz: a method of its own, so that a profiler wrapping
        `backward` times it once). needs: (x, weight[, bias]) flags, default needs_input_grad."""
        weight, x2 = self.weight, self.x2
        g2 = g.reshape(x2.shape[0], weight.shape[0])  # (N, out): N spelled out, out may be 0
        needs = self.needs_input_grad if needs is None else needs
        need_b = len(needs) == 3 and needs[2]
        gx, (gw,), (gb,) = products_backward_many(x2, (weight,), (g2,), needs[0], (needs[1],), (need_b,))
        if gx is not None:
            gx = gx.reshape(self.parents[0].shape)
        if len(needs) == 2:
            return gx, gw
        return gx, gw, gb


def products_backward_many(x2, weights, grads2, need_x: bool, need_w, need_b) -> tuple:
    """The gradients of products y_i = x2 W_i^T + b_i that share the input x2 (N, in), given
    their output gradients grads2 [(N, out)] (weights of one (out, in) shape):
    (dL/dx = sum_i g_i W_i (N, in) or None, [dL/dW_i = g_i^T x2 or None], [dL/db_i = the sums of
    g_i over rows or None]); need_w, need_b: one flag per product.

    With 2+ threads (and products large enough), dL/dx by rows on threads // 2 threads, the
    first of which (the calling thread) also sums the dL/db, and the dL/dW by output features
    on the others, one BLAS thread each: each element of dL/dx and dL/dW is the dot product one
    GEMM computes, and dL/dx adds the products in order of i."""
    n_rows, in_features = x2.shape
    out_features = weights[0].shape[0]
    threads = get_threads()
    gx = np.empty((n_rows, in_features), np.result_type(*grads2, *weights)) if need_x else None
    gws = [np.empty(w.shape, np.result_type(g, x2)) if need else None
           for w, g, need in zip(weights, grads2, need_w)]
    gbs = [np.empty(out_features, g.dtype) if need else None for g, need in zip(grads2, need_b)]

    def rows_of_gx(lo, hi):  # rows lo:hi of sum_i g_i W_i; the range from row 0 also sums dL/db
        if gx is not None:
            np.matmul(grads2[0][lo:hi], weights[0], out=gx[lo:hi])
            for g2, w in zip(grads2[1:], weights[1:]):
                np.add(gx[lo:hi], g2[lo:hi] @ w, out=gx[lo:hi])
        if lo == 0:
            for g2, gb in zip(grads2, gbs):
                if gb is not None:
                    column_sums(g2, out=gb)

    def features_of_gw(lo, hi):  # output features lo:hi: g_i[:, lo:hi]^T x
        for g2, gw in zip(grads2, gws):
            if gw is not None:
                np.matmul(g2[:, lo:hi].T, x2, out=gw[lo:hi])

    if (threads > 1 and need_x and (any(need_w) or any(need_b))
            and n_rows * in_features * out_features >= PARALLEL_MIN_MACS):
        x_rows = _bounds(n_rows, max(1, min(threads // 2, n_rows)))
        features = _bounds(out_features, max(1, min(threads - threads // 2, out_features)))
        tasks = [lambda lo=lo, hi=hi: rows_of_gx(lo, hi) for lo, hi in zip(x_rows, x_rows[1:])]
        tasks += [lambda lo=lo, hi=hi: features_of_gw(lo, hi) for lo, hi in zip(features, features[1:])]
        with single_blas_thread():
            run_parallel(tasks)
    else:
        rows_of_gx(0, n_rows)
        features_of_gw(0, out_features)
    return gx, gws, gbs


def check_linear_arguments(op: str, x, weight, bias) -> tuple:
    """(x, weight) or (x, weight, bias) as float Tensors, or a ValueError naming `op` and the
    shapes: weight (out, in), x (..., in), bias (out,) or None."""
    x = as_float_tensor(x, op)
    weight = as_float_tensor(weight, op, "weight")
    if weight.ndim != 2:
        raise ValueError(f"{op}: weight must be 2-D (out, in), got shape {weight.shape}")
    if x.ndim == 0 or x.shape[-1] != weight.shape[1]:
        raise ValueError(
            f"{op}: input {x.shape} does not match weight {weight.shape}: "
            f"the input's last axis must be in_features={weight.shape[1]}"
        )
    if bias is None:
        return x, weight
    bias = as_float_tensor(bias, op, "bias")
    if bias.shape != (weight.shape[0],):
        raise ValueError(f"{op}: bias has shape {bias.shape}, expected ({weight.shape[0]},)")
    return x, weight, bias


def linear(x, weight, bias=None) -> Tensor:
    """y = x @ weight.T + bias for x (..., in), weight (out, in), bias (out,) or None.
    Reference version: `reference.linear`."""
    return Linear.apply(*check_linear_arguments("linear", x, weight, bias))
