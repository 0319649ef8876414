"""Layer normalization over the trailing axes (Ba, Kiros & Hinton 2016; the book's section 4.2).

    mean = mean(x),  var = mean((x - mean)^2)   (biased, as the book and PyTorch)
    xhat = (x - mean) / sqrt(var + eps),        y = xhat * weight + bias

One node computes y and, in backward, the gradients of x, weight and bias together. The same
formula in five plain ops is `reference.layer_norm` (reference.py): read that first; the
per-thread partial sums below are only about speed.

Speed: every sum is an `np.einsum` ("ij->i" for a row sum, "ij,ij->i" for a row dot,
"ij,ij->j" for a column dot): NumPy's `sum(axis=1)` over rows of 128-768 values costs 2-3x
einsum's (measured on the benchmark machine, one thread: 20 vs 7 microseconds per 64K
float32 at 128 columns), and the column dot needs no (rows, C) temporary.
"""
from __future__ import annotations

import math

import numpy as np

from ...autograd import Function
from ...tensor import Tensor
from . import reference as ref
from ._util import (PARALLEL_MIN_ELEMENTS, as_float_tensor, block_rows, for_row_blocks,
                    parallel_for)


class LayerNorm(Function):
    # With gh = g * weight and r = 1 / sqrt(var + eps), the row-wise Jacobian of xhat gives
    #   dL/dx = r (gh - mean(gh) - xhat mean(gh xhat)),  dL/dweight = sum_rows g xhat,
    #   dL/dbias = sum_rows g
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

        def block(lo, hi):
            xs, xh, r = x2[lo:hi], xhat[lo:hi], rstd[lo:hi]
            mean = np.einsum("ij->i", xs)[:, None] / width  # (rows, 1)
            np.subtract(xs, mean, out=xh)  # x - mean
            np.einsum("ij,ij->i", xh, xh, out=r[:, 0])  # sum of squared deviations
            r /= width
            r += eps
            np.sqrt(r, out=r)
            np.reciprocal(r, out=r)  # 1 / sqrt(var + eps)
            xh *= r
            if weight is not None:
                np.multiply(xh, weight, out=y[lo:hi])
            if bias is not None:
                if weight is None:
                    np.add(xh, bias, out=y[lo:hi])
                else:
                    y[lo:hi] += bias

        if x2.size:
            for_row_blocks(x2.shape[0], width, block)
        if self.requires_grad:
            self.xhat, self.rstd, self.weight = xhat, rstd, weight
        return y.reshape(x.shape)

    def backward(self, g):
        xhat, rstd, weight = self.xhat, self.rstd, self.weight
        n_rows, width = xhat.shape
        g2 = np.ascontiguousarray(g).reshape(n_rows, width)  # (N, C)
        need_x = self.needs_input_grad[0]
        gx = np.empty_like(xhat) if need_x else None
        rows = block_rows(width)
        partials = {}  # first row of a thread's range -> its (sum of g xhat, sum of g), (C,) each
        inv_width = 1.0 / max(width, 1)  # (rows of width 0 have nothing to average)

        def run(lo, hi):
            tmp = np.empty((min(rows, hi - lo), width), dtype=xhat.dtype) if gx is not None else None
            sum_w = np.zeros(width, dtype=xhat.dtype) if self.has_weight else None
            sum_b = np.zeros(width, dtype=xhat.dtype) if self.has_bias else None
            for start in range(lo, hi, rows):
                stop = min(start + rows, hi)
                gs, xh = g2[start:stop], xhat[start:stop]
                if sum_b is not None:
                    sum_b += gs.sum(axis=0)
                if sum_w is not None:
                    sum_w += np.einsum("ij,ij->j", gs, xh)  # sum over rows of g xhat
                if gx is None:
                    continue
                t = tmp[: stop - start]
                gh = np.multiply(gs, weight, out=t) if weight is not None else gs  # dL/dxhat
                mean_gh = np.einsum("ij->i", gh)[:, None] * inv_width  # (rows, 1)
                mean_ghx = np.einsum("ij,ij->i", gh, xh)[:, None] * inv_width  # (rows, 1)
                d = gx[start:stop]
                np.multiply(xh, mean_ghx, out=d)
                np.subtract(gh, d, out=d)
                d -= mean_gh
                d *= rstd[start:stop]
            partials[lo] = (sum_w, sum_b)

        parallel_for(n_rows, run, max(rows, PARALLEL_MIN_ELEMENTS // max(1, width)))
        grads = [gx.reshape(self.x_shape) if need_x else None]
        ordered = [partials[lo] for lo in sorted(partials)]  # fixed order: same sums every run
        for which, present in enumerate((self.has_weight, self.has_bias)):
            if present:
                parts = [p[which] for p in ordered]
                grads.append(parts[0] if len(parts) == 1 else
                             np.sum(parts, axis=0) if parts else np.zeros(width, xhat.dtype))
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
