"""The first half of GPT-2's feed-forward block as one node: y = gelu(x W^T + b), with the
tanh GELU of activation.py (the book's section 4.3).

Why one node: the bias and GELU's passes run on the product's rows right after the GEMM
(linear.matmul_rows: on each thread's rows while they are in its cache when the product is
split by rows), one pass over the (N, out) pre-activation z = x W^T + b fewer; and z itself
is not kept for backward, only GELU's slope gelu'(z), as activation.GELU keeps it, written over
z (the product is this node's own scratch, still in cache: one fresh (N, out) array written
instead of two). Above activation.LEAN_ABOVE_BYTES it is the other way round: z is kept, the
slope recomputed.
gpt's FeedForward uses it when its layers are the book's Linear, GELU, Linear with no hooks.

Reference version (read it first): `linear_gelu_reference`, gelu_tanh(linear(x, W, b)) in
primitive ops, which create_graph=True differentiates.
"""
from __future__ import annotations

import numpy as np

from ...tensor import Tensor
from . import reference as ref
from ._util import parallel_multiply
from .activation import LEAN_ABOVE_BYTES, _gelu_pass
from .linear import Linear, check_linear_arguments, matmul_rows


def linear_gelu_reference(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """gelu_tanh(x @ weight^T + bias): x (..., in), weight (out, in), bias (out,) -> (..., out)."""
    return ref.gelu_tanh(ref.linear(x, weight, bias))


class LinearGELU(Linear):
    # y = gelu(z), z = x W^T + b  =>  dL/dz = g * gelu'(z) (activation.GELU's slope), and from
    # dL/dz Linear's rule: dL/dx = dL/dz W, dL/dW = dL/dz^T x, dL/db = sum of dL/dz over rows
    reference = staticmethod(linear_gelu_reference)

    def forward(self, x, weight, *bias):
        out_features, in_features = weight.shape
        x2 = x.reshape(-1, in_features)  # (N, in); a view when x is contiguous
        b = bias[0] if bias else None
        y2 = np.empty((x2.shape[0], out_features), dtype=np.result_type(x2, weight))  # (N, out)
        keep_slope = self.requires_grad and y2.nbytes <= LEAN_ABOVE_BYTES

        def finish(z2, lo, hi):  # rows lo:hi of z: z += b, then y = gelu(z), and the slope over z
            if hi > lo and out_features:
                z = z2[lo:hi].reshape(-1)
                _gelu_pass(z, y=y2[lo:hi].reshape(-1), bias=b, slope=z if keep_slope else None)

        z2 = matmul_rows(x2, weight, finish)  # (N, out): gelu'(x W^T + b), or x W^T + b if lean
        if self.requires_grad:
            self.x2, self.weight = x2, weight
            self.slope, self.z2 = (z2, None) if keep_slope else (None, z2)
        return y2.reshape(*x.shape[:-1], out_features)  # (..., out)

    def backward(self, g):
        g2 = np.asarray(g, order="C").reshape(self.x2.shape[0], self.weight.shape[0])  # (N, out)
        if self.slope is not None:
            grad_z = parallel_multiply(g2, self.slope)  # (N, out)
        else:  # the slope recomputed from the kept z
            grad_z = np.empty(self.z2.shape, dtype=np.result_type(g2, self.z2))
            if grad_z.size:
                _gelu_pass(self.z2.reshape(-1), g=g2.reshape(-1), grad=grad_z.reshape(-1))
        return self.products_backward(grad_z)  # Linear's rule with dL/dz


def linear_gelu(x, weight, bias=None) -> Tensor:
    """gelu(x @ weight.T + bias) with GPT-2's tanh GELU, one node, for x (..., in), weight
    (out, in), bias (out,) or None -> (..., out). The same numbers as
    gelu(linear(x, weight, bias), approximate="tanh"). Reference: `linear_gelu_reference`."""
    tensors = check_linear_arguments("linear_gelu", x, weight, bias)
    return LinearGELU.apply(*tensors)
