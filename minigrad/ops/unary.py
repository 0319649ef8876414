"""Unary math functions: trigonometric and hyperbolic functions and their inverses, log2
log10 log1p exp2 expm1 rsqrt reciprocal square, erf erfc erfinv.

Each op is a forward on ndarrays and a `backward_graph` written in Tensor ops on the input
(`self.parents[0]`), so it is differentiable to any order; the first-order backward runs the
same rule on ndarrays (the Function default). Integer inputs are promoted to float32 first.
Outside an op's domain the result is NaN (or +-inf at a pole), as in NumPy and PyTorch.
"""
from __future__ import annotations

import math

import numpy as np

from ..autograd import Function
from .promote import as_float
from .special import erf_array, erfc_array, erfinv_array

LN2, LN10 = math.log(2.0), math.log(10.0)
TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)


class _Unary(Function):
    """A NumPy ufunc `fn` forward; subclasses give `derivative(x)` in Tensor ops."""

    fn = None

    def forward(self, a):
        with np.errstate(divide="ignore", invalid="ignore"):
            return type(self).fn(a)

    def backward_graph(self, g):
        return g * self.derivative(self.parents[0])


class Sin(_Unary):
    fn = np.sin

    def derivative(self, x):  # d sin x = cos x
        return x.cos()


class Cos(_Unary):
    fn = np.cos

    def derivative(self, x):  # d cos x = -sin x
        return -x.sin()


class Tan(_Unary):
    fn = np.tan

    def derivative(self, x):  # d tan x = 1 + tan^2 x
        return 1 + x.tan() ** 2


class Asin(_Unary):
    fn = np.arcsin

    def derivative(self, x):  # d asin x = 1 / sqrt(1 - x^2)
        return (1 - x * x).rsqrt()


class Acos(_Unary):
    fn = np.arccos

    def derivative(self, x):  # d acos x = -1 / sqrt(1 - x^2)
        return -(1 - x * x).rsqrt()


class Atan(_Unary):
    fn = np.arctan

    def derivative(self, x):  # d atan x = 1 / (1 + x^2)
        return 1 / (1 + x * x)


class Sinh(_Unary):
    fn = np.sinh

    def derivative(self, x):  # d sinh x = cosh x
        return x.cosh()


class Cosh(_Unary):
    fn = np.cosh

    def derivative(self, x):  # d cosh x = sinh x
        return x.sinh()


class Asinh(_Unary):
    fn = np.arcsinh

    def derivative(self, x):  # d asinh x = 1 / sqrt(x^2 + 1)
        return (x * x + 1).rsqrt()


class Acosh(_Unary):
    fn = np.arccosh

    def derivative(self, x):  # d acosh x = 1 / sqrt(x^2 - 1)
        return (x * x - 1).rsqrt()


class Atanh(_Unary):
    fn = np.arctanh

    def derivative(self, x):  # d atanh x = 1 / (1 - x^2)
        return 1 / (1 - x * x)


class Log2(_Unary):
    fn = np.log2

    def derivative(self, x):  # d log2 x = 1 / (x ln 2)
        return 1 / (x * LN2)


class Log10(_Unary):
    fn = np.log10

    def derivative(self, x):  # d log10 x = 1 / (x ln 10)
        return 1 / (x * LN10)


class Log1p(_Unary):
    fn = np.log1p

    def derivative(self, x):  # d log(1 + x) = 1 / (1 + x)
        return 1 / (1 + x)


class Exp2(_Unary):
    fn = np.exp2

    def derivative(self, x):  # d 2^x = 2^x ln 2
        return x.exp2() * LN2


class Expm1(_Unary):
    fn = np.expm1

    def derivative(self, x):  # d (e^x - 1) = e^x
        return x.exp()


class Rsqrt(_Unary):
    @staticmethod
    def fn(a):
        return 1 / np.sqrt(a)

    def derivative(self, x):  # d x^(-1/2) = -x^(-3/2) / 2
        return -0.5 * x.rsqrt() ** 3


class Reciprocal(_Unary):
    fn = np.reciprocal

    def derivative(self, x):  # d (1/x) = -1/x^2
        return -1 / (x * x)


class Erf(_Unary):
    fn = staticmethod(erf_array)

    def derivative(self, x):  # d erf x = 2/sqrt(pi) e^(-x^2)
        return (-(x * x)).exp() * TWO_OVER_SQRT_PI


class Erfc(_Unary):
    @staticmethod
    def fn(a):
        return erfc_array(a).astype(a.dtype, copy=False)

    def derivative(self, x):  # d erfc x = -2/sqrt(pi) e^(-x^2)
        return (-(x * x)).exp() * -TWO_OVER_SQRT_PI


class Erfinv(_Unary):
    fn = staticmethod(erfinv_array)

    def derivative(self, x):  # erf(erfinv y) = y  =>  d erfinv y = sqrt(pi)/2 e^(erfinv(y)^2)
        return (x.erfinv() ** 2).exp() / TWO_OVER_SQRT_PI


class UnaryMethods:
    """Unary math methods (installed onto Tensor by minigrad.ops); the backward of each is g
    times the derivative named in its docstring."""

    def sin(self):
        """sin, elementwise. Backward: g cos x."""
        return Sin.apply(as_float(self))

    def cos(self):
        """cos. Backward: -g sin x."""
        return Cos.apply(as_float(self))

    def tan(self):
        """tan. Backward: g (1 + tan^2 x)."""
        return Tan.apply(as_float(self))

    def asin(self):
        """arcsin on [-1, 1]. Backward: g / sqrt(1 - x^2)."""
        return Asin.apply(as_float(self))

    def acos(self):
        """arccos on [-1, 1]. Backward: -g / sqrt(1 - x^2)."""
        return Acos.apply(as_float(self))

    def atan(self):
        """arctan. Backward: g / (1 + x^2)."""
        return Atan.apply(as_float(self))

    def sinh(self):
        """sinh. Backward: g cosh x."""
        return Sinh.apply(as_float(self))

    def cosh(self):
        """cosh. Backward: g sinh x."""
        return Cosh.apply(as_float(self))

    def asinh(self):
        """arcsinh. Backward: g / sqrt(x^2 + 1)."""
        return Asinh.apply(as_float(self))

    def acosh(self):
        """arccosh on [1, inf). Backward: g / sqrt(x^2 - 1)."""
        return Acosh.apply(as_float(self))

    def atanh(self):
        """arctanh on (-1, 1). Backward: g / (1 - x^2)."""
        return Atanh.apply(as_float(self))

    arcsin, arccos, arctan, arcsinh, arccosh, arctanh = asin, acos, atan, asinh, acosh, atanh

    def log2(self):
        """Base-2 log. Backward: g / (x ln 2)."""
        return Log2.apply(as_float(self))

    def log10(self):
        """Base-10 log. Backward: g / (x ln 10)."""
        return Log10.apply(as_float(self))

    def log1p(self):
        """log(1 + x), accurate near 0. Backward: g / (1 + x)."""
        return Log1p.apply(as_float(self))

    def exp2(self):
        """2^x. Backward: g 2^x ln 2."""
        return Exp2.apply(as_float(self))

    def expm1(self):
        """e^x - 1, accurate near 0. Backward: g e^x."""
        return Expm1.apply(as_float(self))

    def rsqrt(self):
        """1 / sqrt(x). Backward: -g x^(-3/2) / 2."""
        return Rsqrt.apply(as_float(self))

    def reciprocal(self):
        """1 / x. Backward: -g / x^2."""
        return Reciprocal.apply(as_float(self))

    def square(self):
        """x * x. Backward: 2 g x."""
        return self * self

    def erf(self):
        """The error function (to a few ulps of math.erf, see special.py). Backward:
        g 2/sqrt(pi) e^(-x^2)."""
        return Erf.apply(as_float(self))

    def erfc(self):
        """1 - erf(x), accurate for large x. Backward: -g 2/sqrt(pi) e^(-x^2)."""
        return Erfc.apply(as_float(self))

    def erfinv(self):
        """The inverse of erf on (-1, 1) (+-inf at +-1). Backward: g sqrt(pi)/2 e^(erfinv(x)^2)."""
        return Erfinv.apply(as_float(self))
