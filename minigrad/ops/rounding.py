"""Rounding and piecewise ops: sign floor ceil round trunc frac, clamp, fmod remainder
floor_divide (`%`, `//`), and the binary functions lerp copysign logaddexp atan2.

Gradients at kinks and edges as PyTorch defines them: sign/floor/ceil/round/trunc have
gradient 0 everywhere; clamp passes the gradient where min <= x <= max, boundaries included;
fmod/remainder pass g to a and -g trunc(a/b) (floor(a/b)) to b; div with a rounding_mode
has gradient 0 (PyTorch's rule); floor_divide (`//`) has no derivative in PyTorch: its output
requires grad, and a backward through it raises. Integer division by zero (`//`, `%`, fmod,
remainder, div with a rounding_mode) raises, as PyTorch; floats follow IEEE (inf, nan).
Each backward_graph is written in Tensor ops.
"""
from __future__ import annotations

import numpy as np

from ..autograd import Function
from ..tensor import Tensor
from .broadcast import sum_to
from .promote import as_float, promote
from .shape import Where


def _remainder(op: str, a: Tensor, b: Tensor) -> Tensor:
    _check_integer_divisor(op, a, b)
    return Remainder.apply(a, b)


def _zeros_like(g: Tensor) -> Tensor:
    return Tensor._wrap(np.zeros(g.shape, dtype=g.dtype), False)


class _Step(Function):
    # piecewise constant: the derivative is 0 wherever it exists (PyTorch uses 0 everywhere)
    fn = None

    def forward(self, a, **options):
        return type(self).fn(a, **options)

    def backward_graph(self, g):
        return _zeros_like(g)


class Sign(_Step):
    fn = np.sign


class Floor(_Step):
    fn = np.floor


class Ceil(_Step):
    fn = np.ceil


class Trunc(_Step):
    fn = np.trunc


class Round(_Step):
    @staticmethod
    def fn(a, decimals=0):
        return np.round(a, decimals)  # halves to even, as PyTorch


class Clamp(Function):
    # out = min(max(a, low), high): d/da = g where low <= a <= high (boundaries included, as
    # PyTorch), 0 where clamped
    def forward(self, a, low=None, high=None):
        out = a
        if low is not None:
            out = np.maximum(out, np.asarray(low, dtype=a.dtype))
        if high is not None:
            out = np.minimum(out, np.asarray(high, dtype=a.dtype))
        return out if out is not a else a.copy()

    def backward_graph(self, g):
        a, low, high = self.parents[0].data, self.options.get("low"), self.options.get("high")
        inside = np.ones(a.shape, dtype=bool)
        if low is not None:
            inside &= a >= low
        if high is not None:
            inside &= a <= high
        return g * Tensor._wrap(inside.astype(g.dtype), False)


class IntegerDivisionByZero(ZeroDivisionError, RuntimeError):
    """Integer `//`, `%`, fmod, remainder or rounded div by zero. PyTorch raises a RuntimeError
    reading "ZeroDivisionError"; this is both, so either `except` catches it."""


def _check_integer_divisor(op: str, a: Tensor, b: Tensor) -> None:
    if a.dtype.kind in "biu" and b.dtype.kind in "biu" and np.any(b.data == 0):
        raise IntegerDivisionByZero(f"{op}: ZeroDivisionError: integer division by zero (dividend "
                                    f"shape {a.shape}, divisor shape {b.shape}, dtype {a.dtype})")


class FloorDivide(Function):
    # PyTorch defines no derivative for floor_divide (its autograd raises "derivative for
    # aten::floor_divide is not implemented"); div(b, rounding_mode="floor") has gradient 0
    def forward(self, a, b):
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.asarray(np.floor_divide(a, b))

    def backward_graph(self, g):
        raise RuntimeError("floor_divide (//): derivative for floor_divide is not implemented (as "
                           "in PyTorch); use a.div(b, rounding_mode='floor') for a zero gradient, "
                           "or detach() the operands")


class RoundedDiv(Function):
    # trunc(a / b) or floor(a / b): piecewise constant, gradient 0 to both (PyTorch's rule)
    def forward(self, a, b, mode):
        with np.errstate(divide="ignore", invalid="ignore"):
            if mode == "floor":
                return np.asarray(np.floor_divide(a, b))
            if a.dtype.kind in "biu":  # exact on integers: no trip through floats
                quotient = np.abs(a) // np.abs(b)
                return np.where((a < 0) != (b < 0), -quotient, quotient).astype(a.dtype)
            return np.trunc(a / b)

    def backward_graph(self, g):
        a, b = self.parents
        return _sum_to(_zeros_like(g), a.shape), _sum_to(_zeros_like(g), b.shape)


class _Modulo(Function):
    # out = a - q(a/b) b with q = round_quotient (trunc or floor): d/da = 1, d/db = -q(a/b)
    # (q is piecewise constant, so it enters the graph as a constant)
    fn = round_quotient = None

    def forward(self, a, b):
        with np.errstate(divide="ignore", invalid="ignore"):
            return type(self).fn(a, b)

    def backward_graph(self, g):
        a, b = self.parents
        with np.errstate(divide="ignore", invalid="ignore"):
            quotient = Tensor._wrap(type(self).round_quotient(a.data / b.data), False)
        return _sum_to(g, a.shape), _sum_to(-g * quotient, b.shape)


class Fmod(_Modulo):
    """fmod: the sign of a (C's fmod), out = a - trunc(a/b) b."""
    fn, round_quotient = np.fmod, np.trunc


class Remainder(_Modulo):
    """remainder: the sign of b (Python's %), out = a - floor(a/b) b."""
    fn, round_quotient = np.remainder, np.floor


class Copysign(Function):
    # out = |a| with b's sign: d/da = sign(a) s_b (s_b = +-1 from b's sign bit; 0 at a = 0),
    # d/db = 0
    def forward(self, a, b):
        return np.copysign(a, b)

    def backward_graph(self, g):
        a, b = self.parents
        direction = np.sign(a.data) * np.copysign(np.ones((), a.dtype), b.data)
        return _sum_to(g * Tensor._wrap(direction.astype(g.dtype), False), a.shape), None


class Logaddexp(Function):
    # out = log(e^a + e^b): d/da = sigmoid(a - b), d/db = sigmoid(b - a)
    def forward(self, a, b):
        return np.logaddexp(a, b)

    def backward_graph(self, g):
        a, b = self.parents
        return _sum_to(g * (a - b).sigmoid(), a.shape), _sum_to(g * (b - a).sigmoid(), b.shape)


class Atan2(Function):
    # out = atan2(a, b), the angle of (b, a): d/da = b / (a^2 + b^2), d/db = -a / (a^2 + b^2)
    def forward(self, a, b):
        return np.arctan2(a, b)

    def backward_graph(self, g):
        a, b = self.parents
        scale = g / (a * a + b * b)
        return _sum_to(scale * b, a.shape), _sum_to(-scale * a, b.shape)


def _sum_to(g: Tensor, shape: tuple) -> Tensor:
    return sum_to(g, shape)


def _bound(value):
    return value.item() if isinstance(value, Tensor) and value.numel() == 1 and not value.requires_grad else value


class RoundingMethods:
    """Rounding, clamp and the modular/binary functions (installed onto Tensor by minigrad.ops)."""

    def sign(self):
        """-1, 0 or 1 by the sign of each element. Backward: 0."""
        return Sign.apply(self)

    def sgn(self):
        return self.sign()

    def floor(self):
        """Round down. Backward: 0."""
        return Floor.apply(self) if self.dtype.kind == "f" else self

    def ceil(self):
        """Round up. Backward: 0."""
        return Ceil.apply(self) if self.dtype.kind == "f" else self

    def trunc(self):
        """Round toward zero. Backward: 0."""
        return Trunc.apply(self) if self.dtype.kind == "f" else self

    fix = trunc

    def round(self, decimals: int = 0):
        """Round to `decimals` places, halves to even (as PyTorch). Backward: 0."""
        return Round.apply(self, decimals=decimals) if self.dtype.kind == "f" else self

    def frac(self):
        """x - trunc(x). Backward: g."""
        return self - self.trunc()

    def clamp(self, min=None, max=None):
        """min(max(x, min), max) (either bound may be None; tensors broadcast). Backward: g
        where min <= x <= max, boundaries included (as PyTorch); with tensor bounds a bound
        gets g where it was chosen."""
        if min is None and max is None:
            raise ValueError("clamp: at least one of min and max must be given")
        low, high = _bound(min), _bound(max)
        if not isinstance(low, Tensor) and not isinstance(high, Tensor):
            return Clamp.apply(self, low=low, high=high)
        out = self
        if low is not None:
            out, low = promote(out, low)
            out = Where.apply(Tensor._wrap(out.data < low.data, False), low, out)
        if high is not None:
            out, high = promote(out, high)
            out = Where.apply(Tensor._wrap(out.data > high.data, False), high, out)
        return out

    clip = clamp

    def clamp_min(self, min):
        return self.clamp(min=min)

    def clamp_max(self, max):
        return self.clamp(max=max)

    def fmod(self, other):
        """a - trunc(a/b) b, the sign of a (C's fmod). Backward: g to a, -g trunc(a/b) to b.
        Integers: a zero divisor raises IntegerDivisionByZero; floats give nan (IEEE)."""
        a, b = promote(self, other)
        _check_integer_divisor("fmod", a, b)
        return Fmod.apply(a, b)

    def remainder(self, other):
        """a - floor(a/b) b, the sign of b (Python's %, PyTorch's %). Backward: g to a,
        -g floor(a/b) to b. Integers: a zero divisor raises; floats give nan."""
        return _remainder("remainder", *promote(self, other))

    def __mod__(self, other):
        return _remainder("remainder (%)", *promote(self, other))

    def __rmod__(self, other):
        return _remainder("remainder (%)", *promote(other, self))

    def floor_divide(self, other):
        """floor(a / b) (PyTorch's `//`); integer dtypes stay integer, a zero integer divisor
        raises, floats give +-inf/nan. As in PyTorch the result requires grad but has no
        derivative: a backward through it raises (div(b, rounding_mode="floor") has gradient 0)."""
        a, b = promote(self, other)
        _check_integer_divisor("floor_divide (//)", a, b)
        return FloorDivide.apply(a, b)

    __floordiv__ = floor_divide

    def __rfloordiv__(self, other):
        return promote(other, self)[0].floor_divide(self)

    def _rounded_div(self, other, mode: str):
        """div(other, rounding_mode="trunc"|"floor"): gradient 0 to both (see Tensor.div)."""
        a, b = promote(self, other)
        _check_integer_divisor(f"div(rounding_mode={mode!r})", a, b)
        return RoundedDiv.apply(a, b, mode=mode)

    def lerp(self, end, weight):
        """start + weight (end - start). Backward: g (1 - weight) to start, g weight to end,
        g (end - start) to a tensor weight."""
        return self + weight * (end - self)

    def copysign(self, other):
        """|a| with the sign of b. Backward: g sign(a) (+-1 by b's sign) to a; 0 to b."""
        a, b = promote(as_float(self), other)
        return Copysign.apply(a, b)

    def logaddexp(self, other):
        """log(e^a + e^b), without overflow. Backward: g sigmoid(a - b) to a, g sigmoid(b - a) to b."""
        return Logaddexp.apply(*promote(as_float(self), other))

    def atan2(self, other):
        """The angle of the point (other, self). Backward: g b / (a^2 + b^2) to a,
        -g a / (a^2 + b^2) to b."""
        return Atan2.apply(*promote(as_float(self), other))

    arctan2 = atan2

    def sum_to_size(self, *size):
        """self summed over its broadcast axes down to `size` (the gradient of a broadcast)."""
        shape = size[0] if len(size) == 1 and isinstance(size[0], (tuple, list)) else size
        return sum_to(self, tuple(shape))
