"""The run folder (`--out DIR`): never mix two runs in one folder, and resume with the same settings.

    DIR/checkpoint/      the last checkpoint (gpt.training.checkpoint)
    DIR/metrics.jsonl    one record per logged or evaluated step (gpt.training.progress)
    DIR/loss.png         `gpt plot DIR`
    DIR/diagnostics.png  `gpt plot DIR` of a `--diagnostics N` run

A folder that holds a run is refused unless `--resume` (continue it from its checkpoint, with
its stored settings) or `--overwrite` (replace it, once the new run has started).
"""
from __future__ import annotations

import shutil
from pathlib import Path

from . import checkpoint as ckpt
from .config import RUN_CONTROL_FIELDS, TrainConfig, config_differences
from .errors import TrainingError


def prepare_run_dir(config: TrainConfig, run_dir: Path | None):
    """(checkpoint to resume or None, whether an old run is to be replaced by --overwrite).

    Refuses a folder holding another run unless resume/overwrite."""
    if run_dir is None:
        if config.resume:
            raise TrainingError("resume needs the run folder (--out DIR) holding the checkpoint")
        return None, False
    if run_dir.exists() and not run_dir.is_dir():
        raise TrainingError(f"--out {run_dir} is a file, not a folder")
    holds_run = run_dir.is_dir() and (ckpt.is_checkpoint(run_dir) or (run_dir / "metrics.jsonl").exists())
    if config.resume:
        if not ckpt.is_checkpoint(run_dir):
            raise TrainingError(f"nothing to resume in {run_dir}: it holds no checkpoint "
                                f"(start a new run without --resume)")
        return ckpt.read_checkpoint(run_dir), False
    if holds_run and not config.overwrite:
        raise TrainingError(f"{run_dir} already holds a training run; pass --resume to "
                            f"continue it or --overwrite to replace it (or choose another --out)")
    return None, holds_run  # the old run is removed only once the new one has started


def remove_old_run(run_dir: Path) -> None:
    """--overwrite: delete the previous run's checkpoint and metrics (only ours, not the folder)."""
    for name in (ckpt.CHECKPOINT_DIR, ckpt.OLD_DIR):
        shutil.rmtree(run_dir / name, ignore_errors=True)
    for name in ("metrics.jsonl", "loss.png", "diagnostics.png"):
        (run_dir / name).unlink(missing_ok=True)


def resumed_config(checkpoint, given: TrainConfig, explicit: set | None) -> TrainConfig:
    """The stored config of `checkpoint`, with the run-control fields (steps, logging, ...) the
    caller gave; any other field the caller set differently is an error that lists them."""
    stored = checkpoint.config.get("train_config")
    if not isinstance(stored, dict):
        raise ckpt.CheckpointError(f"checkpoint {checkpoint.path} has no training config to resume from")
    saved = TrainConfig.from_dict(stored)
    if explicit is None:  # called from Python: what the caller changed from the defaults
        defaults = TrainConfig()
        explicit = {name for name, value in given.to_dict().items() if getattr(defaults, name) != value}
    differences = config_differences(saved, given, explicit)
    if differences:
        listed = "; ".join(f"{name}: {old!r} in the checkpoint, {new!r} now" for name, old, new in differences)
        raise TrainingError(f"cannot resume {checkpoint.path} with different settings ({listed}); "
                            f"a resumed run keeps its data, model and optimizer settings")
    values = saved.to_dict()
    for name in RUN_CONTROL_FIELDS:
        if name in explicit or name in ("out", "resume", "overwrite", "stop_at", "quiet"):
            values[name] = getattr(given, name)
    resumed = TrainConfig.from_dict(values)
    resumed.validate()
    return resumed
