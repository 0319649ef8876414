"""All primitive ops, and the operator methods they give `Tensor` (`+`, `@`, `.sum()`, ...)."""
from __future__ import annotations

import numpy as np

from ..tensor import Tensor
from .elementwise import (Abs, Add, Cast, Div, Exp, Log, Maximum, Mul, Neg, Pow, PowConstant,
                          Relu, Sigmoid, Sqrt, Sub, Tanh, broadcast_shape)
from .matmul import MatMul
from .reduce import Max, Mean, Sum, Var, normalize_axes
from .shape import Concat, GetItem, MaskedFill, Reshape, Stack, Transpose, Where


def as_operand(x, like: Tensor | None = None) -> Tensor:
    """`x` as a Tensor; a Python number takes the dtype of `like` when that is a float,
    so `float32_tensor * 2.0` stays float32 (no accidental upcast)."""
    if isinstance(x, Tensor):
        return x
    if isinstance(x, (int, float, bool, np.number)) and like is not None:
        if like.dtype.kind == "f":
            return Tensor._wrap(np.asarray(x, dtype=like.dtype), False)
        return Tensor._wrap(np.asarray(x), False)  # int tensor: NumPy's promotion rules
    return Tensor(x)


def _binary(fn, swap=False):
    def method(self, other):
        other = as_operand(other, self)
        return fn.apply(other, self) if swap else fn.apply(self, other)
    return method


def where(condition, a, b) -> Tensor:
    """Elementwise `a` where `condition` is True, else `b` (broadcasting like np.where)."""
    cond = condition.data if isinstance(condition, Tensor) else np.asarray(condition)
    like = a if isinstance(a, Tensor) else b if isinstance(b, Tensor) else None
    return Where.apply(Tensor(cond), as_operand(a, like), as_operand(b, like))


def concat(tensors, axis: int = 0) -> Tensor:
    """Join tensors along an existing axis (np.concatenate)."""
    return Concat.apply(*tensors, axis=axis)


def stack(tensors, axis: int = 0) -> Tensor:
    """Join equal-shape tensors along a new axis (np.stack)."""
    return Stack.apply(*tensors, axis=axis)


def maximum(a, b) -> Tensor:
    """Elementwise maximum with broadcasting; ties split the gradient evenly."""
    like = a if isinstance(a, Tensor) else b if isinstance(b, Tensor) else None
    return Maximum.apply(as_operand(a, like), as_operand(b, like))


def _reshape(self, *shape):
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    return Reshape.apply(self, shape=shape)


def _transpose(self, *axes):
    if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
        axes = tuple(axes[0])
    return Transpose.apply(self, axes=axes or None)


def _swapaxes(self, axis1, axis2):
    """Exchange two axes (PyTorch's `transpose(i, j)`), negative axes allowed."""
    for axis in (axis1, axis2):
        if not isinstance(axis, (int, np.integer)) or not -self.ndim <= axis < self.ndim:
            raise ValueError(f"swapaxes: axis {axis!r} is out of range for a tensor of shape {self.shape}")
    axes = list(range(self.ndim))
    axes[axis1], axes[axis2] = axes[axis2], axes[axis1]
    return Transpose.apply(self, axes=tuple(axes))


def _split(self, split_size_or_sections, axis: int = 0):
    """Split along `axis` like torch.split: an int is the size of each chunk (the last may
    be smaller); a list gives each chunk's size and must add up to the axis length."""
    if self.ndim == 0:
        raise ValueError("split: cannot split a 0-d tensor")
    if not isinstance(axis, (int, np.integer)):
        raise TypeError(f"split: axis must be an int, got {axis!r}")
    axis = normalize_axes("split", axis, self.ndim, self.shape)[0]
    length = self.shape[axis]
    if isinstance(split_size_or_sections, (int, np.integer)):
        if split_size_or_sections <= 0:
            raise ValueError(f"split: chunk size must be positive, got {split_size_or_sections}")
        sizes = [min(split_size_or_sections, length - start)
                 for start in range(0, length, split_size_or_sections)]
    else:
        sizes = list(split_size_or_sections)
        if sum(sizes) != length or any(s < 0 for s in sizes):
            raise ValueError(f"split: sizes {sizes} do not add up to axis {axis} of length {length} (shape {self.shape})")
    prefix = (slice(None),) * axis
    pieces, start = [], 0
    for size in sizes:
        pieces.append(GetItem.apply(self, index=prefix + (slice(start, start + size),)))
        start += size
    return tuple(pieces)


def _pow(self, exponent):
    """`self ** exponent`; a constant Python/NumPy number takes the fast PowConstant path."""
    if isinstance(exponent, (int, float, np.number)) and not isinstance(exponent, bool):
        exponent = exponent.item() if isinstance(exponent, np.number) else exponent
        return PowConstant.apply(self, exponent=exponent)
    return Pow.apply(self, as_operand(exponent, self))


def _masked_fill(self, mask, value):
    mask = mask.data if isinstance(mask, Tensor) else np.asarray(mask)
    return MaskedFill.apply(self, Tensor(mask), value=value)


Tensor.__add__ = _binary(Add)
Tensor.__radd__ = _binary(Add, swap=True)
Tensor.__sub__ = _binary(Sub)
Tensor.__rsub__ = _binary(Sub, swap=True)
Tensor.__mul__ = _binary(Mul)
Tensor.__rmul__ = _binary(Mul, swap=True)
Tensor.__truediv__ = _binary(Div)
Tensor.__rtruediv__ = _binary(Div, swap=True)
Tensor.__pow__ = _pow
Tensor.__rpow__ = _binary(Pow, swap=True)
Tensor.__matmul__ = _binary(MatMul)
Tensor.__rmatmul__ = _binary(MatMul, swap=True)
Tensor.__neg__ = lambda self: Neg.apply(self)
Tensor.__getitem__ = lambda self, index: GetItem.apply(self, index=index)
Tensor.exp = lambda self: Exp.apply(self)
Tensor.log = lambda self: Log.apply(self)
Tensor.sqrt = lambda self: Sqrt.apply(self)
Tensor.tanh = lambda self: Tanh.apply(self)
Tensor.sigmoid = lambda self: Sigmoid.apply(self)
Tensor.relu = lambda self: Relu.apply(self)
Tensor.abs = lambda self: Abs.apply(self)
Tensor.sum = lambda self, axis=None, keepdims=False: Sum.apply(self, axis=axis, keepdims=keepdims)
Tensor.mean = lambda self, axis=None, keepdims=False: Mean.apply(self, axis=axis, keepdims=keepdims)
Tensor.max = lambda self, axis=None, keepdims=False: Max.apply(self, axis=axis, keepdims=keepdims)
Tensor.var = lambda self, axis=None, keepdims=False: Var.apply(self, axis=axis, keepdims=keepdims)
Tensor.reshape = _reshape
Tensor.view = _reshape
Tensor.transpose = _transpose
Tensor.swapaxes = _swapaxes
Tensor.T = property(lambda self: Transpose.apply(self, axes=None))
Tensor.split = _split
Tensor.masked_fill = _masked_fill
Tensor.matmul = _binary(MatMul)

__all__ = ["where", "concat", "stack", "maximum", "as_operand", "broadcast_shape"]
