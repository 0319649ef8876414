"""All primitive ops, and the methods they give `Tensor` (`+`, `@`, `.sum()`, `.gather()`, ...).

Each op family's file defines its Function classes and, beside them, a mixin class of the
Tensor methods that use them (documented functions, not lambdas); `install_methods` copies
every mixin's methods onto `Tensor` once, at import, and refuses a name defined twice.
"""
from __future__ import annotations

import functools

import numpy as np

from ..tensor import Tensor
from .compare import CompareMethods, LogicalMethods
from .core_methods import ArithmeticMethods, ConversionMethods, ReductionMethods, ShapeMethods
from .elementwise import (Abs, Add, Cast, Div, Exp, Log, Maximum, Mul, Neg, Pow, PowConstant,
                          Relu, Sigmoid, Sqrt, Sub, Tanh, broadcast_shape)
from .creation import CreationMethods
from .einsum import EinsumMethods, einsum, pad
from .extremes import ExtremeMethods, ValuesIndices
from .index import Gather, IndexAdd, IndexMethods, IndexSelect, Scatter, ScatterAdd
from .index_put import IndexPut, IndexPutMethods
from .broadcast import BroadcastTo, SumTo, sum_to
from .layout import Clone, Flip, LayoutMethods, Roll
from .matmul import MatMul
from .promote import promote, promote_types, result_dtype, scalar_operand
from .reduce import Max, Mean, Sum, Var, normalize_axes
from .rounding import RoundingMethods
from .scan import ScanMethods
from .scatter_reduce import ScatterReduce, ScatterReduceMethods
from .shape import Concat, GetItem, MaskedFill, Reshape, Stack, Transpose, Where
from .unary import UnaryMethods

_SKIP = {"__module__", "__qualname__", "__doc__", "__dict__", "__weakref__", "__firstlineno__",
         "__static_attributes__"}


def install_methods(cls, *mixins) -> None:
    """Copy the methods and properties of `mixins` onto `cls` (a ValueError on a name that
    two mixins define, so one family cannot silently replace another's method)."""
    owner = {}
    for mixin in mixins:
        for name, value in vars(mixin).items():
            if name in _SKIP:
                continue
            if name in owner:
                raise ValueError(f"install_methods: {name!r} is defined by both {owner[name]} and {mixin.__name__}")
            owner[name] = mixin.__name__
            setattr(cls, name, value)


install_methods(Tensor, ArithmeticMethods, ReductionMethods, ShapeMethods, ConversionMethods,
                CompareMethods, LogicalMethods, ExtremeMethods, IndexMethods, LayoutMethods,
                CreationMethods, UnaryMethods, RoundingMethods, ScanMethods, EinsumMethods,
                ScatterReduceMethods, IndexPutMethods)


def as_operand(x, like: Tensor | None = None) -> Tensor:
    """`x` as a Tensor; a Python number takes the dtype `like <op> x` has under PyTorch's
    promotion (so `float32_tensor * 2.0` stays float32)."""
    if isinstance(x, Tensor):
        return x
    if like is not None and isinstance(x, (int, float, bool, np.number, np.bool_)):
        return scalar_operand(x, like)
    return Tensor(x)


def _common_dtype(tensors) -> list:
    """The tensors in one dtype (PyTorch's promotion of dimensioned tensors)."""
    tensors = [t if isinstance(t, Tensor) else Tensor(t) for t in tensors]
    if len({t.dtype for t in tensors}) > 1:
        dtype = functools.reduce(promote_types, (t.dtype for t in tensors))
        tensors = [t.to(dtype) for t in tensors]
    return tensors


def where(condition, input=None, other=None) -> Tensor:
    """Elementwise `input` where `condition` is True, else `other` (broadcast, promoted as
    PyTorch). d/dinput = g where True, d/dother = g where False. `where(condition)` alone is
    `condition.nonzero(as_tuple=True)`."""
    cond = condition.data if isinstance(condition, Tensor) else np.asarray(condition)
    if input is None and other is None:
        return Tensor._wrap(cond, False).nonzero(as_tuple=True)
    a, b = promote(input, other) if isinstance(input, Tensor) or isinstance(other, Tensor) \
        else (Tensor(input), Tensor(other))
    return Where.apply(Tensor._wrap(cond, False), a, b)


def cat(tensors, dim: int = 0, *, axis=None) -> Tensor:
    """Join tensors along an existing dim (dtypes promoted). Backward: g cut into pieces."""
    tensors = _common_dtype(tensors)
    return Concat.apply(*tensors, axis=dim if axis is None else axis)


concat = concatenate = cat


def stack(tensors, dim: int = 0, *, axis=None) -> Tensor:
    """Join equal-shape tensors along a new dim (dtypes promoted). Backward: g unstacked."""
    tensors = _common_dtype(tensors)
    return Stack.apply(*tensors, axis=dim if axis is None else axis)


def maximum(a, b) -> Tensor:
    """Elementwise maximum with broadcasting; ties split the gradient evenly."""
    return Maximum.apply(*promote(a, b))


def minimum(a, b) -> Tensor:
    """Elementwise minimum with broadcasting; ties split the gradient evenly."""
    a, b = promote(a, b)
    return a.minimum(b)


__all__ = ["where", "cat", "concat", "concatenate", "stack", "maximum", "minimum", "as_operand",
           "broadcast_shape", "install_methods", "ValuesIndices", "sum_to", "einsum", "pad"]
