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


def book_train_model_lrs(n_steps, warmup_steps, peak_lr, initial_lr, min_lr):
    """The lr of every step as the book's appendix D `train_model` computes it, line for line."""
    lrs, global_step = [], -1
    lr_increment = (peak_lr - initial_lr) / warmup_steps
    for _ in range(n_steps):  # (the book loops over epochs and batches; one step per batch)
        global_step += 1
        if global_step < warmup_steps:
            lr = initial_lr + global_step * lr_increment
        else:
            progress = ((global_step - warmup_steps) / (n_steps - warmup_steps))
            lr = min_lr + (peak_lr - min_lr) * 0.5 * (1 + math.cos(math.pi * progress))
        lrs.append(lr)
    return lrs


def nanogpt_lrs(n_steps, warmup_steps, peak_lr, min_lr):
    """nanoGPT's get_lr (as the trainer computed it before it used this module): step for step."""
    lrs = []
    for step in range(n_steps):
        if step < warmup_steps:
            lrs.append(peak_lr * (step + 1) / warmup_steps)
            continue
        progress = min((step - warmup_steps) / max(n_steps - warmup_steps, 1), 1.0)
        lrs.append(min_lr + (peak_lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress)))
    return lrs


@pytest.mark.parametrize("n_steps, warmup, peak, initial, floor", [
    (220, 20, 0.01, 1e-4, 1e-5),     # the appendix's setting
    (37, 7, 5e-4, 3e-5, 1e-6),       # the book's default initial_lr and min_lr
    (10, 9, 1e-3, 0.0, 1e-4),
])
def test_book_form_is_the_appendix_loop_step_for_step(n_steps, warmup, peak, initial, floor):
    expected = book_train_model_lrs(n_steps, warmup, peak, initial, floor)
    got = [cosine_with_warmup(step, warmup, n_steps, peak, floor, initial_lr=initial) for step in range(n_steps)]
    assert got == expected  # exactly: the same operations in the same order


@pytest.mark.parametrize("n_steps, warmup, peak, floor", [(200, 20, 1e-3, 1e-4), (33, 3, 3e-3, 3e-4),
                                                         (10, 0, 0.7, 0.0), (7, 6, 2e-3, 2e-4)])
def test_nanogpt_form_is_nanogpts_get_lr_step_for_step(n_steps, warmup, peak, floor):
    expected = nanogpt_lrs(n_steps, warmup, peak, floor)
    got = [cosine_with_warmup(step, warmup, n_steps, peak, floor, warmup_form="nanogpt")
           for step in range(n_steps)]
    assert got == expected


def test_the_two_warmup_forms_differ_where_their_sources_do():
    # book: step 0 at initial_lr, the peak at step warmup; nanogpt: step 0 at peak/warmup, the peak at warmup - 1
    assert linear_warmup(0, 4, peak_lr=1.0) == 0.0 and linear_warmup(4, 4, peak_lr=1.0) == 1.0
    assert linear_warmup(0, 4, peak_lr=1.0, warmup_form="nanogpt") == 0.25
    assert linear_warmup(3, 4, peak_lr=1.0, warmup_form="nanogpt") == 1.0
    with pytest.raises(ValueError, match="initial_lr must be 0"):
        linear_warmup(0, 4, peak_lr=1.0, initial_lr=0.1, warmup_form="nanogpt")
    with pytest.raises(ValueError, match="warmup_form"):
        cosine_with_warmup(50, 4, 100, 1.0, warmup_form="linear")
