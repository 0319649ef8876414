"""Reductions: sum, mean, max, var over an axis (int, tuple, negative allowed) or all axes.

Backward broadcasts the incoming gradient back over the reduced axes: we first re-insert
them as size-1 axes (`keepdims` shape), then let NumPy broadcasting stretch them.
"""
from __future__ import annotations

import numpy as np

from ..autograd import Function


def normalize_axes(op: str, axis, ndim: int) -> tuple:
    """`axis` (None, int or tuple) as a sorted tuple of non-negative axes, checked."""
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    out = []
    for ax in axes:
        if not isinstance(ax, (int, np.integer)):
            raise TypeError(f"{op}: axis must be an int or tuple of ints, got {axis!r}")
        if not -ndim <= ax < max(ndim, 1) or (ndim == 0 and ax not in (0, -1)):
            raise ValueError(f"{op}: axis {ax} is out of range for a tensor of {ndim} dimensions")
        out.append(int(ax) % max(ndim, 1))
    if len(set(out)) != len(out):
        raise ValueError(f"{op}: repeated axis in {axis!r}")
    return tuple(sorted(out)) if ndim else ()


def _keepdims_shape(shape: tuple, axes: tuple) -> tuple:
    return tuple(1 if i in axes else n for i, n in enumerate(shape))


class Sum(Function):
    # d sum(a) / da = 1 for every element reduced
    def forward(self, a, axis=None, keepdims=False):
        self.axes = normalize_axes("sum", axis, a.ndim)
        self.in_shape = a.shape
        return np.sum(a, axis=self.axes, keepdims=keepdims)

    def backward(self, g):
        g = g.reshape(_keepdims_shape(self.in_shape, self.axes))
        return np.broadcast_to(g, self.in_shape)


class Mean(Function):
    # d mean(a) / da = 1/n for every element reduced
    def forward(self, a, axis=None, keepdims=False):
        self.axes = normalize_axes("mean", axis, a.ndim)
        self.in_shape = a.shape
        self.count = int(np.prod([a.shape[i] for i in self.axes]))
        return np.mean(a, axis=self.axes, keepdims=keepdims)

    def backward(self, g):
        g = g.reshape(_keepdims_shape(self.in_shape, self.axes)) / self.count
        return np.broadcast_to(g, self.in_shape)


class Max(Function):
    # the gradient flows to the maximal elements; ties share it equally
    def forward(self, a, axis=None, keepdims=False):
        self.axes = normalize_axes("max", axis, a.ndim)
        if a.size == 0:
            raise ValueError(f"max: cannot reduce an empty tensor of shape {a.shape}")
        out = np.max(a, axis=self.axes, keepdims=True)
        if self.requires_grad:
            self.a, self.out_kept = a, out
        self.in_shape = a.shape
        return out if keepdims else out.reshape([n for i, n in enumerate(a.shape) if i not in self.axes])

    def backward(self, g):
        is_max = self.a == self.out_kept
        share = is_max / is_max.sum(axis=self.axes, keepdims=True)
        return g.reshape(_keepdims_shape(self.in_shape, self.axes)) * share.astype(g.dtype)


class Var(Function):
    # var = mean((a - mu)^2) (ddof=0); d var / da = 2 (a - mu) / n  (the mu term sums to zero)
    def forward(self, a, axis=None, keepdims=False):
        self.axes = normalize_axes("var", axis, a.ndim)
        self.in_shape = a.shape
        self.count = int(np.prod([a.shape[i] for i in self.axes]))
        centered = a - a.mean(axis=self.axes, keepdims=True)
        if self.requires_grad:
            self.centered = centered
        return np.mean(centered * centered, axis=self.axes, keepdims=keepdims)

    def backward(self, g):
        g = g.reshape(_keepdims_shape(self.in_shape, self.axes))
        return g * (2 / self.count) * self.centered
