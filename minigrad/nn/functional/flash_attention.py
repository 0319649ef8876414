"""Blocked ("flash") attention: memory linear in the context, the weights recomputed in backward.

The same function as attention.py's kernel without attn_mask (FlashAttention, Dao et al.
2022, done the NumPy way): for a block of query rows the scores S = q k^T * scale against
the keys that block may see are a small (rows, keys) array that stays in cache, softmax'ed
in place and multiplied by v at once. Only the output O and one number per query row are
kept for backward, the row's log-sum-exp

    L = m + log(sum_j exp(S_ij - m))        m = max_j S_ij       so that P = exp(S - L)

With (B, H, T, T) weights no longer kept, training at context 1024 needs O(B H T D) memory
for attention instead of O(B H T^2) (at GPT-2 124M, batch 4: 2.4 GB of weights fewer, 4.8 GB
with dropout's mask). Backward recomputes P block by block from q, k and L (one more
q k^T product) and applies attention.py's formulas:

    dV = Pd^T dO,   dPd = dO V^T,   dS = P * (dPd * M - r),   dQ = scale dS K,  dK = scale dS^T Q

with r = rowsum(dO * O), summing dK and dV over the query blocks. With the causal mask
(top-left: query i sees keys j <= i) a block of rows [r0, r1) needs only the keys [0, r1),
and only the keys [r0, r1) need the mask, so the masked half of the products is skipped.

Dropout: the mask M = keep / (1 - p) is drawn per head from its own random stream, one
SFC64 generator seeded from (a seed drawn from `generator`, the head's index), block by
block in row order, for the keys the block sees; backward draws the same numbers again
instead of keeping them. So results do not depend on the thread count either.

Reference: attention.py's kernel (it keeps P), and reference_attention in the tests.
"""
from __future__ import annotations

import math

import numpy as np

from ...autograd import Function
from ...runtime.blas import single_blas_thread
from ._util import BLOCK_ELEMENTS, parallel_for

QUERY_ROWS = 64  # rows per block at most: the causal skip saves ~(1 - 1/n_blocks)/2 of the work
KEEP_WEIGHTS_BYTES = 16 << 20  # keep P (not recompute it) when all of it takes at most this


def _blocks(n_heads: int, n_queries: int, n_keys: int) -> tuple[int, int]:
    """(heads per item, query rows per block): a (heads, rows, keys) block of about
    BLOCK_ELEMENTS scores, at most QUERY_ROWS rows."""
    heads = max(1, min(n_heads, BLOCK_ELEMENTS // max(1, n_queries * n_keys)))
    rows = max(1, min(n_queries, QUERY_ROWS, BLOCK_ELEMENTS // max(1, heads * n_keys)))
    return heads, rows


class _ItemDropout:
    """Dropout multipliers for one item (a few heads of one sequence), drawn block after
    block from the item's own random stream; None when p = 0."""

    def __new__(cls, seed: int, item_index: int, p: float, dtype):
        return super().__new__(cls) if p > 0.0 else None

    def __init__(self, seed: int, item_index: int, p: float, dtype):
        self.bits = np.random.SFC64(np.random.SeedSequence([seed, item_index]))
        self.threshold = np.uint32(min(math.ceil(p * 2**32), 2**32 - 1))  # P(bits >= t) = 1 - p
        self.scale, self.dtype = 1.0 / (1.0 - p), dtype

    def next(self, shape: tuple) -> np.ndarray:
        """(heads, rows, keys) multipliers: 1 / (1 - p) where kept, 0 where dropped."""
        n = math.prod(shape)
        bits = self.bits.random_raw((n + 1) // 2).view(np.uint32)[:n].reshape(shape)
        mask = np.greater_equal(bits, self.threshold).astype(self.dtype)
        mask *= self.scale
        return mask


def dropout_seed(generator) -> int:
    """The one number a blocked attention call draws from `generator` (its dropout seed)."""
    return int(generator.integers(0, 2**63))


def dropout_mask(seed: int, shape: tuple, p: float, causal: bool, dtype=np.float64) -> np.ndarray:
    """The full (A, H, Tq, Tk) multiplier array a call with this seed uses (for tests; the
    kernel never builds it). Entries a causal block does not see are 0."""
    n_seq, n_heads, n_queries, n_keys = shape
    heads, rows = _blocks(n_heads, n_queries, n_keys)
    mask = np.zeros(shape, dtype)
    for index, (a, hs) in enumerate(_items(n_seq, n_heads, heads)):
        stream = _ItemDropout(seed, index, p, dtype)
        for r0 in range(0, n_queries, rows):
            r1 = min(r0 + rows, n_queries)
            keys = min(n_keys, r1) if causal else n_keys
            mask[a, hs, r0:r1, :keys] = stream.next((hs.stop - hs.start, r1 - r0, keys))
    return mask


class BlockedAttention(Function):
    """softmax(q k^T * scale [+ causal mask]) [* dropout] v for q (A, H, Tq, D), k (A, H/g,
    Tk, D), v (A, H/g, Tk, Dv) with g = groups (query head h uses key/value head h // g),
    keeping O and the rows' log-sum-exp (see the module docstring); the weights too when
    they take at most KEEP_WEIGHTS_BYTES (short contexts: no recomputation)."""


    def forward(self, q, k, v, causal=False, dropout_p=0.0, seed=0, scale=1.0, groups=1):
        dtype = np.result_type(q, k, v)
        if groups > 1:  # (A, Hkv, Tk, D) -> (A, Hkv * groups, Tk, D)
            k, v = np.repeat(k, groups, axis=1), np.repeat(v, groups, axis=1)
        n_seq, n_heads, n_queries, _ = q.shape
        n_keys = k.shape[-2]
        q_scaled = (q * scale).astype(dtype, copy=False)  # (A, H, Tq, D): cheaper than scaling S
        out = np.empty(q.shape[:-1] + v.shape[-1:], dtype=dtype)  # (A, H, Tq, Dv)
        lse = np.empty(q.shape[:-1], dtype=dtype)  # (A, H, Tq)
        heads, rows = _blocks(n_heads, n_queries, n_keys)
        items = _items(n_seq, n_heads, heads)
        weight_bytes = n_seq * n_heads * n_queries * n_keys * dtype.itemsize
        kept = {} if self.requires_grad and weight_bytes <= KEEP_WEIGHTS_BYTES else None

        def item(index, a, hs):  # a few heads of one sequence, block of rows after block of rows
            stream = _ItemDropout(seed, index, dropout_p, dtype)
            for r0 in range(0, n_queries, rows):
                r1 = min(r0 + rows, n_queries)
                keys = min(n_keys, r1) if causal else n_keys
                probs = _scores(q_scaled[a, hs, r0:r1], k[a, hs, :keys], r0, causal)
                top = probs.max(axis=-1, keepdims=True)  # (h, rows, 1)
                probs -= top
                np.exp(probs, out=probs)
                total = probs.sum(axis=-1, keepdims=True)  # >= 1
                probs *= np.reciprocal(total)  # P, (h, rows, keys)
                lse[a, hs, r0:r1] = (top + np.log(total))[..., 0]
                if kept is not None:
                    kept[index, r0] = probs
                weights = probs
                if stream is not None:  # P * M (a new array when P is kept)
                    mask = stream.next(probs.shape)
                    weights = np.multiply(probs, mask, out=None if kept is not None else probs)
                np.matmul(weights, v[a, hs, :keys], out=out[a, hs, r0:r1])

        if n_keys:
            _run_items(item, items, heads * n_queries * n_keys * (q.shape[-1] + v.shape[-1]))
        else:
            out.fill(0.0)
        if self.requires_grad:
            self.saved = (q_scaled, k, v, out, lse, kept)
            self.settings = (causal, dropout_p, seed, scale, groups)
        return out

    def backward(self, g):
        q_scaled, k, v, out, lse, kept = self.saved
        causal, dropout_p, seed, scale, groups = self.settings
        need_q, need_k, need_v = self.needs_input_grad
        n_seq, n_heads, n_queries, _ = q_scaled.shape
        n_keys = k.shape[-2]
        dtype = q_scaled.dtype
        g = g.reshape(out.shape)  # (A, H, Tq, Dv)
        grad_q = np.empty(q_scaled.shape, dtype) if need_q else None
        grad_k = np.zeros(k.shape, dtype) if need_k else None  # sums over the query blocks
        grad_v = np.zeros(v.shape, dtype) if need_v else None
        heads, rows = _blocks(n_heads, n_queries, n_keys)

        def item(index, a, hs):
            stream = _ItemDropout(seed, index, dropout_p, dtype)
            for r0 in range(0, n_queries, rows):
                r1 = min(r0 + rows, n_queries)
                keys = min(n_keys, r1) if causal else n_keys
                q_rows, k_rows, v_rows = q_scaled[a, hs, r0:r1], k[a, hs, :keys], v[a, hs, :keys]
                d_out = g[a, hs, r0:r1]  # (h, rows, Dv)
                if kept is not None:
                    probs = kept[index, r0]
                else:  # recompute P = exp(S - L)
                    probs = _scores(q_rows, k_rows, r0, causal)
                    probs -= lse[a, hs, r0:r1, None]
                    np.exp(probs, out=probs)  # (h, rows, keys)
                mask = None if stream is None else stream.next(probs.shape)  # the forward's M
                if need_v:
                    weights = probs if mask is None else probs * mask  # Pd
                    grad_v[a, hs, :keys] += np.matmul(np.swapaxes(weights, -1, -2), d_out)
                if not (need_q or need_k):
                    continue
                d_scores = np.matmul(d_out, np.swapaxes(v_rows, -1, -2))  # dPd (h, rows, keys)
                if mask is not None:
                    d_scores *= mask
                d_scores -= np.einsum("hid,hid->hi", d_out, out[a, hs, r0:r1])[..., None]  # - r
                d_scores *= probs  # dS / scale
                if need_q:
                    np.matmul(d_scores, k_rows, out=grad_q[a, hs, r0:r1])
                    grad_q[a, hs, r0:r1] *= scale
                if need_k:  # q_scaled already carries the scale
                    grad_k[a, hs, :keys] += np.matmul(np.swapaxes(d_scores, -1, -2), q_rows)

        if n_keys:
            _run_items(item, _items(n_seq, n_heads, heads),
                       heads * n_queries * n_keys * (2 * q_scaled.shape[-1] + 2 * v.shape[-1]))
        elif grad_q is not None:
            grad_q.fill(0.0)
        if groups > 1:  # sum each group of query heads back onto its key/value head
            grad_k, grad_v = (None if grad is None else
                              grad.reshape(grad.shape[0], -1, groups, *grad.shape[2:]).sum(axis=2)
                              for grad in (grad_k, grad_v))
        return grad_q, grad_k, grad_v


def _scores(q_rows, k_rows, r0: int, causal: bool) -> np.ndarray:
    """q_rows (h, rows, D) @ k_rows (h, keys, D)^T, with -inf where key j > query i (causal:
    only the keys [r0, keys) can be)."""
    scores = np.matmul(q_rows, np.swapaxes(k_rows, -1, -2))  # (h, rows, keys)
    n_rows, n_keys = scores.shape[-2:]
    if causal and n_keys > r0:
        i = np.arange(r0, r0 + n_rows)[:, None]
        j = np.arange(r0, n_keys)[None, :]
        np.copyto(scores[..., r0:], -np.inf, where=j > i)
    return scores


def _run_items(item, items: list, work_per_item: int) -> None:
    """Call item(index, a, heads) for every item, on the kernel threads with one BLAS thread
    each (minigrad/runtime/blas.py says why)."""
    min_items = max(1, (1 << 22) // max(1, work_per_item))  # small problems stay on one thread

    def run(lo, hi):
        for index in range(lo, hi):
            item(index, *items[index])

    with single_blas_thread():
        parallel_for(len(items), run, min_items)


def _items(n_seq: int, n_heads: int, heads: int) -> list:
    """[(a, slice of heads)]: the work items, `heads` heads of one sequence each."""
    return [(a, slice(h, min(h + heads, n_heads))) for a in range(n_seq) for h in range(0, n_heads, heads)]
