"""The affine map of a Linear layer, PyTorch layout: y = x W^T + b with W of shape (out, in).

x (..., in) is viewed as one (N, in) matrix, so the forward and each backward product is a
single 2-D GEMM that BLAS runs on all cores; W^T is a transposed view, never a copy.
"""
from __future__ import annotations

import numpy as np

from ...autograd import Function
from ...tensor import Tensor
from . import reference as ref
from ._util import as_float_tensor, for_row_blocks


class Linear(Function):
    # y = x W^T + b  =>  dL/dx = g W,  dL/dW = g^T x,  dL/db = sum of g over rows
    reference = staticmethod(ref.linear)  # x @ weight^T + bias

    def forward(self, x, weight, *bias):
        in_features = weight.shape[1]
        x2 = x.reshape(-1, in_features)  # (N, in); a view when x is contiguous
        y2 = x2 @ weight.T  # (N, out): one GEMM
        if bias:
            b = bias[0]
            for_row_blocks(y2.shape[0], y2.shape[1], lambda lo, hi: np.add(y2[lo:hi], b, out=y2[lo:hi]))
        if self.requires_grad:
            self.x2, self.weight = x2, weight
        return y2.reshape(*x.shape[:-1], weight.shape[0])  # (..., out)

    def backward(self, g):
        out_features = self.weight.shape[0]
        g2 = g.reshape(-1, out_features)  # (N, out)
        gx = (g2 @ self.weight).reshape(self.parents[0].shape) if self.needs_input_grad[0] else None
        gw = g2.T @ self.x2 if self.needs_input_grad[1] else None  # (out, N) @ (N, in)
        if len(self.needs_input_grad) == 2:
            return gx, gw
        gb = g2.sum(axis=0) if self.needs_input_grad[2] else None  # (out,)
        return gx, gw, gb


def linear(x, weight, bias=None) -> Tensor:
    """y = x @ weight.T + bias for x (..., in), weight (out, in), bias (out,) or None.
    Reference version: `reference.linear`."""
    x = as_float_tensor(x, "linear")
    weight = as_float_tensor(weight, "linear", "weight")
    if weight.ndim != 2:
        raise ValueError(f"linear: weight must be 2-D (out, in), got shape {weight.shape}")
    if x.ndim == 0 or x.shape[-1] != weight.shape[1]:
        raise ValueError(
            f"linear: input {x.shape} does not match weight {weight.shape}: "
            f"the input's last axis must be in_features={weight.shape[1]}"
        )
    if bias is None:
        return Linear.apply(x, weight)
    bias = as_float_tensor(bias, "linear", "bias")
    if bias.shape != (weight.shape[0],):
        raise ValueError(f"linear: bias has shape {bias.shape}, expected ({weight.shape[0]},)")
    return Linear.apply(x, weight, bias)
