"""Ctrl-C during training: finish the step, save a checkpoint, stop; a second Ctrl-C stops at once.

SIGTERM (`kill`, a batch system's time limit) is treated like Ctrl-C. The loop checks
`stop.requested` after every step (across MPI ranks through `world.any`, so every rank stops
at the same step).

"At once" really means at once, even in the middle of a minutes-long matrix product: Python
runs signal handlers only between bytecodes, so the second signal is also watched by a small
thread through `signal.set_wakeup_fd` (the C-level handler writes each signal's number to a
pipe the moment it arrives). That thread prints one line and ends the process with exit code
130; the last checkpoint on disk is intact, since every save is atomic.
"""
from __future__ import annotations

import os
import signal
import sys
import threading

from .progress import Progress

EXIT_INTERRUPTED = 130


class StopFlag:
    """SIGINT (Ctrl-C) and SIGTERM (`kill`, a batch system's time limit) handler: the first
    signal asks to stop after the current step and save; a second stops at once (the last
    checkpoint on disk stays intact)."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, progress: Progress):
        self.requested = False
        self.progress = progress
        self.previous = {}
        self._pipe = None
        self._previous_wakeup = -1

    def _handler(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
        self.progress.line(f"{name}: stopping after this step and saving a checkpoint "
                           f"(press Ctrl-C again to stop at once without saving)")

    def _watch(self, read_end: int) -> None:
        """Count INT/TERM signals as the C handler reports them; end the process on the second."""
        seen = 0
        watched = {int(signum) for signum in self.SIGNALS}
        while True:
            try:
                data = os.read(read_end, 64)
            except OSError:
                data = b""
            if not data:  # the write end was closed: training is over
                os.close(read_end)
                return
            seen += sum(1 for number in data if number in watched)
            if seen >= 2:
                sys.stderr.write("\nsecond interrupt: stopped at once (the last checkpoint on disk "
                                 "is intact)\n")
                sys.stderr.flush()
                os._exit(EXIT_INTERRUPTED)

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for signum in self.SIGNALS:
                self.previous[signum] = signal.signal(signum, self._handler)
            read_end, write_end = os.pipe()
            os.set_blocking(write_end, False)
            try:
                self._previous_wakeup = signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)
            except ValueError:  # not the main interpreter: the handler alone
                os.close(read_end)
                os.close(write_end)
                return self
            self._pipe = (read_end, write_end)
            threading.Thread(target=self._watch, args=(read_end,), daemon=True,
                             name="second-interrupt-watch").start()
        return self

    def __exit__(self, *exc):
        if self._pipe is not None:
            signal.set_wakeup_fd(self._previous_wakeup)
            os.close(self._pipe[1])  # the watcher reads EOF and ends
            self._pipe = None
        for signum, previous in self.previous.items():
            signal.signal(signum, previous)
        return False
