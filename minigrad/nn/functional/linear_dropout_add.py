"""A transformer block's projection back to the residual stream as one node:
y = dropout(x W^T + b) + residual (the book's `x = self.drop_shortcut(self.att(x)) + shortcut`,
with the attention's out_proj, or the feed-forward's second Linear, as the last op of att(x)).

Why one node: dropout and the sum run on the product's rows right after the GEMM
(linear.matmul_rows: on each thread's rows while they are in its cache), so the (N, out)
product is never read back from memory and its dropout is split over the threads with it.
Measured in bench-tiny steps (2 threads, 8 of these nodes per step; three runs alternated with
the two nodes Linear + dropout_add, per-op accounting): the time outside parallel regions 34.8-36.6
ms per step before, 28.5-29.2 after, the mean step 2.8-9.5 ms shorter.

The mask is dropout_add's, bit for bit: with a PCG64 generator (minigrad's) the rows' bits are
the ones dropout.dropout_multiplier would draw for the whole (N, out) array (dropout_bits.
DropoutBits jumps to each block's bits), and the generator ends where that draw leaves it;
with another bit generator, which cannot jump ahead, the whole mask is drawn first, as
dropout_add does. So a model gives the same numbers with and without this node.

Reference version (read it first): `linear_dropout_add_reference`, dropout(linear(x, W, b)) +
residual in primitive ops with the node's multiplier, which create_graph=True differentiates.
"""
from __future__ import annotations

import numpy as np

from ...random import default_generator
from ...tensor import Tensor
from . import reference as ref
from ._util import for_row_blocks
from .dropout import BOOL_MASK_ABOVE_BYTES, _SEEKABLE, _MaskedOp, check_probability, dropout_add, dropout_multiplier
from .dropout_bits import DropoutBits
from .linear import Linear, check_linear_arguments, linear, matmul_rows


def linear_dropout_add_reference(x: Tensor, weight: Tensor, bias, residual: Tensor, multiplier) -> Tensor:
    """dropout(x @ weight^T + bias) + residual with the given dropout multiplier m (keep / (1 - p),
    of the output's shape): x (..., in), weight (out, in), bias (out,) or None -> (..., out)."""
    return ref.dropout(ref.linear(x, weight, bias), multiplier) + residual


class LinearDropoutAdd(Linear, _MaskedOp):
    # y = z * m + r with z = x W^T + b  =>  dL/dr = g,  dL/dz = g * m, and from dL/dz Linear's
    # rule: dL/dx = dL/dz W,  dL/dW = dL/dz^T x,  dL/db = sum of dL/dz over rows
    reference = None  # (not Linear's: backward_graph below differentiates this op's reference)

    def forward(self, x, weight, *rest, p, generator, has_bias):
        bias, residual = (rest[0], rest[1]) if has_bias else (None, rest[0])
        out_features, in_features = weight.shape
        x2 = x.reshape(-1, in_features)  # (N, in)
        r2 = np.asarray(residual, order="C").reshape(x2.shape[0], out_features)  # (N, out)
        dtype = np.result_type(x2, weight)
        lean = self.requires_grad and x2.shape[0] * out_features * dtype.itemsize > BOOL_MASK_ABOVE_BYTES
        bits = whole = None
        if isinstance(generator.bit_generator, _SEEKABLE):  # each block's bits where it is used
            bits = DropoutBits(generator, (x2.shape[0] * out_features,), p, dtype)
            mask = np.empty((x2.shape[0], out_features), dtype) if not lean else None  # (N, out)
        else:  # the whole mask first, as dropout_add draws it
            mask = whole = dropout_multiplier(generator, (x2.shape[0], out_features), p, dtype)
        keep = np.empty((x2.shape[0], out_features), np.bool_) if lean else None
        scale = 1.0 / (1.0 - p)

        def block(y2, lo, hi):  # rows lo:hi: z += b, m from the bits, y = z * m + r
            ys = y2[lo:hi]
            if bias is not None:
                ys += bias
            if whole is not None:
                m = whole[lo:hi]
            else:  # 1.0 kept, 0.0 dropped, then the scale: dropout_multiplier's two steps
                m = mask[lo:hi] if mask is not None else np.empty(ys.shape, dtype)
                values = bits.flat(lo * out_features, (hi - lo) * out_features).reshape(ys.shape)
                np.greater_equal(values, bits.threshold, out=m)
                m *= scale
            if keep is not None:
                np.not_equal(m, 0, out=keep[lo:hi])
            ys *= m  # dropout_add's product, then its sum
            ys += r2[lo:hi]

        def finish(y2, lo, hi):  # on this thread's rows, or on all (then split over threads)
            for_row_blocks(hi - lo, out_features, lambda i, j: block(y2, lo + i, lo + j))

        y2 = matmul_rows(x2, weight, finish)  # (N, out)
        if self.requires_grad:
            self.x2, self.weight = x2, weight
            self.mask, self.keep, self.scale = (None, keep, scale) if lean else (mask, None, scale)
        return y2.reshape(*x.shape[:-1], out_features)  # (..., out)

    def backward(self, g):
        needs = self.needs_input_grad
        linear_needs, need_r = needs[:-1], needs[-1]
        grads = (None,) * len(linear_needs)
        if any(linear_needs):
            g2 = np.asarray(g, order="C").reshape(self.x2.shape[0], self.weight.shape[0])  # (N, out)
            grads = self.products_backward(self.times_mask(g2), linear_needs)  # with dL/dz = g * m
        return (*grads, g if need_r else None)

    def backward_graph(self, g):
        # differentiate the reference with this node's multiplier (a constant: it does not
        # depend on the inputs)
        multiplier = Tensor(self.multiplier().reshape(self.parents[-1].shape))  # (..., out), the residual's
        has_bias = self.options["has_bias"]

        def project(x, weight, *rest):
            return linear_dropout_add_reference(x, weight, rest[0] if has_bias else None, rest[-1], multiplier)

        return self.differentiate(project, g)


def linear_dropout_add(x, weight, bias, residual, p: float = 0.5, training: bool = True,
                       generator=None) -> Tensor:
    """dropout(linear(x, weight, bias), p, training, generator) + residual as one node (not in
    PyTorch): the same numbers and mask as F.dropout_add(F.linear(x, weight, bias), residual,
    ...) from the same generator state. x (..., in), weight (out, in), bias (out,) or None,
    residual of the output's shape (..., out) and dtype; otherwise, and when not training or
    p == 0, those two ops. Reference: `linear_dropout_add_reference`."""
    p = check_probability(p, "linear_dropout_add")
    tensors = check_linear_arguments("linear_dropout_add", x, weight, bias)
    if not isinstance(residual, Tensor):
        residual = Tensor(residual)
    x, weight = tensors[0], tensors[1]
    out_shape = x.shape[:-1] + (weight.shape[0],)
    if (not training or p == 0.0 or residual.shape != out_shape or x.dtype not in (np.float32, np.float64)
            or any(t.dtype != x.dtype for t in (*tensors[1:], residual))):
        return dropout_add(linear(x, weight, bias), residual, p, training, generator)
    return LinearDropoutAdd.apply(*tensors, residual, p=p, generator=generator or default_generator(),
                                  has_bias=len(tensors) == 3)
