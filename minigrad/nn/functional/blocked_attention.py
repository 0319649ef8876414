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

summing dK and dV over the query blocks. With the causal mask (top-left: query i sees keys
j <= i) the rows [r0, r1) need only the keys [0, r1), and only the keys [r0, r1) need the
mask, so the masked part of every product is skipped.

Dropout: M is the very mask attention.py's kernel would draw (the same random bits of the
generator, in the same order; a PCG64 generator, the default, can jump ahead to any block's
bits), drawn block by block and drawn again in backward instead of being kept; afterwards the
generator stands where the full draw would leave it. So both kernels give the same results
(to rounding) whatever the thread count. Another bit generator seeds a PCG64 with one draw.
"""
from __future__ import annotations

import math

import numpy as np

from ...autograd import Function
from ...runtime.blas import single_blas_thread
from . import reference as ref
from ._util import BLOCK_ELEMENTS, parallel_for

QUERY_ROWS = 64  # query rows per block at most (the causal skip saves ~(1 - rows / T) / 2)


def as_4d_shape(shape: tuple) -> tuple:
    """(..., T, D) -> (A, H, T, D): H is the last leading axis, A all the others merged."""
    lead = tuple(shape[:-2])
    if len(lead) < 2:
        return (1,) * (2 - len(lead)) + tuple(shape)
    return (math.prod(lead[:-1]),) + tuple(shape[-3:])


def as_4d(a: np.ndarray) -> np.ndarray:
    """a (..., T, D) as (A, H, T, D) (a view unless more than two leading axes need merging)."""
    return a if a.ndim == 4 else a.reshape(as_4d_shape(a.shape))


def empty_output(n_seq: int, n_heads: int, n_queries: int, value_dim: int, dtype) -> np.ndarray:
    """An (A, H, Tq, Dv) output laid out as (A, Tq, H, Dv) in memory, so that merging the heads
    afterwards, out.transpose(1, 2).reshape(A, Tq, H * Dv) as a model does, is a view, not a copy."""
    return np.empty((n_seq, n_queries, n_heads, value_dim), dtype).transpose(0, 2, 1, 3)


class DropoutBits:
    """The dropout multipliers of an (A, H, Tq, Tk) array, keep / (1 - p), drawn piece by
    piece: element e of the flat array is the e-th 32-bit half of the generator's raw 64-bit
    draws from `state` on (activation.dropout_multiplier's layout)."""

    def __init__(self, generator: np.random.Generator, shape: tuple, p: float, dtype):
        source = generator.bit_generator
        if not isinstance(source, (np.random.PCG64, np.random.PCG64DXSM)):  # cannot jump ahead
            source = np.random.PCG64(int(generator.integers(0, 2**63)))
        self.kind, self.state = type(source), source.state
        source.advance((math.prod(shape) + 1) // 2)  # where drawing the whole mask leaves it
        self.shape, self.dtype, self.scale = shape, dtype, 1.0 / (1.0 - p)
        self.threshold = np.uint32(min(math.ceil(p * 2**32), 2**32 - 1))  # P(bits >= t) = 1 - p

    def head(self, a: int, h: int) -> "_HeadBits":
        """The bits of sequence a, head h, from its first row on."""
        _, n_heads, n_queries, n_keys = self.shape
        return _HeadBits(self, ((a * n_heads + h) * n_queries) * n_keys)

    def full(self) -> np.ndarray:
        """The whole (A, H, Tq, Tk) multiplier array (the reference's; the kernel never builds it)."""
        n_seq, n_heads, n_queries, n_keys = self.shape
        out = np.empty(self.shape, self.dtype)
        for a in range(n_seq):
            for h in range(n_heads):
                np.copyto(out[a, h], self.head(a, h).keep(n_queries, n_keys))  # 1.0 kept, 0.0 dropped
        out *= self.scale
        return out


class _HeadBits:
    """One head's keep/drop bits, row after row (a generator of its own, jumped to the head)."""

    def __init__(self, bits: DropoutBits, start: int):
        self.bits, self.spare = bits, None
        source = bits.kind(0)
        source.state = bits.state
        source.advance(start // 2)
        self.source = np.random.Generator(source)
        if start % 2:  # the head starts in the high half of a draw
            self.spare = self._raw(1).view(np.uint32)[1:]

    def _raw(self, n: int) -> np.ndarray:
        """The next n raw 64-bit draws: integers over the full range returns them unchanged
        (the same numbers as random_raw, a quarter faster)."""
        return self.source.integers(0, 2**64 - 1, size=n, dtype=np.uint64, endpoint=True)

    def keep(self, n_rows: int, keys: int) -> np.ndarray:
        """(n_rows, keys) booleans, True where kept, of the next n_rows rows (their first keys)."""
        n_keys = self.bits.shape[-1]
        if n_rows * n_keys == 0:
            return np.zeros((n_rows, keys), bool)
        fresh = n_rows * n_keys - (0 if self.spare is None else 1)
        raw = self._raw((fresh + 1) // 2).view(np.uint32)
        flat = raw[:fresh] if self.spare is None else np.concatenate([self.spare, raw[:fresh]])
        self.spare = raw[fresh:] if fresh % 2 else None  # the unused high half, for the next rows
        return np.greater_equal(flat.reshape(n_rows, n_keys)[:, :keys], self.bits.threshold)


def _blocks(n_heads: int, n_queries: int, n_keys: int) -> tuple[int, int]:
    """(heads per item, query rows per block): blocks of about BLOCK_ELEMENTS scores."""
    heads = max(1, min(n_heads, BLOCK_ELEMENTS // max(1, n_queries * n_keys)))
    rows = max(1, min(n_queries, QUERY_ROWS, BLOCK_ELEMENTS // max(1, heads * n_keys)))
    return heads, rows


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

        def item(a, hs):  # a few heads of one sequence, one block of rows after another
            streams = None if bits is None else [bits.head(a, h) for h in range(hs.start, hs.stop)]
            for r0 in range(0, n_queries, rows):
                r1 = min(r0 + rows, n_queries)
                keys = min(n_keys, r1) if causal else n_keys
                q_rows = (q[a, hs, r0:r1] * scale).astype(dtype, copy=False)  # (h, rows, D)
                probs = _scores(q_rows, k[a, hs, :keys], r0, causal)  # (h, rows, keys)
                top = probs.max(axis=-1, keepdims=True)  # (h, rows, 1)
                probs -= top
                np.exp(probs, out=probs)
                total = probs.sum(axis=-1, keepdims=True)  # >= 1
                probs *= np.reciprocal(total)  # P
                lse[a, hs, r0:r1] = (top + np.log(total))[..., 0]
                if streams is not None:  # P * keep, in place (P is not kept); 1 / (1 - p) below
                    for i, stream in enumerate(streams):
                        probs[i] *= stream.keep(r1 - r0, keys)
                np.matmul(probs, v[a, hs, :keys], out=out[a, hs, r0:r1])
                if bits is not None:
                    out[a, hs, r0:r1] *= bits.scale  # (P * M) v = (P * keep) v / (1 - p)

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
        grad_q = np.empty(q.shape, dtype) if need_q else None
        grad_k = np.zeros(k.shape, dtype) if need_k else None  # sums over the query blocks
        grad_v = np.zeros(v.shape, dtype) if need_v else None
        heads, rows = _blocks(n_heads, n_queries, n_keys)

        def item(a, hs):
            streams = None if bits is None else [bits.head(a, h) for h in range(hs.start, hs.stop)]
            for r0 in range(0, n_queries, rows):
                r1 = min(r0 + rows, n_queries)
                keys = min(n_keys, r1) if causal else n_keys
                q_rows = (q[a, hs, r0:r1] * scale).astype(dtype, copy=False)  # (h, rows, D)
                k_rows, v_rows = k[a, hs, :keys], v[a, hs, :keys]  # (h, keys, D), (h, keys, Dv)
                d_out = g[a, hs, r0:r1]  # (h, rows, Dv)
                probs = _scores(q_rows, k_rows, r0, causal)
                probs -= lse[a, hs, r0:r1, None]
                np.exp(probs, out=probs)  # P = exp(S - L), (h, rows, keys)
                keep, d_out_m = None, d_out  # with dropout M = keep / (1 - p): carried by dO / (1 - p)
                if streams is not None:
                    keep = np.stack([s.keep(r1 - r0, keys) for s in streams])  # (h, rows, keys)
                    d_out_m = d_out * bits.scale
                if need_v:
                    weights = probs if keep is None else probs * keep  # Pd (1 - p)
                    grad_v[a, hs, :keys] += np.matmul(np.swapaxes(weights, -1, -2), d_out_m)
                if not (need_q or need_k):
                    continue
                d_scores = np.matmul(d_out_m, np.swapaxes(v_rows, -1, -2))  # dPd / (1 - p)
                if keep is not None:
                    d_scores *= keep  # dPd * M
                d_scores -= np.einsum("hid,hid->hi", d_out, out[a, hs, r0:r1])[..., None]  # - r
                d_scores *= probs  # dS / scale
                if need_q:
                    np.matmul(d_scores, k_rows, out=grad_q[a, hs, r0:r1])
                    grad_q[a, hs, r0:r1] *= scale
                if need_k:  # q_rows already carries the scale
                    grad_k[a, hs, :keys] += np.matmul(np.swapaxes(d_scores, -1, -2), q_rows)

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


def _scores(q_rows, k_rows, r0: int, causal: bool) -> np.ndarray:
    """q_rows (h, rows, D) @ k_rows (h, keys, D)^T, with -inf where key j > query i (causal:
    only the keys [r0, keys) can be)."""
    scores = np.matmul(q_rows, np.swapaxes(k_rows, -1, -2))  # (h, rows, keys)
    n_rows, n_keys = scores.shape[-2:]
    if causal and n_keys > r0 + 1:
        future = np.arange(r0, n_keys)[None, :] > np.arange(r0, r0 + n_rows)[:, None]  # (rows, keys - r0)
        np.copyto(scores[..., r0:], -np.inf, where=future)
    return scores


def _run_items(item, n_seq: int, n_heads: int, heads: int, work_per_head: int) -> None:
    """Call item(a, heads) for every sequence a and block of `heads` heads, on the kernel
    threads with one BLAS thread each (minigrad/runtime/blas.py says why)."""
    items = [(a, slice(h, min(h + heads, n_heads))) for a in range(n_seq) for h in range(0, n_heads, heads)]
    min_items = max(1, (1 << 22) // max(1, heads * work_per_head))  # small problems stay on one thread

    def run(lo, hi):
        for a, hs in items[lo:hi]:
            item(a, hs)

    with single_blas_thread():
        parallel_for(len(items), run, min_items)
