"""Learning-rate schedules: plain functions of the step, and `LRScheduler`, which applies one
to an optimizer's groups every step and can be saved with a checkpoint.

    schedule = lambda step: cosine_with_warmup(step, warmup_steps=20, total_steps=1000,
                                               peak_lr=4e-4, min_lr=4e-5)
    scheduler = LRScheduler(optimizer, schedule)   # sets lr = schedule(0) now
    for batch in batches:
        ...; optimizer.step(); scheduler.step()     # lr = schedule(1), schedule(2), ...

`cosine_with_warmup` is a linear warmup to `peak_lr` over `warmup_steps` steps, then a half
cosine from `peak_lr` down to `min_lr` at `total_steps`. Steps count from 0 (the first
optimizer step uses the lr of step 0). The warmup has two forms, computed exactly as their
sources do (`warmup_form`):

    "book"     the book's appendix D (`train_model`): lr = initial_lr + step * lr_increment,
               lr_increment = (peak_lr - initial_lr) / warmup_steps; step 0 trains at
               initial_lr, step warmup_steps at the peak.
    "nanogpt"  nanoGPT's `get_lr`: lr = peak_lr * (step + 1) / warmup_steps; step 0 already
               trains at peak_lr / warmup_steps, step warmup_steps - 1 at the peak (no initial_lr).

The decay is the same in both: min_lr + (peak_lr - min_lr) * 0.5 * (1 + cos(pi * progress)),
progress = (step - warmup_steps) / (total_steps - warmup_steps). `gpt train --schedule cosine`
(the default) uses the nanoGPT form, `--schedule book` the book's.
"""
from __future__ import annotations

import math
from typing import Callable


def _check_step(name: str, step) -> int:
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise ValueError(f"{name}: step must be an int >= 0, got {step!r}")
    return step


def _check_lr(name: str, which: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < math.inf:
        raise ValueError(f"{name}: {which} must be a finite number >= 0, got {value!r}")
    return float(value)


def constant(step: int, lr: float) -> float:
    """The same lr at every step."""
    _check_step("constant", step)
    return _check_lr("constant", "lr", lr)


WARMUP_FORMS = ("book", "nanogpt")


def linear_warmup(step: int, warmup_steps: int, peak_lr: float, initial_lr: float = 0.0,
                  warmup_form: str = "book") -> float:
    """The lr of a warmup step, then peak_lr (see the module docstring for the two forms).

    book:    initial_lr + step * lr_increment, lr_increment = (peak_lr - initial_lr) / warmup_steps
    nanogpt: peak_lr * (step + 1) / warmup_steps
    """
    _check_step("linear_warmup", step)
    peak_lr = _check_lr("linear_warmup", "peak_lr", peak_lr)
    initial_lr = _check_lr("linear_warmup", "initial_lr", initial_lr)
    if isinstance(warmup_steps, bool) or not isinstance(warmup_steps, int) or warmup_steps < 0:
        raise ValueError(f"linear_warmup: warmup_steps must be an int >= 0, got {warmup_steps!r}")
    if warmup_form not in WARMUP_FORMS:
        raise ValueError(f"linear_warmup: warmup_form must be one of {WARMUP_FORMS}, got {warmup_form!r}")
    if warmup_form == "nanogpt" and initial_lr:
        raise ValueError(f"linear_warmup: the nanogpt warmup starts from 0 (peak_lr / warmup_steps at "
                         f"step 0), so initial_lr must be 0, got {initial_lr}")
    if step >= warmup_steps:
        return peak_lr
    if warmup_form == "nanogpt":
        return peak_lr * (step + 1) / warmup_steps
    lr_increment = (peak_lr - initial_lr) / warmup_steps
    return initial_lr + step * lr_increment


def cosine_with_warmup(step: int, warmup_steps: int, total_steps: int, peak_lr: float,
                       min_lr: float = 0.0, initial_lr: float = 0.0, warmup_form: str = "book") -> float:
    """Linear warmup, then cosine decay: the book's appendix D schedule (warmup_form="book") or
    nanoGPT's (warmup_form="nanogpt").

    step < warmup_steps:  linear_warmup(step, warmup_steps, peak_lr, initial_lr, warmup_form)
    otherwise:            min_lr + (peak_lr - min_lr) * 0.5 * (1 + cos(pi * progress)),
                          progress = (step - warmup_steps) / (total_steps - warmup_steps),
                          held at 1 after total_steps (the lr stays at min_lr;
                          min_lr right after warmup when total_steps == warmup_steps).
    """
    name = "cosine_with_warmup"
    _check_step(name, step)
    peak_lr = _check_lr(name, "peak_lr", peak_lr)
    min_lr = _check_lr(name, "min_lr", min_lr)
    for label, value in (("warmup_steps", warmup_steps), ("total_steps", total_steps)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{name}: {label} must be an int >= 0, got {value!r}")
    if warmup_form not in WARMUP_FORMS:
        raise ValueError(f"{name}: warmup_form must be one of {WARMUP_FORMS}, got {warmup_form!r}")
    if total_steps < warmup_steps:
        raise ValueError(f"{name}: total_steps ({total_steps}) is smaller than warmup_steps "
                         f"({warmup_steps})")
    if step < warmup_steps:
        return linear_warmup(step, warmup_steps, peak_lr, initial_lr, warmup_form)
    if total_steps == warmup_steps:
        return min_lr  # no decay phase: straight to the floor
    progress = min(1.0, (step - warmup_steps) / (total_steps - warmup_steps))
    return min_lr + (peak_lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))


class LRScheduler:
    """Sets `group["lr"] = lr_fn(step)` on every group of `optimizer`.

    The lr of step 0 is set at construction; each `step()` (call it after `optimizer.step()`)
    advances to the next step. `state_dict()` holds the step, so a resumed run continues
    the schedule where it stopped (the function itself is not saved: build the scheduler
    with the same function, then load its state).
    """

    def __init__(self, optimizer, lr_fn: Callable[[int], float], last_step: int = 0):
        if not callable(lr_fn):
            raise TypeError(f"LRScheduler: lr_fn must be callable (step -> lr), got "
                            f"{type(lr_fn).__name__}")
        if not hasattr(optimizer, "param_groups"):
            raise TypeError(f"LRScheduler: expected an Optimizer, got {type(optimizer).__name__}")
        self.optimizer = optimizer
        self.lr_fn = lr_fn
        self.last_step = _check_step("LRScheduler", last_step)
        self._apply()

    def _apply(self) -> None:
        lr = self.lr_fn(self.last_step)
        if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not 0 <= lr < math.inf:
            raise ValueError(f"LRScheduler: the schedule gave lr={lr!r} at step {self.last_step} "
                             f"(must be a finite number >= 0)")
        for group in self.optimizer.param_groups:
            group["lr"] = float(lr)

    def step(self) -> None:
        self.last_step += 1
        self._apply()

    def get_last_lr(self) -> list[float]:
        """The lr of each group, as set for the current step."""
        return [group["lr"] for group in self.optimizer.param_groups]

    def state_dict(self) -> dict:
        return {"last_step": self.last_step}

    def load_state_dict(self, state_dict: dict) -> None:
        if not isinstance(state_dict, dict) or "last_step" not in state_dict:
            raise ValueError(f"LRScheduler.load_state_dict: expected {{'last_step': int}}, got "
                             f"{state_dict!r}")
        self.last_step = _check_step("LRScheduler.load_state_dict", state_dict["last_step"])
        self._apply()
