"""Largest and smallest values: max/min (whole tensor, along a dim with indices, or
elementwise against another tensor), amax/amin, argmax/argmin, sort, argsort, topk.

Gradient rules, as PyTorch documents them:
  - `max()` / `amax(dim)` (values only): k tied maxima share the gradient, 1/k each (the
    Max op in reduce.py);
  - `max(dim)` / `min(dim)` / `sort` / `topk` return indices too, and the gradient flows only
    to the returned index (the values are a gather at those indices). With ties the first
    occurrence is returned, as PyTorch documents for max/min/argmax; sort is stable.
NaN counts as larger than every number (it propagates through max/min and sorts last).
"""
from __future__ import annotations

from collections import namedtuple

import numpy as np

from ..tensor import Tensor
from .elementwise import Maximum
from .index import Gather
from .promote import check_dim, pick_dim, pick_keepdim, promote
from .reduce import Max, check_reducible, normalize_axes

ValuesIndices = namedtuple("ValuesIndices", ["values", "indices"])
"""What max(dim), min(dim), sort, topk, cummax and cummin return: `values, indices = ...`."""


def _index(array: np.ndarray) -> Tensor:
    return Tensor._wrap(np.asarray(array, dtype=np.int64), False)


def _arg_extreme(op: str, a: np.ndarray, dim, keepdim: bool, smallest: bool) -> np.ndarray:
    pick = np.argmin if smallest else np.argmax
    if dim is None:
        check_reducible(op, a.shape, None)
        out = pick(a)
        return np.reshape(out, (1,) * a.ndim) if keepdim else np.asarray(out)
    dim = check_dim(op, dim, a.ndim, a.shape)
    if a.ndim == 0:
        return np.zeros((), dtype=np.int64)
    check_reducible(op, a.shape, (dim,))
    if a.dtype.kind == "f" and np.isnan(a).any():  # NaN wins, as PyTorch: first NaN's index
        nan_first = np.isnan(a).argmax(axis=dim)
        out = np.where(np.isnan(a).any(axis=dim), nan_first, pick(a, axis=dim))
    else:
        out = pick(a, axis=dim)
    return np.expand_dims(out, dim) if keepdim else out


def _sort_indices(a: np.ndarray, dim: int, descending: bool) -> np.ndarray:
    """Stable argsort along dim; NaN last ascending and first descending (as PyTorch)."""
    if not descending:
        return np.argsort(a, axis=dim, kind="stable")
    if a.dtype.kind == "f":
        moved = np.moveaxis(a, dim, -1)
        order = np.lexsort((-moved, ~np.isnan(moved)), axis=-1)  # NaN first, then decreasing
        return np.moveaxis(order, -1, dim)
    key = a.astype(np.int64) if a.dtype.kind in "bu" else a
    return np.argsort(-key, axis=dim, kind="stable")


class ExtremeMethods:
    """max/min/argmax/sort/topk methods (installed onto Tensor by minigrad.ops)."""

    def max(self, dim=None, keepdim=False, *, axis=None, keepdims=None):
        """`max()`: the largest value (ties share the gradient evenly).
        `max(dim, keepdim=False)`: (values, indices) along dim; the gradient goes to the
        returned index (the first maximum). `max(other)`: the elementwise maximum."""
        if isinstance(dim, Tensor):
            return self.maximum(dim)
        dim = pick_dim("max", dim, axis)
        if dim is None:
            return Max.apply(self, axis=None, keepdims=False)
        return self._extreme_along("max", dim, pick_keepdim(keepdim, keepdims), smallest=False)

    def min(self, dim=None, keepdim=False, *, axis=None, keepdims=None):
        """`min()`, `min(dim, keepdim=False)` -> (values, indices), `min(other)`: as `max`."""
        if isinstance(dim, Tensor):
            return self.minimum(dim)
        dim = pick_dim("min", dim, axis)
        if dim is None:
            return self.amin()
        return self._extreme_along("min", dim, pick_keepdim(keepdim, keepdims), smallest=True)

    def _extreme_along(self, op, dim, keepdim, smallest):
        if not isinstance(dim, (int, np.integer)):
            raise TypeError(f"{op}: dim must be an int, got {dim!r} (use amax/amin for several dims)")
        indices = _arg_extreme(op, self.data, dim, True, smallest)
        values = Gather.apply(self, _index(indices), dim=dim) if self.ndim else self
        if not keepdim and self.ndim:
            values, indices = values.squeeze(dim), np.squeeze(indices, dim)
        return ValuesIndices(values, _index(indices))

    def amax(self, dim=None, keepdim=False, *, axis=None, keepdims=None):
        """The largest value over dim (None, an int or a tuple); tied maxima share the
        gradient evenly (1/k each)."""
        return Max.apply(self, axis=pick_dim("amax", dim, axis), keepdims=pick_keepdim(keepdim, keepdims), op="amax")

    def amin(self, dim=None, keepdim=False, *, axis=None, keepdims=None):
        """The smallest value over dim; tied minima share the gradient evenly."""
        dim, keepdim = pick_dim("amin", dim, axis), pick_keepdim(keepdim, keepdims)
        if self.dtype.kind == "f":
            return -Max.apply(-self, axis=dim, keepdims=keepdim, op="amin")  # min(a) = -max(-a)
        axes = normalize_axes("amin", dim, self.ndim, self.shape)
        check_reducible("amin", self.shape, None if dim is None else axes)
        return Tensor._wrap(np.min(self.data, axis=axes, keepdims=keepdim), False)

    def argmax(self, dim=None, keepdim=False, *, axis=None, keepdims=None):
        """int64 index of the largest value (of the flattened tensor when dim is None; the
        first one among ties; NaN counts as largest). Not differentiable."""
        dim = pick_dim("argmax", dim, axis)
        return _index(_arg_extreme("argmax", self.data, dim, pick_keepdim(keepdim, keepdims), False))

    def argmin(self, dim=None, keepdim=False, *, axis=None, keepdims=None):
        """int64 index of the smallest value (first among ties)."""
        dim = pick_dim("argmin", dim, axis)
        return _index(_arg_extreme("argmin", self.data, dim, pick_keepdim(keepdim, keepdims), True))

    def maximum(self, other):
        """Elementwise maximum, broadcast; the gradient goes to the larger input, and ties
        split it evenly (0.5 each)."""
        return Maximum.apply(*promote(self, other))

    def minimum(self, other):
        """Elementwise minimum, broadcast; ties split the gradient evenly. min(a, b) = -max(-a, -b)."""
        a, b = promote(self, other)
        if a.dtype.kind != "f":
            return Tensor._wrap(np.minimum(a.data, b.data), False)
        return -Maximum.apply(-a, -b)

    def sort(self, dim: int = -1, descending: bool = False, stable: bool = False):
        """(values, indices) sorted along dim (always stable here). The gradient of the
        values goes back to the positions they came from."""
        dim = check_dim("sort", dim, self.ndim, self.shape)
        if self.ndim == 0:
            return ValuesIndices(self, _index(np.zeros((), dtype=np.int64)))
        indices = _index(_sort_indices(self.data, dim, descending))
        return ValuesIndices(Gather.apply(self, indices, dim=dim), indices)

    def argsort(self, dim: int = -1, descending: bool = False, stable: bool = False):
        """int64 indices that sort self along dim (stable)."""
        return self.sort(dim, descending, stable).indices

    def msort(self):
        """`sort(dim=0).values`."""
        return self.sort(0).values

    def topk(self, k: int, dim: int = -1, largest: bool = True, sorted: bool = True):
        """(values, indices) of the k largest (smallest with largest=False) along dim, in
        sorted order. The gradient goes to the chosen positions."""
        dim = check_dim("topk", dim, self.ndim, self.shape)
        length = self.shape[dim] if self.ndim else 1
        if not 0 <= k <= length:
            raise ValueError(f"topk: k={k} is out of range for dim {dim} of size {length} (shape {self.shape})")
        if self.ndim == 0:
            return ValuesIndices(self, _index(np.zeros((), dtype=np.int64)))
        order = _sort_indices(self.data, dim, descending=largest)
        indices = _index(np.take(order, np.arange(k), axis=dim))
        return ValuesIndices(Gather.apply(self, indices, dim=dim), indices)
