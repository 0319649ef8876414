"""Progress lines on the terminal and `metrics.jsonl` in the run folder.

One line per log interval, as nanoGPT and llm.c show it:

    step   120/2000 | epoch 1 | loss 3.1416 | lr 3.00e-04 | 41,200 tok/s | mfu 21.3% | 0:42 elapsed | ETA 10:58

On a terminal the line is rewritten in place (carriage return) until an evaluation line or a
sample is printed; when stdout is a file or a pipe every line is printed on its own.
Every logged and evaluated step is also appended to `metrics.jsonl`, one JSON object per line:
`{"step", "tokens_seen", "epoch", "train_loss", "val_loss", "val_ppl", "lr", "tokens_per_s", "mfu", "elapsed"}`
(keys without a value at that step are left out).
"""
from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path

from minigrad.untrusted import loads_json

METRICS_FILE = "metrics.jsonl"


def format_duration(seconds: float) -> str:
    """`75.3` -> `'1:15'`, `3725` -> `'1:02:05'`."""
    if seconds is None or not math.isfinite(seconds):
        return "?"
    seconds = int(round(max(seconds, 0.0)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def format_step_line(step: int, max_steps: int, epoch: int, loss: float, lr: float,
                     tokens_per_s: float, mfu: float | None, elapsed: float, eta: float) -> str:
    """The one-line progress summary of a log interval."""
    width = len(str(max_steps))
    mfu_text = f"mfu {100 * mfu:4.1f}%" if mfu is not None else "mfu   ?"
    return (f"step {step:>{width}}/{max_steps} | epoch {epoch} | loss {loss:.4f} | lr {lr:.2e} | "
            f"{tokens_per_s:,.0f} tok/s | {mfu_text} | {format_duration(elapsed)} elapsed | "
            f"ETA {format_duration(eta)}")


class Progress:
    """Prints progress and sample lines; rewrites step lines in place on a terminal.

    `enabled=False` prints nothing (the other ranks of a data-parallel job, or quiet tests).
    """

    def __init__(self, stream=None, enabled: bool = True, tty: bool | None = None):
        self.stream = stream if stream is not None else sys.stdout
        self.enabled = enabled
        self.tty = self.stream.isatty() if tty is None and hasattr(self.stream, "isatty") else bool(tty)
        self._open_line = False  # a \r-rewritable line is on the screen

    def step(self, text: str) -> None:
        """A step line: rewritten in place on a terminal, a plain line otherwise."""
        if not self.enabled:
            return
        if self.tty:
            self.stream.write("\r\033[K" + text)
            self._open_line = True
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def line(self, text: str = "") -> None:
        """A line that stays (evaluations, samples, messages)."""
        if not self.enabled:
            return
        if self._open_line:
            self.stream.write("\n")
            self._open_line = False
        self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled and self._open_line:
            self.stream.write("\n")
            self.stream.flush()
            self._open_line = False


class MetricsLog:
    """Appends one JSON object per logged or evaluated step to `run_dir/metrics.jsonl`.

    `records` holds every record written (also those read back on resume), so the checkpoint
    can store the metrics so far and a resumed run continues the same file.
    """

    def __init__(self, run_dir: str | os.PathLike | None, records: list | None = None,
                 enabled: bool = True):
        self.path = Path(run_dir) / METRICS_FILE if run_dir is not None else None
        self.records = list(records or [])
        self.enabled = enabled and self.path is not None

    def rewrite(self) -> None:
        """Write all `records` anew (on resume: drops lines logged after the checkpoint)."""
        if not self.enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(self.path.name + ".tmp")
        with open(temporary, "w") as f:
            for record in self.records:
                f.write(json.dumps(record) + "\n")
        os.replace(temporary, self.path)

    def write(self, **fields) -> dict:
        """Append one record (None values left out); returns it."""
        record = {key: _plain(value) for key, value in fields.items() if value is not None}
        self.records.append(record)
        if self.enabled:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a") as f:
                f.write(json.dumps(record) + "\n")
        return record


def _plain(value):
    """JSON-friendly numbers: NumPy scalars to Python, non-finite floats to strings."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, float):
        return round(value, 6)
    return value


def read_metrics(run_dir: str | os.PathLike) -> list[dict]:
    """The records of `run_dir/metrics.jsonl` (FileNotFoundError naming the file when absent)."""
    path = Path(run_dir) / METRICS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no {METRICS_FILE} in {run_dir}: is this a `gpt train --out` folder?")
    records = []
    with open(path) as f:
        for number, text in enumerate(f, 1):
            text = text.strip()
            if not text:
                continue
            records.append(loads_json(text, f"{path}, line {number}"))  # FileFormatError, bounded
    return records
