"""Type promotion as PyTorch does it, and the `dim=`/`axis=` argument helpers every method uses.

PyTorch orders dtypes in categories bool < integer < floating and picks a result dtype for a
binary op like this (https://pytorch.org/docs/stable/tensor_attributes.html, "type promotion"):
  - a Python number is "weak": it only lifts the category. `int_tensor + 0.5` is float32 (the
    default float dtype), `float32_tensor * 2.0` stays float32, `int32_tensor + 1` stays int32,
    `bool_tensor + 1` is int64.
  - a 0-d tensor is weaker than a tensor with dimensions: `float32 (n,) + float64 ()` is float32,
    but a 0-d operand of a higher category still lifts it (`int (n,) + float64 ()` is float64).
  - otherwise the higher category's dtype wins (int64 + float32 = float32, bool + int8 = int8),
    and within one category the dtypes promote as NumPy's `promote_types` (float32 + float64 =
    float64, int32 + int64 = int64, uint8 + int8 = int16).
  - true division of two integer (or bool) operands gives float32.
The common case (both operands already of one dtype) costs one identity check.
"""
from __future__ import annotations

import numpy as np

from ..tensor import DEFAULT_DTYPE, Tensor
from .elementwise import Cast

_CATEGORY = {"b": 0, "u": 1, "i": 1, "f": 2}


def category(dtype) -> int:
    """0 for bool, 1 for integers, 2 for floats."""
    return _CATEGORY[dtype.kind]


def result_dtype(a: np.ndarray, b: np.ndarray) -> np.dtype:
    """The dtype of `a <op> b` under PyTorch's rules for tensors (0-d ones weaker)."""
    if a.dtype is b.dtype:
        return a.dtype
    if (a.ndim == 0) != (b.ndim == 0):  # one 0-d operand: it only counts when of a higher category
        dimensioned, zero_dim = (b, a) if a.ndim == 0 else (a, b)
        if category(zero_dim.dtype) <= category(dimensioned.dtype):
            return dimensioned.dtype
        return zero_dim.dtype
    return promote_types(a.dtype, b.dtype)


def promote_types(a, b) -> np.dtype:
    """Two dtypes' common dtype: the higher category's dtype when they differ (int64 with
    float32 is float32, unlike NumPy's float64), NumPy's promote_types within a category."""
    a, b = np.dtype(a), np.dtype(b)
    ca, cb = category(a), category(b)
    if ca != cb:
        return a if ca > cb else b
    return np.promote_types(a, b)


def scalar_operand(value, like: Tensor) -> Tensor:
    """A Python/NumPy number as a 0-d tensor of the dtype `like <op> value` should have."""
    if isinstance(value, (bool, np.bool_)):
        dtype = like.dtype
    elif isinstance(value, (int, np.integer)):
        dtype = like.dtype if like.dtype.kind != "b" else np.dtype(np.int64)
    elif isinstance(value, (float, np.floating)):
        dtype = like.dtype if like.dtype.kind == "f" else np.dtype(DEFAULT_DTYPE)
    else:
        raise TypeError(f"unsupported operand type {type(value).__name__} with a Tensor")
    return Tensor._wrap(np.asarray(value, dtype=dtype), False)


def cast(x: Tensor, dtype) -> Tensor:
    """`x` in `dtype` (itself when it already is); differentiable."""
    return x if x.data.dtype == dtype else Cast.apply(x, dtype=np.dtype(dtype))


def promote(a, b) -> tuple:
    """Both operands as Tensors of their common dtype (at least one must be a Tensor)."""
    if not isinstance(a, Tensor) and not isinstance(b, Tensor):
        a = Tensor(a)  # two plain values: the first sets the dtype rules
    if not isinstance(a, Tensor):
        a = scalar_operand(a, b) if _is_number(a) else Tensor(a)
    elif not isinstance(b, Tensor):
        b = scalar_operand(b, a) if _is_number(b) else Tensor(b)
    if a.data.dtype is b.data.dtype:
        return a, b
    dtype = result_dtype(a.data, b.data)
    return cast(a, dtype), cast(b, dtype)


def promote_float(a, b) -> tuple:
    """`promote`, then integer/bool results lifted to the default float (true division)."""
    a, b = promote(a, b)
    if a.data.dtype.kind != "f":
        return cast(a, DEFAULT_DTYPE), cast(b, DEFAULT_DTYPE)
    return a, b


def as_float(x: Tensor) -> Tensor:
    """`x` itself when floating, else cast to the default float (for exp, sin, ... of ints)."""
    return x if x.data.dtype.kind == "f" else Cast.apply(x, dtype=np.dtype(DEFAULT_DTYPE))


def _is_number(value) -> bool:
    return isinstance(value, (int, float, bool, np.number, np.bool_))


def pick_dim(op: str, dim, axis, default=None):
    """The reduction axis from `dim=` or its NumPy alias `axis=` (not both)."""
    if axis is not None:
        if dim is not None:
            raise TypeError(f"{op}: got both dim={dim!r} and axis={axis!r}; pass one")
        return axis
    return default if dim is None else dim


def pick_keepdim(keepdim: bool, keepdims) -> bool:
    """`keepdim=` or its NumPy alias `keepdims=`."""
    return bool(keepdim if keepdims is None else keepdims)


class DimError(IndexError, ValueError):
    """A dim out of range: an IndexError as in PyTorch, and a ValueError as minigrad's axis
    checks have always raised."""


def check_dim(op: str, dim, ndim: int, shape: tuple) -> int:
    """One axis (negative allowed) as a non-negative int; a 0-d tensor accepts 0 and -1."""
    if not isinstance(dim, (int, np.integer)) or isinstance(dim, bool):
        raise TypeError(f"{op}: dim must be an int, got {dim!r}")
    size = max(ndim, 1)
    if not -size <= dim < size:
        raise DimError(f"{op}: dim {dim} is out of range for a tensor of {ndim} dimensions "
                         f"(shape {tuple(shape)}; expected [{-size}, {size - 1}])")
    return int(dim) % size
