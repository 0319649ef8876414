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

How it runs (the plain version is reference.scaled_dot_product_attention):
- The work is split into items of a few heads of one sequence, or all heads of a few
  sequences, run on the kernel threads with one BLAS thread each (minigrad/runtime/blas.py
  says why). On one thread an item has about ITEM_ELEMENTS weights (1 MB in float32: with
  C-order blocks, 256K weights took 2-6% less CPU than 128K, fewer calls paying more than
  cache); on several, each thread gets one item (or a few of THREAD_ITEM_ELEMENTS at most):
  the threads take turns at the GIL between NumPy calls, so fewer, larger calls pay more than
  cache. Measured with 2 threads under SCHED_FIFO (min wall ms of forward + backward, dropout
  0.1): (16, 4, 128, 32) 6.85 -> 6.03, (2, 12, 256, 64) 12.8 -> 10.7, (8, 4, 256, 64)
  18.3 -> 13.9, with less CPU time too. Each item makes its own K^T and V^T copies. Within
  an item, causal attention goes by blocks of ROWS query rows, each against only the keys up
  to its last row: the blocks above the diagonal are never computed (at T = 256, 3/8 of every
  product and pass). Each block of weights is its own C-order (rows, keys) array per head
  (`_block`), not a slice of a (Tq, Tk) one: NumPy's passes over a slice of partial rows cost
  2-6x more per element (one inner loop per row), and one over a whole block with its bias
  (0 left of the diagonal, -inf above) less than over the diagonal part alone.
- q k^T and dO V^T are plain products against K^T and V^T copied to C-order (D, Tk) arrays
  (`_transposed`; with a transposed operand OpenBLAS ran 1.8x slower here, at (64, 32) @
  (32, 128) blocks). The copies carry the scale, which then costs no pass of its own: S =
  q (scale K^T), and backward's dS comes out scale times too large, as dQ = scale dS K and
  dK = scale dS^T Q want it (with a mask whose gradient is wanted, dS = dB is left unscaled).
- Softmax: |S_ij| <= |q_i| |k_j| * scale; where that bound is below NO_MAX_BELOW for every
  query and key of a head, exp(S) can neither overflow nor vanish, so the row max is not
  subtracted (the costliest pass: a reduction per row of 128-256 entries). With a mask, or
  larger scores, it is (the bound and backward's r are made per item, on the items' threads:
  2-4% less wall at 2 threads than one call before them). Row sums are a product with a ones
  vector. Without a mask, S is made in log2 units (log2(e) rides on K^T's factor) for exp2: 42
  us against exp's 110 at a (12, 64, 256) block; exp2 is slow on -inf, so in the heads that
  skip the row max (all their scores in range) the causal mask is a 0/1 product after it
  (causal_block_keeps); heads past the bound keep the -inf (a diagonal block with 12% -inf:
  exp2 174 us against exp's 107, a few ms of a 124M step where every head is past it).
- Dropout: M = keep / (1 - p) from 16 (or 32) bits per weight (dropout.bit_layout; DropoutBits:
  with a PCG64 generator, minigrad's, the bits of dropout.dropout_multiplier's draw; with
  another, of a PCG64 seeded from it; the blocked kernel's mask either way), drawn item by item
  on the items' threads and compared as each block is used, so M is never written out whole.
  The 1 / (1 - p) goes into the softmax's normalisation (P' = P / (1 - p), one number per
  row), so Pd = P * M = P' * keep.
- Kept for backward: P' (P without dropout) and, with dropout, Pd, so backward's
  dS = Pd * dPd - P * r makes no P * M pass (P * r = P' * r (1 - p)). M itself is not
  kept: a create_graph backward draws it again from the generator's state saved before the
  forward's draw.
- The output is laid out (A, Tq, H, Dv) in memory and each input gradient like its input, so
  a model's out.transpose(1, 2).reshape(B, T, H * Dv) and the transposes back in its backward
  are views, not copies.
- Backward makes dS, dQ, dK and dV block by block from the last: its dK = dS^T Q and dV =
  Pd^T dO are written over the keys [0, keys), each earlier block's products added to theirs.

This kernel keeps P (and Pd): quadratic in the context. Without attn_mask, when the weights would
take more than BLOCKED_ABOVE_BYTES (64 MB; GPT-2 124M at context 1024 and batch 4 has 201 MB per
layer, 2.4 GB of weights and as much again with dropout), scaled_dot_product_attention runs
blocked_attention.py's kernel instead, which keeps one log-sum-exp per query row and recomputes P
in backward. Measured at GPT-2 124M (before this kernel skipped the causal upper triangle): at
context 1024 it was as fast as this kernel, at context 512 (25 MB) 3-10% slower, so shorter
contexts (every benchmark config) run this kernel.
"""
from __future__ import annotations

import itertools
import math

import numpy as np

from ...autograd import Function, unbroadcast
from ...random import default_generator
from ...runtime.blas import single_blas_thread
from ...runtime.threads import get_threads
from ...tensor import Tensor
from ._util import as_float_tensor, parallel_for
from . import reference as ref
from .dropout import check_probability
from .blocked_attention import BlockedAttention, as_4d, as_4d_shape, empty_output
from .dropout_bits import DropoutBits
from .attention_masks import attention_mask, causal_block_biases, causal_block_keeps

BLOCKED_ABOVE_BYTES = 64 << 20  # without attn_mask, weights larger than this: the blocked kernel
ROWS = 64  # query rows per block of causal attention (the blocks above the diagonal are skipped)
ITEM_ELEMENTS = 1 << 18  # attention weights per work item on one thread (a few heads, or sequences)
THREAD_ITEM_ELEMENTS = 1 << 19  # on several threads: at most this many per item, as many items per thread
NO_MAX_BELOW = 60.0  # |scores| below this bound: softmax skips subtracting the row max
LOG2_E = 1.4426950408889634  # exp(S) = exp2(S log2(e))


class ScaledDotProductAttention(Function):
    # see the module docstring for the derivation of dQ, dK, dV; the plain version of the
    # whole computation is reference.scaled_dot_product_attention
    @staticmethod
    def reference(q, k, v, *mask, causal=False, dropout_p=0.0, generator=None, scale=None, groups=1):
        multiplier = None
        if dropout_p > 0.0:  # the same draw as the forward's (and blocked_attention.py's)
            shape = as_4d_shape(q.shape[:-1] + k.shape[-2:-1])  # (A, H, Tq, Tk)
            multiplier = DropoutBits(generator, shape, dropout_p, np.result_type(q.dtype, k.dtype, v.dtype)).full()
        return ref.scaled_dot_product_attention(q, k, v, *mask, causal=causal, scale=scale,
                                                groups=groups, dropout_multiplier=multiplier)

    def backward_graph(self, g):
        # differentiate the reference with this node's own dropout multiplier, drawn again
        # from the generator's state before the forward's draw (M is not kept: Pd = P * M is)
        options = self.options
        multiplier = None if self.dropout is None else self.dropout.full()

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
        n_seq, n_heads, n_queries, _ = q4.shape
        n_keys = k4.shape[-2]
        shape = (n_seq, n_heads, n_queries, n_keys)  # of the attention weights
        blocks = _row_blocks(n_queries, n_keys, causal)
        offsets = [0] + list(itertools.accumulate((r1 - r0) * keys for r0, r1, keys in blocks))
        # P times 1/(1-p), block after block: (A, H, sum of rows * keys), each block C order per head
        probs = np.empty(shape[:2] + (offsets[-1],), dtype=dtype)
        out = empty_output(n_seq, n_heads, n_queries, v4.shape[-1], dtype)  # (A, H, Tq, Dv)
        biases = causal_block_biases(n_queries, n_keys, dtype.name, tuple(blocks)) if causal else None
        keeps = causal_block_keeps(n_queries, n_keys, dtype.name, tuple(blocks)) if causal else None
        exp, factor = (np.exp, scale) if mask else (np.exp2, scale * LOG2_E)  # S in log2 units for exp2
        if mask:  # (..., Tq, Tk) additive, broadcast to (A, H, Tq, Tk): the row max is needed
            self.mask_shape = mask[0].shape
            bias = as_4d(np.broadcast_to(mask[0].astype(dtype, copy=False), q.shape[:-2] + shape[-2:]))
        may_skip_max = not mask and n_queries > 0 and dtype.itemsize >= 4  # (float16's range is too small)
        draw, kept = None, 1.0
        if dropout_p > 0.0:  # M's bits, drawn item by item on the items' threads, in cache when used
            draw, kept = DropoutBits(generator, shape, dropout_p, dtype), 1.0 / (1.0 - dropout_p)
        self.dropout = draw
        weights = probs if draw is None else np.empty_like(probs)  # Pd = P * M
        ones = np.ones((n_keys, 1), dtype)  # row sums as a product: faster than .sum(axis=-1)

        def item(a, h):  # a few heads of some sequences, block of rows after block of rows
            keys_t = _transposed(k4[a, h], factor, dtype)  # (na, nh, D, Tk) C order: S = q (factor K^T)
            # per head: may softmax skip the row max (docstring)? It is subtracted in the heads past
            # the bound (per head, so results depend neither on the items nor on the threads)
            bounded = _bound(q4[a, h], k4[a, h], scale, dtype) < NO_MAX_BELOW ** 2 if may_skip_max else None
            unbounded = list(zip(*np.nonzero(~bounded))) if may_skip_max and bounded.any() else None  # (i, j)
            bits = None
            if draw is not None:  # (na, nh, Tq, Tk) uint32: these heads are contiguous in (A, H, Tq, Tk)
                first, item_shape = (a.start * n_heads + h.start) * n_queries * n_keys, q4[a, h].shape[:-1] + (n_keys,)
                bits = draw.flat(first, math.prod(item_shape)).reshape(item_shape)
            for b, (r0, r1, keys) in enumerate(blocks):  # rows [r0, r1) see keys [0, keys)
                scores = _block(probs[a, h], offsets[b], r1 - r0, keys)  # (na, nh, rows, keys)
                np.matmul(q4[a, h, r0:r1], keys_t[..., :keys], out=scores)
                block_bias = bias[a, h] if mask else None if biases is None else biases[b]  # causal: -inf
                for i, j in [(slice(None),) * 2] if unbounded is None else unbounded:  # every head, or those past the bound
                    if block_bias is not None:
                        scores[i, j] += block_bias
                    scores[i, j] -= scores[i, j].max(axis=-1, keepdims=True)
                exp(scores, out=scores)
                if unbounded is not None and keeps is not None and keeps[b] is not None:
                    scores *= keeps[b]  # causal: 0 above the diagonal (exp2 is slow on -inf)
                total = np.matmul(scores, ones[:keys])  # (na, nh, rows, 1), > 0
                scores *= np.divide(kept, total, out=total)  # P / (1 - p): M's scale, here
                w = scores
                if bits is not None:  # Pd = P * M = (P / (1 - p)) * keep
                    w = _block(weights[a, h], offsets[b], r1 - r0, keys)
                    np.greater_equal(bits[..., r0:r1, :keys], draw.threshold, out=w)  # 1.0 kept, 0.0 dropped
                    w *= scores
                np.matmul(w, v4[a, h, :keys], out=out[a, h, r0:r1])

        if n_keys:
            _run_items(item, shape, blocks, v.shape[-1] + q.shape[-1])
        else:
            out.fill(0.0)
        if self.requires_grad:
            self.saved = (q4, k4, v4, probs, weights, out, blocks, offsets, kept, shape)
            self.scale, self.shapes, self.groups, self.causal = scale, (q.shape, k.shape, v.shape), groups, causal
        return out.reshape(out_shape)

    def backward(self, g):
        # with P' = P / (1 - p) kept (P without dropout) and dS' = scale dS (V^T scaled):
        # dS' = Pd * (dO (scale V^T)) - P' * (scale (1 - p) r),  dQ = dS' K,  dK = dS'^T Q
        q4, k4, v4, probs, weights, out, blocks, offsets, kept, shape = self.saved
        need_q, need_k, need_v = self.needs_input_grad[:3]
        need_bias = len(self.needs_input_grad) == 4 and self.needs_input_grad[3]
        dtype = probs.dtype
        g4 = g.reshape(out.shape)  # (A, H, Tq, Dv)
        grad_bias = np.zeros(probs.shape, dtype) if need_bias else None  # dS: one block (no causal)
        # dB = dS itself: then dS is not scaled, and dQ, dK are afterwards
        ds_scale = 1.0 if need_bias else self.scale
        # the gradients are laid out as their inputs (the model's transposes back are views)
        grad_q = np.empty_like(q4, dtype=dtype) if need_q else None
        grad_k = np.empty_like(k4, dtype=dtype) if need_k else None
        grad_v = np.empty_like(v4, dtype=dtype) if need_v else None
        need_scores = need_q or need_k or need_bias
        n_queries, n_keys = shape[-2:]
        seen = blocks[-1][2] if blocks else 0  # keys [seen, Tk) are seen by no query (causal)

        def item(a, h):  # block by block from the last, whose keys [0, seen) hold all the others'
            d_out = g4[a, h]  # (na, nh, Tq, Dv)
            if need_scores:  # r = rowsum(dO * O), (na, nh, Tq, 1)
                rowdot = np.einsum("ahid,ahid->ahi", d_out, out[a, h])[..., None]
                rowdot *= ds_scale / kept  # P r = P' (r (1 - p)); times dS's scale
                values_t = _transposed(v4[a, h], ds_scale, dtype)  # (na, nh, Dv, Tk) C order
            for b in reversed(range(len(blocks))):
                (r0, r1, keys), rows, last = blocks[b], slice(blocks[b][0], blocks[b][1]), b == len(blocks) - 1
                w = _block(weights[a, h], offsets[b], r1 - r0, keys)  # Pd (na, nh, rows, keys)
                _add_product(np.swapaxes(w, -1, -2), d_out[..., rows, :], grad_v, (a, h), keys, last)  # dV = Pd^T dO
                if not need_scores:
                    continue
                p = _block(probs[a, h], offsets[b], r1 - r0, keys)
                d_s = _block(grad_bias[a, h], offsets[b], r1 - r0, keys) if need_bias else np.empty_like(p)  # dS
                np.matmul(d_out[..., rows, :], values_t[..., :keys], out=d_s)  # dPd
                if weights is probs:  # dS = P * (dP - r)
                    d_s -= rowdot[..., rows, :]
                    d_s *= p
                else:  # dS = P * (dPd * M - r) = Pd * dPd - P * r (here P' and r's scales)
                    d_s *= w
                    d_s -= p * rowdot[..., rows, :]
                if need_q:  # dQ = scale dS K = dS' K
                    np.matmul(d_s, k4[a, h, :keys], out=grad_q[a, h, rows])
                _add_product(np.swapaxes(d_s, -1, -2), q4[a, h, rows], grad_k, (a, h), keys, last)  # dK = dS'^T Q

        if blocks and n_keys:
            _run_items(item, shape, blocks, out.shape[-1] + q4.shape[-1])
        for grad, first in ((grad_q, n_queries if n_keys else 0), (grad_k, seen), (grad_v, seen)):
            if grad is not None and first < grad.shape[-2]:  # rows no product wrote: zero
                grad[..., first:, :] = 0.0
        if ds_scale != self.scale:  # dS was not scaled (it is dB): dQ and dK are now
            for grad in (grad_q, grad_k):
                if grad is not None:
                    grad *= self.scale
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
            grad_bias = unbroadcast(grad_bias.reshape(q_shape[:-2] + shape[-2:]), self.mask_shape)
        return grads + (grad_bias,)


def _bound(q: np.ndarray, k: np.ndarray, scale: float, dtype) -> np.ndarray:
    """(...,) bound^2 of |S_ij| = |q_i . k_j| scale per head: max_i |q_i|^2 max_j |k_j|^2 scale^2."""
    with np.errstate(all="ignore"):  # inf or nan inputs: not bounded (nan compares False)
        return (np.einsum("...id,...id->...i", q, q, dtype=dtype).max(axis=-1) * (scale * scale)
                * np.einsum("...jd,...jd->...j", k, k, dtype=dtype).max(axis=-1))


def _transposed(a: np.ndarray, factor: float, dtype) -> np.ndarray:
    """factor * a^T over the last two axes as a C-order (..., D, T) array of `dtype`, so products
    against it are plain (NN) ones (astype or a ufunc keeps a transposed view's memory order)."""
    result = np.empty(a.shape[:-2] + a.shape[-1:] + a.shape[-2:-1], dtype)
    np.multiply(np.swapaxes(a, -1, -2), factor, out=result, dtype=dtype)
    return result


def _block(flat: np.ndarray, offset: int, rows: int, keys: int) -> np.ndarray:
    """The (..., rows, keys) block at `offset` of a (..., elements) array: C order per head."""
    return flat[..., offset:offset + rows * keys].reshape(flat.shape[:-1] + (rows, keys))


def _add_product(a, b, grad, item, keys: int, first: bool) -> None:
    """grad[item][..., :keys, :] = a @ b (first: the last block, whose keys hold all the others'),
    else += a @ b, the product made (na, keys, nh, D) in memory: in the model's layout each key's
    heads are one row, so the sum is one inner loop per key, not per key and head (3x faster
    at (8, 4) heads of (64, 32)). Nothing when grad is None."""
    if grad is None:
        return
    target = grad[item][..., :keys, :]  # (na, nh, keys, D)
    if first:
        np.matmul(a, b, out=target)
    else:
        na, nh, _, width = target.shape
        product = np.empty((na, keys, nh, width), target.dtype)
        np.matmul(a, b, out=product.transpose(0, 2, 1, 3))
        np.add(target.transpose(0, 2, 1, 3), product, out=target.transpose(0, 2, 1, 3))


def _row_blocks(n_queries: int, n_keys: int, causal: bool) -> list:
    """[(r0, r1, keys)]: the query rows [r0, r1) of a block and the keys [0, keys) they see.
    Causal: blocks of ROWS rows, each against the keys up to its last row (the products above
    the diagonal are skipped); otherwise one block of all rows and keys."""
    if not causal:
        return [(0, n_queries, n_keys)] if n_queries else []
    return [(r0, min(r0 + ROWS, n_queries), min(n_keys, r0 + ROWS, n_queries))
            for r0 in range(0, n_queries, ROWS)]


def _run_items(item, probs_shape, blocks, width) -> None:
    """Call item(a, h) (slices of sequences and heads) over all sequences and heads, on the
    kernel threads, with one BLAS thread each. An item is a few heads of one sequence, or all
    heads of a few sequences: about ITEM_ELEMENTS attention weights on one thread; on several,
    an equal share of all the weights per thread in one item, or in as many items per thread
    as keep each within THREAD_ITEM_ELEMENTS (module docstring: why)."""
    n_seq, n_heads, _, _ = probs_shape
    if not n_seq * n_heads:
        return
    per_head = max(1, sum((r1 - r0) * keys for r0, r1, keys in blocks))
    threads, total = get_threads(), n_seq * n_heads * per_head
    size = ITEM_ELEMENTS
    if threads > 1:  # a few large items, as many per thread (fewer turns at the GIL)
        parts = threads * -(-total // (threads * THREAD_ITEM_ELEMENTS))
        size = -(-total // parts)
    heads = max(1, size // per_head)
    if heads < n_heads:
        items = [(slice(a, a + 1), slice(h, min(h + heads, n_heads)))
                 for a in range(n_seq) for h in range(0, n_heads, heads)]
    else:  # as many sequences as fit, evened out over the items
        seqs = -(-n_seq // -(-n_seq // (heads // n_heads)))
        items = [(slice(a, min(a + seqs, n_seq)), slice(0, n_heads)) for a in range(0, n_seq, seqs)]
    work_per_item = min(heads, n_heads * n_seq) * per_head * (width + 8)  # ~ multiply-adds
    min_items = max(1, (1 << 22) // max(1, work_per_item))  # small problems stay on one thread

    def run(lo, hi):
        for a, h in items[lo:hi]:
            item(a, h)

    with single_blas_thread():
        parallel_for(len(items), run, min_items)


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
        mask = attention_mask(attn_mask, dtype)
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
