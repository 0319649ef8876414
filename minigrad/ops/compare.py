"""Comparisons, logical and bitwise ops, and value tests (isnan, isclose, ...): elementwise,
broadcast, never differentiable (their outputs are bool or integer).

`==` and `!=` are elementwise as in PyTorch (so `tensor in a_list` compares values: look
tensors up by identity); `hash(tensor)` stays identity-based. Bitwise ops (`& | ^ ~ << >>`)
need integer or bool tensors: on floats they raise a TypeError naming the op and dtypes.
"""
from __future__ import annotations

import numpy as np

from ..tensor import Tensor

_NUMERIC = (int, float, bool, np.number, np.bool_, np.ndarray, list, tuple)


def _raw(x):
    return x.data if isinstance(x, Tensor) else x


def _bool(array) -> Tensor:
    return Tensor._wrap(np.asarray(array), False)


def _integer_operands(op: str, *operands):
    arrays = [np.asarray(_raw(x)) for x in operands]
    if any(a.dtype.kind not in "biu" for a in arrays):
        dtypes = " and ".join(str(a.dtype) for a in arrays)
        shapes = " and ".join(str(a.shape) for a in arrays)
        raise TypeError(f"{op}: needs integer or bool tensors, got dtype {dtypes} (shapes {shapes})")
    return arrays


def _bitwise(op: str, ufunc, a, b) -> Tensor:
    _integer_operands(op, a, b)  # a Python int stays weak: int32 & 5 is int32 (NEP 50)
    return Tensor._wrap(np.asarray(ufunc(_raw(a), _raw(b))), False)


class CompareMethods:
    """Elementwise comparisons -> bool tensors (installed onto Tensor by minigrad.ops)."""

    def __eq__(self, other):
        """Elementwise self == other (bool tensor); not differentiable."""
        if not isinstance(other, (Tensor,) + _NUMERIC):
            return NotImplemented
        return _bool(np.equal(self.data, _raw(other)))

    def __ne__(self, other):
        if not isinstance(other, (Tensor,) + _NUMERIC):
            return NotImplemented
        return _bool(np.not_equal(self.data, _raw(other)))

    def __lt__(self, other):
        return _bool(np.less(self.data, _raw(other)))

    def __le__(self, other):
        return _bool(np.less_equal(self.data, _raw(other)))

    def __gt__(self, other):
        return _bool(np.greater(self.data, _raw(other)))

    def __ge__(self, other):
        return _bool(np.greater_equal(self.data, _raw(other)))

    eq, ne, lt, le, gt, ge = __eq__, __ne__, __lt__, __le__, __gt__, __ge__
    less, less_equal, greater, greater_equal, not_equal = __lt__, __le__, __gt__, __ge__, __ne__

    __hash__ = object.__hash__  # identity, as in PyTorch (defining __eq__ would drop it)

    def equal(self, other) -> bool:
        """True when both have the same shape and all elements are equal (a Python bool)."""
        other = _raw(other)
        return self.shape == np.shape(other) and bool(np.all(self.data == other))

    def isclose(self, other, rtol: float = 1e-05, atol: float = 1e-08, equal_nan: bool = False):
        """|self - other| <= atol + rtol |other| elementwise (bool tensor)."""
        return _bool(np.isclose(self.data, _raw(other), rtol=rtol, atol=atol, equal_nan=equal_nan))

    def allclose(self, other, rtol: float = 1e-05, atol: float = 1e-08, equal_nan: bool = False) -> bool:
        """All of `isclose` (a Python bool)."""
        return bool(np.allclose(self.data, _raw(other), rtol=rtol, atol=atol, equal_nan=equal_nan))

    def isnan(self):
        """Elementwise NaN test (bool tensor)."""
        return _bool(np.isnan(self.data))

    def isinf(self):
        """Elementwise +-inf test (bool tensor)."""
        return _bool(np.isinf(self.data))

    def isposinf(self):
        return _bool(np.isposinf(self.data))

    def isneginf(self):
        return _bool(np.isneginf(self.data))

    def isfinite(self):
        """Neither NaN nor infinite (bool tensor)."""
        return _bool(np.isfinite(self.data))

    def isreal(self):
        return _bool(np.ones(self.shape, dtype=bool))

    def any(self, dim=None, keepdim: bool = False):
        """True where any element along dim is nonzero (bool tensor)."""
        return _bool(np.any(self.data, axis=dim, keepdims=keepdim))

    def all(self, dim=None, keepdim: bool = False):
        """True where every element along dim is nonzero (bool tensor)."""
        return _bool(np.all(self.data, axis=dim, keepdims=keepdim))

    def count_nonzero(self, dim=None):
        """int64 number of nonzero elements along dim."""
        return Tensor._wrap(np.asarray(np.count_nonzero(self.data, axis=dim), dtype=np.int64), False)


class LogicalMethods:
    """Logical ops (any dtype, nonzero is True) and bitwise ops (integer/bool only)."""

    def logical_and(self, other):
        """self and other, elementwise (bool)."""
        return _bool(np.logical_and(self.data, _raw(other)))

    def logical_or(self, other):
        return _bool(np.logical_or(self.data, _raw(other)))

    def logical_xor(self, other):
        return _bool(np.logical_xor(self.data, _raw(other)))

    def logical_not(self):
        return _bool(np.logical_not(self.data))

    def bitwise_and(self, other):
        """self & other for integer/bool tensors (logical and on bool)."""
        return _bitwise("bitwise_and", np.bitwise_and, self, other)

    def bitwise_or(self, other):
        return _bitwise("bitwise_or", np.bitwise_or, self, other)

    def bitwise_xor(self, other):
        return _bitwise("bitwise_xor", np.bitwise_xor, self, other)

    def bitwise_not(self):
        """~self: bitwise not for integers, logical not for bool."""
        (x,) = _integer_operands("bitwise_not", self)
        return Tensor._wrap(np.invert(x), False)

    def bitwise_left_shift(self, other):
        return _bitwise("bitwise_left_shift", np.left_shift, self, other)

    def bitwise_right_shift(self, other):
        return _bitwise("bitwise_right_shift", np.right_shift, self, other)

    __and__, __or__, __xor__, __invert__ = bitwise_and, bitwise_or, bitwise_xor, bitwise_not
    __lshift__, __rshift__ = bitwise_left_shift, bitwise_right_shift

    def __rand__(self, other):
        return _bitwise("bitwise_and", np.bitwise_and, other, self)

    def __ror__(self, other):
        return _bitwise("bitwise_or", np.bitwise_or, other, self)

    def __rxor__(self, other):
        return _bitwise("bitwise_xor", np.bitwise_xor, other, self)
