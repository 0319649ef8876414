"""`detect_anomaly()`: find the op whose backward produced the first NaN or inf, and the line
of your code that created it (PyTorch's `torch.autograd.detect_anomaly`).

    with minigrad.autograd.detect_anomaly():
        loss = model(x).sum()        # each op records where your code created it
        loss.backward()              # RuntimeError: ... 'log' ... created at train.py:12

While the context is active, every op recorded by `Function.apply` stores the file, line and
function of the first caller outside the minigrad package (`ctx.created_at`), and every
backward checks the gradients each node returns; the first one holding NaN or inf raises a
RuntimeError naming the op, its output's shape, the input whose gradient went bad, and the
place the op was created, with that source line. Off by default: then `apply` and the
backward pass test one flag and do nothing else.
"""
from __future__ import annotations

import contextlib
import linecache
import os
import sys

import numpy as np

_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # .../minigrad

# Called with each node `Function.apply` records, while not empty: detect_anomaly() adds
# `record_creation_site`, minigrad.viz.record_modules() its module-path recorder.
node_annotators: list = []
_depth = [0]  # nested detect_anomaly() blocks


def is_anomaly_enabled() -> bool:
    return _depth[0] > 0


@contextlib.contextmanager
def detect_anomaly():
    """Record where each op is created and check every backward for NaN/inf (slower).

    Process-wide while the block runs (as PyTorch's); blocks may nest."""
    if _depth[0] == 0:
        node_annotators.append(record_creation_site)
    _depth[0] += 1
    try:
        yield
    finally:
        _depth[0] -= 1
        if _depth[0] == 0:
            node_annotators.remove(record_creation_site)


def record_creation_site(ctx) -> None:
    ctx.created_at = creation_site(3)  # this function, Function.apply, then its caller


def creation_site(depth: int = 2) -> tuple | None:
    """(filename, line, function) of the first frame outside minigrad, from `depth` up."""
    frame = sys._getframe(depth)
    while frame is not None:
        filename = frame.f_code.co_filename
        if not os.path.abspath(filename).startswith(_PACKAGE_DIR + os.sep):
            return filename, frame.f_lineno, frame.f_code.co_name
        frame = frame.f_back
    return None


def describe_site(site) -> str:
    if site is None:
        return "created inside minigrad (no caller outside it)"
    filename, line, function = site
    source = linecache.getline(filename, line).strip()
    return f"created at {filename}:{line} in {function}()" + (f"\n    {source}" if source else "")


def check_gradients(ctx, output, parent_grads) -> None:
    """Raise when a gradient returned by `ctx.backward` holds NaN or inf."""
    if not isinstance(parent_grads, tuple):
        parent_grads = (parent_grads,)
    for position, grad in enumerate(parent_grads):
        if grad is None:
            continue
        values = grad if isinstance(grad, np.ndarray) else np.asarray(getattr(grad, "data", grad))
        if values.dtype.kind == "f" and not np.isfinite(values).all():
            bad = "NaN" if np.isnan(values).any() else "inf"
            raise RuntimeError(
                f"detect_anomaly: the backward of '{ctx.name}' (output shape {tuple(output.shape)}) "
                f"returned {bad} in the gradient of its input {position} (shape {values.shape}); "
                f"the op was {describe_site(getattr(ctx, 'created_at', None))}")
