"""Self-attention from its input as one node: the query, key and value projections of x, the
heads split, scaled dot-product attention, the heads merged (the book's MultiHeadAttention up to
its out_proj, section 3.6):

    q, k, v = x Wq^T + bq, x Wk^T + bk, x Wv^T + bv          (B, T, C) each
    context = merge(attention(split(q), split(k), split(v)))  (B, T, C),  split: (B, H, T, D)

Why one node: the three projections read the same x. One parallel region makes all three
(each thread its rows of x against the three weights), and in backward one region makes their
products: dL/dx = dq Wq + dk Wk + dv Wv by the calling thread (summed as they come, no engine sum
of three (N, C) arrays) and the three dL/dW = d^T x on the others (linear.py's split of a
Linear's backward, linear.products_backward_many, three products a side). Against three Linear
nodes and the six views that split and merge the heads: four parallel regions fewer per layer
(two each way), each of which cost ~150-200 us of hand-off on the 2-core benchmark machine of
2026-12-01 (on that of 2026-12-02, waking the second core after 2 ms of work on the calling
thread: 13 us median, 37 us p90). The attention in the middle is
scaled_dot_product_attention's own kernel (attention.py; blocked_attention.py above
attention.BLOCKED_ABOVE_BYTES of weights), run inside this node on the split views.

Reference version (read it first): `qkv_attention_reference`, the same in primitive ops with
the node's dropout multiplier, which create_graph=True differentiates.
"""
from __future__ import annotations

import math

import numpy as np

from ...autograd import Function
from ...random import default_generator
from ...tensor import Tensor
from . import reference as ref
from . import attention as attention_module  # (its BLOCKED_ABOVE_BYTES read at each call: one setting)
from .attention import ScaledDotProductAttention
from .blocked_attention import BlockedAttention
from .dropout import check_probability
from .linear import add_bias, matmul_rows_many, products_backward_many


def qkv_attention_reference(x, wq, wk, wv, bq=None, bk=None, bv=None, *, n_heads: int, scale=None,
                            dropout_multiplier=None) -> Tensor:
    """Causal self-attention of x (B, T, C_in) with projections W* (C, C_in), b* (C,) or None
    and n_heads heads of C / n_heads features -> (B, T, C); dropout_multiplier (B, H, T, T)."""
    batch, tokens, _ = x.shape
    width = wq.shape[0]
    split = (batch, tokens, n_heads, width // n_heads)
    q, k, v = (ref.linear(x, w, b).reshape(split).swapaxes(1, 2) for w, b in ((wq, bq), (wk, bk), (wv, bv)))
    context = ref.scaled_dot_product_attention(q, k, v, causal=True, scale=scale,
                                               dropout_multiplier=dropout_multiplier)  # (B, H, T, D)
    return context.swapaxes(1, 2).reshape(batch, tokens, width)


class QKVAttention(Function):
    # context = merge(A(split(x Wq^T + bq), ...)) with A the attention kernel, whose backward
    # gives dq, dk, dv (attention.py); then each projection's Linear rule: dL/dx = sum of
    # d* W*, dL/dW* = d*^T x, dL/db* = sum of d* over rows
    def forward(self, x, wq, wk, wv, *biases, n_heads, dropout_p, generator, scale, has_bias):
        batch, tokens, in_features = x.shape
        width = wq.shape[0]
        x2 = x.reshape(-1, in_features)  # (N, C_in)
        weights = (wq, wk, wv)
        biases = biases if biases else (None, None, None)

        projections = matmul_rows_many(  # q, k, v (N, C): each thread's rows, + their bias
            x2, weights, lambda i, y2, lo, hi: add_bias(y2, biases[i], lo, hi))
        split = (batch, tokens, n_heads, width // n_heads)
        q4, k4, v4 = (y2.reshape(split).transpose(0, 2, 1, 3) for y2 in projections)  # (B, H, T, D) views
        dtype = np.result_type(q4, k4, v4)
        weight_bytes = batch * n_heads * tokens * tokens * dtype.itemsize  # (B, H, T, T)
        kernel = (BlockedAttention if weight_bytes > attention_module.BLOCKED_ABOVE_BYTES  # as
                  else ScaledDotProductAttention)()  # scaled_dot_product_attention chooses
        kernel.requires_grad = self.requires_grad
        kernel.needs_input_grad = (True, True, True)
        kernel.parents = tuple(Tensor._wrap(a, False) for a in (q4, k4, v4))  # (shapes, for its backward)
        kernel.options = options = dict(causal=True, dropout_p=dropout_p, generator=generator, scale=scale)
        context = kernel.forward(q4, k4, v4, **options)  # (B, H, T, D), laid out (B, T, H, D)
        if self.requires_grad:
            self.x2, self.weights, self.kernel = x2, weights, kernel
        return context.transpose(0, 2, 1, 3).reshape(batch, tokens, width)  # a view: (B, T, C)

    def backward(self, g):
        batch, tokens, width = g.shape
        n_heads = self.options["n_heads"]
        g4 = g.reshape(batch, tokens, n_heads, width // n_heads).transpose(0, 2, 1, 3)  # (B, H, T, D)
        grads = self.kernel.backward(g4)[:3]  # dq, dk, dv (B, H, T, D), laid out like q, k, v
        d2 = [d.transpose(0, 2, 1, 3).reshape(-1, width) for d in grads]  # (N, C) each
        needs, has_bias = self.needs_input_grad, self.options["has_bias"]
        gx, gws, gbs = products_backward_many(self.x2, self.weights, d2, needs[0], needs[1:4],
                                              needs[4:7] if has_bias else (False,) * 3)
        gx = None if gx is None else gx.reshape(self.parents[0].shape)
        return (gx, *gws, *gbs) if has_bias else (gx, *gws)

    def backward_graph(self, g):
        # the reference with this node's dropout multiplier (drawn again from the generator's
        # state before the forward's draw, as attention's own backward_graph does)
        bits = self.kernel.dropout if isinstance(self.kernel, ScaledDotProductAttention) else self.kernel.saved[-1]
        multiplier = None if bits is None else bits.full()
        options = self.options

        def attention(x, wq, wk, wv, *biases):
            return qkv_attention_reference(x, wq, wk, wv, *biases, n_heads=options["n_heads"],
                                           scale=options["scale"], dropout_multiplier=multiplier)

        return self.differentiate(attention, g)


def qkv_attention(x, wq, wk, wv, bq=None, bk=None, bv=None, n_heads: int = 1, dropout_p: float = 0.0,
                  scale: float | None = None, generator=None) -> Tensor:
    """Causal self-attention of x (B, T, C_in) as one node (not in PyTorch): the projections
    x W*^T + b* (W* (C, C_in), b* (C,) or all None), n_heads heads, dropout_p on the attention
    weights (from `generator`, default minigrad's), scale 1/sqrt(C / n_heads) by default ->
    (B, T, C). The same numbers (to rounding) as three F.linear, the heads' split and
    F.scaled_dot_product_attention(..., is_causal=True) with the heads merged. Reference:
    `qkv_attention_reference`."""
    op = "qkv_attention"
    dropout_p = check_probability(dropout_p, op)
    tensors = [x if isinstance(x, Tensor) else Tensor(x) for x in (x, wq, wk, wv)]
    x, wq, wk, wv = tensors
    given = [b is not None for b in (bq, bk, bv)]
    if any(given) and not all(given):
        raise ValueError(f"{op}: give all three biases or none")
    if x.ndim != 3 or any(w.ndim != 2 or w.shape != wq.shape or w.shape[1] != x.shape[-1] for w in (wq, wk, wv)):
        raise ValueError(f"{op}: need x (B, T, C_in) and three weights (C, C_in), got x {x.shape}, "
                         f"weights {wq.shape}, {wk.shape}, {wv.shape}")
    if isinstance(n_heads, bool) or not isinstance(n_heads, int) or n_heads < 1 or wq.shape[0] % n_heads:
        raise ValueError(f"{op}: n_heads must be a positive int dividing C = {wq.shape[0]}, got {n_heads!r}")
    if all(given):
        tensors += [b if isinstance(b, Tensor) else Tensor(b) for b in (bq, bk, bv)]
        if any(b.shape != (wq.shape[0],) for b in tensors[4:]):
            raise ValueError(f"{op}: biases must have shape ({wq.shape[0]},), got "
                             f"{', '.join(str(b.shape) for b in tensors[4:])}")
    if any(t.dtype != x.dtype for t in tensors) or x.dtype not in (np.float32, np.float64):
        raise TypeError(f"{op}: x, weights and biases must share one float dtype (float32 or float64), got "
                        f"{', '.join(str(t.dtype) for t in tensors)}")
    if scale is None:
        scale = 1.0 / math.sqrt(wq.shape[0] // n_heads) if wq.shape[0] else 1.0
    if dropout_p > 0.0 and generator is None:
        generator = default_generator()
    return QKVAttention.apply(*tensors, n_heads=n_heads, dropout_p=dropout_p, generator=generator,
                              scale=float(scale), has_bias=all(given))
