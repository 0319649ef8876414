"""Layer normalization over the trailing axes (Ba, Kiros & Hinton 2016; the book's section 4.2).

    mean = mean(x),  var = mean((x - mean)^2)   (biased, as the book and PyTorch)
    xhat = (x - mean) / sqrt(var + eps),        y = xhat * weight + bias

One node computes y and, in backward, the gradients of x, weight and bias together. The same
formula in five plain ops is `reference.layer_norm` (reference.py): read that first; the
per-thread partial sums below are only about speed.

Speed: each call does its rows in blocks of PASS_ELEMENTS, each block a few NumPy calls over the
whole block (9 forward, 10 backward), and every sum over a row or a column is a BLAS
matrix-vector product (`x @ v`, `ones @ g`: one gemv, 2-4x faster than `sum(axis=...)` or
`np.einsum` at these shapes) except the forward's sum of squares (`np.einsum("ij,ij->i")`).
Backward first forms p = g xhat; the four sums it needs are then gemvs of g or p (see the
comment in LayerNorm). With several threads, each takes one contiguous range of rows; the
weight and bias gradients are the sums of per-block partial sums, added in row order.
"""
from __future__ import annotations

import math

import numpy as np

from ...autograd import Function
from ...tensor import Tensor
from . import reference as ref
from ._util import PARALLEL_MIN_ELEMENTS, as_float_tensor, block_rows, parallel_for

# elements per block of rows (1 MB of float32): one NumPy call each. Measured in a bench-tiny
# step (2048 x 128, alternated with 64K-element blocks, 1 thread): layer norm 10.3 vs 11.2 ms.
# Each of its gemvs is below the size (~400K elements) at which OpenBLAS splits a gemv over its
# own threads.
PASS_ELEMENTS = 1 << 18


class LayerNorm(Function):
    # With gh = g * weight and r = 1 / sqrt(var + eps), the row-wise Jacobian of xhat gives
    #   dL/dx = r (gh - mean(gh) - xhat mean(gh xhat)),  dL/dweight = sum_rows g xhat,
    #   dL/dbias = sum_rows g
    # and since gh xhat = (g xhat) * weight, every sum is a matrix-vector product of g or of
    # p = g xhat: mean(gh) = g (weight / C), mean(gh xhat) = p (weight / C), and the two column
    # sums are ones^T p and ones^T g.
    @staticmethod
    def reference(x, *params, eps=1e-5, has_weight=True, has_bias=True):
        weight = params[0] if has_weight else None
        bias = params[-1] if has_bias else None
        return ref.layer_norm(x, weight, bias, eps)

    def forward(self, x, *params, eps=1e-5, has_weight=True, has_bias=True):
        params = list(params)
        weight = params.pop(0) if has_weight else None
        bias = params.pop(0) if has_bias else None
        self.x_shape, self.has_weight, self.has_bias = x.shape, has_weight, has_bias
        width = x.shape[-1]
        x2 = np.ascontiguousarray(x).reshape(math.prod(x.shape[:-1]), width)  # (N, C); N or C may be 0
        dtype = np.result_type(x2, *(p for p in (weight, bias) if p is not None))
        xhat = np.empty(x2.shape, dtype=dtype)  # (N, C)
        rstd = np.empty((x2.shape[0], 1), dtype=dtype)  # (N, 1)
        y = np.empty(x2.shape, dtype=dtype) if (has_weight or has_bias) else xhat
        mean_of = np.full(width, 1 / max(width, 1), dtype=x2.dtype)  # (C,): x @ mean_of = row means
        rows = block_rows(width, PASS_ELEMENTS)

        def run(lo, hi):
            for start in range(lo, hi, rows):
                stop = min(start + rows, hi)
                xs, xh, r = x2[start:stop], xhat[start:stop], rstd[start:stop]
                mean = np.matmul(xs, mean_of)[:, None]  # (rows, 1)
                np.subtract(xs, mean, out=xh)  # x - mean
                np.einsum("ij,ij->i", xh, xh, out=r[:, 0])  # C var: sum of squared deviations
                r += width * eps
                np.sqrt(r, out=r)
                np.divide(math.sqrt(width), r, out=r)  # sqrt(C / (C var + C eps)) = 1 / sqrt(var + eps)
                xh *= r
                if weight is not None:
                    np.multiply(xh, weight, out=y[start:stop])
                if bias is not None:
                    if weight is None:
                        np.add(xh, bias, out=y[start:stop])
                    else:
                        y[start:stop] += bias

        if x2.size:
            parallel_for(x2.shape[0], run, block_rows(width, PARALLEL_MIN_ELEMENTS))  # rows per thread
        if self.requires_grad:
            self.xhat, self.rstd, self.weight = xhat, rstd, weight
        return y.reshape(x.shape)

    def backward(self, g):
        xhat, rstd, weight = self.xhat, self.rstd, self.weight
        n_rows, width = xhat.shape
        g2 = np.ascontiguousarray(g).reshape(n_rows, width)  # (N, C)
        need = self.needs_input_grad  # (x, weight if given, bias if given)
        need_x = need[0]
        need_w = self.has_weight and need[1]
        need_b = self.has_bias and need[1 + self.has_weight]
        gx = np.empty_like(xhat) if need_x else None
        rows = block_rows(width, PASS_ELEMENTS)
        # weight / C (ones / C without a weight): g @ row_mean = mean(gh), p @ row_mean = mean(gh xhat)
        row_mean = (weight if weight is not None else np.ones(width, xhat.dtype)) / max(width, 1)  # (C,)
        ones = np.ones(min(rows, n_rows), dtype=xhat.dtype)  # (rows,): ones @ g = the column sums
        partials = {}  # first row of a block -> its (sum of g xhat, sum of g), (C,) each

        def run(lo, hi):
            p_block = (np.empty((min(rows, hi - lo), width), dtype=np.result_type(g2, xhat))
                       if need_w or need_x else None)  # (rows, C)
            for start in range(lo, hi, rows):
                stop = min(start + rows, hi)
                gs, xh, ones_b = g2[start:stop], xhat[start:stop], ones[: stop - start]
                p = np.multiply(gs, xh, out=p_block[: stop - start]) if p_block is not None else None  # g xhat
                partials[start] = (ones_b @ p if need_w else None, ones_b @ gs if need_b else None)
                if gx is None:
                    continue
                mean_gh = np.matmul(gs, row_mean)[:, None]  # (rows, 1)
                mean_ghx = np.matmul(p, row_mean)[:, None]  # (rows, 1)
                d = gx[start:stop]
                np.multiply(xh, mean_ghx, out=p)  # (p is done with: reused)
                if weight is not None:
                    np.multiply(gs, weight, out=d)  # gh
                    d -= p
                else:
                    np.subtract(gs, p, out=d)
                d -= mean_gh
                d *= rstd[start:stop]

        parallel_for(n_rows, run, block_rows(width, PARALLEL_MIN_ELEMENTS))  # rows per thread
        grads = [gx.reshape(self.x_shape) if need_x else None]
        ordered = [partials[start] for start in sorted(partials)]  # fixed order: same sums every run
        for which, (present, needed) in enumerate(((self.has_weight, need_w), (self.has_bias, need_b))):
            if present and not needed:
                grads.append(None)
            elif present:
                parts = [p[which] for p in ordered]
                grads.append(parts[0].astype(xhat.dtype, copy=False) if len(parts) == 1 else
                             np.sum(parts, axis=0, dtype=xhat.dtype) if parts else np.zeros(width, xhat.dtype))
        return tuple(grads)


def layer_norm(input, normalized_shape=None, weight=None, bias=None, eps: float = 1e-5) -> Tensor:
    """Normalize `input` over its trailing `normalized_shape` axes (PyTorch's signature), then
    scale by weight and add bias (both of shape normalized_shape, or None). Biased variance.
    Reference version, the formula in plain ops: `reference.layer_norm`.

    The GPT's older call layer_norm(x, weight, bias, eps) (weight in second place, the last
    axis normalized) is still accepted.
    """
    if isinstance(normalized_shape, (Tensor, np.ndarray)):  # the older layer_norm(x, weight, bias, eps)
        if isinstance(bias, (int, float)):
            eps = bias
        normalized_shape, weight, bias = None, normalized_shape, (weight if not isinstance(weight, (int, float)) else None)
    x = as_float_tensor(input, "layer_norm")
    if x.ndim == 0:
        raise ValueError("layer_norm: input needs at least 1 dimension, got a 0-d tensor")
    if normalized_shape is None:
        normalized_shape = x.shape[-1:]
    if isinstance(normalized_shape, (int, np.integer)):
        normalized_shape = (int(normalized_shape),)
    normalized_shape = tuple(int(n) for n in normalized_shape)
    k = len(normalized_shape)
    if k == 0 or k > x.ndim or x.shape[-k:] != normalized_shape:
        raise ValueError(f"layer_norm: normalized_shape {normalized_shape} must be the trailing axes "
                         f"of the input, got input {x.shape}")
    width = math.prod(normalized_shape)
    params = []
    for name, p in (("weight", weight), ("bias", bias)):
        if p is None:
            continue
        p = as_float_tensor(p, "layer_norm", name)
        if p.shape != normalized_shape:
            raise ValueError(f"layer_norm: {name} has shape {p.shape}, expected {normalized_shape} "
                             f"for input {x.shape}")
        params.append(p if k == 1 else p.reshape(width))
    if not eps > 0:
        raise ValueError(f"layer_norm: eps must be positive, got {eps}")
    flat = x if k == 1 else x.reshape(*x.shape[:-k], width)  # (..., prod(normalized_shape))
    y = LayerNorm.apply(flat, *params, eps=float(eps), has_weight=weight is not None,
                        has_bias=bias is not None)
    return y if k == 1 else y.reshape(x.shape)
