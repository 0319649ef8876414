"""Tensor creation with PyTorch's signatures: zeros ones full empty (and *_like), eye arange
linspace, rand randn randint normal (from minigrad's seeded generator, minigrad/random.py, or
the `generator=` given), tril triu (also as methods), meshgrid.

Sizes are given as `zeros(2, 3)` or `zeros((2, 3))`. The dtype is float32 unless `dtype=`
says otherwise (arange/full of integers give int64, full of a bool gives bool, as PyTorch);
`requires_grad=True` makes a leaf that requires grad (floating dtypes only).
"""
from __future__ import annotations

import math

import numpy as np

from .. import random as _random
from ..autograd import Function
from ..tensor import DEFAULT_DTYPE, Tensor


def _shape(size) -> tuple:
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        size = tuple(size[0])
    if not all(isinstance(n, (int, np.integer)) and not isinstance(n, bool) and n >= 0 for n in size):
        raise ValueError(f"size must be non-negative ints, got {size}")
    return tuple(int(n) for n in size)


def _leaf(array: np.ndarray, requires_grad: bool) -> Tensor:
    out = Tensor._wrap(array, False)
    out.requires_grad = requires_grad  # checks the dtype is floating
    return out


def _dtype(dtype, default=DEFAULT_DTYPE) -> np.dtype:
    return np.dtype(default if dtype is None else dtype)


def _generator(generator):
    return _random.default_generator() if generator is None else generator


def zeros(*size, dtype=None, requires_grad: bool = False, device=None) -> Tensor:
    """A tensor of zeros of shape `size`."""
    return _leaf(np.zeros(_shape(size), _dtype(dtype)), requires_grad)


def ones(*size, dtype=None, requires_grad: bool = False, device=None) -> Tensor:
    """A tensor of ones of shape `size`."""
    return _leaf(np.ones(_shape(size), _dtype(dtype)), requires_grad)


def empty(*size, dtype=None, requires_grad: bool = False, device=None) -> Tensor:
    """A tensor of shape `size` with unspecified values (zeros here: nothing is left unset)."""
    return zeros(*size, dtype=dtype, requires_grad=requires_grad)


def full(size, fill_value, *, dtype=None, requires_grad: bool = False, device=None) -> Tensor:
    """A tensor of shape `size` filled with `fill_value` (a bool gives bool, an int int64)."""
    if dtype is None:
        dtype = np.bool_ if isinstance(fill_value, bool) else np.int64 if isinstance(fill_value, int) else DEFAULT_DTYPE
    return _leaf(np.full(_shape((size,)), fill_value, dtype=np.dtype(dtype)), requires_grad)


def zeros_like(input, *, dtype=None, requires_grad: bool = False) -> Tensor:
    """zeros with input's shape and (unless given) dtype."""
    return zeros(input.shape, dtype=input.dtype if dtype is None else dtype, requires_grad=requires_grad)


def ones_like(input, *, dtype=None, requires_grad: bool = False) -> Tensor:
    """ones with input's shape and (unless given) dtype."""
    return ones(input.shape, dtype=input.dtype if dtype is None else dtype, requires_grad=requires_grad)


def empty_like(input, *, dtype=None, requires_grad: bool = False) -> Tensor:
    return zeros_like(input, dtype=dtype, requires_grad=requires_grad)


def full_like(input, fill_value, *, dtype=None, requires_grad: bool = False) -> Tensor:
    """full with input's shape and (unless given) dtype."""
    return full(input.shape, fill_value, dtype=input.dtype if dtype is None else dtype, requires_grad=requires_grad)


def rand_like(input, *, dtype=None, requires_grad: bool = False, generator=None) -> Tensor:
    return rand(input.shape, dtype=input.dtype if dtype is None else dtype, requires_grad=requires_grad, generator=generator)


def randn_like(input, *, dtype=None, requires_grad: bool = False, generator=None) -> Tensor:
    return randn(input.shape, dtype=input.dtype if dtype is None else dtype, requires_grad=requires_grad, generator=generator)


def eye(n: int, m: int | None = None, *, dtype=None, requires_grad: bool = False, device=None) -> Tensor:
    """The (n, m) identity matrix (m defaults to n)."""
    return _leaf(np.eye(n, n if m is None else m, dtype=_dtype(dtype)), requires_grad)


def arange(start, end=None, step=1, *, dtype=None, requires_grad: bool = False, device=None) -> Tensor:
    """[start, end) in steps of `step` (`arange(n)` is 0..n-1); int64 when every argument is
    an int, else float32."""
    if end is None:
        start, end = 0, start
    if step == 0:
        raise ValueError("arange: step must be nonzero")
    if dtype is None:
        dtype = np.int64 if all(isinstance(v, (int, np.integer)) for v in (start, end, step)) else DEFAULT_DTYPE
    count = max(0, math.ceil((end - start) / step))
    return _leaf((start + step * np.arange(count, dtype=np.float64)).astype(dtype), requires_grad)


def linspace(start, end, steps: int, *, dtype=None, requires_grad: bool = False, device=None) -> Tensor:
    """`steps` evenly spaced values from start to end (both included)."""
    return _leaf(np.linspace(start, end, steps, dtype=np.float64).astype(_dtype(dtype)), requires_grad)


def logspace(start, end, steps: int, base: float = 10.0, *, dtype=None, requires_grad: bool = False) -> Tensor:
    """base ** linspace(start, end, steps)."""
    return _leaf(np.logspace(start, end, steps, base=base).astype(_dtype(dtype)), requires_grad)


def rand(*size, generator=None, dtype=None, requires_grad: bool = False, device=None) -> Tensor:
    """Uniform samples in [0, 1) of shape `size`."""
    return _leaf(_generator(generator).random(_shape(size)).astype(_dtype(dtype)), requires_grad)


def randn(*size, generator=None, dtype=None, requires_grad: bool = False, device=None) -> Tensor:
    """Standard normal samples of shape `size`."""
    return _leaf(_generator(generator).standard_normal(_shape(size)).astype(_dtype(dtype)), requires_grad)


def randint(low, high=None, size=None, *, generator=None, dtype=None, requires_grad: bool = False) -> Tensor:
    """Integers uniform in [low, high) (`randint(high, size)` for low 0), int64 by default."""
    if size is None:
        low, high, size = 0, low, high
    if size is None:
        raise TypeError("randint: size is required, e.g. randint(0, 10, (3,))")
    return _leaf(_generator(generator).integers(low, high, _shape((size,))).astype(_dtype(dtype, np.int64)), requires_grad)


def randperm(n: int, *, generator=None, dtype=None) -> Tensor:
    """A random permutation of 0..n-1 (int64)."""
    return Tensor._wrap(_generator(generator).permutation(n).astype(_dtype(dtype, np.int64)), False)


def normal(mean=0.0, std=1.0, size=None, *, generator=None, dtype=None, requires_grad: bool = False) -> Tensor:
    """Normal samples: `normal(mean, std, size)` with numbers, or mean/std tensors (broadcast,
    the result has their shape). Not differentiable in mean/std (as PyTorch)."""
    mean_a = mean.data if isinstance(mean, Tensor) else np.asarray(mean)
    std_a = std.data if isinstance(std, Tensor) else np.asarray(std)
    if np.any(std_a < 0):
        raise ValueError(f"normal: std must be non-negative, got min {std_a.min()}")
    shape = _shape((size,)) if size is not None else np.broadcast_shapes(mean_a.shape, std_a.shape)
    like = mean if isinstance(mean, Tensor) else std if isinstance(std, Tensor) else None
    dtype = _dtype(dtype, like.dtype if like is not None and like.dtype.kind == "f" else DEFAULT_DTYPE)
    sample = mean_a + std_a * _generator(generator).standard_normal(shape)
    return _leaf(np.asarray(sample).astype(dtype), requires_grad)


class Triangle(Function):
    # out = a with the elements outside the kept triangle zeroed: d/da = g with the same zeros
    def forward(self, a, diagonal, upper):
        if a.ndim < 2:
            raise ValueError(f"{'triu' if upper else 'tril'}: needs at least 2 dimensions, got shape {a.shape}")
        self.keep = (np.triu if upper else np.tril)(np.ones(a.shape[-2:], dtype=bool), diagonal)
        return np.where(self.keep, a, np.zeros((), a.dtype))

    def backward(self, g):
        return np.where(self.keep, g, np.zeros((), g.dtype))

    def backward_graph(self, g):
        return Triangle.apply(g, **self.options)


def tril(input, diagonal: int = 0) -> Tensor:
    """The lower triangle of the last two dims (j <= i + diagonal), zeros above."""
    return Triangle.apply(input, diagonal=diagonal, upper=False)


def triu(input, diagonal: int = 0) -> Tensor:
    """The upper triangle of the last two dims (j >= i + diagonal), zeros below."""
    return Triangle.apply(input, diagonal=diagonal, upper=True)


def meshgrid(*tensors, indexing: str = "ij") -> tuple:
    """Coordinate grids from 1-d tensors (indexing "ij", PyTorch's default, or "xy"); each grid
    is a broadcast of its input (differentiable: the gradient sums over the copies)."""
    if len(tensors) == 1 and isinstance(tensors[0], (tuple, list)):
        tensors = tuple(tensors[0])
    if indexing not in ("ij", "xy"):
        raise ValueError(f"meshgrid: indexing must be 'ij' or 'xy', got {indexing!r}")
    tensors = [t if isinstance(t, Tensor) else Tensor(t) for t in tensors]
    if any(t.ndim > 1 for t in tensors):
        raise ValueError(f"meshgrid: expects 0-d or 1-d tensors, got shapes {[t.shape for t in tensors]}")
    sizes = [t.numel() for t in tensors]
    order = list(range(len(tensors)))
    if indexing == "xy" and len(tensors) >= 2:
        order[0], order[1] = 1, 0
    shape = tuple(sizes[i] for i in order)
    grids = []
    for i, t in enumerate(tensors):
        view = [1] * len(tensors)
        view[order.index(i)] = sizes[i]
        grids.append(t.reshape(view).expand(shape))
    return tuple(grids)


class CreationMethods:
    """tril/triu and new_* creation methods (installed onto Tensor by minigrad.ops)."""

    def tril(self, diagonal: int = 0):
        """Lower triangle of the last two dims. Backward: g with the same zeros."""
        return tril(self, diagonal)

    def triu(self, diagonal: int = 0):
        """Upper triangle of the last two dims. Backward: g with the same zeros."""
        return triu(self, diagonal)

    def new_zeros(self, *size, dtype=None, requires_grad: bool = False):
        return zeros(*size, dtype=self.dtype if dtype is None else dtype, requires_grad=requires_grad)

    def new_ones(self, *size, dtype=None, requires_grad: bool = False):
        return ones(*size, dtype=self.dtype if dtype is None else dtype, requires_grad=requires_grad)

    def new_full(self, size, fill_value, *, dtype=None, requires_grad: bool = False):
        return full(size, fill_value, dtype=self.dtype if dtype is None else dtype, requires_grad=requires_grad)

    def new_tensor(self, data, *, dtype=None, requires_grad: bool = False):
        return Tensor(data, dtype=self.dtype if dtype is None else dtype, requires_grad=requires_grad)


__all__ = ["zeros", "ones", "empty", "full", "zeros_like", "ones_like", "empty_like", "full_like",
           "rand_like", "randn_like", "eye", "arange", "linspace", "logspace", "rand", "randn",
           "randint", "randperm", "normal", "tril", "triu", "meshgrid"]
