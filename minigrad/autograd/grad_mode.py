"""Grad mode: whether ops record the graph. Off inside `no_grad()`, and during a backward pass
unless it builds a graph of its own (`create_graph=True`)."""
from __future__ import annotations

import contextlib
import threading



class _GradState(threading.local):
    """Per thread; the class attribute is every thread's starting value (on), so reading it
    is one attribute lookup (Function.apply reads `grad_state.grad_enabled` for each op)."""

    grad_enabled = True


grad_state = _GradState()


def is_grad_enabled() -> bool:
    """True unless inside `no_grad()` (or an ordinary backward pass)."""
    return grad_state.grad_enabled


def set_grad_enabled(enabled: bool) -> bool:
    """Switch grad mode on or off; returns the previous mode (to restore it)."""
    previous = is_grad_enabled()
    grad_state.grad_enabled = bool(enabled)
    return previous


@contextlib.contextmanager
def no_grad():
    """Context manager (also usable as a decorator) under which no graph is built."""
    previous = set_grad_enabled(False)
    try:
        yield
    finally:
        grad_state.grad_enabled = previous


@contextlib.contextmanager
def enable_grad():
    """Re-enable graph building inside a `no_grad()` block."""
    previous = set_grad_enabled(True)
    try:
        yield
    finally:
        grad_state.grad_enabled = previous
