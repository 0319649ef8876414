"""Faults around a run folder, made here: a full disk while saving, a new --overwrite run that
fails (or is killed) before its first checkpoint, a second process on the same folder, a
symlinked checkpoint/, Ctrl-C before training starts, a second SIGTERM in the middle of a long
C call, bad flags and huge error messages. Each ends in one line and a clear exit code, and
nothing that was on disk is lost."""
from __future__ import annotations

import errno
import json
import os
import stat
import subprocess
import sys
import textwrap

import pytest

import minigrad
from gpt.cli import main
from gpt.training import checkpoint as ckpt
from gpt.training import loop
from gpt.training.checkpoint import CheckpointError
from gpt.training.loop import TrainingError
from gpt.training.run_dir import REPLACED_DIR, RunLock, prepare_run_dir, set_aside_old_run
from gpt.training.config import TrainConfig
from minigrad.untrusted import MAX_MESSAGE

TEXT = "The quick brown fox jumps over the lazy dog. A for statement iterates over items. " * 60
TINY = ["--tokenizer", "bytes", "--preset", "tiny", "--batch-size", "4", "--eval-every", "1000",
        "--eval-batches", "1", "--sample-tokens", "0", "--threads", "1", "--quiet"]


@pytest.fixture
def data(tmp_path):
    path = tmp_path / "text.txt"
    path.write_text(TEXT)
    return path


def gpt_train(data, out, *flags):
    return main(["train", "--data", str(data), "--out", str(out), *TINY, *flags])


def full_disk_after(monkeypatch, good_saves: int):
    """minigrad.save works `good_saves` times, then the disk is full."""
    real_save, calls = minigrad.save, []

    def save(obj, path):
        calls.append(path)
        if len(calls) > good_saves:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real_save(obj, path)

    monkeypatch.setattr(minigrad, "save", save)


def one_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1, text
    assert len(lines[0]) < MAX_MESSAGE + 100
    return lines[0]


def test_full_disk_while_saving_is_one_line_and_the_last_checkpoint_stays(data, tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    full_disk_after(monkeypatch, good_saves=3)  # the checkpoint of step 2: model, optimizer, state
    assert gpt_train(data, out, "--max-steps", "4", "--save-every", "2") == 1
    line = one_line(capsys.readouterr().err)
    assert "could not write the checkpoint of step 4" in line and "No space left on device" in line
    assert f"the checkpoint of step 2 in {out / 'checkpoint'} is intact" in line
    monkeypatch.undo()
    assert ckpt.read_checkpoint(out).step == 2
    assert not list(out.glob(".checkpoint.tmp-*"))  # the failed save cleaned up after itself


def test_overwrite_keeps_the_old_run_until_the_new_one_has_a_checkpoint(data, tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    assert gpt_train(data, out, "--max-steps", "2") == 0
    metrics = (out / "metrics.jsonl").read_text()
    full_disk_after(monkeypatch, good_saves=0)  # the new run cannot save anything
    assert gpt_train(data, out, "--max-steps", "3", "--overwrite") == 1
    assert "the run it replaces is put back" in capsys.readouterr().err
    monkeypatch.undo()
    assert ckpt.read_checkpoint(out).step == 2 and (out / "metrics.jsonl").read_text() == metrics
    assert not (out / REPLACED_DIR).exists()
    assert gpt_train(data, out, "--max-steps", "3", "--overwrite") == 0  # a good new run replaces it
    assert ckpt.read_checkpoint(out).step == 3 and not (out / REPLACED_DIR).exists()


def test_overwrite_killed_before_its_first_checkpoint_is_undone_next_time(data, tmp_path, capsys):
    out = tmp_path / "run"
    assert gpt_train(data, out, "--max-steps", "2") == 0
    set_aside_old_run(out)  # what --overwrite does at the start; then kill -9
    (out / "metrics.jsonl").write_text('{"step": 0}\n')  # the new run's first line
    assert not ckpt.is_checkpoint(out)
    assert gpt_train(data, out, "--max-steps", "3") == 1  # the folder holds the old run again
    err = capsys.readouterr().err
    assert "already holds a training run" in err
    assert ckpt.read_checkpoint(out).step == 2 and not (out / REPLACED_DIR).exists()


def test_a_second_process_on_the_same_run_folder_is_refused(data, tmp_path, capsys):
    out = tmp_path / "run"
    lock = RunLock(out)  # as another process holding the folder would
    try:
        assert gpt_train(data, out, "--max-steps", "2") == 1
        assert f"another process (pid {os.getpid()}) is training in it" in one_line(capsys.readouterr().err)
    finally:
        lock.release()
    assert gpt_train(data, out, "--max-steps", "2") == 0  # released: the folder is usable


def test_symlinked_checkpoint_folder_is_refused_before_anything_is_written(data, tmp_path, capsys):
    out = tmp_path / "run"
    assert gpt_train(data, out, "--max-steps", "2") == 0
    elsewhere = tmp_path / "elsewhere"
    os.rename(out / "checkpoint", elsewhere)
    os.symlink(elsewhere, out / "checkpoint")
    assert gpt_train(data, out, "--max-steps", "4", "--resume") == 1
    assert "is a symbolic link" in one_line(capsys.readouterr().err)
    assert ckpt.load_checkpoint(out)[2]["step"] == 2  # reading through the link still works
    with pytest.raises(CheckpointError, match="symbolic link"):
        ckpt.save_checkpoint(out, *ckpt.load_checkpoint(out)[:2])
    assert (out / "checkpoint").is_symlink() and ckpt.read_checkpoint(elsewhere).step == 2


@pytest.mark.parametrize("where", ["parser", "data"])
def test_ctrl_c_before_training_starts_is_one_line_and_exit_130(data, tmp_path, monkeypatch, capsys, where):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    if where == "parser":
        monkeypatch.setattr("gpt.cli.dispatch.build_parser", interrupted)
    else:
        monkeypatch.setattr(loop, "build_data", interrupted)
    assert gpt_train(data, tmp_path / "run", "--max-steps", "2") == 130
    assert "interrupted" in one_line(capsys.readouterr().err)


SECOND_SIGTERM = textwrap.dedent("""
    import os, signal, threading, time
    import numpy as np
    from gpt.training.interrupt import StopFlag
    from gpt.training.progress import Progress

    def send_twice():
        time.sleep(0.3)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.2)
        os.kill(os.getpid(), signal.SIGTERM)

    matrix = np.ones((4000, 4000), dtype=np.float32)
    with StopFlag(Progress(enabled=True)):
        threading.Thread(target=send_twice, daemon=True).start()
        matrix @ matrix  # one long BLAS call: Python runs no signal handler until it returns
        print("the long call finished", flush=True)
""")


def test_a_second_sigterm_stops_at_once_even_inside_a_long_c_call(tmp_path):
    script = tmp_path / "second_sigterm.py"
    script.write_text(SECOND_SIGTERM)
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 130, done.stderr
    assert "the long call finished" not in done.stdout  # stopped inside it, not after
    assert "stopped at once" in done.stderr.splitlines()[-1]


def test_bad_seed_and_huge_messages(data, tmp_path, monkeypatch, capsys):
    with pytest.raises(SystemExit) as caught:
        gpt_train(data, tmp_path / "run", "--seed", "-1")
    assert caught.value.code == 2 and "argument --seed" in capsys.readouterr().err

    def huge(*args, **kwargs):
        raise ValueError("x" * 1_000_000)

    monkeypatch.setattr(loop, "build_data", huge)
    assert gpt_train(data, tmp_path / "run", "--max-steps", "2") == 1
    assert "more characters" in one_line(capsys.readouterr().err)


def test_checkpoint_files_follow_the_umask(data, tmp_path):
    previous = os.umask(0o022)
    try:
        assert gpt_train(data, tmp_path / "run", "--max-steps", "1") == 0
    finally:
        os.umask(previous)
    modes = {path.name: stat.S_IMODE(path.stat().st_mode) for path in (tmp_path / "run" / "checkpoint").iterdir()}
    assert set(modes.values()) == {0o644}, modes
