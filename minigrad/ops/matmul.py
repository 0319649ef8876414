"""Matrix multiplication `a @ b`: 1-D, 2-D and batched N-D with broadcast batch dimensions.

For out = a @ b:  dL/da = g @ b^T  and  dL/db = a^T @ g  (then summed over broadcast batch
axes). When b is a plain matrix and a is (..., K), the leading axes of a are folded into one
so BLAS sees a single (N, K) @ (K, M) GEMM, forward and backward (the backward for b is then
one GEMM that also does the sum over the batch).
"""
from __future__ import annotations

import numpy as np

from ..autograd import Function, unbroadcast
from .broadcast import sum_to
from .shape import Reshape, Transpose


def _swap_last_two(t):
    axes = list(range(t.ndim))
    axes[-1], axes[-2] = axes[-2], axes[-1]
    return Transpose.apply(t, axes=tuple(axes))


class MatMul(Function):
    # out = a @ b:  dL/da = g @ b^T,  dL/db = a^T @ g  (summed over broadcast batch axes;
    # a 1-D operand is treated as a (1, K) row or (K, 1) column, as np.matmul does)
    def forward(self, a, b):
        if a.ndim == 0 or b.ndim == 0:
            raise ValueError(f"matmul: both operands need at least 1 dimension, got {a.shape} @ {b.shape}")
        inner_b = b.shape[-2] if b.ndim > 1 else b.shape[0]
        if a.shape[-1] != inner_b:
            raise ValueError(
                f"matmul: cannot multiply {a.shape} @ {b.shape}: inner dimensions "
                f"{a.shape[-1]} and {inner_b} differ"
            )
        if self.requires_grad:
            self.a, self.b = a, b
        if b.ndim == 2 and a.ndim > 2:  # (..., K) @ (K, M): one GEMM on (N, K), N = prod(...)
            return (a.reshape(-1, a.shape[-1]) @ b).reshape(*a.shape[:-1], b.shape[1])
        try:
            return np.matmul(a, b)
        except ValueError:
            raise ValueError(f"matmul: batch dimensions of {a.shape} @ {b.shape} do not broadcast") from None

    def backward(self, g):
        a, b = self.a, self.b
        ga = gb = None
        if b.ndim == 2 and a.ndim > 2:  # the folded fast path: two GEMMs
            g2 = g.reshape(-1, g.shape[-1])  # (N, M)
            if self.needs_input_grad[0]:
                ga = (g2 @ b.T).reshape(a.shape)  # (N, M) @ (M, K) -> (..., K)
            if self.needs_input_grad[1]:
                gb = a.reshape(-1, a.shape[-1]).T @ g2  # (K, N) @ (N, M), sums over N
            return ga, gb
        a2 = a[None, :] if a.ndim == 1 else a  # (K,) -> (1, K)
        b2 = b[:, None] if b.ndim == 1 else b  # (K,) -> (K, 1)
        batch = np.broadcast_shapes(a2.shape[:-2], b2.shape[:-2])
        g2 = g.reshape(*batch, a2.shape[-2], b2.shape[-1])  # re-insert the squeezed axes
        if self.needs_input_grad[0]:
            ga = unbroadcast(np.matmul(g2, np.swapaxes(b2, -1, -2)), a2.shape).reshape(a.shape)
        if self.needs_input_grad[1]:
            gb = unbroadcast(np.matmul(np.swapaxes(a2, -1, -2), g2), b2.shape).reshape(b.shape)
        return ga, gb

    def backward_graph(self, g):
        # the same two products in Tensor ops (the general batched form, no folding)
        a, b = self.parents
        a2 = Reshape.apply(a, shape=(1,) + a.shape) if a.ndim == 1 else a  # (K,) -> (1, K)
        b2 = Reshape.apply(b, shape=b.shape + (1,)) if b.ndim == 1 else b  # (K,) -> (K, 1)
        batch = np.broadcast_shapes(a2.shape[:-2], b2.shape[:-2])
        g2 = Reshape.apply(g, shape=(*batch, a2.shape[-2], b2.shape[-1]))  # the squeezed axes back
        ga = gb = None
        if self.needs_input_grad[0]:
            ga = Reshape.apply(sum_to(MatMul.apply(g2, _swap_last_two(b2)), a2.shape), shape=a.shape)
        if self.needs_input_grad[1]:
            gb = Reshape.apply(sum_to(MatMul.apply(_swap_last_two(a2), g2), b2.shape), shape=b.shape)
        return ga, gb
