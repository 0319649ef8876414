"""Ctrl-C during training: finish the step, save a checkpoint, stop; a second Ctrl-C stops at once.

SIGTERM (`kill`, a batch system's time limit) is treated like Ctrl-C. The loop checks
`stop.requested` after every step (across MPI ranks through `world.any`, so every rank stops
at the same step).
"""
from __future__ import annotations

import signal
import threading

from .progress import Progress


class StopFlag:
    """SIGINT (Ctrl-C) and SIGTERM (`kill`, a batch system's time limit) handler: the first
    signal asks to stop after the current step and save; a second stops at once
    (KeyboardInterrupt; the last checkpoint on disk stays intact)."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, progress: Progress):
        self.requested = False
        self.progress = progress
        self.previous = {}

    def _handler(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
        self.progress.line(f"{name}: stopping after this step and saving a checkpoint "
                           f"(press Ctrl-C again to stop at once without saving)")

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for signum in self.SIGNALS:
                self.previous[signum] = signal.signal(signum, self._handler)
        return self

    def __exit__(self, *exc):
        for signum, previous in self.previous.items():
            signal.signal(signum, previous)
        return False
