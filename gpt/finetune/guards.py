"""Finetuning never passes off non-finite weights as a success.

A diverging setting (a learning rate of 1e6, a LoRA alpha of NaN) makes the loss NaN or
infinite within a few steps. Like `gpt train`, finetuning then stops at once with a
`DivergedError` naming the step: nothing is saved, so --out keeps what it held and the base
model is untouched (the last good state is the one on disk). Weights are checked again before
saving, and `check_finite_weights` refuses to load (or, when allowed, warns about) a state
dict holding NaN or infinity, so `gpt classify` never prints "ham (ham nan, spam nan)".
"""
from __future__ import annotations

import math

from ..training import TrainingError
from ..training.checkpoint_checks import check_finite_state

DIVERGED_HINT = "lower the learning rate, clip the gradient norm, or check the LoRA alpha"


class DivergedError(TrainingError):
    """The loss or the weights became NaN or infinite; finetuning stopped, nothing was saved."""


def check_loss(loss: float, step: int, epoch: int) -> None:
    """Raise DivergedError when the loss of (0-based) `step` is not a finite number."""
    if not math.isfinite(loss):
        raise DivergedError(f"the training loss became {loss} at step {step + 1} (epoch {epoch + 1}); "
                            f"stopped, and nothing was saved ({DIVERGED_HINT})")


def check_finite_weights(state: dict, where: str, allow: bool = False) -> None:
    """Refuse (DivergedError) a state dict with non-finite weights; with `allow`, warn instead."""
    check_finite_state(state, where, allow, error=DivergedError)
