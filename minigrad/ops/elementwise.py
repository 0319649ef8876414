"""Elementwise ops: arithmetic with NumPy broadcasting, and unary math functions.

Each backward is the derivative times the incoming gradient, summed back to the input's
shape by `unbroadcast` where the forward broadcast.
"""
from __future__ import annotations

import numpy as np

from ..autograd import Function, unbroadcast


def broadcast_shape(op: str, a_shape: tuple, b_shape: tuple) -> tuple:
    """The broadcast result shape, or a ValueError naming the op and both shapes."""
    try:
        return np.broadcast_shapes(a_shape, b_shape)
    except ValueError:
        raise ValueError(f"{op}: cannot broadcast {tuple(a_shape)} with {tuple(b_shape)}") from None


class _Binary(Function):
    def forward(self, a, b):
        broadcast_shape(self.name, a.shape, b.shape)
        self.a_shape, self.b_shape = a.shape, b.shape
        return self.compute(a, b)


class Add(_Binary):
    # d(a+b)/da = 1, d(a+b)/db = 1
    def compute(self, a, b):
        return a + b

    def backward(self, g):
        return unbroadcast(g, self.a_shape), unbroadcast(g, self.b_shape)


class Sub(_Binary):
    # d(a-b)/da = 1, d(a-b)/db = -1
    def compute(self, a, b):
        return a - b

    def backward(self, g):
        gb = unbroadcast(-g, self.b_shape) if self.needs_input_grad[1] else None
        return unbroadcast(g, self.a_shape), gb


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


class Div(_Binary):
    # d(a/b)/da = 1/b, d(a/b)/db = -a/b^2 = -out/b
    def compute(self, a, b):
        out = a / b
        if self.requires_grad:
            self.b, self.out = b, out
        return out

    def backward(self, g):
        ga = unbroadcast(g / self.b, self.a_shape) if self.needs_input_grad[0] else None
        gb = unbroadcast(-g * self.out / self.b, self.b_shape) if self.needs_input_grad[1] else None
        return ga, gb


class Pow(_Binary):
    # d(a^b)/da = b a^(b-1); d(a^b)/db = a^b log(a)   (taken as 0 where a <= 0 and a^b is real)
    def compute(self, a, b):
        out = a**b
        if self.requires_grad:
            self.a, self.b, self.out = a, b, out
        return out

    def backward(self, g):
        a, b = self.a, self.b
        ga = gb = None
        if self.needs_input_grad[0]:
            ga = unbroadcast(g * b * a ** (b - 1), self.a_shape)
        if self.needs_input_grad[1]:
            with np.errstate(divide="ignore", invalid="ignore"):
                log_a = np.where(a > 0, np.log(np.where(a > 0, a, 1)), 0).astype(self.out.dtype)
            gb = unbroadcast(g * self.out * log_a, self.b_shape)
        return ga, gb


class Maximum(_Binary):
    # the gradient goes to the larger input; ties split it evenly
    def compute(self, a, b):
        out = np.maximum(a, b)
        if self.requires_grad:
            self.a, self.b = a, b
        return out

    def backward(self, g):
        a_wins = (self.a > self.b) + 0.5 * (self.a == self.b)
        ga = unbroadcast(g * a_wins, self.a_shape) if self.needs_input_grad[0] else None
        gb = unbroadcast(g * (1 - a_wins), self.b_shape) if self.needs_input_grad[1] else None
        return ga, gb


class Neg(Function):
    def forward(self, a):
        return -a

    def backward(self, g):
        return -g


class Exp(Function):
    # d exp(a) = exp(a)
    def forward(self, a):
        out = np.exp(a)
        self.out = out
        return out

    def backward(self, g):
        return g * self.out


class Log(Function):
    # d log(a) = 1/a
    def forward(self, a):
        self.a = a
        return np.log(a)

    def backward(self, g):
        return g / self.a


class Sqrt(Function):
    # d sqrt(a) = 1 / (2 sqrt(a))
    def forward(self, a):
        out = np.sqrt(a)
        self.out = out
        return out

    def backward(self, g):
        return g / (2 * self.out)


class Tanh(Function):
    # d tanh(a) = 1 - tanh(a)^2
    def forward(self, a):
        out = np.tanh(a)
        self.out = out
        return out

    def backward(self, g):
        return g * (1 - self.out * self.out)


class Sigmoid(Function):
    # d sigmoid(a) = s (1 - s); computed as exp(-logaddexp(0, -a)) to stay finite
    def forward(self, a):
        out = np.exp(-np.logaddexp(0, -a)).astype(a.dtype, copy=False)
        self.out = out
        return out

    def backward(self, g):
        return g * self.out * (1 - self.out)


class Relu(Function):
    # d relu(a) = 1 where a > 0, else 0 (0 at the kink a == 0)
    def forward(self, a):
        self.mask = a > 0
        return np.where(self.mask, a, 0).astype(a.dtype, copy=False)

    def backward(self, g):
        return g * self.mask


class Abs(Function):
    # d|a| = sign(a) (0 at a == 0)
    def forward(self, a):
        self.sign = np.sign(a)
        return np.abs(a)

    def backward(self, g):
        return g * self.sign


class Cast(Function):
    # a dtype change is the identity on values; the gradient is cast back
    def forward(self, a, dtype):
        self.in_dtype = a.dtype
        return a.astype(dtype)

    def backward(self, g):
        return g.astype(self.in_dtype)
