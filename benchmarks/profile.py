"""Per-op time breakdown of a training step: every `Function` subclass's forward and backward
timed by wrappers installed for the duration of a `with OpProfiler():` block.

    with OpProfiler() as profiler:
        for _ in range(3):
            profiler.step(train_step, optimizer)
    rows = profiler.report()          # [{"op", "forward_ms", "backward_ms", "calls", ...}, ...]

Besides the ops it times the whole step, `Tensor.backward` (so the engine's own work, the
topological sort and gradient bookkeeping, shows as "backward engine"), the optimizer step
and gradient clipping; "forward glue" is what the forward pass spends outside any op (module
calls, argument checks, Tensor wrapping). Times are per step, averaged over the steps.
"""
from __future__ import annotations

import functools
import time
from collections import defaultdict

from minigrad import Tensor
from minigrad.autograd import Function
from minigrad.nn import utils as nn_utils


def _subclasses(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


class OpProfiler:
    def __init__(self, clock=time.perf_counter):
        self.clock = clock  # time.process_time measures CPU time (a loaded machine)
        self.ops = defaultdict(lambda: [0.0, 0, 0.0, 0])  # name -> [fwd s, fwd calls, bwd s, bwd calls]
        self.phases = defaultdict(float)  # "step", "backward", "optimizer", "clip" -> seconds
        self.steps = 0
        self._restore = []

    # ------------------------------------------------------------ patching
    def _patch(self, owner, name, wrapper_factory):
        original = owner.__dict__[name]
        setattr(owner, name, wrapper_factory(original))
        self._restore.append((owner, name, original))

    def _op_wrapper(self, slot):
        def factory(method):
            @functools.wraps(method)
            def timed(ctx, *args, **kwargs):
                start = self.clock()
                try:
                    return method(ctx, *args, **kwargs)
                finally:
                    entry = self.ops[type(ctx).__name__]
                    entry[slot] += self.clock() - start
                    entry[slot + 1] += 1
            return timed
        return factory

    def _phase_wrapper(self, phase):
        def factory(function):
            @functools.wraps(function)
            def timed(*args, **kwargs):
                start = self.clock()
                try:
                    return function(*args, **kwargs)
                finally:
                    self.phases[phase] += self.clock() - start
            return timed
        return factory

    def __enter__(self):
        for cls in set(_subclasses(Function)):
            if "forward" in cls.__dict__:
                self._patch(cls, "forward", self._op_wrapper(0))
            if "backward" in cls.__dict__:
                self._patch(cls, "backward", self._op_wrapper(2))
        self._patch(Tensor, "backward", self._phase_wrapper("backward"))
        self._patch(nn_utils, "grad_norm", self._phase_wrapper("clip"))  # (clip_grad_norm calls it)
        return self

    def __exit__(self, *exc):
        for owner, name, original in reversed(self._restore):
            setattr(owner, name, original)
        self._restore.clear()

    def step(self, train_step, optimizer) -> None:
        """Run and time one training step; `optimizer.step` is timed as its own phase."""
        original = optimizer.step
        optimizer.step = self._phase_wrapper("optimizer")(original)
        try:
            start = self.clock()
            train_step()
            self.phases["step"] += self.clock() - start
        finally:
            del optimizer.step  # back to the class's method
        self.steps += 1

    # ------------------------------------------------------------ results
    def report(self) -> dict:
        """{"step_ms", "rows": [{"name", "forward_ms", "backward_ms", "calls"}], ...} per step."""
        steps = max(self.steps, 1)
        ms = lambda seconds: 1e3 * seconds / steps  # noqa: E731
        rows = []
        for name, (fwd, fwd_calls, bwd, bwd_calls) in self.ops.items():
            rows.append({"name": name, "forward_ms": ms(fwd), "backward_ms": ms(bwd),
                         "calls": fwd_calls // steps})
        op_forward = sum(r["forward_ms"] for r in rows)
        op_backward = sum(r["backward_ms"] for r in rows)
        step = ms(self.phases["step"])
        backward = ms(self.phases["backward"])
        optimizer = ms(self.phases["optimizer"])
        clip = ms(self.phases["clip"])
        rows.sort(key=lambda r: -(r["forward_ms"] + r["backward_ms"]))
        rows.append({"name": "(forward glue)", "forward_ms": step - backward - optimizer - clip - op_forward,
                     "backward_ms": 0.0, "calls": 0})
        rows.append({"name": "(backward engine)", "forward_ms": 0.0,
                     "backward_ms": backward - op_backward, "calls": 0})
        rows.append({"name": "AdamW step", "forward_ms": optimizer, "backward_ms": 0.0, "calls": 1})
        rows.append({"name": "clipping norm", "forward_ms": clip, "backward_ms": 0.0, "calls": 1})
        return {"step_ms": step, "rows": rows}


def format_profile(profile: dict, title: str) -> str:
    """A markdown table of a profile report, the costliest op first."""
    step = profile["step_ms"]
    lines = [f"#### {title}: {step:.1f} ms per step", "",
             "| op | calls | forward ms | backward ms | total ms | share |",
             "|---|---:|---:|---:|---:|---:|"]
    for row in profile["rows"]:
        total = row["forward_ms"] + row["backward_ms"]
        lines.append(f"| {row['name']} | {row['calls'] or ''} | {row['forward_ms']:.1f} | "
                     f"{row['backward_ms']:.1f} | {total:.1f} | {100 * total / step:.1f}% |")
    return "\n".join(lines)
