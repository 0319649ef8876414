"""`gradcheck` itself: it accepts right gradients and reports wrong ones (input, element,
both values), and rejects inputs it cannot check."""
from __future__ import annotations

import re

import numpy as np
import pytest

from minigrad import Function, Tensor, gradcheck
from minigrad.gradcheck import GradcheckError
from core_strategies import leaf


class SquareWithWrongBackward(Function):
    # d(a^2)/da = 2a, but this backward "forgets" the factor 2 on the last element
    def forward(self, a):
        self.a = a
        return a * a

    def backward(self, g):
        grad = 2 * self.a * g
        grad.reshape(-1)[-1] /= 2
        return grad


class NanBackward(Function):
    def forward(self, a):
        return a * 1.0

    def backward(self, g):
        return g * np.nan


def test_accepts_a_right_gradient_with_extra_non_tensor_inputs():
    x, w = leaf([[1.0, -2.0], [0.5, 3.0]]), leaf([0.2, -0.4])
    assert gradcheck(lambda a, scale, b: (a * b).tanh() * scale, x, 3.0, w) is True
    assert x.grad is not None  # the analytic gradient is left in .grad


def test_reports_a_wrong_backward_naming_input_element_and_values():
    x = leaf([[1.0, 2.0], [3.0, 4.0]])
    other = Tensor(np.ones(2))  # input 0, no grad: positions count every input
    with pytest.raises(GradcheckError) as info:
        gradcheck(lambda o, a: SquareWithWrongBackward.apply(a) * o, other, x)
    message = str(info.value)
    assert re.search(r"input 1 \(shape \(2, 2\)\), element \(1, 1\): analytic (\S+) vs numeric (\S+)", message), message
    analytic, numeric = map(float, re.search(r"analytic (\S+) vs numeric (\S+)", message).groups())
    assert numeric == pytest.approx(2 * analytic, rel=1e-6)
    assert isinstance(info.value, AssertionError)  # pytest shows it as a failed assertion


def test_nan_gradient_fails():
    with pytest.raises(GradcheckError, match="analytic nan"):
        gradcheck(lambda a: NanBackward.apply(a), leaf([1.0, 2.0]))


def test_works_with_non_contiguous_inputs():
    x = Tensor(np.arange(12.0).reshape(3, 4).T, requires_grad=True)  # a transposed view
    assert not x.data.flags.c_contiguous
    assert gradcheck(lambda a: a * a, x)


def test_rejects_inputs_it_cannot_check():
    with pytest.raises(TypeError, match="gradcheck: input 0 has dtype float32; use float64"):
        gradcheck(lambda a: a * 2.0, Tensor([1.0], requires_grad=True))
    with pytest.raises(ValueError, match="gradcheck: no input requires grad"):
        gradcheck(lambda a: a * 2.0, Tensor(np.ones(2)))
    with pytest.raises(TypeError, match="gradcheck: fn must return a Tensor, got ndarray"):
        gradcheck(lambda a: a.data, leaf([1.0]))
    readonly = np.ones(2)
    readonly.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        gradcheck(lambda a: a * 2.0, Tensor(readonly, requires_grad=True))


def test_function_that_ignores_its_input_has_zero_gradient():
    x = leaf([1.0, 2.0])
    assert gradcheck(lambda a: Tensor(np.ones(3)) + 0 * a.sum(), x)
    assert gradcheck(lambda a: Tensor(np.ones(3)), x)  # no graph at all: gradient 0 both ways
