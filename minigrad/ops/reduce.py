"""Reductions: sum, mean, max, var over an axis (int, tuple, negative allowed) or all axes.

Backward broadcasts the incoming gradient back over the reduced axes: we first re-insert
them as size-1 axes (`keepdims` shape), then let NumPy broadcasting stretch them. The
`backward_graph` rules do the same with Reshape and BroadcastTo (create_graph=True).
"""
from __future__ import annotations

import numpy as np

from ..autograd import Function
from ..tensor import Tensor
from .broadcast import BroadcastTo
from .shape import Reshape


def normalize_axes(op: str, axis, ndim: int, shape: tuple | None = None) -> tuple:
    """`axis` (None, an int or a tuple/list of ints, negative allowed) as a sorted tuple of
    non-negative axes; a TypeError or ValueError naming `op` (and `shape` if given) otherwise.

    A 0-d tensor accepts axis 0 or -1 (reducing it is the identity), as in PyTorch.
    """
    if axis is None:
        return tuple(range(ndim))
    where = f" (shape {tuple(shape)})" if shape is not None else ""
    axes = (axis,) if isinstance(axis, (int, np.integer)) else axis
    if not isinstance(axes, (tuple, list)) or not all(
        isinstance(ax, (int, np.integer)) and not isinstance(ax, bool) for ax in axes
    ):
        raise TypeError(f"{op}: axis must be None, an int or a tuple of ints, got {axis!r}")
    size = max(ndim, 1)
    out = []
    for ax in axes:
        if not -size <= ax < size:
            raise ValueError(f"{op}: axis {ax} is out of range for a tensor of {ndim} dimensions{where}")
        out.append(int(ax) % size)
    if len(set(out)) != len(out):
        raise ValueError(f"{op}: repeated axis in {axis!r}{where}")
    return tuple(sorted(out)) if ndim else ()


def _keepdims_shape(shape: tuple, axes: tuple) -> tuple:
    return tuple(1 if i in axes else n for i, n in enumerate(shape))


class Sum(Function):
    # d sum(a)/da_i = 1 for every element reduced: g broadcast back over the reduced axes
    def forward(self, a, axis=None, keepdims=False):
        self.axes = normalize_axes("sum", axis, a.ndim, a.shape)
        self.in_shape = a.shape
        return np.sum(a, axis=self.axes, keepdims=keepdims)

    def backward(self, g):
        g = g.reshape(_keepdims_shape(self.in_shape, self.axes))
        return np.broadcast_to(g, self.in_shape)  # a read-only view, no copy

    def backward_graph(self, g):
        g = Reshape.apply(g, shape=_keepdims_shape(self.in_shape, self.axes))
        return BroadcastTo.apply(g, shape=self.in_shape)


class Mean(Function):
    # d mean(a)/da_i = 1/n for every element reduced (n = number of elements reduced)
    def forward(self, a, axis=None, keepdims=False):
        self.axes = normalize_axes("mean", axis, a.ndim, a.shape)
        self.in_shape = a.shape
        self.count = int(np.prod([a.shape[i] for i in self.axes]))
        if self.count == 0:  # the mean of nothing is nan, as PyTorch (the gradient is empty)
            return np.full(np.sum(a, axis=self.axes, keepdims=keepdims).shape, np.nan, dtype=a.dtype)
        return np.mean(a, axis=self.axes, keepdims=keepdims)

    def backward(self, g):
        g = g.reshape(_keepdims_shape(self.in_shape, self.axes)) / max(self.count, 1)
        return np.broadcast_to(g, self.in_shape)

    def backward_graph(self, g):
        g = Reshape.apply(g, shape=_keepdims_shape(self.in_shape, self.axes)) * (1.0 / max(self.count, 1))
        return BroadcastTo.apply(g, shape=self.in_shape)


def check_reducible(op: str, shape: tuple, axes) -> None:
    """max/min/argmax/... have no identity: reducing over an empty dim is an error (PyTorch's
    rule), while reducing an empty tensor over its non-empty dims gives an empty result."""
    if axes is None:
        if 0 in shape:
            raise ValueError(f"{op}: expected reduction dim to be specified for an empty input of shape "
                             f"{tuple(shape)} ({op} of nothing is undefined: it has no identity); pass dim=")
        return
    for d in axes:
        if shape[d] == 0:
            raise ValueError(f"{op}: expected reduction dim {d} to have non-zero size (input shape "
                             f"{tuple(shape)}; {op} of nothing is undefined: it has no identity)")


class Max(Function):
    # d max(a)/da_i = 1 at the maximal element, 0 elsewhere; k tied maxima get 1/k each
    # (a NaN makes the maximum NaN: its slice's gradient is NaN, as 0/0)
    def forward(self, a, axis=None, keepdims=False, op="max"):
        self.axes = normalize_axes(op, axis, a.ndim, a.shape)
        check_reducible(op, a.shape, None if axis is None else self.axes)
        out = np.max(a, axis=self.axes, keepdims=True)  # keepdims shape
        if self.requires_grad:
            self.a, self.out_kept = a, out
        self.in_shape = a.shape
        return out if keepdims else out.reshape([n for i, n in enumerate(a.shape) if i not in self.axes])

    def backward(self, g):
        share = (self.a == self.out_kept).astype(g.dtype)  # 1 at maxima, in g's dtype
        with np.errstate(invalid="ignore", divide="ignore"):
            share /= share.sum(axis=self.axes, keepdims=True)
        return g.reshape(_keepdims_shape(self.in_shape, self.axes)) * share

    def backward_graph(self, g):
        share = (self.a == self.out_kept).astype(g.dtype)  # piecewise constant: a constant
        with np.errstate(invalid="ignore", divide="ignore"):
            share /= share.sum(axis=self.axes, keepdims=True)
        g = Reshape.apply(g, shape=_keepdims_shape(self.in_shape, self.axes))
        return g * Tensor._wrap(share, False)


class Var(Function):
    # var = sum((a - mu)^2) / (n - correction) (correction 0: biased, 1: Bessel's);
    # d var/da_i = 2 (a_i - mu) / (n - correction)  (the terms through mu sum to zero because
    # sum(a - mu) = 0). n <= correction divides by zero: inf or nan, as PyTorch.
    def forward(self, a, axis=None, keepdims=False, correction=0):
        self.axes = normalize_axes("var", axis, a.ndim, a.shape)
        self.in_shape = a.shape
        reduced = int(np.prod([a.shape[i] for i in self.axes]))
        self.count = reduced - correction
        centered = a - a.sum(axis=self.axes, keepdims=True) / np.asarray(max(reduced, 1), a.dtype)  # a - mean
        if self.requires_grad:
            self.centered = centered
        with np.errstate(divide="ignore", invalid="ignore"):
            squares = np.sum(centered * centered, axis=self.axes, keepdims=keepdims)
            return squares / np.asarray(max(self.count, 0), dtype=a.dtype)

    def backward(self, g):
        g = g.reshape(_keepdims_shape(self.in_shape, self.axes))
        with np.errstate(divide="ignore", invalid="ignore"):
            scale = np.asarray(2, dtype=g.dtype) / np.asarray(max(self.count, 0), dtype=g.dtype)
        return g * scale * self.centered

    def backward_graph(self, g):
        a = self.parents[0]
        centered = a - Mean.apply(a, axis=self.axes, keepdims=True)  # differentiable in a
        g = Reshape.apply(g, shape=_keepdims_shape(self.in_shape, self.axes))
        with np.errstate(divide="ignore", invalid="ignore"):
            scale = np.asarray(2, dtype=g.dtype) / np.asarray(max(self.count, 0), dtype=g.dtype)
        return g * centered * Tensor._wrap(scale, False)
