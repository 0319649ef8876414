"""Softmax, log-softmax, softmin and GELU: each one graph node with a hand-derived backward
(dropout, once here, is in dropout.py; its names are still importable from this module).

Softmax and log-softmax subtract the row maximum first (exp never overflows, logits of +-1e4
are fine, and a row that is -inf everywhere but one entry gives a one-hot row). GELU is the
tanh approximation GPT-2 uses (Hendrycks & Gimpel 2016; the book's section 4.3), which
`gelu(x, approximate="tanh")` selects (PyTorch's default, the exact erf form, is in pointwise.py):

    gelu(x) = 0.5 x (1 + tanh(c (x + a x^3))),   c = sqrt(2 / pi),  a = 0.044715

computed blockwise in a few in-place passes with constants of the input's own dtype (a NumPy
float64 constant would promote float32 arrays to float64, NEP 50), x*x times x instead of x**3,
and 0.5 x (1 + tanh(u)) as the equal x / (1 + exp(-2u)) (cheaper, see _gelu_pass).
Each formula written plainly, in primitive ops, is in reference.py (read that first); the
kernels differentiate those references when a backward builds a graph (create_graph=True).
"""
from __future__ import annotations

import warnings

import numpy as np

from ...autograd import Function
from ...tensor import Tensor
from . import reference as ref
from .dropout import (BOOL_MASK_ABOVE_BYTES, Dropout, check_probability, dropout,  # noqa: F401
                      dropout_multiplier)  # (re-exported: their home was this module)
from .pointwise import gelu_exact
from ._util import (BLOCK_ELEMENTS, PARALLEL_MIN_ELEMENTS, RowLayout, as_float_tensor, check_axis,
                    for_row_blocks, parallel_for, parallel_multiply)

GELU_C = 0.7978845608028654  # sqrt(2 / pi) as a Python float (keeps float32 float32)
GELU_A = 0.044715
GELU_K = 2.0 * GELU_C * 1.4426950408889634  # 2 c log2(e): exp(-2u) = exp2(-K u / c)


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
# (dropout.BOOL_MASK_ABOVE_BYTES, a quarter of it: above that, a dropout mask is kept as booleans)
# GELU's blocks: twice _util.BLOCK_ELEMENTS (a pass with the slope and bias is 14 NumPy calls per
# block; at 64K elements their fixed cost per call is several percent of the time, at 128K half that)
GELU_BLOCK_ELEMENTS = 2 * BLOCK_ELEMENTS


_GELU_CONSTANTS: dict = {}  # dtype -> _gelu_constants(dtype)


def _gelu_constants(dtype) -> tuple:
    """The pass's five constants as 0-d arrays of `dtype`: the same numbers a Python float
    becomes inside a ufunc (NEP 50 casts it to the array's dtype), with less work per call."""
    constants = _GELU_CONSTANTS.get(dtype)
    if constants is None:
        values = (-GELU_K * GELU_A, GELU_K, 1.0, 6.0 * GELU_A * GELU_C, 2.0 * GELU_C)
        constants = _GELU_CONSTANTS[dtype] = tuple(np.array(v, dtype=dtype) for v in values)
    return constants


def _gelu_pass(flat, y=None, slope=None, g=None, grad=None, bias=None) -> None:
    """Blockwise over flat x (cache-sized blocks, split over threads): y = gelu(x) when y is
    given; dy/dx into `slope` when given; g * dy/dx into `grad` when given (backward). With
    `bias` (C,), flat holds rows of C and each block first adds it in place, x += bias.
    `slope` may be `flat` itself (a scratch input, e.g. linear_gelu's product): each block's
    slope is written over its x once x is no longer needed, so no new array is written.

    With t = 1 + exp(-2u) = 1 / h (h = 0.5 (1 + tanh u), the same number; no 1 + tanh
    cancellation for negative u) and exp(-2u) = exp2(x (-K - K a x^2)), K = 2 c log2(e):
        y = x / t,   dy/dx = h (1 + x (1 - h) q) = (1 + (x - y) q) / t,   q = 2 du/dx
    13 passes with the slope (14 with the bias), 7 for y alone: exp2, an add and divides by t
    cost less than tanh and the passes to form h. Very negative x: exp2 overflows to inf (not
    an error here), t = inf, y = -0 as tanh's 0.5 x (1 - 1) gives, slope 0."""
    need_slope = slope is not None or grad is not None
    if slope is flat and y is None:
        raise ValueError("_gelu_pass: the slope can be written over x only together with y")
    width = 1 if bias is None else bias.size  # blocks and thread ranges are whole rows
    step = max(1, GELU_BLOCK_ELEMENTS // width) * width
    minus_ka, k, one, q_a, q_c = _gelu_constants(flat.dtype)
    # the bias repeated over a block's rows: a contiguous add costs ~2/3 of a broadcast one
    tiled_bias = None if bias is None else np.tile(bias, min(step, flat.size) // width)

    def run(first_row, last_row):
        lo, hi = first_row * width, last_row * width
        size = min(step, hi - lo)
        t_buf = np.empty(size, dtype=flat.dtype)
        q_buf = np.empty(size, dtype=flat.dtype)
        with np.errstate(over="ignore"):  # exp2's overflow to inf is intended (h = 0)
            for start in range(lo, hi, step):
                stop = min(start + step, hi)
                xs, t, q = flat[start:stop], t_buf[: stop - start], q_buf[: stop - start]
                if bias is not None:
                    xs += tiled_bias[: stop - start]  # x += bias on each of the block's rows
                np.square(xs, out=q)             # x^2, kept for the slope
                np.multiply(q, minus_ka, out=t)
                t -= k
                t *= xs                          # -2 u log2(e) = x (-K - K a x^2)
                np.exp2(t, out=t)
                t += one                         # t = 1 + exp(-2u) = 1 / h
                ys = y[start:stop] if y is not None else None
                if not need_slope:
                    np.divide(xs, t, out=ys)     # y = x h
                    continue
                d = grad[start:stop] if slope is None else slope[start:stop]
                if ys is None:
                    ys = d                       # (y only as a step towards the slope)
                np.divide(xs, t, out=ys)         # y = x h
                q *= q_a
                q += q_c                         # q = 2 du/dx = 2 c (1 + 3 a x^2)
                np.subtract(xs, ys, out=d)       # x (1 - h) = x - y (over x itself if slope is flat)
                d *= q
                d += one
                d /= t                           # dy/dx = h (1 + x (1 - h) q)
                if grad is not None:
                    if slope is not None:
                        np.multiply(g[start:stop], d, out=grad[start:stop])
                    else:
                        d *= g[start:stop]       # (d is grad's block)

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
