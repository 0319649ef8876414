"""Learning-rate schedules at their key steps (the book's appendix D cosine with warmup)."""
from __future__ import annotations

import math

import pytest

from minigrad.optim import constant, cosine_with_warmup, linear_warmup


def test_constant():
    assert constant(0, 0.1) == 0.1 and constant(10_000, 0.1) == 0.1


def test_linear_warmup():
    assert linear_warmup(0, 10, peak_lr=1.0) == 0.0
    assert linear_warmup(5, 10, peak_lr=1.0) == 0.5
    assert linear_warmup(9, 10, peak_lr=1.0, initial_lr=0.1) == pytest.approx(0.1 + 0.9 * 0.9)
    assert linear_warmup(10, 10, peak_lr=1.0) == 1.0
    assert linear_warmup(500, 10, peak_lr=1.0) == 1.0
    assert linear_warmup(0, 0, peak_lr=0.3) == 0.3


def test_cosine_with_warmup_key_steps():
    # the book's appendix D settings
    kwargs = dict(warmup_steps=20, total_steps=220, peak_lr=0.01, min_lr=1e-5, initial_lr=1e-4)
    assert cosine_with_warmup(0, **kwargs) == pytest.approx(1e-4)
    assert cosine_with_warmup(10, **kwargs) == pytest.approx(1e-4 + 10 * (0.01 - 1e-4) / 20)
    assert cosine_with_warmup(20, **kwargs) == pytest.approx(0.01)           # the peak
    assert cosine_with_warmup(120, **kwargs) == pytest.approx((0.01 + 1e-5) / 2)  # halfway
    assert cosine_with_warmup(70, **kwargs) == pytest.approx(
        1e-5 + (0.01 - 1e-5) * 0.5 * (1 + math.cos(math.pi * 0.25)))
    assert cosine_with_warmup(220, **kwargs) == pytest.approx(1e-5)           # the end
    assert cosine_with_warmup(10_000, **kwargs) == pytest.approx(1e-5)        # held after
    values = [cosine_with_warmup(s, **kwargs) for s in range(20, 221)]
    assert all(a >= b for a, b in zip(values, values[1:]))                    # monotone decay


def test_cosine_without_warmup_and_degenerate_lengths():
    assert cosine_with_warmup(0, 0, 100, peak_lr=1.0) == 1.0
    assert cosine_with_warmup(100, 0, 100, peak_lr=1.0) == pytest.approx(0.0)
    assert cosine_with_warmup(5, 5, 5, peak_lr=1.0, min_lr=0.5) == pytest.approx(0.5)


def test_schedule_errors():
    with pytest.raises(ValueError, match="step"):
        cosine_with_warmup(-1, 1, 10, 0.1)
    with pytest.raises(ValueError, match="total_steps"):
        cosine_with_warmup(0, 10, 5, 0.1)
    with pytest.raises(ValueError, match="peak_lr"):
        linear_warmup(0, 10, peak_lr=-0.1)
    with pytest.raises(ValueError, match="lr"):
        constant(0, float("nan"))
