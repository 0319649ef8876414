"""The one random generator behind minigrad's initializers and dropout.

    minigrad.random.manual_seed(123)        # reproducible init and dropout masks
    state = minigrad.random.get_state()     # a JSON-able dict, saved in checkpoints
    minigrad.random.set_state(state)        # ... and restored on resume

Functions that draw random numbers take an optional `generator` (a numpy Generator); without
one they use this module's default generator.
"""
from __future__ import annotations

import numpy as np

_generator = np.random.default_rng(0)


def manual_seed(seed: int) -> np.random.Generator:
    """Reseed the default generator (returns it)."""
    global _generator
    _generator = np.random.default_rng(seed)
    return _generator


def default_generator() -> np.random.Generator:
    """The generator used when none is passed."""
    return _generator


def get_state() -> dict:
    """The default generator's state (bit generator name and integers), for checkpoints."""
    return _generator.bit_generator.state


def set_state(state: dict) -> None:
    """Restore a state returned by `get_state`."""
    _generator.bit_generator.state = state
