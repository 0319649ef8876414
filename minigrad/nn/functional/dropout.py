"""Dropout (Srivastava et al. 2014), inverted as in PyTorch: each element is zeroed with
probability p and the others are scaled by 1 / (1 - p), one graph node.

The multiplier m = keep / (1 - p) is drawn from the generator's raw 64-bit draws
(`dropout_multiplier`); the attention kernels draw theirs in the same layout
(dropout_bits.DropoutBits). The plain formula, x * m, is reference.dropout.

How many random bits per element (`bit_layout`): drawing is most of dropout's time, so an
element gets 16 bits (four per 64-bit draw) where that is fine enough: it is dropped where
its bits are below ceil(p 2^16), that is with probability p rounded up to a multiple of
2^-16 (0.1 -> 0.1000061), within 1.6e-5 of p. PyTorch documents "probability p" and no
resolution (a uniform float32 compared with p would have 2^-24); to keep both p and 1 - p
within 2^-10 of themselves relatively, 16 bits are used for 2^-6 <= p <= 1 - 2^-6 and for
multiples of 2^-16 (0.25, 0.5, ...), 32 bits (resolution 2^-32) for the other p. The scale
stays 1 / (1 - p) exactly, as documented.
"""
from __future__ import annotations

import math
import threading

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
COARSE_P_RANGE = (2.0**-6, 1.0 - 2.0**-6)  # p in here: 16 bits per element (module docstring)

_BITS64 = (np.random.PCG64, np.random.PCG64DXSM, np.random.Philox, np.random.SFC64)
_SEEKABLE = (np.random.PCG64, np.random.PCG64DXSM)  # advance(k) skips exactly k raw draws


def bit_layout(p: float) -> tuple[type, np.unsignedinteger]:
    """(np.uint16 or np.uint32, threshold): the unsigned type of one element's random value,
    taken in order from the generator's raw 64-bit draws (4 or 2 per draw, in memory order),
    and the threshold t of that type: the element is kept where value >= t, with probability
    1 - t / 2^bits, t = ceil(p 2^bits). 16 bits for p in COARSE_P_RANGE or a multiple of
    2^-16, else 32 (module docstring)."""
    low, high = COARSE_P_RANGE
    kind = np.uint16 if low <= p <= high or (p * 2**16).is_integer() else np.uint32
    top = 1 << (8 * np.dtype(kind).itemsize)
    return kind, kind(min(math.ceil(p * top), top - 1))


def dropout_multiplier(generator, shape, p: float, dtype=np.float32) -> np.ndarray:
    """keep / (1 - p) with keep ~ Bernoulli(1 - p) independently per element, as `dtype`.

    Each element compares 16 or 32 random bits with a threshold (`bit_layout`: p rounded up
    to a multiple of 2^-16 or 2^-32; four or two elements per raw draw, where generator.random
    takes a draw per element). The same generator state gives the same mask, whatever the
    number of threads: with PCG64 (minigrad's generator) the bits are drawn on all threads
    (see `_draw_in_parallel`), the same bits as one sequential draw.
    """
    n = math.prod(shape)
    kind, threshold = bit_layout(p)  # P(bits >= threshold) = 1 - p (rounded)
    per_draw = 8 // np.dtype(kind).itemsize  # values per raw 64-bit draw
    scale = 1.0 / (1.0 - p)
    mask = np.empty(n, dtype=dtype)

    def fill(bits, lo, hi):  # mask[lo:hi] from the values bits (hi - lo,)
        np.greater_equal(bits, threshold, out=mask[lo:hi])  # 1.0 kept, 0.0 dropped
        mask[lo:hi] *= scale

    bit_generator = generator.bit_generator
    if isinstance(bit_generator, _SEEKABLE) and n >= 2 * PARALLEL_MIN_ELEMENTS and get_threads() > 1:
        _draw_in_parallel(bit_generator, n, kind, fill)
        return mask.reshape(shape)
    if isinstance(bit_generator, _BITS64):  # each raw draw is 64 random bits
        bits = bit_generator.random_raw(-(-n // per_draw)).view(kind)[:n]
    else:  # e.g. MT19937, whose raw draws hold 32 bits
        bits = generator.integers(0, 1 << (8 * np.dtype(kind).itemsize), n, dtype=kind)
    for_row_blocks(n, 1, lambda lo, hi: fill(bits[lo:hi], lo, hi), rows=BLOCK_ELEMENTS)
    return mask.reshape(shape)


def _draw_in_parallel(bit_generator, n: int, kind, fill) -> None:
    """fill(bits, lo, hi) over blocks of the n values that
    `bit_generator.random_raw(ceil(n / per_draw)).view(kind)` would give, drawn on minigrad's
    threads: each thread starts a copy of the generator at the first draw of its range
    (`advance`), then the generator itself is advanced past all n values, as a sequential
    draw leaves it. Drawing is most of dropout's time (measured, one thread, per 64K values
    of 32 bits: 74 us of drawing, 33 us of compare, scale and multiply) and cannot be split
    otherwise.
    """
    state = bit_generator.state
    per_draw = 8 // np.dtype(kind).itemsize
    n_blocks = -(-n // BLOCK_ELEMENTS)  # BLOCK_ELEMENTS is a multiple of 4: a block starts at a whole draw

    def run(first, last):
        local = thread_bit_generator(type(bit_generator))
        local.state = state
        local.advance(first * BLOCK_ELEMENTS // per_draw)
        for block in range(first, last):
            lo, hi = block * BLOCK_ELEMENTS, min((block + 1) * BLOCK_ELEMENTS, n)
            fill(local.random_raw(-(-(hi - lo) // per_draw)).view(kind)[: hi - lo], lo, hi)

    parallel_for(n_blocks, run, PARALLEL_MIN_ELEMENTS // BLOCK_ELEMENTS)
    bit_generator.advance(-(-n // per_draw))
    after = bit_generator.state  # advance() drops the buffered half of a 64-bit draw that
    after["has_uint32"], after["uinteger"] = state["has_uint32"], state["uinteger"]  # random_raw keeps
    bit_generator.state = after


_threads_own = threading.local()  # .generators: {bit generator type: this thread's instance}


def thread_bit_generator(kind):
    """A bit generator of type `kind` that belongs to the calling thread, made on first use
    (making one seeds it through a SeedSequence: ~10 us, more than setting a state and jumping
    ahead, ~3 us), for callers that set its state and draw from it at once, never holding it
    across another such call (`_draw_in_parallel`, dropout_bits.DropoutBits.flat)."""
    generators = _threads_own.__dict__.setdefault("generators", {})
    if kind not in generators:
        generators[kind] = kind(0)
    return generators[kind]


class _MaskedOp(Function):
    """What Dropout and DropoutAdd share: the multiplier m kept for backward, and g * m."""

    def draw(self, x, p, generator) -> np.ndarray:
        """The multiplier m for x (x's shape; x's float dtype, else float32), saved for backward:
        as floats, or above BOOL_MASK_ABOVE_BYTES as booleans (a quarter of a float32 mask;
        the float mask's product in backward is ~2.5x faster per element)."""
        mask_dtype = x.dtype if x.dtype in (np.float32, np.float64) else np.float32
        mask = dropout_multiplier(generator, x.shape, p, mask_dtype)
        if self.requires_grad:
            if mask.nbytes > BOOL_MASK_ABOVE_BYTES and mask.dtype == x.dtype:
                self.mask, self.keep, self.scale = None, _nonzero(mask), 1.0 / (1.0 - p)
            else:
                self.mask = mask
        return mask

    def multiplier(self) -> np.ndarray:
        """The saved mask m as floats (rebuilt from the booleans when those were kept)."""
        if self.mask is not None:
            return self.mask
        return self.keep.astype(self.parents[0].dtype) * self.scale  # float32 stays float32

    def times_mask(self, g: np.ndarray) -> np.ndarray:
        """g * m (a fresh array)."""
        if self.mask is not None:
            return parallel_multiply(g, self.mask)
        return _masked_scale(g, self.keep, self.scale)  # the same products: keep * scale = m


class Dropout(_MaskedOp):
    # y = x * m,  m = keep / (1 - p) with keep ~ Bernoulli(1 - p)  =>  dL/dx = g * m
    def forward(self, x, p, generator):
        return parallel_multiply(x, self.draw(x, p, generator)).astype(x.dtype, copy=False)

    def backward(self, g):
        return self.times_mask(g)

    def backward_graph(self, g):
        return ref.dropout(g, self.multiplier())  # linear in x: the same saved multiplier


def dropout_add_reference(x: Tensor, residual: Tensor, multiplier) -> Tensor:
    """x * multiplier + residual in primitive ops (x, residual, multiplier of one shape)."""
    return ref.dropout(x, multiplier) + residual


class DropoutAdd(_MaskedOp):
    # y = x * m + r  =>  dL/dx = g * m,  dL/dr = g   (the plain version: dropout_add_reference)
    def forward(self, x, residual, p, generator):
        return _product_plus(x, self.draw(x, p, generator), residual)

    def backward(self, g):
        need_x, need_r = self.needs_input_grad
        return self.times_mask(g) if need_x else None, g if need_r else None

    def backward_graph(self, g):
        need_x, need_r = self.needs_input_grad  # linear in x and r: the same saved multiplier
        return ref.dropout(g, self.multiplier()) if need_x else None, g if need_r else None


def _product_plus(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """a * b + c for three arrays of one shape and dtype, over threads (a fresh array): two
    NumPy calls per thread's range, the product rounded before the sum, as a * b, then + c."""
    a, b, c = (np.asarray(t, order="C") for t in (a, b, c))
    out = np.empty(a.shape, dtype=a.dtype)
    fa, fb, fc, fo = (t.reshape(-1) for t in (a, b, c, out))

    def run(lo, hi):
        np.multiply(fa[lo:hi], fb[lo:hi], out=fo[lo:hi])
        np.add(fo[lo:hi], fc[lo:hi], out=fo[lo:hi])

    parallel_for(fo.size, run, PARALLEL_MIN_ELEMENTS)
    return out


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


def dropout_add(x, residual, p: float = 0.5, training: bool = True, generator=None) -> Tensor:
    """dropout(x, p, training, generator) + residual as one node (not in PyTorch): the same
    numbers and the same mask from the same generator state, without the sum's node and pass
    (a transformer block's shortcut, x = shortcut + dropout(h)). x and residual of one shape
    and float dtype; otherwise, and when not training or p == 0, the two ops. Reference:
    `dropout_add_reference`."""
    p = check_probability(p, "dropout_add")
    x, residual = as_float_tensor(x, "dropout_add"), as_float_tensor(residual, "dropout_add", "residual")
    if (not training or p == 0.0 or x.shape != residual.shape or x.dtype != residual.dtype
            or x.dtype not in (np.float32, np.float64)):
        return dropout(x, p, training, generator) + residual
    return DropoutAdd.apply(x, residual, p=p, generator=generator or default_generator())
