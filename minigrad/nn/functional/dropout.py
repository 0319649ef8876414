"""Dropout (Srivastava et al. 2014), inverted as in PyTorch: each element is zeroed with
probability p and the others are scaled by 1 / (1 - p), one graph node.

The multiplier m = keep / (1 - p) is drawn from the generator's raw bits
(`dropout_multiplier`); the attention kernels draw theirs in the same layout
(blocked_attention.DropoutBits). The plain formula, x * m, is reference.dropout.
"""
from __future__ import annotations

import math

import numpy as np

from ...autograd import Function
from ...random import default_generator
from ...runtime.threads import get_threads
from ...tensor import Tensor
from . import reference as ref
from ._util import (BLOCK_ELEMENTS, PARALLEL_MIN_ELEMENTS, as_float_tensor, for_row_blocks, parallel_for,
                    parallel_multiply)

# a mask above this is saved as booleans (a quarter of activation.LEAN_ABOVE_BYTES, where GELU
# turns lean: a model's (B, T, C) dropout masks are a quarter of its (B, T, 4C) GELU arrays)
BOOL_MASK_ABOVE_BYTES = 4 << 20


_BITS64 = (np.random.PCG64, np.random.PCG64DXSM, np.random.Philox, np.random.SFC64)
_SEEKABLE = (np.random.PCG64, np.random.PCG64DXSM)  # advance(k) skips exactly k raw draws


def dropout_multiplier(generator, shape, p: float, dtype=np.float32) -> np.ndarray:
    """keep / (1 - p) with keep ~ Bernoulli(1 - p) independently per element, as `dtype`.

    Each element compares 32 random bits with p * 2^32 (twice as fast as generator.random,
    finer than float32's 24 bits). The same generator state gives the same mask, whatever
    the number of threads: with PCG64 (minigrad's generator) the bits are drawn on all
    threads (see `_draw_in_parallel`), the same bits as one sequential draw.
    """
    n = math.prod(shape)
    threshold = np.uint32(min(math.ceil(p * 2**32), 2**32 - 1))  # P(bits >= threshold) = 1 - p
    scale = 1.0 / (1.0 - p)
    mask = np.empty(n, dtype=dtype)

    def fill(bits, lo, hi):  # mask[lo:hi] from the 32-bit values bits (hi - lo,)
        np.greater_equal(bits, threshold, out=mask[lo:hi])  # 1.0 kept, 0.0 dropped
        mask[lo:hi] *= scale

    bit_generator = generator.bit_generator
    if isinstance(bit_generator, _SEEKABLE) and n >= 2 * PARALLEL_MIN_ELEMENTS and get_threads() > 1:
        _draw_in_parallel(bit_generator, n, fill)
        return mask.reshape(shape)
    if isinstance(bit_generator, _BITS64):  # each raw draw is 64 random bits
        bits = bit_generator.random_raw((n + 1) // 2).view(np.uint32)[:n]
    else:  # e.g. MT19937, whose raw draws hold 32 bits
        bits = generator.integers(0, 2**32, n, dtype=np.uint32)
    for_row_blocks(n, 1, lambda lo, hi: fill(bits[lo:hi], lo, hi), rows=BLOCK_ELEMENTS)
    return mask.reshape(shape)


def _draw_in_parallel(bit_generator, n: int, fill) -> None:
    """fill(bits, lo, hi) over blocks of the n 32-bit values that
    `bit_generator.random_raw((n + 1) // 2).view(np.uint32)` would give, drawn on minigrad's
    threads: each thread starts a copy of the generator at the first draw of its range
    (`advance`), then the generator itself is advanced past all n values, as a sequential
    draw leaves it. Drawing is most of dropout's time (measured, one thread, per 64K values:
    74 us of drawing, 33 us of compare, scale and multiply) and cannot be split otherwise.
    """
    state = bit_generator.state
    n_blocks = -(-n // BLOCK_ELEMENTS)  # BLOCK_ELEMENTS is even: a block starts at a whole draw

    def run(first, last):
        local = type(bit_generator)(0)
        local.state = state
        local.advance(first * BLOCK_ELEMENTS // 2)
        for block in range(first, last):
            lo, hi = block * BLOCK_ELEMENTS, min((block + 1) * BLOCK_ELEMENTS, n)
            fill(local.random_raw((hi - lo + 1) // 2).view(np.uint32)[: hi - lo], lo, hi)

    parallel_for(n_blocks, run, PARALLEL_MIN_ELEMENTS // BLOCK_ELEMENTS)
    bit_generator.advance((n + 1) // 2)
    after = bit_generator.state  # advance() drops the buffered half of a 64-bit draw that
    after["has_uint32"], after["uinteger"] = state["has_uint32"], state["uinteger"]  # random_raw keeps
    bit_generator.state = after


class Dropout(Function):
    # y = x * m,  m = keep / (1 - p) with keep ~ Bernoulli(1 - p)  =>  dL/dx = g * m
    # (a mask above BOOL_MASK_ABOVE_BYTES is saved as booleans, a quarter of a float32 mask;
    # below, the float mask, whose product in backward is ~2.5x faster per element)
    def forward(self, x, p, generator):
        mask_dtype = x.dtype if x.dtype in (np.float32, np.float64) else np.float32
        mask = dropout_multiplier(generator, x.shape, p, mask_dtype)
        if self.requires_grad:
            if mask.nbytes > BOOL_MASK_ABOVE_BYTES and mask.dtype == x.dtype:
                self.mask, self.keep, self.scale = None, _nonzero(mask), 1.0 / (1.0 - p)
            else:
                self.mask = mask
        return parallel_multiply(x, mask).astype(x.dtype, copy=False)

    def multiplier(self) -> np.ndarray:
        """The saved mask m as floats (rebuilt from the booleans when those were kept)."""
        if self.mask is not None:
            return self.mask
        return self.keep.astype(self.parents[0].dtype) * self.scale  # float32 stays float32

    def backward(self, g):
        if self.mask is not None:
            return parallel_multiply(g, self.mask)
        return _masked_scale(g, self.keep, self.scale)  # the same products: keep * scale = m

    def backward_graph(self, g):
        return ref.dropout(g, self.multiplier())  # linear in x: the same saved multiplier


def _nonzero(a: np.ndarray) -> np.ndarray:
    """a != 0 as booleans, blockwise over threads."""
    flat = a.reshape(-1)
    out = np.empty(flat.shape, dtype=np.bool_)
    for_row_blocks(flat.size, 1, lambda lo, hi: np.not_equal(flat[lo:hi], 0, out=out[lo:hi]),
                   rows=BLOCK_ELEMENTS)
    return out.reshape(a.shape)


def _masked_scale(a: np.ndarray, keep: np.ndarray, scale: float) -> np.ndarray:
    """a * keep * scale for a and keep of one shape, blockwise over threads (a fresh array of
    a's dtype; scale is a Python float, so float32 stays float32 and gets dropout's float32
    multiplier exactly)."""
    a = np.asarray(a, order="C")
    out = np.empty(a.shape, dtype=a.dtype)
    fa, fk, fo = a.reshape(-1), keep.reshape(-1), out.reshape(-1)

    def block(lo, hi):
        np.multiply(fa[lo:hi], fk[lo:hi], out=fo[lo:hi])
        fo[lo:hi] *= scale

    for_row_blocks(fo.size, 1, block, rows=BLOCK_ELEMENTS)
    return out


def check_probability(p, op: str) -> float:
    if isinstance(p, bool) or not isinstance(p, (int, float, np.integer, np.floating)):
        raise TypeError(f"{op}: p must be a number in [0, 1), got {p!r}")
    if not 0.0 <= p < 1.0:
        raise ValueError(f"{op}: p must be in [0, 1), got {p}")
    return float(p)


def dropout(x, p: float = 0.5, training: bool = True, generator=None) -> Tensor:
    """Inverted dropout: zero each element with probability p, scale the rest by 1/(1-p).

    Returns `x` itself (no node) when not training or p == 0. The mask is drawn from
    `generator` (a numpy Generator) or minigrad.random.default_generator().
    """
    p = check_probability(p, "dropout")
    x = as_float_tensor(x, "dropout")
    if not training or p == 0.0:
        return x
    return Dropout.apply(x, p=p, generator=generator or default_generator())
