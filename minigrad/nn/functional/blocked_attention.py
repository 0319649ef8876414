"""Blocked ("flash") attention: memory linear in the context, the weights recomputed in backward.

The same function as attention.py's kernel without attn_mask (FlashAttention, Dao et al.
2022, done the NumPy way), which scaled_dot_product_attention runs when the (..., Tq, Tk)
weights would take more than attention.BLOCKED_ABOVE_BYTES. For a block of query rows, the
scores S = q k^T * scale against the keys that block may see are a small (rows, keys) array
that stays in cache, softmax'ed in place and multiplied by v at once. Only the output O and
one number per query row are kept for backward, the row's log-sum-exp

    L = m + log(sum_j exp(S_ij - m))        m = max_j S_ij       so that P = exp(S - L)

so attention keeps O(B H T D) for backward instead of the O(B H T^2) weights (and dropout
mask). Backward recomputes P block by block from q, k and L (one more q k^T product) and
applies attention.py's formulas, with Pd = P * M and r = rowsum(dO * O):

    dV = Pd^T dO,   dPd = dO V^T,   dS = P * (dPd * M - r),   dQ = scale dS K,  dK = scale dS^T Q

summing dK and dV over the query blocks (r once per head). With the causal mask (top-left:
query i sees keys j <= i) the rows [r0, r1) need only the keys [0, r1), and only the keys
[r0, r1) need the mask, so the masked part of every product is skipped. The forward divides
by the softmax's sum after the product with v, (E v) / sum with E = exp(S - m): a (rows, Dv)
division instead of a pass over the (rows, keys) block.

Sizes: a block is QUERY_ROWS = 128 query rows of as many heads as fit in BLOCK_SCORES (two
heads at T = 1024), held in scratch buffers that every block of an item reuses. Measured
with one thread on GPT-2 124M's shapes ((4, 12, 1024, 64), causal): the products of 64-row
blocks run at ~50-80 GFLOP/s, of 128-256 rows at ~65-90; larger blocks also mean fewer NumPy
calls, each of which costs Python and GIL time, more so while the other thread wants the GIL.

Dropout: M is the very mask attention.py's kernel would draw (the same random bits of the
generator, in the same order; a PCG64 generator, the default, can jump ahead to any block's
bits), drawn block by block and drawn again in backward instead of being kept; afterwards the
generator stands where the full draw would leave it. So both kernels give the same results
(to rounding) whatever the thread count. Another bit generator seeds a PCG64 with one draw.
"""
from __future__ import annotations

import itertools
import math

import numpy as np

from ...autograd import Function
from ...runtime.blas import single_blas_thread
from . import reference as ref
from ._util import parallel_for
from .dropout_bits import DropoutBits

QUERY_ROWS = 128  # query rows per block at most (the causal skip saves ~(1 - rows / T) / 2)
BLOCK_SCORES = 1 << 18  # scores per block at most: 1 MB of float32, a core's L2 cache


def as_4d_shape(shape: tuple) -> tuple:
    """(..., T, D) -> (A, H, T, D): H is the last leading axis, A all the others merged."""
    lead = tuple(shape[:-2])
    if len(lead) < 2:
        return (1,) * (2 - len(lead)) + tuple(shape)
    return (math.prod(lead[:-1]),) + tuple(shape[-3:])


def as_4d(a: np.ndarray) -> np.ndarray:
    """a (..., T, D) as (A, H, T, D) (a view unless more than two leading axes need merging)."""
    return a if a.ndim == 4 else a.reshape(as_4d_shape(a.shape))


def empty_output(n_seq: int, n_heads: int, n_queries: int, value_dim: int, dtype, fill=None) -> np.ndarray:
    """An (A, H, Tq, Dv) array laid out as (A, Tq, H, Dv) in memory, so that merging the heads
    afterwards, out.transpose(1, 2).reshape(A, Tq, H * Dv) as a model does, is a view, not a
    copy (the output, and the gradients, which the model's split of the heads merges back).
    Filled with `fill` unless it is None."""
    out = np.empty((n_seq, n_queries, n_heads, value_dim), dtype) if fill is None else \
        np.full((n_seq, n_queries, n_heads, value_dim), fill, dtype)
    return out.transpose(0, 2, 1, 3)


def _blocks(n_heads: int, n_queries: int, n_keys: int) -> tuple[int, int]:
    """(heads per item, query rows per block): blocks of at most QUERY_ROWS rows and, with as
    many heads as fit, about BLOCK_SCORES scores. Every NumPy call of a block costs the same
    Python and GIL overhead (~microseconds, more while the other thread wants the GIL), so
    blocks of several heads pay it once for all of them."""
    rows = max(1, min(n_queries, QUERY_ROWS, BLOCK_SCORES // max(1, n_keys)))
    heads = max(1, min(n_heads, BLOCK_SCORES // max(1, rows * n_keys)))
    return heads, rows


class _Scratch:
    """Per-item buffers of (h, rows, keys) scores, reused by every block of rows (one flat
    array each, so every block's view is contiguous)."""

    def __init__(self, n_heads: int, rows: int, n_keys: int, dtype, count: int):
        self.buffers = [np.empty(n_heads * rows * n_keys, dtype) for _ in range(count)]

    def views(self, shape: tuple) -> list:
        size = math.prod(shape)
        return [b[:size].reshape(shape) for b in self.buffers]


class BlockedAttention(Function):
    """softmax(q k^T * scale [+ causal mask]) [* dropout] v for q (..., Hq, Tq, D), k and v
    (..., Hq / groups, Tk, D or Dv), keeping O and the rows' log-sum-exp (module docstring).
    Options as attention.py's kernel; the dropout multipliers come from `generator`."""

    @staticmethod
    def reference(q, k, v, causal=False, dropout_p=0.0, generator=None, scale=None, groups=1):
        # the plain version (reference.py), with a mask drawn from `generator` as the forward does
        multiplier = None
        if dropout_p > 0.0:
            shape = as_4d_shape(q.shape[:-1] + k.shape[-2:-1])  # (A, H, Tq, Tk)
            multiplier = DropoutBits(generator, shape, dropout_p,
                                     np.result_type(q.dtype, k.dtype, v.dtype)).full()
        return ref.scaled_dot_product_attention(q, k, v, causal=causal, scale=scale, groups=groups,
                                                dropout_multiplier=multiplier)

    def backward_graph(self, g):
        # differentiate the reference with this node's own dropout multipliers
        options, bits = self.options, self.saved[-1]
        multiplier = None if bits is None else bits.full()
        return self.differentiate(lambda q, k, v: ref.scaled_dot_product_attention(
            q, k, v, causal=options.get("causal", False), scale=options.get("scale"),
            groups=options.get("groups", 1), dropout_multiplier=multiplier), g)

    def forward(self, q, k, v, causal=False, dropout_p=0.0, generator=None, scale=None, groups=1):
        dtype = np.result_type(q, k, v)
        out_shape = q.shape[:-1] + v.shape[-1:]  # (..., Tq, Dv)
        q, k, v = as_4d(q), as_4d(k), as_4d(v)  # (A, H, T, D)
        if groups > 1:  # (A, Hkv, Tk, D) -> (A, Hkv * groups, Tk, D): query head h uses h // groups
            k, v = np.repeat(k, groups, axis=1), np.repeat(v, groups, axis=1)
        n_seq, n_heads, n_queries, _ = q.shape
        n_keys = k.shape[-2]
        out = empty_output(n_seq, n_heads, n_queries, v.shape[-1], dtype)  # (A, H, Tq, Dv)
        lse = np.empty(q.shape[:-1], dtype=dtype)  # (A, H, Tq)
        bits = None
        if dropout_p > 0.0:
            bits = DropoutBits(generator, q.shape[:-1] + (n_keys,), dropout_p, dtype)
        heads, rows = _blocks(n_heads, n_queries, n_keys)
        future = _future_bias(rows, dtype) if causal else None

        def item(a, hs):  # a few heads of one sequence, one block of rows after another
            n_h = hs.stop - hs.start
            scratch = _Scratch(n_h, rows, n_keys, dtype, 1 if bits is None else 2)
            streams = None if bits is None else [bits.head(a, h) for h in range(hs.start, hs.stop)]
            q_head = (q[a, hs] * scale).astype(dtype, copy=False)  # (h, Tq, D)
            k_t = _transposed(k[a, hs], dtype)  # (h, D, Tk) C-order: the scores are NN products
            for r0 in range(0, n_queries, rows):
                r1 = min(r0 + rows, n_queries)
                keys = min(n_keys, r1) if causal else n_keys
                exps, *keep = scratch.views((n_h, r1 - r0, keys))  # (h, rows, keys)
                _scores(q_head[:, r0:r1], k_t[:, :, :keys], r0, future, exps)
                top = exps.max(axis=-1, keepdims=True)  # (h, rows, 1)
                exps -= top
                np.exp(exps, out=exps)  # E = exp(S - m): P = E / total
                total = exps.sum(axis=-1, keepdims=True)  # >= 1
                lse[a, hs, r0:r1] = (top + np.log(total))[..., 0]
                if streams is not None:  # E * keep; M = keep / (1 - p): the 1 / (1 - p) below
                    for i, stream in enumerate(streams):
                        stream.keep_into(keep[0][i])
                    exps *= keep[0]
                    total *= 1.0 - dropout_p
                block = out[a, hs, r0:r1]  # (h, rows, Dv)
                np.matmul(exps, v[a, hs, :keys], out=block)
                block /= total  # (P * M) v = (E * keep) v / (total (1 - p)): rows x Dv divisions

        if n_keys:
            _run_items(item, n_seq, n_heads, heads, n_queries * n_keys * (q.shape[-1] + v.shape[-1]))
        else:  # no key to attend to: zeros, as attention.py's kernel
            out.fill(0.0)
        if self.requires_grad:
            self.saved = (q, k, v, out, lse, bits)  # q: the input itself, scaled block by block
            self.settings, self.shapes = (causal, scale, groups), out_shape
        return out.reshape(out_shape)

    def backward(self, g):
        q, k, v, out, lse, bits = self.saved
        causal, scale, groups = self.settings
        need_q, need_k, need_v = self.needs_input_grad
        n_seq, n_heads, n_queries, _ = q.shape
        n_keys = k.shape[-2]
        dtype = out.dtype
        g = g.reshape(out.shape)  # (A, H, Tq, Dv)
        grad_q = empty_output(*q.shape, dtype) if need_q else None  # (A, H, Tq, D)
        grad_k = empty_output(*k.shape, dtype, 0.0) if need_k else None  # sums over the query blocks
        grad_v = empty_output(*v.shape, dtype, 0.0) if need_v else None
        heads, rows = _blocks(n_heads, n_queries, n_keys)
        future = _future_bias(rows, dtype) if causal else None

        def item(a, hs):
            n_h = hs.stop - hs.start
            scratch = _Scratch(n_h, rows, n_keys, dtype, 2 if bits is None else 3)
            streams = None if bits is None else [bits.head(a, h) for h in range(hs.start, hs.stop)]
            q_head = (q[a, hs] * scale).astype(dtype, copy=False)  # (h, Tq, D)
            d_out = g[a, hs]  # (h, Tq, Dv)
            row_sums = np.einsum("hid,hid->hi", d_out, out[a, hs])[..., None]  # r (h, Tq, 1)
            if bits is not None:  # M = keep / (1 - p): the 1 / (1 - p) carried by dO
                d_out = (d_out * bits.scale).astype(dtype, copy=False)
            k_head, v_head = k[a, hs], v[a, hs]  # (h, Tk, D), (h, Tk, Dv)
            k_t, v_t = _transposed(k_head, dtype), _transposed(v_head, dtype)  # (h, D, Tk), (h, Dv, Tk)
            partial_k = np.empty(k_head.shape, dtype) if need_k else None  # one block's dK
            partial_v = np.empty(v_head.shape, dtype) if need_v else None
            for r0 in range(0, n_queries, rows):
                r1 = min(r0 + rows, n_queries)
                keys = min(n_keys, r1) if causal else n_keys
                probs, d_scores, *more = scratch.views((n_h, r1 - r0, keys))  # (h, rows, keys)
                _scores(q_head[:, r0:r1], k_t[:, :, :keys], r0, future, probs)
                probs -= lse[a, hs, r0:r1, None]
                np.exp(probs, out=probs)  # P = exp(S - L)
                if streams is not None:
                    keep = more[0]  # (h, rows, keys) 1.0 kept, 0.0 dropped
                    for i, stream in enumerate(streams):
                        stream.keep_into(keep[i])
                if need_v:  # dV += Pd^T dO, Pd (1 - p) = P * keep (in d_scores' buffer until dPd)
                    weights = probs if streams is None else np.multiply(probs, keep, out=d_scores)
                    np.matmul(np.swapaxes(weights, -1, -2), d_out[:, r0:r1], out=partial_v[:, :keys])
                    grad_v[a, hs, :keys] += partial_v[:, :keys]
                if not (need_q or need_k):
                    continue
                np.matmul(d_out[:, r0:r1], v_t[:, :, :keys], out=d_scores)  # dPd (1 - p)
                if streams is not None:
                    d_scores *= keep  # dPd * M
                d_scores -= row_sums[:, r0:r1]  # - r
                d_scores *= probs  # dS / scale
                if need_q:
                    block = grad_q[a, hs, r0:r1]  # (h, rows, D)
                    np.matmul(d_scores, k_head[:, :keys], out=block)
                    block *= scale
                if need_k:  # dK += dS^T Q (q_head already carries the scale)
                    np.matmul(np.swapaxes(d_scores, -1, -2), q_head[:, r0:r1], out=partial_k[:, :keys])
                    grad_k[a, hs, :keys] += partial_k[:, :keys]

        if n_keys:
            _run_items(item, n_seq, n_heads, heads, 2 * n_queries * n_keys * (q.shape[-1] + v.shape[-1]))
        elif grad_q is not None:
            grad_q.fill(0.0)
        if groups > 1:  # sum each group of query heads back onto its key/value head
            grad_k, grad_v = (None if grad is None else
                              grad.reshape(grad.shape[0], grad.shape[1] // groups, groups, *grad.shape[2:]).sum(axis=2)
                              for grad in (grad_k, grad_v))
        q_shape, k_shape, v_shape = (p.shape for p in self.parents)
        return (None if grad_q is None else grad_q.reshape(q_shape),
                None if grad_k is None else grad_k.reshape(k_shape),
                None if grad_v is None else grad_v.reshape(v_shape))


def _future_bias(rows: int, dtype) -> np.ndarray:
    """(rows, rows): -inf where key j > query i (the causal mask inside a diagonal block), else 0."""
    return np.where(np.arange(rows)[None, :] > np.arange(rows)[:, None], -np.inf, 0.0).astype(dtype)


def _transposed(a: np.ndarray, dtype) -> np.ndarray:
    """a^T over the last two axes as a C-order (..., D, T) array (astype of a transposed view
    would keep its memory order), so that products against it are plain NN ones."""
    result = np.empty(a.shape[:-2] + a.shape[-1:] + a.shape[-2:-1], dtype)
    np.copyto(result, np.swapaxes(a, -1, -2))
    return result


def _scores(q_rows, k_t, r0: int, future, out) -> None:
    """out (h, rows, keys) <- q_rows (h, rows, D) @ k_t (h, D, keys), with -inf where key
    j > query i when `future` (the causal bias) is given: only the keys [r0, keys) can be."""
    np.matmul(q_rows, k_t, out=out)
    n_rows, n_keys = out.shape[-2:]
    if future is not None and n_keys > r0 + 1:
        out[..., r0:] += future[:n_rows, :n_keys - r0]


def _run_items(item, n_seq: int, n_heads: int, heads: int, work_per_head: int) -> None:
    """Call item(a, heads) for every sequence a and block of `heads` heads, on the kernel
    threads with one BLAS thread each (minigrad/runtime/blas.py says why)."""
    items = [(a, slice(h, min(h + heads, n_heads))) for a in range(n_seq) for h in range(0, n_heads, heads)]
    min_items = max(1, (1 << 22) // max(1, heads * work_per_head))  # small problems stay on one thread
    taken = itertools.count()  # each thread takes the next item (next() is atomic under the GIL),
    # so a thread that other processes slow down takes fewer; items write disjoint outputs

    def run(lo, hi):
        while (i := next(taken)) < len(items):
            item(*items[i])

    with single_blas_thread():
        parallel_for(len(items), run, min_items)
