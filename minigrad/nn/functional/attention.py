"""Scaled dot-product attention as one graph node (Vaswani et al. 2017; the book's ch. 3).

For queries q (..., Tq, D), keys k (..., Tk, D) and values v (..., Tk, Dv):

    S = (q k^T) * scale                    (..., Tq, Tk)   scale = 1/sqrt(D) by default
    P = softmax(S + causal mask)           over the keys
    O = (P * M) v                          M = dropout mask / (1 - p), or 1 in evaluation

The causal mask is aligned bottom-right: query i sees key j iff j <= i + (Tk - Tq), so a
KV cache can run a few new queries against all cached keys and get the last rows of the full
causal attention. The backward, with dO = dL/dO and Pd = P * M:

    dV = Pd^T dO,   dPd = dO V^T,   dS = P * (dPd * M - r),   dQ = scale dS K,  dK = scale dS^T Q

where r = rowsum(dPd * M * P) = rowsum(dO * O) (a (..., Tq) vector, cheaper the second way).

The work is split into items of a few heads of one sequence (a (Tq, Tk) block of 256 KB or
so, which stays in cache from the product q k^T through the softmax to the product with v);
the items run on the kernel threads with one BLAS thread each (see _blas.py for why).
"""
from __future__ import annotations

import functools
import math

import numpy as np

from ...autograd import Function
from ...random import default_generator
from ...tensor import Tensor
from ._blas import single_blas_thread
from ._util import BLOCK_ELEMENTS, as_float_tensor, parallel_for
from .activation import check_probability, dropout_multiplier


@functools.lru_cache(maxsize=64)
def causal_bias(n_queries: int, n_keys: int, dtype_name: str) -> np.ndarray:
    """(Tq, Tk) array: 0 where query i may see key j (j <= i + Tk - Tq), -inf elsewhere.

    Cached per shape; read-only because it is shared.
    """
    offset = n_keys - n_queries
    blocked = np.arange(n_keys)[None, :] > np.arange(n_queries)[:, None] + offset  # (Tq, Tk)
    bias = np.where(blocked, -np.inf, 0.0).astype(dtype_name)
    bias.flags.writeable = False
    return bias


def _as_4d(a: np.ndarray) -> np.ndarray:
    """(..., T, D) -> (A, H, T, D): H is the last leading axis, A all the others (a view
    unless more than two leading axes need merging)."""
    lead = a.shape[:-2]
    if len(lead) == 2:
        return a
    if len(lead) < 2:
        return a.reshape((1,) * (2 - len(lead)) + a.shape)
    return a.reshape(-1, *a.shape[-3:])


def _softmax_rows_inplace(rows: np.ndarray) -> None:
    """rows (N, Tk) <- softmax over each row, with the row max subtracted first."""
    np.subtract(rows, rows.max(axis=1, keepdims=True), out=rows)
    np.exp(rows, out=rows)
    total = rows.sum(axis=1, keepdims=True)  # (N, 1), >= 1
    rows *= np.reciprocal(total, out=total)


class ScaledDotProductAttention(Function):
    # see the module docstring for the derivation of dQ, dK, dV
    fresh_grads = True  # backward returns new arrays only

    def forward(self, q, k, v, causal=True, dropout_p=0.0, generator=None, scale=None):
        dtype = np.result_type(q, k, v)
        out_shape = q.shape[:-1] + v.shape[-1:]  # (..., Tq, Dv)
        q4, k4, v4 = _as_4d(q), _as_4d(k), _as_4d(v)  # (A, H, T, D)
        n_queries, n_keys = q.shape[-2], k.shape[-2]
        q_scaled = (q4 * scale).astype(dtype, copy=False)  # (A, H, Tq, D): cheaper than scaling S
        probs = np.empty(q4.shape[:-1] + (n_keys,), dtype=dtype)  # (A, H, Tq, Tk)
        out = np.empty(q4.shape[:-1] + (v.shape[-1],), dtype=dtype)  # (A, H, Tq, Dv)
        bias = causal_bias(n_queries, n_keys, dtype.name) if causal and n_queries > 1 else None
        mask = None
        if dropout_p > 0.0:  # drawn in one piece, so the generator's stream is thread-independent
            mask = dropout_multiplier(generator, probs.shape, dropout_p, dtype)

        def item(a, heads):  # a few heads of one sequence: q k^T, mask, softmax, (dropout), @ v
            scores = probs[a, heads]  # (h, Tq, Tk)
            np.matmul(q_scaled[a, heads], np.swapaxes(k4[a, heads], -1, -2), out=scores)
            if bias is not None:
                scores += bias
            _softmax_rows_inplace(scores.reshape(-1, n_keys))
            weights = scores if mask is None else scores * mask[a, heads]  # (h, Tq, Tk)
            np.matmul(weights, v4[a, heads], out=out[a, heads])

        if n_keys:
            _run_items(item, probs.shape, v.shape[-1] + q.shape[-1])
        else:
            out.fill(0.0)
        if self.requires_grad:
            self.saved = (q_scaled, k4, v4, probs, mask, out)
            self.scale, self.shapes = scale, (q.shape, k.shape, v.shape)
        return out.reshape(out_shape)

    def backward(self, g):
        q_scaled, k4, v4, probs, mask, out = self.saved
        need_q, need_k, need_v = self.needs_input_grad
        g4 = g.reshape(out.shape)  # (A, H, Tq, Dv)
        grad_q = np.empty(q_scaled.shape, q_scaled.dtype) if need_q else None
        grad_k = np.empty(k4.shape, q_scaled.dtype) if need_k else None
        grad_v = np.empty(v4.shape, q_scaled.dtype) if need_v else None
        scale = self.scale

        def item(a, heads):
            p, d_out = probs[a, heads], g4[a, heads]  # (h, Tq, Tk), (h, Tq, Dv)
            m = None if mask is None else mask[a, heads]
            if need_v:
                weights = p if m is None else p * m  # Pd
                np.matmul(np.swapaxes(weights, -1, -2), d_out, out=grad_v[a, heads])  # Pd^T dO
            if not (need_q or need_k):
                return
            d_scores = np.matmul(d_out, np.swapaxes(v4[a, heads], -1, -2))  # dPd (h, Tq, Tk)
            if m is not None:
                d_scores *= m
            d_scores -= np.einsum("hid,hid->hi", d_out, out[a, heads])[..., None]  # - rowsum(dO O)
            d_scores *= p  # dS / scale
            if need_q:
                np.matmul(d_scores, k4[a, heads], out=grad_q[a, heads])
                grad_q[a, heads] *= scale
            if need_k:  # q_scaled already carries the scale
                np.matmul(np.swapaxes(d_scores, -1, -2), q_scaled[a, heads], out=grad_k[a, heads])

        if probs.shape[-1]:
            _run_items(item, probs.shape, out.shape[-1] + q_scaled.shape[-1])
        else:
            for grad in (grad_q, grad_k, grad_v):
                if grad is not None:
                    grad.fill(0.0)
        q_shape, k_shape, v_shape = self.shapes
        return (None if grad_q is None else grad_q.reshape(q_shape),
                None if grad_k is None else grad_k.reshape(k_shape),
                None if grad_v is None else grad_v.reshape(v_shape))


def _run_items(item, probs_shape, width) -> None:
    """Call item(a, heads) over all sequences a and blocks of heads, on the kernel threads,
    with one BLAS thread each. Blocks hold about BLOCK_ELEMENTS attention weights."""
    n_seq, n_heads, n_queries, n_keys = probs_shape
    heads_per_item = max(1, min(n_heads, BLOCK_ELEMENTS // max(1, n_queries * n_keys)))
    items = [(a, slice(h, min(h + heads_per_item, n_heads)))
             for a in range(n_seq) for h in range(0, n_heads, heads_per_item)]
    work_per_item = heads_per_item * n_queries * n_keys * (width + 8)  # ~ multiply-adds
    min_items = max(1, (1 << 22) // max(1, work_per_item))  # small problems stay on one thread

    def run(lo, hi):
        for a, heads in items[lo:hi]:
            item(a, heads)

    with single_blas_thread():
        parallel_for(len(items), run, min_items)


def scaled_dot_product_attention(q, k, v, causal: bool = True, dropout_p: float = 0.0,
                                 generator=None, scale: float | None = None) -> Tensor:
    """softmax(q k^T * scale + mask) v for q (..., Tq, D), k (..., Tk, D), v (..., Tk, Dv).

    causal: bottom-right aligned mask (needs Tq <= Tk). dropout_p > 0 drops attention
    weights (pass 0.0 in evaluation). scale defaults to 1/sqrt(D). The leading axes
    (usually (B, H)) must be equal for q, k and v.
    """
    q = as_float_tensor(q, "scaled_dot_product_attention", "q")
    k = as_float_tensor(k, "scaled_dot_product_attention", "k")
    v = as_float_tensor(v, "scaled_dot_product_attention", "v")
    if q.ndim < 2 or k.ndim < 2 or v.ndim < 2:
        raise ValueError(
            f"scaled_dot_product_attention: q, k, v need shape (..., T, D), got "
            f"q {q.shape}, k {k.shape}, v {v.shape}"
        )
    if (q.shape[:-2] != k.shape[:-2] or k.shape[:-2] != v.shape[:-2]
            or q.shape[-1] != k.shape[-1] or k.shape[-2] != v.shape[-2]):
        raise ValueError(
            f"scaled_dot_product_attention: shapes do not match: q {q.shape}, k {k.shape}, "
            f"v {v.shape} (need q (..., Tq, D), k (..., Tk, D), v (..., Tk, Dv) with equal "
            f"leading axes)"
        )
    if causal and q.shape[-2] > k.shape[-2]:
        raise ValueError(
            f"scaled_dot_product_attention: a causal mask needs Tq <= Tk, got q {q.shape} "
            f"and k {k.shape}"
        )
    dropout_p = check_probability(dropout_p, "scaled_dot_product_attention")
    if scale is None:
        scale = 1.0 / math.sqrt(q.shape[-1]) if q.shape[-1] else 1.0
    scale = float(scale)
    if dropout_p > 0.0 and generator is None:
        generator = default_generator()
    return ScaledDotProductAttention.apply(q, k, v, causal=bool(causal), dropout_p=dropout_p,
                                           generator=generator, scale=scale)
