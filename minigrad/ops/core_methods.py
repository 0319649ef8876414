"""The Tensor methods of the core ops (elementwise.py, reduce.py, shape.py, matmul.py):
arithmetic operators with PyTorch's type promotion, reductions with `dim=`/`keepdim=`
(NumPy's `axis=`/`keepdims=` accepted as aliases), transpose/permute, dtype conversions.

These mixin classes hold plain functions; `minigrad.ops` copies them onto `Tensor`.
"""
from __future__ import annotations

import numpy as np

from ..tensor import Tensor
from ..dtypes import tensor_type_name
from .elementwise import (Abs, Add, Cast, Div, Exp, Log, Mul, Neg, Pow, PowConstant, Relu,
                          Sigmoid, Sqrt, Sub, Tanh)
from .matmul import MatMul
from .promote import DimError, as_float, cast, pick_dim, pick_keepdim, promote, promote_float
from .reduce import Mean, Sum, Var, normalize_axes
from .layout import Clone
from .index_put import check_slice_steps
from .shape import GetItem, MaskedFill, Reshape, Transpose


class ArithmeticMethods:
    """`+ - * / ** @`, unary minus and the basic math functions. Results follow PyTorch's type
    promotion (see promote.py); every backward is the op's own (elementwise.py)."""

    def __add__(self, other):
        """self + other, broadcast. d/dself = d/dother = g (summed over broadcast axes)."""
        return Add.apply(*promote(self, other))

    def __radd__(self, other):
        return Add.apply(*promote(other, self))

    def add(self, other, *, alpha=1):
        """self + alpha * other (PyTorch's `add`)."""
        return self + (other if alpha == 1 else other * alpha)

    def __sub__(self, other):
        """self - other, broadcast. d/dself = g, d/dother = -g."""
        return Sub.apply(*promote(self, other))

    def __rsub__(self, other):
        return Sub.apply(*promote(other, self))

    def sub(self, other, *, alpha=1):
        """self - alpha * other."""
        return self - (other if alpha == 1 else other * alpha)

    def __mul__(self, other):
        """self * other, broadcast. d/dself = g * other, d/dother = g * self."""
        return Mul.apply(*promote(self, other))

    def __rmul__(self, other):
        return Mul.apply(*promote(other, self))

    mul = multiply = __mul__

    def __truediv__(self, other):
        """self / other, true division: integer operands give float32. d/dself = g / other,
        d/dother = -g * out / other."""
        return Div.apply(*promote_float(self, other))

    def __rtruediv__(self, other):
        return Div.apply(*promote_float(other, self))

    def div(self, other, *, rounding_mode=None):
        """self / other; rounding_mode "trunc" or "floor" rounds the quotient, keeps integer
        dtypes, and has gradient 0 (PyTorch's rule; a zero integer divisor raises)."""
        if rounding_mode is None:
            return self / other
        if rounding_mode in ("floor", "trunc"):
            return self._rounded_div(other, rounding_mode)
        raise ValueError(f"div: rounding_mode must be None, 'trunc' or 'floor', got {rounding_mode!r}")

    divide = true_divide = div

    def __pow__(self, exponent):
        """self ** exponent. A Python number takes the fast constant path, where
        d/dself = p self^(p-1), and 0 for p == 0 (also at self == 0, as PyTorch)."""
        if isinstance(exponent, (int, float, np.number)) and not isinstance(exponent, (bool, np.bool_)):
            exponent = exponent.item() if isinstance(exponent, np.number) else exponent
            base = self if isinstance(exponent, int) or self.dtype.kind == "f" else as_float(self)
            return PowConstant.apply(base, exponent=exponent)
        return Pow.apply(*promote(self, exponent))

    def __rpow__(self, base):
        return Pow.apply(*promote(base, self))

    pow = __pow__

    def __matmul__(self, other):
        """Matrix product (1-d, 2-d and broadcast batches as np.matmul). d/dself = g @ other^T,
        d/dother = self^T @ g."""
        return MatMul.apply(*promote(self, other))

    def __rmatmul__(self, other):
        return MatMul.apply(*promote(other, self))

    matmul = __matmul__

    def __neg__(self):
        """-self. d/dself = -g."""
        return Neg.apply(self)

    neg = negative = __neg__

    def __pos__(self):
        return self

    def exp(self):
        """e^self (integers promote to float32). d/dself = g * out."""
        return Exp.apply(as_float(self))

    def log(self):
        """Natural log. d/dself = g / self."""
        return Log.apply(as_float(self))

    def sqrt(self):
        """Square root. d/dself = g / (2 out)."""
        return Sqrt.apply(as_float(self))

    def tanh(self):
        """Hyperbolic tangent. d/dself = g (1 - out^2)."""
        return Tanh.apply(as_float(self))

    def sigmoid(self):
        """1 / (1 + e^-self), finite for any input. d/dself = g out (1 - out)."""
        return Sigmoid.apply(as_float(self))

    def relu(self):
        """max(self, 0). d/dself = g where self > 0, else 0 (0 at 0)."""
        return Relu.apply(self)

    def abs(self):
        """|self|. d/dself = g sign(self) (0 at 0, as PyTorch)."""
        return Abs.apply(self)

    __abs__ = absolute = abs


class ReductionMethods:
    """sum, mean, var, std over `dim` (None = all; an int or a tuple, negative allowed)."""

    def sum(self, dim=None, keepdim=False, *, dtype=None, axis=None, keepdims=None):
        """Sum over dim. bool and integer tensors sum to int64 (as PyTorch); `dtype=` casts the
        input first. d/dself = g broadcast back over the reduced axes."""
        source = self if dtype is None else cast(self, np.dtype(dtype))
        if source.dtype.kind in "bi" and source.dtype != np.int64:
            source = cast(source, np.int64)
        return Sum.apply(source, axis=pick_dim("sum", dim, axis), keepdims=pick_keepdim(keepdim, keepdims))

    def mean(self, dim=None, keepdim=False, *, dtype=None, axis=None, keepdims=None):
        """Mean over dim; a floating dtype is required (as PyTorch), or pass `dtype=`.
        d/dself = g / n broadcast back."""
        source = self if dtype is None else cast(self, np.dtype(dtype))
        if source.dtype.kind != "f":
            raise TypeError(f"mean: input must be floating point, got dtype {source.dtype} "
                            f"(shape {source.shape}); pass dtype=minigrad.float32 or call .float()")
        return Mean.apply(source, axis=pick_dim("mean", dim, axis), keepdims=pick_keepdim(keepdim, keepdims))

    def var(self, dim=None, unbiased=None, keepdim=False, *, correction=None, axis=None, keepdims=None):
        """Variance sum((x - mean)^2) / (n - correction) over dim; correction defaults to 1
        (Bessel's, as PyTorch); `unbiased=False` or `correction=0` gives the biased one.
        d/dself = 2 g (x - mean) / (n - correction)."""
        correction = _correction("var", unbiased, correction)
        return Var.apply(as_float(self), axis=pick_dim("var", dim, axis),
                         keepdims=pick_keepdim(keepdim, keepdims), correction=correction)

    def std(self, dim=None, unbiased=None, keepdim=False, *, correction=None, axis=None, keepdims=None):
        """sqrt(var(...)), same arguments. d/dself = g (x - mean) / ((n - correction) std)."""
        return self.var(dim, unbiased, keepdim, correction=correction, axis=axis, keepdims=keepdims).sqrt()

    def var_mean(self, dim=None, unbiased=None, keepdim=False, *, correction=None):
        """(var, mean) over dim."""
        return self.var(dim, unbiased, keepdim, correction=correction), self.mean(dim, keepdim)

    def std_mean(self, dim=None, unbiased=None, keepdim=False, *, correction=None):
        """(std, mean) over dim."""
        return self.std(dim, unbiased, keepdim, correction=correction), self.mean(dim, keepdim)


def _correction(op: str, unbiased, correction):
    if unbiased is not None and correction is not None:
        raise TypeError(f"{op}: pass unbiased= or correction=, not both")
    if unbiased is not None:
        return 1 if unbiased else 0
    return 1 if correction is None else correction


class ShapeMethods:
    """reshape/view, transpose/permute, indexing, split, masked_fill."""

    def reshape(self, *shape):
        """The same values in `shape` (one entry may be -1). d/dself = g reshaped back."""
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        return Reshape.apply(self, shape=shape)

    view = reshape

    def view_as(self, other):
        """`reshape(other.shape)`."""
        return self.reshape(other.shape)

    reshape_as = view_as

    def transpose(self, *dims):
        """PyTorch's `transpose(dim0, dim1)`: swap two axes (negative allowed).

        Also accepted: no argument (reverse the axes, NumPy's `transpose()`) and a full
        permutation of three or more axes (NumPy's `transpose(axes)`; prefer `permute`).
        d/dself = g permuted back."""
        if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
            dims = tuple(dims[0])
        if len(dims) == 2:
            return self.swapaxes(*dims)
        if len(dims) == 1 or (dims and len(dims) != self.ndim):
            raise ValueError(f"transpose: pass two dims to swap (got {dims}) or a permutation of "
                             f"all {self.ndim} dims of a tensor of shape {self.shape}")
        return Transpose.apply(self, axes=dims or None)

    def permute(self, *dims):
        """Reorder the axes: out axis i is self's axis dims[i]. d/dself = g permuted back."""
        if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
            dims = tuple(dims[0])
        return Transpose.apply(self, axes=dims)

    def swapaxes(self, dim0, dim1):
        """Exchange two axes (negative allowed). d/dself = g with the axes swapped back."""
        ndim = self.data.ndim
        for dim in (dim0, dim1):
            if not isinstance(dim, (int, np.integer)) or not -ndim <= dim < ndim:
                raise DimError(f"swapaxes: axis {dim!r} is out of range for a tensor of shape {self.shape}")
        axes = list(range(ndim))
        axes[dim0], axes[dim1] = axes[dim1], axes[dim0]
        return Transpose.apply(self, axes=tuple(axes))

    swapdims = swapaxes

    @property
    def T(self):
        """All axes reversed (the matrix transpose for 2-d)."""
        return Transpose.apply(self, axes=None)

    @property
    def mT(self):
        """The last two axes swapped (a batch of matrices transposed); needs ndim >= 2."""
        if self.ndim < 2:
            raise ValueError(f"mT: needs at least 2 dimensions, got shape {self.shape}")
        return self.swapaxes(-2, -1)

    def __getitem__(self, index):
        """PyTorch indexing: ints, slices (steps > 0, as PyTorch: flip(dim) reverses), None,
        Ellipsis, integer and boolean arrays or tensors, with PyTorch's (and NumPy's) results.
        Backward: g added back at the selected positions (repeated picks add up)."""
        check_slice_steps("getitem", index, self.shape)
        return GetItem.apply(self, index=index)

    def split(self, split_size_or_sections, dim: int = 0, *, axis=None):
        """Cut along dim: an int is each piece's size (the last may be smaller), a list gives
        every size (they must add up to the axis length). Pieces are differentiable slices."""
        dim = pick_dim("split", None if axis is not None else dim, axis)
        if self.ndim == 0:
            raise ValueError("split: cannot split a 0-d tensor")
        if not isinstance(dim, (int, np.integer)):
            raise TypeError(f"split: dim must be an int, got {dim!r}")
        dim = normalize_axes("split", dim, self.ndim, self.shape)[0]
        length = self.shape[dim]
        if isinstance(split_size_or_sections, (int, np.integer)):
            if split_size_or_sections <= 0:
                raise ValueError(f"split: chunk size must be positive, got {split_size_or_sections}")
            sizes = [min(split_size_or_sections, length - start)
                     for start in range(0, length, split_size_or_sections)] or [0]  # empty: one piece
        else:
            sizes = list(split_size_or_sections)
            if sum(sizes) != length or any(s < 0 for s in sizes):
                raise ValueError(f"split: sizes {sizes} do not add up to axis {dim} of length {length} "
                                 f"(shape {self.shape})")
        prefix = (slice(None),) * dim
        pieces, start = [], 0
        for size in sizes:
            pieces.append(GetItem.apply(self, index=prefix + (slice(start, start + size),)))
            start += size
        return tuple(pieces)

    def masked_fill(self, mask, value):
        """self with `value` where the boolean mask (broadcast to self) is True.
        d/dself = g where the mask is False, 0 where filled."""
        mask = mask.data if isinstance(mask, Tensor) else np.asarray(mask)
        return MaskedFill.apply(self, Tensor(mask), value=value)


class ConversionMethods:
    """dtype conversions (differentiable between float dtypes), clone, contiguous."""

    def astype(self, dtype):
        """self in `dtype` (NumPy's spelling of `to(dtype)`)."""
        return Cast.apply(self, dtype=np.dtype(dtype))

    def to(self, *args, dtype=None, device=None, copy=False, **_ignored):
        """`to(dtype)`, `to(other_tensor)` (its dtype) or `to("cpu")`: the only device is the
        CPU. Returns self when nothing changes (unless copy=True). d/dself = g cast back."""
        for arg in args:
            if isinstance(arg, Tensor):
                dtype = arg.dtype
            elif isinstance(arg, str) and not _is_dtype_name(arg):
                device = arg
            else:
                dtype = arg
        if device is not None and str(device).split(":")[0] != "cpu":
            raise ValueError(f"to: minigrad runs on the CPU only, got device {device!r}")
        if dtype is None or np.dtype(dtype) == self.dtype:
            return self.clone() if copy else self
        return Cast.apply(self, dtype=np.dtype(dtype))

    def type(self, dtype=None):
        """With no argument, the type string ('minigrad.FloatTensor', ...); else `to(dtype)`."""
        return tensor_type_name(self.dtype) if dtype is None else self.to(dtype)

    def float(self):
        """self as float32."""
        return self.to(np.float32)

    def double(self):
        """self as float64."""
        return self.to(np.float64)

    def half(self):
        """self as float16."""
        return self.to(np.float16)

    def long(self):
        """self as int64 (floats truncate toward zero; no gradient)."""
        return self.to(np.int64)

    def int(self):
        """self as int32."""
        return self.to(np.int32)

    def short(self):
        """self as int16."""
        return self.to(np.int16)

    def bool(self):
        """self != 0, as bool."""
        return self.to(np.bool_)

    def is_floating_point(self) -> bool:
        return self.dtype.kind == "f"

    def clone(self):
        """A copy of the values, still in the graph. d/dself = g."""
        return Clone.apply(self)

    def contiguous(self):
        """self when C-contiguous, else a contiguous copy (still in the graph)."""
        return self if self.data.flags.c_contiguous else Clone.apply(self)


def _is_dtype_name(text: str) -> bool:
    try:
        np.dtype(text)
    except TypeError:
        return False
    return True

