"""Ops that move values around without arithmetic: reshape, transpose, indexing, split,
concat, stack, masked_fill, where. Each backward routes the gradient back to where the
value came from; `backward_graph` does the same with these ops (a getitem's gradient is a
ScatterAdd, whose gradient is a getitem again).
"""
from __future__ import annotations

import numpy as np

from ..autograd import Function, unbroadcast
from ..tensor import Tensor
from .broadcast import sum_to
from .elementwise import broadcast_shape, constant


class Reshape(Function):
    # a reshape keeps every value: the gradient is reshaped back (a view of g)
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

    def backward_graph(self, g):
        return Reshape.apply(g, shape=self.in_shape)


class Transpose(Function):
    # out = a.transpose(axes) moves input axis axes[i] to position i; the gradient goes
    # back through the inverse permutation argsort(axes)
    def forward(self, a, axes):
        if axes is None:
            axes = tuple(reversed(range(a.ndim)))
        self.axes = check_permutation("transpose", axes, a.shape)
        return a.transpose(self.axes)

    def backward(self, g):
        return g.transpose(inverse_permutation(self.axes))

    def backward_graph(self, g):
        return Transpose.apply(g, axes=inverse_permutation(self.axes))


def inverse_permutation(axes: tuple) -> tuple:
    """argsort of a permutation, in plain Python (np.argsort costs more for a few axes):
    out[axes[i]] = i."""
    inverse = [0] * len(axes)
    for position, axis in enumerate(axes):
        inverse[axis] = position
    return tuple(inverse)


def check_permutation(op: str, axes, shape: tuple) -> tuple:
    """`axes` (negative allowed) as non-negative ints, or a ValueError if it is not a
    permutation of the axes of `shape` (NumPy's `transpose(*axes)` meaning, not PyTorch's
    two-axis swap: use `swapaxes(i, j)` for that)."""
    ndim = len(shape)
    normalized = []
    for ax in axes:
        if not isinstance(ax, (int, np.integer)) or isinstance(ax, bool):
            raise TypeError(f"{op}: axes must be ints, got {tuple(axes)}")
        normalized.append(int(ax) % ndim if -ndim <= ax < ndim else -1)  # -1: out of range
    if len(normalized) != ndim or sorted(normalized) != list(range(ndim)):
        raise ValueError(f"{op}: axes {tuple(axes)} are not a permutation of the {ndim} axes of {tuple(shape)}")
    return tuple(normalized)


def _index_part(part):
    """One part of an index with a Tensor or list turned into an array (`[]` is an empty
    integer array, as in NumPy)."""
    if isinstance(part, Tensor):
        return part.data
    if isinstance(part, list):
        return np.asarray(part) if part else np.zeros(0, dtype=np.intp)
    return part


def normalize_index(index):
    """`index` with every Tensor and list inside it unwrapped into a plain array."""
    if isinstance(index, tuple):
        return tuple(_index_part(part) for part in index)
    return _index_part(index)


def _index_parts(index) -> tuple:
    return index if isinstance(index, tuple) else (index,)


def _check_index(index, shape):
    """Reject float index arrays and float indices with a TypeError that says so."""
    for part in _index_parts(index):
        if isinstance(part, np.ndarray) and part.dtype.kind not in "biu":
            raise TypeError(
                f"getitem: index arrays must be integer or boolean, got dtype {part.dtype} "
                f"(tensor shape {shape})"
            )
        if isinstance(part, (float, np.floating)):
            raise TypeError(
                f"getitem: index must be an int, slice, None, Ellipsis or an integer/boolean "
                f"array, got float {part} (tensor shape {shape})"
            )


def _has_integer_array(index) -> bool:
    """True when the index holds an integer array: the only way one position is picked twice."""
    return any(isinstance(p, np.ndarray) and p.dtype.kind in "iu" for p in _index_parts(index))


class GetItem(Function):
    # out = a[index]: the gradient is scattered back to the selected positions, and added up
    # where an integer array picks the same position more than once
    def forward(self, a, index):
        index = normalize_index(index)
        _check_index(index, a.shape)
        self.index, self.in_shape = index, a.shape
        try:
            return a[index]
        except IndexError as error:
            raise IndexError(f"getitem: {error} (tensor shape {a.shape})") from None

    def backward(self, g):
        return _scatter_add(g, self.index, self.in_shape)

    def backward_graph(self, g):
        return ScatterAdd.apply(g, index=self.index, shape=self.in_shape)


def _scatter_add(g: np.ndarray, index, shape: tuple) -> np.ndarray:
    """zeros(shape) with g added at a[index] (repeated positions add up)."""
    grad = np.zeros(shape, dtype=g.dtype)
    if _has_integer_array(index):
        np.add.at(grad, index, g)  # unbuffered: repeated positions accumulate
    else:
        grad[index] = g  # slices, ints, None, Ellipsis, boolean masks: no repeats
    return grad


class ScatterAdd(Function):
    # out = zeros(shape) with g added at [index], the adjoint of getitem: each output element
    # is a sum of the g elements sent to it, so the gradient picks them back: gg[index]
    def forward(self, g, index, shape):
        self.index = index
        return _scatter_add(g, index, shape)

    def backward(self, gg):
        return gg[self.index]

    def backward_graph(self, gg):
        return GetItem.apply(gg, index=self.index)


class Concat(Function):
    # the gradient is cut back into the pieces (views of g)
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

    def backward_graph(self, g):
        edges = [0, *self.bounds, g.shape[self.axis]]
        before = (slice(None),) * self.axis
        return tuple(GetItem.apply(g, index=before + (slice(int(lo), int(hi)),)) if need else None
                     for lo, hi, need in zip(edges[:-1], edges[1:], self.needs_input_grad))


class Stack(Function):
    # the gradient is unstacked along the new axis (views of g)
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

    def backward_graph(self, g):
        before = (slice(None),) * self.axis
        return tuple(GetItem.apply(g, index=before + (i,)) if need else None
                     for i, need in enumerate(self.needs_input_grad))


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

    def backward_graph(self, g):
        return MaskedFill.apply(g, constant(self.mask), value=0.0), None


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

    def backward_graph(self, g):
        cond, zero = constant(self.cond), constant(np.zeros((), dtype=g.dtype))
        ga = sum_to(Where.apply(cond, g, zero), self.a_shape) if self.needs_input_grad[1] else None
        gb = sum_to(Where.apply(cond, zero, g), self.b_shape) if self.needs_input_grad[2] else None
        return None, ga, gb
