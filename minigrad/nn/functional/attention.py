"""Scaled dot-product attention as one graph node (Vaswani et al. 2017; the book's ch. 3).

For queries q (..., Tq, D), keys k (..., Tk, D) and values v (..., Tk, Dv):

    S = (q k^T) * scale + B                (..., Tq, Tk)   scale = 1/sqrt(D) by default
    P = softmax(S)                         over the keys
    O = (P * M) v                          M = dropout mask / (1 - p), or 1 in evaluation

B is the additive mask: 0/-inf from a boolean attn_mask (True = may attend), a float
attn_mask as given, or PyTorch's is_causal mask, aligned top-left (query i sees key j iff
j <= i). A KV cache runs a few new queries against all cached keys and needs the
bottom-right alignment instead (j <= i + Tk - Tq): pass attn_mask=causal_lower_right(Tq, Tk).
A row that may attend to no key gives nan, as PyTorch. The backward, with dO = dL/dO and
Pd = P * M:

    dV = Pd^T dO,   dPd = dO V^T,   dS = P * (dPd * M - r),   dQ = scale dS K,  dK = scale dS^T Q

where r = rowsum(dPd * M * P) = rowsum(dO * O) (a (..., Tq) vector, cheaper the second way);
dB = dS (summed over the axes the mask was broadcast along). With enable_gqa, each group of
Hq / Hkv query heads shares one key/value head (its dK, dV are summed over the group).

The work is split into items of a few heads of one sequence (a (Tq, Tk) block of 256 KB or
so, which stays in cache from the product q k^T through the softmax to the product with v);
the items run on the kernel threads with one BLAS thread each (minigrad/runtime/blas.py says why).

This kernel keeps P (and the dropout mask) for backward: (..., Tq, Tk) arrays, quadratic in
the context. Without attn_mask, when the weights would take more than BLOCKED_ABOVE_BYTES
(64 MB; GPT-2 124M at context 1024 and batch 4 has 201 MB per layer, 2.4 GB of weights and as
much mask in all), scaled_dot_product_attention runs blocked_attention.py's kernel instead,
which keeps one log-sum-exp per query row and recomputes P in backward. Measured at GPT-2
124M: at context 1024 it is as fast as this kernel, at context 512 (25 MB) 3-10% slower, so
shorter contexts (every benchmark config) run this kernel, unchanged.
"""
from __future__ import annotations

import functools
import math

import numpy as np

from ...autograd import Function, unbroadcast
from ...random import default_generator
from ...runtime.blas import single_blas_thread
from ...tensor import Tensor
from ._util import BLOCK_ELEMENTS, as_float_tensor, parallel_for
from . import reference as ref
from .activation import check_probability, dropout_multiplier
from .blocked_attention import BlockedAttention, as_4d

BLOCKED_ABOVE_BYTES = 64 << 20  # without attn_mask, weights larger than this: the blocked kernel


def causal_lower_right(n_queries: int, n_keys: int) -> np.ndarray:
    """(Tq, Tk) boolean attn_mask, True where query i may see key j <= i + Tk - Tq: causal
    attention for the last Tq of Tk positions (a KV cache; PyTorch's causal_lower_right)."""
    return np.arange(n_keys)[None, :] <= np.arange(n_queries)[:, None] + (n_keys - n_queries)


@functools.lru_cache(maxsize=64)
def causal_bias(n_queries: int, n_keys: int, dtype_name: str, lower_right: bool = False) -> np.ndarray:
    """(Tq, Tk) array: 0 where query i may see key j (j <= i, or j <= i + Tk - Tq with
    lower_right), -inf elsewhere. Cached per shape; read-only because it is shared.
    """
    offset = n_keys - n_queries if lower_right else 0
    blocked = np.arange(n_keys)[None, :] > np.arange(n_queries)[:, None] + offset  # (Tq, Tk)
    bias = np.where(blocked, -np.inf, 0.0).astype(dtype_name)
    bias.flags.writeable = False
    return bias


def _softmax_rows_inplace(rows: np.ndarray) -> None:
    """rows (N, Tk) <- softmax over each row, with the row max subtracted first."""
    np.subtract(rows, rows.max(axis=1, keepdims=True), out=rows)
    np.exp(rows, out=rows)
    total = rows.sum(axis=1, keepdims=True)  # (N, 1), >= 1
    rows *= np.reciprocal(total, out=total)


class ScaledDotProductAttention(Function):
    # see the module docstring for the derivation of dQ, dK, dV; the plain version of the
    # whole computation is reference.scaled_dot_product_attention
    @staticmethod
    def reference(q, k, v, *mask, causal=False, dropout_p=0.0, generator=None, scale=None, groups=1):
        multiplier = None
        if dropout_p > 0.0:  # the same draw as the forward's: one piece of (..., Tq, Tk)
            dtype = np.result_type(q.dtype, k.dtype, v.dtype)
            multiplier = dropout_multiplier(generator, q.shape[:-1] + k.shape[-2:-1], dropout_p, dtype)
        return ref.scaled_dot_product_attention(q, k, v, *mask, causal=causal, scale=scale,
                                                groups=groups, dropout_multiplier=multiplier)

    def backward_graph(self, g):
        # differentiate the reference with this node's own dropout multiplier (saved[4])
        options, multiplier = self.options, self.saved[4]

        def attention(q, k, v, *mask):
            return ref.scaled_dot_product_attention(
                q, k, v, *mask, causal=options.get("causal", False), scale=options.get("scale"),
                groups=options.get("groups", 1), dropout_multiplier=multiplier)

        return self.differentiate(attention, g)

    def forward(self, q, k, v, *mask, causal=False, dropout_p=0.0, generator=None, scale=None,
                groups=1):
        dtype = np.result_type(q, k, v)
        out_shape = q.shape[:-1] + v.shape[-1:]  # (..., Tq, Dv)
        q4, k4, v4 = as_4d(q), as_4d(k), as_4d(v)  # (A, H, T, D)
        if groups > 1:  # (A, Hkv, Tk, D) -> (A, Hkv * groups, Tk, D): query head h uses h // groups
            k4, v4 = np.repeat(k4, groups, axis=1), np.repeat(v4, groups, axis=1)
        n_queries, n_keys = q.shape[-2], k.shape[-2]
        q_scaled = (q4 * scale).astype(dtype, copy=False)  # (A, H, Tq, D): cheaper than scaling S
        probs = np.empty(q4.shape[:-1] + (n_keys,), dtype=dtype)  # (A, H, Tq, Tk)
        out = np.empty(q4.shape[:-1] + (v.shape[-1],), dtype=dtype)  # (A, H, Tq, Dv)
        bias = causal_bias(n_queries, n_keys, dtype.name) if causal and n_keys > 1 else None
        if mask:  # (..., Tq, Tk) additive, broadcast to (A, H, Tq, Tk)
            self.mask_shape = mask[0].shape
            bias = as_4d(np.broadcast_to(mask[0].astype(dtype, copy=False), q.shape[:-2] + probs.shape[-2:]))
        mask = None
        if dropout_p > 0.0:  # drawn in one piece, so the generator's stream is thread-independent
            mask = dropout_multiplier(generator, probs.shape, dropout_p, dtype)

        def item(a, heads):  # a few heads of one sequence: q k^T, mask, softmax, (dropout), @ v
            scores = probs[a, heads]  # (h, Tq, Tk)
            np.matmul(q_scaled[a, heads], np.swapaxes(k4[a, heads], -1, -2), out=scores)
            if bias is not None:
                scores += bias if bias.ndim == 2 else bias[a, heads]
            _softmax_rows_inplace(scores.reshape(-1, n_keys))
            weights = scores if mask is None else scores * mask[a, heads]  # (h, Tq, Tk)
            np.matmul(weights, v4[a, heads], out=out[a, heads])

        if n_keys:
            _run_items(item, probs.shape, v.shape[-1] + q.shape[-1])
        else:
            out.fill(0.0)
        if self.requires_grad:
            self.saved = (q_scaled, k4, v4, probs, mask, out)
            self.scale, self.shapes, self.groups = scale, (q.shape, k.shape, v.shape), groups
        return out.reshape(out_shape)

    def backward(self, g):
        q_scaled, k4, v4, probs, mask, out = self.saved
        need_q, need_k, need_v = self.needs_input_grad[:3]
        need_bias = len(self.needs_input_grad) == 4 and self.needs_input_grad[3]
        g4 = g.reshape(out.shape)  # (A, H, Tq, Dv)
        grad_bias = np.empty(probs.shape, probs.dtype) if need_bias else None  # dS, (A, H, Tq, Tk)
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
            if not (need_q or need_k or need_bias):
                return
            d_scores = np.matmul(d_out, np.swapaxes(v4[a, heads], -1, -2))  # dPd (h, Tq, Tk)
            if m is not None:
                d_scores *= m
            d_scores -= np.einsum("hid,hid->hi", d_out, out[a, heads])[..., None]  # - rowsum(dO O)
            d_scores *= p  # dS / scale
            if need_bias:
                grad_bias[a, heads] = d_scores
            if need_q:
                np.matmul(d_scores, k4[a, heads], out=grad_q[a, heads])
                grad_q[a, heads] *= scale
            if need_k:  # q_scaled already carries the scale
                np.matmul(np.swapaxes(d_scores, -1, -2), q_scaled[a, heads], out=grad_k[a, heads])

        if probs.shape[-1]:
            _run_items(item, probs.shape, out.shape[-1] + q_scaled.shape[-1])
        else:
            for grad in (grad_q, grad_k, grad_v, grad_bias):
                if grad is not None:
                    grad.fill(0.0)
        q_shape, k_shape, v_shape = self.shapes
        if self.groups > 1:  # sum each group of query heads back onto its key/value head
            grad_k, grad_v = (None if gr is None else
                              gr.reshape(gr.shape[0], gr.shape[1] // self.groups, self.groups, *gr.shape[2:]).sum(axis=2)
                              for gr in (grad_k, grad_v))
        grads = (None if grad_q is None else grad_q.reshape(q_shape),
                 None if grad_k is None else grad_k.reshape(k_shape),
                 None if grad_v is None else grad_v.reshape(v_shape))
        if len(self.needs_input_grad) == 3:
            return grads
        if grad_bias is not None:
            grad_bias = unbroadcast(grad_bias.reshape(q_shape[:-2] + probs.shape[-2:]), self.mask_shape)
        return grads + (grad_bias,)


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


def _attention_mask(attn_mask, dtype) -> Tensor:
    """A boolean mask (True = attend) as a constant 0/-inf bias; a float mask as a Tensor."""
    data = attn_mask.data if isinstance(attn_mask, Tensor) else np.asarray(attn_mask)
    if data.dtype == np.bool_:
        return Tensor._wrap(np.where(data, 0.0, -np.inf).astype(dtype), False)
    if data.dtype.kind != "f":
        raise TypeError(f"scaled_dot_product_attention: attn_mask must be bool or float, got dtype {data.dtype}")
    return attn_mask if isinstance(attn_mask, Tensor) else Tensor(data)


def scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p: float = 0.0,
                                 is_causal: bool = False, scale: float | None = None,
                                 enable_gqa: bool = False, *, generator=None) -> Tensor:
    """softmax(q k^T * scale + mask) v for q (..., Hq, Tq, D), k (..., H, Tk, D), v (..., H, Tk, Dv).

    PyTorch's signature and defaults: no mask unless is_causal (top-left aligned) or
    attn_mask (bool: True may attend; float: added to the scores; broadcast to
    (..., Tq, Tk)); dropout_p > 0 drops attention weights (pass 0.0 in evaluation), drawn from
    `generator` or the default generator; scale defaults to 1/sqrt(D); enable_gqa lets
    Hq be a multiple of H. The leading axes must otherwise be equal. Reference version, in
    plain ops: `reference.scaled_dot_product_attention`.
    """
    op = "scaled_dot_product_attention"
    q = as_float_tensor(query, op, "query")
    k = as_float_tensor(key, op, "key")
    v = as_float_tensor(value, op, "value")
    if q.ndim < 2 or k.ndim < 2 or v.ndim < 2:
        raise ValueError(f"{op}: query, key, value need shape (..., T, D), got q {q.shape}, "
                         f"k {k.shape}, v {v.shape}")
    groups = 1
    if enable_gqa and q.ndim >= 3 and k.ndim >= 3 and k.shape[-3] and q.shape[-3] % k.shape[-3] == 0:
        groups = q.shape[-3] // k.shape[-3]
    q_lead = q.shape[:-3] + (q.shape[-3] // groups,) if q.ndim >= 3 else q.shape[:-2]
    if (q_lead != k.shape[:-2] or k.shape[:-2] != v.shape[:-2]
            or q.shape[-1] != k.shape[-1] or k.shape[-2] != v.shape[-2]):
        raise ValueError(
            f"{op}: shapes do not match: q {q.shape}, k {k.shape}, v {v.shape} (need q "
            f"(..., Tq, D), k (..., Tk, D), v (..., Tk, Dv) with equal leading axes"
            + (", or with enable_gqa=True query heads a multiple of key heads)" if enable_gqa else ")"))
    dropout_p = check_probability(dropout_p, op)
    if scale is None:
        scale = 1.0 / math.sqrt(q.shape[-1]) if q.shape[-1] else 1.0
    if dropout_p > 0.0 and generator is None:
        generator = default_generator()
    dtype = np.result_type(q.dtype, k.dtype, v.dtype)
    weight_bytes = math.prod(q.shape[:-1]) * k.shape[-2] * dtype.itemsize  # (..., Tq, Tk)
    if attn_mask is None and weight_bytes > BLOCKED_ABOVE_BYTES:  # long contexts
        return BlockedAttention.apply(q, k, v, causal=bool(is_causal), dropout_p=dropout_p,
                                      generator=generator, scale=float(scale), groups=groups)
    inputs = [q, k, v]
    if attn_mask is not None:
        if is_causal:
            raise ValueError(f"{op}: pass either attn_mask or is_causal=True, not both (as PyTorch)")
        mask = _attention_mask(attn_mask, dtype)
        target = q.shape[:-1] + (k.shape[-2],)
        try:
            if np.broadcast_shapes(mask.shape, target) != target:
                raise ValueError
        except ValueError:
            raise ValueError(f"{op}: attn_mask of shape {mask.shape} does not broadcast to the "
                             f"attention weights {target}") from None
        inputs.append(mask)
    return ScaledDotProductAttention.apply(*inputs, causal=bool(is_causal), dropout_p=dropout_p,
                                           generator=generator, scale=float(scale), groups=groups)
