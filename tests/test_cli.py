"""The `gpt` command line end to end, in subprocesses (`python -m gpt ...`), on a tiny config."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gpt.training import checkpoint as ckpt
from gpt.cli import main

TEXT = ("The for statement iterates over the items of any sequence, such as a list or a string. "
        "The while statement is used for repeated execution as long as an expression is true. ") * 30
TINY = ["--preset", "tiny", "--tokenizer", "bytes", "--batch-size", "8", "--threads", "1",
        "--sample-tokens", "8", "--eval-batches", "2"]


def gpt(*args, timeout=120, **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, "-m", "gpt", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, env=env, **kwargs)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny run trained once through the command line: (run folder, data file, process)."""
    folder = tmp_path_factory.mktemp("cli")
    data = folder / "text.txt"
    data.write_text(TEXT)
    run = folder / "run"
    done = gpt("train", "--data", data, "--out", run, *TINY, "--max-steps", "12", "--eval-every", "6",
               "--log-every", "3")
    assert done.returncode == 0, done.stderr
    return run, data, done


def test_train_prints_progress_and_writes_the_run(trained):
    run, _, done = trained
    lines = done.stdout.splitlines()
    progress = [line for line in lines if line.startswith("step ") and "tok/s" in line]
    assert len(progress) == 4  # every 3 steps of 12; plain lines (stdout is a pipe)
    assert all(key in progress[-1] for key in ("12/12", "epoch", "loss", "lr", "mfu", "elapsed", "ETA"))
    assert any(line.startswith("sample: ") for line in lines)
    assert "final sample" in done.stdout
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert {"step", "train_loss", "val_loss", "val_ppl", "elapsed"} <= set(records[-1])
    assert {"lr", "tokens_per_s", "mfu"} <= set(records[-2])
    assert ckpt.read_checkpoint(run).step == 12


def test_eval_and_generate(trained):
    run, data, _ = trained
    done = gpt("eval", "--checkpoint", run, "--threads", "1")
    assert done.returncode == 0, done.stderr
    assert "perplexity" in done.stdout and "val split" in done.stdout
    done = gpt("eval", "--checkpoint", run, "--data", data)
    assert done.returncode == 0, done.stderr
    first = gpt("generate", "--checkpoint", run, "--prompt", "The for", "--max-new-tokens", "20",
                "--seed", "1", "--top-k", "20")
    second = gpt("generate", "--checkpoint", run, "--prompt", "The for", "--max-new-tokens", "20",
                 "--seed", "1", "--top-k", "20")
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith("The for") and first.stdout == second.stdout


def test_occupied_folder_and_resume(trained, tmp_path):
    run, data, _ = trained
    done = gpt("train", "--data", data, "--out", run, *TINY, "--max-steps", "12")
    assert done.returncode == 1
    assert "already holds a training run" in done.stderr and "Traceback" not in done.stderr
    done = gpt("train", "--data", data, "--out", run, "--resume", "--emb-dim", "64")
    assert done.returncode == 1 and "emb_dim" in done.stderr and "Traceback" not in done.stderr


def test_plot_without_matplotlib_says_how_to_install(trained, monkeypatch, capsys):
    run, _, _ = trained
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    assert main(["plot", str(run)]) == 1
    assert 'pip install "minigrad-gpt[plot]"' in capsys.readouterr().err


def test_plot_with_matplotlib(trained, tmp_path):
    pytest.importorskip("matplotlib")
    run, _, _ = trained
    assert main(["plot", str(run), "--out", str(tmp_path / "loss.png")]) == 0
    assert (tmp_path / "loss.png").stat().st_size > 1000


def test_usage_errors_exit_2(tmp_path):
    done = gpt("train", "--out", tmp_path / "x", "--no-such-flag")
    assert done.returncode == 2 and "unrecognized arguments: --no-such-flag" in done.stderr
    done = gpt("train", "--out", tmp_path / "x", "--preset", "huge")
    assert done.returncode == 2 and "invalid choice: 'huge'" in done.stderr and "tiny" in done.stderr
    done = gpt("train", "--out", tmp_path / "x", "--tokenizer", "words")
    assert done.returncode == 2 and "bytes, gpt2, bpe:N" in done.stderr


def test_user_errors_exit_1_without_traceback(tmp_path):
    data = tmp_path / "short.txt"
    data.write_text("Too short for a batch. " * 10)
    done = gpt("train", "--data", data, "--out", tmp_path / "run", *TINY, "--batch-size", "64")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "windows of context 16" in done.stderr and "batch size 64" in done.stderr
    done = gpt("generate", "--checkpoint", tmp_path, "--prompt", "x")
    assert done.returncode == 1 and "no checkpoint" in done.stderr and "Traceback" not in done.stderr
    data.write_text(TEXT)
    done = gpt("train", "--data", data, "--out", tmp_path / "nan", *TINY, "--lr", "1e30",
               "--grad-clip", "0", "--warmup-steps", "0", "--max-steps", "30")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "diverged at step" in done.stderr


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_saves_a_loadable_checkpoint(tmp_path, signum):
    data = tmp_path / "text.txt"
    data.write_text(TEXT)
    run = tmp_path / "run"
    process = subprocess.Popen(
        [sys.executable, "-m", "gpt", "train", "--data", str(data), "--out", str(run), *TINY,
         "--max-steps", "100000", "--log-every", "1", "--eval-every", "100000", "--save-every", "100000"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        deadline = time.monotonic() + 60
        for line in process.stdout:  # wait until training steps are running
            if re.match(r"step +3/", line) and "tok/s" in line:
                break
            assert time.monotonic() < deadline, "no progress line within 60 s"
        process.send_signal(signum)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, err
    assert "interrupted at step" in out
    assert f"gpt train --out {run} --resume" in out  # what to run next
    model, tokenizer, info = ckpt.load_checkpoint(run)
    assert 3 <= info["step"] < 100000
    done = gpt("train", "--data", data, "--out", run, "--resume", "--stop-at", str(info["step"] + 2),
               "--threads", "1")
    assert done.returncode == 0, done.stderr
    assert ckpt.read_checkpoint(run).step == info["step"] + 2


def test_generate_and_eval_accept_a_gpt2_folder(tmp_path):
    from conftest import shared_path

    for layout in ("hf", "openai"):
        folder = shared_path("tiny-gpt2", layout)
        done = gpt("generate", "--checkpoint", folder, "--prompt", "Hello, world", "--max-new-tokens", "5",
                   "--temperature", "0")
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith("Hello, world") and len(done.stdout) > len("Hello, world\n")
    text = tmp_path / "text.txt"
    text.write_text(TEXT)
    done = gpt("eval", "--checkpoint", shared_path("tiny-gpt2", "hf"), "--data", text)
    assert done.returncode == 0, done.stderr
    assert "GPT-2 weights" in done.stdout and "perplexity" in done.stdout
