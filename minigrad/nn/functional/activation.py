"""Softmax, log-softmax, softmin, GELU and dropout: each one graph node with a hand-derived
backward.

Softmax and log-softmax subtract the row maximum first (exp never overflows, logits of +-1e4
are fine, and a row that is -inf everywhere but one entry gives a one-hot row). GELU is the
tanh approximation GPT-2 uses (Hendrycks & Gimpel 2016; the book's section 4.3), which
`gelu(x, approximate="tanh")` selects (PyTorch's default, the exact erf form, is in pointwise.py):

    gelu(x) = 0.5 x (1 + tanh(c (x + a x^3))),   c = sqrt(2 / pi),  a = 0.044715

computed blockwise in a few in-place passes with Python-float constants (a NumPy float64
constant would promote float32 arrays to float64, NEP 50) and x*x*x instead of x**3.
Each formula written plainly, in primitive ops, is in reference.py (read that first); the
kernels differentiate those references when a backward builds a graph (create_graph=True).
"""
from __future__ import annotations

import math
import warnings

import numpy as np

from ...autograd import Function
from ...random import default_generator
from ...runtime.threads import get_threads
from ...tensor import Tensor
from . import reference as ref
from .pointwise import gelu_exact
from ._util import (BLOCK_ELEMENTS, PARALLEL_MIN_ELEMENTS, RowLayout, as_float_tensor, check_axis,
                    for_row_blocks, parallel_for, parallel_multiply)

GELU_C = 0.7978845608028654  # sqrt(2 / pi) as a Python float (keeps float32 float32)
GELU_A = 0.044715


# ---------------------------------------------------------------- softmax
def _softmax_rows(x: np.ndarray, out: np.ndarray) -> None:
    """out[n] = softmax(x[n]) for x, out of shape (N, C)."""
    def block(lo, hi):
        xs, ys = x[lo:hi], out[lo:hi]
        np.subtract(xs, xs.max(axis=1, keepdims=True), out=ys)  # max entry becomes 0
        np.exp(ys, out=ys)
        total = ys.sum(axis=1, keepdims=True)  # (rows, 1), >= 1
        ys *= np.reciprocal(total, out=total)

    for_row_blocks(x.shape[0], x.shape[1], block)


class Softmax(Function):
    # y = exp(x) / sum(exp(x));  dy_i/dx_j = y_i (delta_ij - y_j)
    # => dL/dx_j = y_j (g_j - sum_i g_i y_i)
    reference = staticmethod(ref.softmax)  # the same function in primitive ops

    def forward(self, x, axis=-1):
        self.layout = RowLayout(x.shape, axis)
        rows = self.layout.to_rows(x)  # (N, C)
        y = np.empty_like(rows)
        if y.size:
            _softmax_rows(rows, y)
        if self.requires_grad:
            self.y = y
        return self.layout.from_rows(y)

    def backward(self, g):
        g, y = self.layout.to_rows(g), self.y  # (N, C)
        dx = np.empty_like(y)

        def block(lo, hi):
            gs, ys, ds = g[lo:hi], y[lo:hi], dx[lo:hi]
            dot = np.einsum("ij,ij->i", gs, ys)[:, None]  # (rows, 1): sum_i g_i y_i
            np.subtract(gs, dot, out=ds)
            ds *= ys

        if dx.size:
            for_row_blocks(y.shape[0], y.shape[1], block)
        return self.layout.from_rows(dx)


class LogSoftmax(Function):
    # y = x - max - log(sum(exp(x - max)));  dy_i/dx_j = delta_ij - softmax_j
    # => dL/dx_j = g_j - softmax_j * sum_i g_i,  with softmax = exp(y)
    reference = staticmethod(ref.log_softmax)

    def forward(self, x, axis=-1):
        self.layout = RowLayout(x.shape, axis)
        x2 = self.layout.to_rows(x)  # (N, C)
        y = np.empty_like(x2)

        def block(lo, hi):
            xs, ys = x2[lo:hi], y[lo:hi]
            np.subtract(xs, xs.max(axis=1, keepdims=True), out=ys)
            log_total = np.log(np.exp(ys).sum(axis=1, keepdims=True))  # (rows, 1), >= 0
            ys -= log_total

        if y.size:
            for_row_blocks(x2.shape[0], x2.shape[1], block)
        if self.requires_grad:
            self.y = y
        return self.layout.from_rows(y)

    def backward(self, g):
        g, y = self.layout.to_rows(g), self.y  # (N, C)
        dx = np.empty_like(y)

        def block(lo, hi):
            gs, ds = g[lo:hi], dx[lo:hi]
            np.exp(y[lo:hi], out=ds)  # softmax
            ds *= -gs.sum(axis=1, keepdims=True)
            ds += gs

        if dx.size:
            for_row_blocks(y.shape[0], y.shape[1], block)
        return self.layout.from_rows(dx)


def implicit_softmax_dim(op: str, ndim: int) -> int:
    """PyTorch's choice when `dim` is not given (deprecated there, with this warning):
    dim 0 for 0-, 1- and 3-d input, else dim 1."""
    dim = 0 if ndim in (0, 1, 3) else 1
    warnings.warn(f"{op}: implicit dimension choice is deprecated (as in PyTorch); pass dim={dim} "
                  f"(chosen for a {ndim}-d input)", UserWarning, stacklevel=4)
    return dim


def _resolve_dim(op: str, x: Tensor, dim, axis, dtype) -> tuple[Tensor, int]:
    """(input cast to `dtype`, the axis to reduce over): `axis=` is an alias of `dim=`."""
    if dim is not None and axis is not None and dim != axis:
        raise TypeError(f"{op}: got both dim={dim!r} and axis={axis!r}; pass one")
    dim = dim if dim is not None else axis
    x = as_float_tensor(x, op)
    if dtype is not None:
        x = x.astype(dtype)
    if dim is None:
        dim = implicit_softmax_dim(op, x.ndim)
    return x, check_axis(dim, x.ndim, op, x.shape)


def softmax(input, dim: int | None = None, dtype=None, *, axis: int | None = None) -> Tensor:
    """Softmax along `dim` (any shape; one node). float32 stays float32; `dtype` casts the
    input first. Without `dim`, PyTorch's deprecated implicit choice (with a warning).
    Reference version: `reference.softmax`."""
    x, dim = _resolve_dim("softmax", input, dim, axis, dtype)
    return Softmax.apply(x, axis=dim)


def log_softmax(input, dim: int | None = None, dtype=None, *, axis: int | None = None) -> Tensor:
    """log(softmax(x)) along `dim`, computed stably as x - max - log(sum(exp(x - max))).
    Reference version: `reference.log_softmax`."""
    x, dim = _resolve_dim("log_softmax", input, dim, axis, dtype)
    return LogSoftmax.apply(x, axis=dim)


def softmin(input, dim: int | None = None, dtype=None, *, axis: int | None = None) -> Tensor:
    """softmax(-x) along `dim`."""
    x, dim = _resolve_dim("softmin", input, dim, axis, dtype)
    return Softmax.apply(-x, axis=dim)


# ---------------------------------------------------------------- GELU
# Saved state above these sizes is kept lean, for long contexts (GPT-2 124M at context 1024 and
# batch 4: 50 MB per GELU slope, 12.6 MB per dropout mask); below them the fastest state is kept
# as before (attention has its own threshold, attention.BLOCKED_ABOVE_BYTES, where it stops
# keeping its weights). A dropout mask (B, T, C) is a quarter of the GELU's (B, T, 4C) of the
# same model, so the GELU and the dropout layers of a model turn lean at the same batch and
# context. The benchmark configs (GELU at most 8 MB, dropout masks at most 2 MB) stay below both.
LEAN_ABOVE_BYTES = 16 << 20  # GELU: above this, recompute the slope from x in backward
BOOL_MASK_ABOVE_BYTES = LEAN_ABOVE_BYTES // 4  # dropout: above this, keep the mask as booleans


def _gelu_pass(flat, y=None, slope=None, g=None, grad=None, bias=None) -> None:
    """Blockwise over flat x (cache-sized blocks, split over threads): y = gelu(x) when y is
    given; dy/dx into `slope` when given; g * dy/dx into `grad` when given (backward). With
    `bias` (C,), flat holds rows of C and each block first adds it in place, x += bias."""
    need_slope = slope is not None or grad is not None
    width = 1 if bias is None else bias.size  # blocks and thread ranges are whole rows
    step = max(1, BLOCK_ELEMENTS // width) * width

    def run(first_row, last_row):
        lo, hi = first_row * width, last_row * width
        size = min(step, hi - lo)
        h_buf = np.empty(size, dtype=flat.dtype)
        q_buf = np.empty(size, dtype=flat.dtype) if need_slope else None
        d_buf = np.empty(size, dtype=flat.dtype) if grad is not None else None
        for start in range(lo, hi, step):
            stop = min(start + step, hi)
            xs, h = flat[start:stop], h_buf[: stop - start]
            if bias is not None:
                rows = xs.reshape(-1, width)  # (rows, C), a view
                rows += bias
            if not need_slope:
                np.multiply(xs, xs, out=h)
                h *= GELU_A * GELU_C
            else:  # keep x^2 for the slope
                q = q_buf[: stop - start]
                np.multiply(xs, xs, out=q)
                np.multiply(q, GELU_A * GELU_C, out=h)
            h += GELU_C
            h *= xs                              # u = c x + c a x^3
            np.tanh(h, out=h)
            h *= 0.5
            h += 0.5                             # h = 0.5 (1 + tanh(u))
            if y is not None:
                np.multiply(xs, h, out=y[start:stop])  # y = x h
            if need_slope:
                q *= 6.0 * GELU_A * GELU_C
                q += 2.0 * GELU_C                # q = 2 du/dx = 2 c (1 + 3 a x^2)
                d = slope[start:stop] if slope is not None else d_buf[: stop - start]
                if y is not None:
                    np.subtract(xs, y[start:stop], out=d)  # x (1 - h) = x - y
                else:
                    np.multiply(xs, h, out=d)
                    np.subtract(xs, d, out=d)
                d *= q
                d += 1.0
                d *= h                           # dy/dx = h (1 + x (1 - h) q)
                if grad is not None:
                    np.multiply(g[start:stop], d, out=grad[start:stop])

    parallel_for(flat.size // width, run, max(1, PARALLEL_MIN_ELEMENTS // width))


class GELU(Function):
    # y = x h  with  h = 0.5 (1 + tanh(u)),  u = c (x + a x^3);  using 1 - tanh^2 = 4 h (1 - h):
    # dy/dx = h + x dh/dx = h (1 + 2 (1 - h) x du/dx),  x du/dx = c x (1 + 3 a x^2)
    # (the slope dy/dx is computed in forward, where x and h are at hand, and saved; above
    # LEAN_ABOVE_BYTES it is recomputed from x in backward instead, one array less to hold:
    # x is kept anyway, as the input of the next Linear's weight gradient)
    reference = staticmethod(ref.gelu_tanh)  # the formula in four plain ops: read it first

    def forward(self, x):
        x = np.asarray(x, order="C")  # (keeps 0-d arrays 0-d, unlike ascontiguousarray)
        flat = x.reshape(-1)
        y = np.empty_like(flat)
        keep = self.requires_grad and flat.nbytes <= LEAN_ABOVE_BYTES
        slope = np.empty_like(flat) if keep else None
        _gelu_pass(flat, y=y, slope=slope)
        self.slope = None if slope is None else slope.reshape(x.shape)
        return y.reshape(x.shape)

    def backward(self, g):
        if self.slope is not None:
            return parallel_multiply(g, self.slope)
        x = np.asarray(self.parents[0].data, order="C")
        grad = np.empty(x.shape, dtype=np.result_type(g, x))
        _gelu_pass(x.reshape(-1), g=np.asarray(g, order="C").reshape(-1), grad=grad.reshape(-1))
        return grad


def gelu(input, approximate: str = "none") -> Tensor:
    """GELU as PyTorch: approximate="none" (the default) is x Phi(x) with the normal CDF;
    "tanh" is GPT-2's 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), which the GPT uses;
    its reference version, the formula in plain ops, is `reference.gelu_tanh`."""
    if approximate == "tanh":
        return GELU.apply(as_float_tensor(input, "gelu"))
    if approximate == "none":
        return gelu_exact(input)
    raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")


def relu(input, inplace: bool = False) -> Tensor:
    """max(x, 0) (the core op; gradient 0 at x == 0)."""
    return as_float_tensor(input, "relu").relu()


# ---------------------------------------------------------------- dropout
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
