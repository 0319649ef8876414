"""The run folder (`--out DIR`): never mix two runs in one folder, and resume with the same settings.

    DIR/checkpoint/      the last checkpoint (gpt.training.checkpoint)
    DIR/metrics.jsonl    one record per logged or evaluated step (gpt.training.progress)
    DIR/loss.png         `gpt plot DIR`
    DIR/diagnostics.png  `gpt plot DIR` of a `--diagnostics N` run

A folder that holds a run is refused unless `--resume` (continue it from its checkpoint, with
its stored settings) or `--overwrite` (replace it). Nothing is lost on the way:

- --overwrite moves the old run's files into DIR/.replaced-run/ when the new run starts; they
  are deleted only once the new run's first checkpoint is on disk, and put back if the new run
  fails before that (or, after a kill -9, by the next `gpt train` in that folder).
- DIR/.lock (an flock held while a run trains in DIR) refuses a second process, naming the
  first one's pid; the operating system releases it when that process ends, however it ends.
- a checkpoint/ that is a symbolic link is refused before anything is written.
"""
from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
from pathlib import Path

try:  # POSIX file locks; elsewhere the run folder is not locked
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

from . import checkpoint as ckpt
from .checkpoint_checks import check_resumable
from .config import RUN_CONTROL_FIELDS, TrainConfig, config_differences
from .errors import TrainingError


LOCK_FILE = ".lock"
REPLACED_DIR = ".replaced-run"  # --overwrite: the old run, until the new one has a checkpoint
RUN_FILES = (ckpt.CHECKPOINT_DIR, ckpt.OLD_DIR, "metrics.jsonl", "loss.png", "diagnostics.png")


class RunLock:
    """An exclusive lock on a run folder for as long as one process trains in it."""

    def __init__(self, run_dir: Path):
        self.path = run_dir / LOCK_FILE
        self.handle = None
        if fcntl is None:
            return
        run_dir.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            owner = handle.read().strip()[:20] or "unknown"
            handle.close()
            raise TrainingError(f"{run_dir} is in use: another process (pid {owner}) is training in it "
                                f"(lock file {self.path}); wait for it to end, or choose another --out") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self.handle = handle

    def release(self) -> None:
        if self.handle is not None:
            fcntl.flock(self.handle, fcntl.LOCK_UN)
            self.handle.close()
            self.handle = None


class RunFolder:
    """The run folder while one run trains in it (rank 0): its lock, and the old run that
    --overwrite replaces, kept aside until the new run's first checkpoint is on disk."""

    def __init__(self, run_dir: Path | None, lock: bool = True):
        self.run_dir = run_dir
        self.lock = RunLock(run_dir) if run_dir is not None and lock else None
        self.old_run_aside = False

    def set_aside_old_run(self) -> None:
        set_aside_old_run(self.run_dir)
        self.old_run_aside = True

    def saved(self) -> None:
        """A checkpoint of the new run is on disk: the replaced run can go."""
        if self.old_run_aside:
            discard_old_run(self.run_dir)
            self.old_run_aside = False

    def failed(self) -> None:
        """The run ends without a checkpoint: the replaced run is put back."""
        if self.old_run_aside:
            restore_old_run(self.run_dir)
            self.old_run_aside = False

    def close(self) -> None:
        if self.lock is not None:
            self.lock.release()
            self.lock = None

    def save_checkpoint(self, model, tokenizer, saved_step: int | None, **options) -> Path:
        """ckpt.save_checkpoint into the run folder; a save that fails (a full disk, a quota) is
        one TrainingError saying where, and which step (`saved_step`, None: none) is intact.
        The first checkpoint of an --overwrite run lets the replaced run go."""
        try:
            path = ckpt.save_checkpoint(self.run_dir, model, tokenizer, **options)
        except OSError as error:
            if saved_step is not None:
                intact = f"the checkpoint of step {saved_step} in {self.run_dir / ckpt.CHECKPOINT_DIR} is intact"
            else:
                intact = "no checkpoint of this run is on disk" + (
                    " (the run it replaces is put back)" if self.old_run_aside else "")
            step = options.get("state", {}).get("step")
            raise TrainingError(f"could not write the checkpoint of step {step} in {self.run_dir}: "
                                f"{error.strerror or error}; {intact}") from None
        self.saved()
        return path


@contextmanager
def held_run_folder(run_dir: Path | None, lock: bool = True):
    """The RunFolder of a run from start to end: locked (when `lock`), the replaced run put back
    if the run fails before its first checkpoint, the lock released however it ends."""
    folder = RunFolder(run_dir, lock)
    try:
        yield folder
    except BaseException:
        folder.failed()
        raise
    finally:
        folder.close()


def recover_replaced_run(run_dir: Path) -> str | None:
    """After a kill -9 during --overwrite: put the old run back if the new one never saved a
    checkpoint, else drop it. Returns a line saying what was done (None: nothing to do)."""
    aside = run_dir / REPLACED_DIR
    if not aside.is_dir():
        return None
    if ckpt.is_checkpoint(run_dir):
        shutil.rmtree(aside, ignore_errors=True)
        return None
    restore_old_run(run_dir)
    return (f"note: a run started with --overwrite in {run_dir} ended before its first checkpoint; "
            f"the run it was replacing is back in place")


def set_aside_old_run(run_dir: Path) -> None:
    """--overwrite: move the old run's files into DIR/.replaced-run/ (same file system: renames)."""
    aside = run_dir / REPLACED_DIR
    aside.mkdir(exist_ok=True)
    for name in RUN_FILES:
        if (run_dir / name).exists() or (run_dir / name).is_symlink():
            os.replace(run_dir / name, aside / name)


def restore_old_run(run_dir: Path) -> None:
    """Undo `set_aside_old_run`: the new run's files (no checkpoint yet) give way to the old ones."""
    aside = run_dir / REPLACED_DIR
    for name in RUN_FILES:
        if (aside / name).exists() or (aside / name).is_symlink():
            target = run_dir / name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            elif target.exists() or target.is_symlink():
                target.unlink()
            os.replace(aside / name, target)
    shutil.rmtree(aside, ignore_errors=True)


def discard_old_run(run_dir: Path) -> None:
    """The new run's first checkpoint is on disk: the replaced run can go."""
    shutil.rmtree(run_dir / REPLACED_DIR, ignore_errors=True)


def prepare_run_dir(config: TrainConfig, run_dir: Path | None, log=None):
    """(checkpoint to resume or None, whether an old run is to be replaced by --overwrite).

    Refuses a folder holding another run unless resume/overwrite, and a symlinked checkpoint/."""
    if run_dir is None:
        if config.resume:
            raise TrainingError("resume needs the run folder (--out DIR) holding the checkpoint")
        return None, False
    if run_dir.exists() and not run_dir.is_dir():
        raise TrainingError(f"--out {run_dir} is a file, not a folder")
    if run_dir.is_dir():
        ckpt.check_not_symlinks(run_dir)
        note = recover_replaced_run(run_dir)
        if note and log is not None:
            log(note)
    holds_run = run_dir.is_dir() and (ckpt.is_checkpoint(run_dir) or (run_dir / "metrics.jsonl").exists())
    if config.resume:
        if not ckpt.is_checkpoint(run_dir):
            raise TrainingError(f"nothing to resume in {run_dir}: it holds no checkpoint "
                                f"(start a new run without --resume)")
        checkpoint = ckpt.read_checkpoint(run_dir)
        check_resumable(checkpoint, checkpoint.path / ckpt.STATE_FILE)
        return checkpoint, False
    if holds_run and not config.overwrite:
        raise TrainingError(f"{run_dir} already holds a training run; pass --resume to "
                            f"continue it or --overwrite to replace it (or choose another --out)")
    return None, holds_run  # set aside when the new run starts, deleted at its first checkpoint


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
