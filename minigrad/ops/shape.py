"""Ops that move values around without arithmetic: reshape, transpose, indexing, split,
concat, stack, masked_fill, where. Each backward routes the gradient back to where the
value came from.
"""
from __future__ import annotations

import numpy as np

from ..autograd import Function, unbroadcast
from .elementwise import broadcast_shape


class Reshape(Function):
    # the gradient is reshaped back
    def forward(self, a, shape):
        self.in_shape = a.shape
        try:
            return a.reshape(shape)
        except ValueError:
            raise ValueError(
                f"reshape: cannot reshape {a.shape} ({a.size} elements) into {tuple(shape)}"
            ) from None

    def backward(self, g):
        return g.reshape(self.in_shape)


class Transpose(Function):
    # the gradient is permuted by the inverse permutation
    def forward(self, a, axes):
        if axes is None:
            axes = tuple(reversed(range(a.ndim)))
        if sorted(int(ax) % max(a.ndim, 1) for ax in axes) != list(range(a.ndim)) or any(
            not -a.ndim <= ax < a.ndim for ax in axes
        ):
            raise ValueError(f"transpose: axes {tuple(axes)} are not a permutation of the {a.ndim} axes of {a.shape}")
        self.axes = tuple(int(ax) % a.ndim for ax in axes)
        return a.transpose(self.axes)

    def backward(self, g):
        return g.transpose(np.argsort(self.axes))


def _check_index(index, shape):
    """Reject float index arrays with a TypeError that says so."""
    parts = index if isinstance(index, tuple) else (index,)
    for part in parts:
        if isinstance(part, np.ndarray) and part.dtype.kind == "f":
            raise TypeError(f"getitem: index arrays must be integer or boolean, got dtype {part.dtype} (tensor shape {shape})")
        if isinstance(part, float):
            raise TypeError(f"getitem: index must be an int, slice or integer array, got float {part} (tensor shape {shape})")


def _is_basic(index) -> bool:
    """True when the index uses only ints, slices, None and Ellipsis (a view, no repeats)."""
    parts = index if isinstance(index, tuple) else (index,)
    return all(isinstance(p, (int, np.integer, slice, type(None), type(Ellipsis))) for p in parts)


class GetItem(Function):
    # the gradient is scattered back to the selected positions (added, for repeated indices)
    def forward(self, a, index):
        _check_index(index, a.shape)
        self.index, self.in_shape, self.dtype = index, a.shape, a.dtype
        try:
            return a[index]
        except IndexError as error:
            raise IndexError(f"getitem: {error} (tensor shape {a.shape})") from None

    def backward(self, g):
        grad = np.zeros(self.in_shape, dtype=g.dtype)
        if _is_basic(self.index):
            grad[self.index] = g
        else:
            np.add.at(grad, self.index, g)
        return grad


class Concat(Function):
    # the gradient is cut back into the pieces
    def forward(self, *arrays, axis=0):
        if not arrays:
            raise ValueError("concat: needs at least one tensor")
        ndim = arrays[0].ndim
        if not -ndim <= axis < ndim:
            raise ValueError(f"concat: axis {axis} is out of range for tensors of {ndim} dimensions")
        self.axis = axis % ndim
        try:
            out = np.concatenate(arrays, axis=self.axis)
        except ValueError:
            raise ValueError(
                f"concat: shapes {[a.shape for a in arrays]} do not match outside axis {axis}"
            ) from None
        self.bounds = np.cumsum([a.shape[self.axis] for a in arrays])[:-1]
        return out

    def backward(self, g):
        return tuple(np.split(g, self.bounds, axis=self.axis))


class Stack(Function):
    # the gradient is unstacked along the new axis
    def forward(self, *arrays, axis=0):
        if not arrays:
            raise ValueError("stack: needs at least one tensor")
        shapes = {a.shape for a in arrays}
        if len(shapes) > 1:
            raise ValueError(f"stack: all shapes must be equal, got {[a.shape for a in arrays]}")
        ndim = arrays[0].ndim + 1
        if not -ndim <= axis < ndim:
            raise ValueError(f"stack: axis {axis} is out of range for a result of {ndim} dimensions")
        self.axis = axis % ndim
        return np.stack(arrays, axis=self.axis)

    def backward(self, g):
        return tuple(np.moveaxis(g, self.axis, 0))


class MaskedFill(Function):
    # filled positions are constants: their gradient is zero; the rest pass through
    def forward(self, a, mask, value=0.0):
        if mask.dtype != np.bool_:
            raise TypeError(f"masked_fill: mask must be boolean, got dtype {mask.dtype}")
        if broadcast_shape("masked_fill", a.shape, mask.shape) != a.shape:
            raise ValueError(f"masked_fill: mask of shape {mask.shape} does not broadcast to {a.shape}")
        self.mask = mask
        return np.where(mask, np.asarray(value, dtype=a.dtype), a)

    def backward(self, g):
        return np.where(self.mask, 0, g).astype(g.dtype, copy=False), None


class Where(Function):
    # d where(c, a, b)/da = c, /db = not c (then summed back over broadcast axes)
    def forward(self, cond, a, b):
        if cond.dtype != np.bool_:
            raise TypeError(f"where: condition must be boolean, got dtype {cond.dtype}")
        broadcast_shape("where", broadcast_shape("where", cond.shape, a.shape), b.shape)
        self.cond, self.a_shape, self.b_shape = cond, a.shape, b.shape
        return np.where(cond, a, b)

    def backward(self, g):
        zero = np.zeros((), dtype=g.dtype)
        ga = unbroadcast(np.where(self.cond, g, zero), self.a_shape) if self.needs_input_grad[1] else None
        gb = unbroadcast(np.where(self.cond, zero, g), self.b_shape) if self.needs_input_grad[2] else None
        return None, ga, gb
