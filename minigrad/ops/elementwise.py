"""Elementwise ops: arithmetic with NumPy broadcasting, and unary math functions.

Each backward is the local derivative times the incoming gradient `g`, summed back to the
input's shape by `unbroadcast` where the forward broadcast. Every backward computes in the
dtype of `g` (float32 stays float32: only Python scalars and float32 arrays are mixed in).
At a kink the derivative is defined by a rule written next to the op (relu and abs: 0 at 0;
maximum: ties split the gradient).

Each op also has `backward_graph(g)`, the same rule in Tensor ops on `self.parents` (used when
a backward builds a graph, create_graph=True): quantities that depend on an input are
recomputed from it (tanh(a), exp(a)) so the gradient can be differentiated again; masks and
signs are constants.
"""
from __future__ import annotations

import numpy as np

from ..autograd import Function, unbroadcast
from ..tensor import Tensor
from .broadcast import sum_to


def constant(array: np.ndarray) -> Tensor:
    """An array as a Tensor outside the graph (a mask or a sign inside a backward_graph)."""
    return Tensor._wrap(array, False)


def broadcast_shape(op: str, a_shape: tuple, b_shape: tuple) -> tuple:
    """The broadcast result shape, or a ValueError naming the op and both shapes."""
    try:
        return np.broadcast_shapes(a_shape, b_shape)
    except ValueError:
        raise ValueError(f"{op}: cannot broadcast {tuple(a_shape)} with {tuple(b_shape)}") from None


class _Binary(Function):
    """Two inputs that broadcast together; subclasses define `compute(a, b)`."""

    def forward(self, a, b):
        self.a_shape, self.b_shape = a.shape, b.shape
        try:
            return self.compute(a, b)
        except ValueError:
            broadcast_shape(self.name, a.shape, b.shape)  # raises the clear error if shapes clash
            raise


class Add(_Binary):
    # d(a+b)/da = 1, d(a+b)/db = 1: g itself (summed over broadcast axes)
    def compute(self, a, b):
        return a + b

    def backward(self, g):
        ga = unbroadcast(g, self.a_shape) if self.needs_input_grad[0] else None
        gb = unbroadcast(g, self.b_shape) if self.needs_input_grad[1] else None
        return ga, gb

    def backward_graph(self, g):
        ga = sum_to(g, self.a_shape) if self.needs_input_grad[0] else None
        gb = sum_to(g, self.b_shape) if self.needs_input_grad[1] else None
        return ga, gb


class Sub(_Binary):
    # d(a-b)/da = 1, d(a-b)/db = -1
    def compute(self, a, b):
        return a - b

    def backward(self, g):
        ga = unbroadcast(g, self.a_shape) if self.needs_input_grad[0] else None
        gb = unbroadcast(-g, self.b_shape) if self.needs_input_grad[1] else None
        return ga, gb

    def backward_graph(self, g):
        ga = sum_to(g, self.a_shape) if self.needs_input_grad[0] else None
        gb = sum_to(-g, self.b_shape) if self.needs_input_grad[1] else None
        return ga, gb


class Mul(_Binary):
    # d(ab)/da = b, d(ab)/db = a
    def compute(self, a, b):
        if self.requires_grad:
            self.a, self.b = a, b
        return a * b

    def backward(self, g):
        ga = unbroadcast(g * self.b, self.a_shape) if self.needs_input_grad[0] else None
        gb = unbroadcast(g * self.a, self.b_shape) if self.needs_input_grad[1] else None
        return ga, gb

    def backward_graph(self, g):
        a, b = self.parents
        ga = sum_to(g * b, self.a_shape) if self.needs_input_grad[0] else None
        gb = sum_to(g * a, self.b_shape) if self.needs_input_grad[1] else None
        return ga, gb


class Div(_Binary):
    # d(a/b)/da = 1/b, d(a/b)/db = -a/b^2 = -(a/b)/b = -out/b
    def compute(self, a, b):
        out = a / b
        if self.requires_grad:
            self.b, self.out = b, out
        return out

    def backward(self, g):
        g_over_b = g / self.b
        ga = unbroadcast(g_over_b, self.a_shape) if self.needs_input_grad[0] else None
        gb = unbroadcast(-g_over_b * self.out, self.b_shape) if self.needs_input_grad[1] else None
        return ga, gb

    def backward_graph(self, g):
        a, b = self.parents
        g_over_b = g / b
        ga = sum_to(g_over_b, self.a_shape) if self.needs_input_grad[0] else None
        gb = sum_to(-g_over_b * a / b, self.b_shape) if self.needs_input_grad[1] else None
        return ga, gb


class Pow(_Binary):
    # d(a^b)/da = b a^(b-1), 0 where b == 0 (also at a == 0, as PyTorch); d(a^b)/db =
    # a^b log(a)  (taken as 0 where a <= 0, where the real power a^b only exists for integer
    # b and is not differentiable in b)
    def compute(self, a, b):
        out = a**b
        if self.requires_grad:
            self.a, self.b, self.out = a, b, out
        return out

    def backward(self, g):
        a, b = self.a, self.b
        ga = gb = None
        if self.needs_input_grad[0]:
            with np.errstate(divide="ignore", invalid="ignore"):
                local = np.where(b == 0, 0, b * a ** (b - 1))
            ga = unbroadcast(g * local.astype(g.dtype, copy=False), self.a_shape)
        if self.needs_input_grad[1]:
            positive = a > 0
            log_a = np.log(a, where=positive, out=np.zeros(a.shape, dtype=self.out.dtype))
            gb = unbroadcast(g * self.out * log_a, self.b_shape)
        return ga, gb

    def backward_graph(self, g):
        a, b = self.parents
        ga = gb = None
        if self.needs_input_grad[0]:
            # a^(b-1) with a taken as 1 where a == b == 0, so b a^(b-1) is 0 there, not 0 * inf
            both_zero = constant(((a.data == 0) & (b.data == 0)).astype(g.dtype))
            ga = sum_to(g * b * Pow.apply(a + both_zero, b - 1), self.a_shape)
        if self.needs_input_grad[1]:
            positive = constant((a.data > 0).astype(g.dtype))
            safe_a = a * positive + (1 - positive)  # a where a > 0, else 1 (log 1 = 0)
            gb = sum_to(g * Pow.apply(a, b) * Log.apply(safe_a), self.b_shape)
        return ga, gb


def _power(a: np.ndarray, p: float) -> np.ndarray:
    """a**p for a Python-number exponent; small integer powers as products (much faster)."""
    if p == 1:
        return a.copy()
    if p == 2:
        return a * a
    if p == 3:
        return a * a * a
    if p == 0.5:
        return np.sqrt(a)
    return a**p  # a Python number keeps a's dtype (NEP 50)


class PowConstant(Function):
    # a**p for a constant Python number p:  d(a^p)/da = p a^(p-1)
    def forward(self, a, exponent):
        self.exponent = exponent
        if self.requires_grad:
            self.a = a
        return _power(a, exponent)

    def backward(self, g):
        p = self.exponent
        if p == 0:
            return np.zeros_like(g)
        return g * (p * _power(self.a, p - 1))

    def backward_graph(self, g):
        p = self.exponent
        if p == 0:
            return constant(np.zeros_like(g.data))
        return g * (p * PowConstant.apply(self.parents[0], exponent=p - 1))


class Maximum(_Binary):
    # the gradient goes to the larger input; ties split it evenly (0.5 each)
    def compute(self, a, b):
        if self.requires_grad:
            self.a, self.b = a, b
        return np.maximum(a, b)

    def backward(self, g):
        a_wins = np.asarray(self.a > self.b, dtype=g.dtype)  # broadcast shape, g's dtype
        a_wins[self.a == self.b] = 0.5
        ga = unbroadcast(g * a_wins, self.a_shape) if self.needs_input_grad[0] else None
        gb = unbroadcast(g * (1 - a_wins), self.b_shape) if self.needs_input_grad[1] else None
        return ga, gb

    def backward_graph(self, g):
        a, b = (p.data for p in self.parents)
        a_wins = np.asarray(a > b, dtype=g.dtype)  # piecewise constant: a constant here
        a_wins[a == b] = 0.5
        ga = sum_to(g * constant(a_wins), self.a_shape) if self.needs_input_grad[0] else None
        gb = sum_to(g * constant(1 - a_wins), self.b_shape) if self.needs_input_grad[1] else None
        return ga, gb


class Neg(Function):
    # d(-a)/da = -1
    def forward(self, a):
        return -a

    def backward(self, g):
        return -g

    def backward_graph(self, g):
        return -g


class Exp(Function):
    # d exp(a)/da = exp(a) = out
    def forward(self, a):
        out = np.exp(a)
        if self.requires_grad:
            self.out = out
        return out

    def backward(self, g):
        return g * self.out

    def backward_graph(self, g):
        return g * Exp.apply(self.parents[0])


class Log(Function):
    # d log(a)/da = 1/a
    def forward(self, a):
        if self.requires_grad:
            self.a = a
        return np.log(a)

    def backward(self, g):
        return g / self.a

    def backward_graph(self, g):
        return g / self.parents[0]


class Sqrt(Function):
    # d sqrt(a)/da = 1 / (2 sqrt(a)) = 1 / (2 out)
    def forward(self, a):
        out = np.sqrt(a)
        if self.requires_grad:
            self.out = out
        return out

    def backward(self, g):
        return g / (2 * self.out)

    def backward_graph(self, g):
        return g / (Sqrt.apply(self.parents[0]) * 2)


class Tanh(Function):
    # d tanh(a)/da = 1 - tanh(a)^2 = 1 - out^2
    def forward(self, a):
        out = np.tanh(a)
        if self.requires_grad:
            self.out = out
        return out

    def backward(self, g):
        return g * (1 - self.out * self.out)

    def backward_graph(self, g):
        t = Tanh.apply(self.parents[0])
        return g * (1 - t * t)


class Sigmoid(Function):
    # s = 1 / (1 + exp(-a)), computed as exp(-log(1 + exp(-a))) to stay finite for any a;
    # ds/da = s (1 - s)
    def forward(self, a):
        out = np.exp(-np.logaddexp(0, -a))
        if self.requires_grad:
            self.out = out
        return out

    def backward(self, g):
        return g * self.out * (1 - self.out)

    def backward_graph(self, g):
        s = Sigmoid.apply(self.parents[0])
        return g * s * (1 - s)


class Relu(Function):
    # d relu(a)/da = 1 where a > 0, else 0 (0 at the kink a == 0); NaN stays NaN forward
    def forward(self, a):
        if self.requires_grad:
            self.positive = a > 0
        return np.maximum(a, 0)

    def backward(self, g):
        return g * self.positive

    def backward_graph(self, g):
        return g * constant(self.positive.astype(g.dtype))


class Abs(Function):
    # d|a|/da = sign(a) (0 at the kink a == 0)
    def forward(self, a):
        if self.requires_grad:
            self.sign = np.sign(a)
        return np.abs(a)

    def backward(self, g):
        return g * self.sign

    def backward_graph(self, g):
        return g * constant(self.sign.astype(g.dtype, copy=False))


class Cast(Function):
    # a dtype change is the identity on values: the gradient is cast back (a new array)
    def forward(self, a, dtype):
        self.in_dtype = a.dtype
        return a.astype(dtype, copy=False)

    def backward(self, g):
        return g.astype(self.in_dtype)  # astype copies, even to the same dtype

    def backward_graph(self, g):
        return Cast.apply(g, dtype=self.in_dtype)
