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
Products are batched np.matmul calls over all (B, H) at once; the softmax runs in row blocks
over threads.
"""
from __future__ import annotations

import functools
import math

import numpy as np

from ...autograd import Function
from ...random import default_generator
from ...tensor import Tensor
from ._util import as_float_tensor, for_row_blocks, parallel_multiply
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


class ScaledDotProductAttention(Function):
    # see the module docstring for the derivation of dQ, dK, dV
    fresh_grads = True  # backward returns new arrays only

    def forward(self, q, k, v, causal=True, dropout_p=0.0, generator=None, scale=None):
        dtype = np.result_type(q, k, v)
        n_queries, n_keys = q.shape[-2], k.shape[-2]
        q_scaled = q * scale  # (..., Tq, D): scaling q is cheaper than scaling S
        if q_scaled.dtype != dtype:
            q_scaled = q_scaled.astype(dtype)
        probs = np.matmul(q_scaled, np.swapaxes(k, -1, -2))  # (..., Tq, Tk)
        bias = causal_bias(n_queries, n_keys, dtype.name) if causal and n_queries > 1 else None
        scores = probs.reshape(-1, n_queries, n_keys)  # (G, Tq, Tk), G = prod(leading axes)

        def block(lo, hi):  # heads lo..hi: mask, then softmax over keys, in place
            s = scores[lo:hi]
            if bias is not None:
                s += bias
            s = s.reshape(-1, n_keys)  # ((hi - lo) * Tq, Tk)
            np.subtract(s, s.max(axis=1, keepdims=True), out=s)
            np.exp(s, out=s)
            total = s.sum(axis=1, keepdims=True)
            s *= np.reciprocal(total, out=total)

        if scores.size:
            for_row_blocks(scores.shape[0], n_queries * n_keys, block)
        mask = None
        if dropout_p > 0.0:
            mask = dropout_multiplier(generator, probs.shape, dropout_p, probs.dtype)
            weights = parallel_multiply(probs, mask)  # (..., Tq, Tk)
        else:
            weights = probs
        out = np.matmul(weights, v)  # (..., Tq, Dv)
        if self.requires_grad:
            self.saved = (q_scaled, k, v, probs, mask, out)
            self.scale = scale
        return out

    def backward(self, g):
        q_scaled, k, v, probs, mask, out = self.saved
        need_q, need_k, need_v = self.needs_input_grad
        grad_v = None
        if need_v:
            weights = probs if mask is None else parallel_multiply(probs, mask)  # P or Pd
            grad_v = np.matmul(np.swapaxes(weights, -1, -2), g)  # (..., Tk, Dv) = Pd^T dO
        if not (need_q or need_k):
            return None, None, grad_v
        d_scores = np.matmul(g, np.swapaxes(v, -1, -2))  # (..., Tq, Tk) = dPd
        r = np.einsum("...id,...id->...i", g, out)  # (..., Tq): rowsum(dO * O)
        n_queries, n_keys = probs.shape[-2:]
        d3, p3 = d_scores.reshape(-1, n_queries, n_keys), probs.reshape(-1, n_queries, n_keys)
        m3 = None if mask is None else mask.reshape(-1, n_queries, n_keys)
        r3 = r.reshape(-1, n_queries, 1)

        def block(lo, hi):  # heads lo..hi: dS = P * (dPd * M - r), without the scale
            d = d3[lo:hi]
            if m3 is not None:
                d *= m3[lo:hi]
            d -= r3[lo:hi]
            d *= p3[lo:hi]

        if d3.size:
            for_row_blocks(d3.shape[0], n_queries * n_keys, block)
        grad_q = grad_k = None
        if need_q:
            grad_q = np.matmul(d_scores, k)  # (..., Tq, D)
            grad_q *= self.scale
        if need_k:
            grad_k = np.matmul(np.swapaxes(d_scores, -1, -2), q_scaled)  # (..., Tk, D), scale in q
        return grad_q, grad_k, grad_v


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
