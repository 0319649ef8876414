"""A newcomer's first hour: the data folder is never written (on the first run, with a writable
copy of the shared data), and a run trained with GPT-2's tokenizer samples offline from any
folder, with no tokenizer path, because its checkpoint carries the tokenizer."""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import shared_path

import gpt
from gpt.training import checkpoint as ckpt

TINY = ["--preset", "tiny", "--batch-size", "2", "--context-length", "32", "--threads", "1",
        "--sample-tokens", "0", "--eval-batches", "1", "--max-steps", "2"]


def gpt_cli(*args, env=None, cwd=None, timeout=180) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "GPT_OFFLINE": "1", **(env or {})}
    env = {key: value for key, value in env.items() if value is not None}
    return subprocess.run([sys.executable, "-m", "gpt", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=cwd)


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under `folder` -> the SHA-256 of its bytes."""
    return {str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(folder.rglob("*")) if path.is_file()}


@pytest.fixture(scope="module")
def writable_shared(tmp_path_factory) -> Path:
    """A writable copy of ../shared/data, as a fresh clone with `../shared` beside it has."""
    copy = tmp_path_factory.mktemp("shared") / "data"
    shutil.copytree(shared_path(), copy)
    for path in [copy, *copy.rglob("*")]:
        path.chmod(path.stat().st_mode | 0o200)
    return copy


@pytest.fixture(scope="module")
def gpt2_run(writable_shared, tmp_path_factory):
    """Two steps on the-verdict.txt with GPT-2's tokenizer, through the command line:
    (run folder, the data folder's snapshot before, the training process)."""
    before = snapshot(writable_shared)
    run = tmp_path_factory.mktemp("runs") / "verdict"
    done = gpt_cli("train", "--data", writable_shared / "the-verdict.txt", "--tokenizer", "gpt2",
                   "--tokenizer-path", writable_shared / "gpt2", "--out", run, *TINY)
    assert done.returncode == 0, done.stderr
    return run, before, done


def test_the_data_folder_is_unchanged_after_train_eval_and_the_python_api(gpt2_run, writable_shared):
    run, before, _ = gpt2_run
    done = gpt_cli("eval", "--checkpoint", run, "--data", writable_shared / "the-verdict.txt", "--threads", "1",
                   "--max-batches", "1")
    assert done.returncode == 0, done.stderr
    done = gpt_cli("eval", "--checkpoint", run, "--threads", "1", "--max-batches", "1")  # the run's own split
    assert done.returncode == 0, done.stderr
    tokenizer = gpt.get_tokenizer("gpt2", path=writable_shared / "gpt2")
    assert len(gpt.tokenize_files(writable_shared / "the-verdict.txt", tokenizer)) == 5145
    assert len(gpt.tokenize_files(writable_shared, "bytes")) > 0  # the whole folder (.txt and .md files)
    assert snapshot(writable_shared) == before  # on the first run: nothing written beside the text


def test_the_end_of_training_says_what_to_run_next(gpt2_run):
    run, _, done = gpt2_run
    tail = done.stdout[done.stdout.index("next:"):]
    for command in (f"gpt generate --checkpoint {run} --prompt The", f"gpt eval --checkpoint {run}", f"gpt plot {run}"):
        assert command in tail


def test_the_cache_goes_beside_the_text_only_when_asked(tmp_path):
    text = tmp_path / "data" / "t.txt"
    text.parent.mkdir()
    text.write_text("The quick brown fox jumps over the lazy dog. " * 60)
    done = gpt_cli("train", "--data", text, "--tokenizer", "bytes", "--out", tmp_path / "run", *TINY,
                   "--cache-beside-data")
    assert done.returncode == 0, done.stderr
    assert len(list(text.parent.glob("t.txt.bytes.*.tokens.npy"))) == 1


def test_a_gpt2_tokenizer_run_samples_offline_from_another_folder(gpt2_run, tmp_path):
    run, _, _ = gpt2_run
    assert ckpt.TOKENIZER_FILE in ckpt.read_checkpoint(run).files
    moved = tmp_path / "elsewhere" / "verdict"
    shutil.copytree(run, moved)
    offline = {"GPT2_TOKENIZER_DIR": None, "TIKTOKEN_CACHE_DIR": str(tmp_path / "no-tiktoken-cache"),
               "DATA_GYM_CACHE_DIR": None}
    done = gpt_cli("generate", "--checkpoint", "verdict", "--prompt", "Every effort moves you",
                   "--max-new-tokens", "3", "--threads", "1", env=offline, cwd=moved.parent)
    assert done.returncode == 0, done.stderr
    assert "Every effort moves you" in done.stdout
    done = gpt_cli("eval", "--checkpoint", moved, "--data", shared_path("the-verdict.txt"), "--threads", "1",
                   "--max-batches", "1", env=offline)
    assert done.returncode == 0, done.stderr
    assert "perplexity" in done.stdout
    done = gpt_cli("explain", "--checkpoint", moved, "--prompt", "Every effort", "--max-new-tokens", "1",
                   "--out", tmp_path / "page.html", "--threads", "1", env=offline)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "page.html").is_file()


def test_a_carried_tokenizer_that_was_altered_is_refused(gpt2_run, tmp_path):
    run, _, _ = gpt2_run
    moved = tmp_path / "run"
    shutil.copytree(run, moved)
    carried = moved / "checkpoint" / ckpt.TOKENIZER_FILE
    carried.write_bytes(carried.read_bytes().replace(b" 100\n", b" 101\n", 1))
    with pytest.raises(ckpt.CheckpointError, match="tokenizer.tiktoken"):
        ckpt.load_checkpoint(moved)


def test_tokens_seen_are_logged_and_can_be_the_x_axis(gpt2_run):
    from gpt.training.plot import loss_curves
    from gpt.training.progress import read_metrics

    run, _, _ = gpt2_run
    records = read_metrics(run)
    logged = [r for r in records if "train_loss" in r]
    assert logged and all(r["tokens_seen"] == r["step"] * 2 * 32 for r in logged)  # batch 2 x context 32
    by_tokens = loss_curves(records, "tokens")
    by_steps = loss_curves(records, "step")
    assert by_tokens["val"][0] == [step * 64 for step in by_steps["val"][0]] and by_tokens["val"][0]


def fake_hub_cache(root: Path, repo_id: str = "openai-community/gpt2") -> Path:
    """A Hugging Face cache holding `repo_id` as transformers lays it out: blobs named by hash,
    snapshots/<revision>/ of symlinks into them, refs/main naming the revision."""
    repo = root / "hub" / ("models--" + repo_id.replace("/", "--"))
    revision = "0123456789abcdef0123456789abcdef01234567"
    (repo / "blobs").mkdir(parents=True)
    (repo / "snapshots" / revision).mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    for path in sorted(shared_path("tiny-gpt2", "hf").iterdir()):
        blob = repo / "blobs" / hashlib.sha256(path.read_bytes()).hexdigest()
        shutil.copyfile(path, blob)
        (repo / "snapshots" / revision / path.name).symlink_to(Path("..", "..", "blobs", blob.name))
    return root


def test_a_hub_id_is_found_in_the_hugging_face_cache_offline(tmp_path):
    home = fake_hub_cache(tmp_path / "hf-home")
    done = gpt_cli("generate", "--checkpoint", "openai-community/gpt2", "--prompt", "Every effort moves you",
                   "--max-new-tokens", "3", "--threads", "1", env={"HF_HOME": str(home), "HF_HUB_CACHE": None},
                   cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Every effort moves you")
    done = gpt_cli("generate", "--checkpoint", "openai-community/gpt2-xl", "--prompt", "x",
                   env={"HF_HOME": str(home), "HF_HUB_CACHE": None}, cwd=tmp_path)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "models--openai-community--gpt2-xl" in done.stderr and str(home / "hub") in done.stderr


def test_ctrl_c_while_finetuning_says_nothing_was_saved(monkeypatch, capsys, tmp_path):
    import gpt.cli.finetune as finetune_cli
    from gpt.cli import main

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(finetune_cli, "classify_train_command", interrupted)
    code = main(["classify-train", "--checkpoint", str(tmp_path), "--data", "x.csv", "--out", str(tmp_path / "o")])
    assert code == 130
    assert "nothing was saved; to start over, run the same command again" in capsys.readouterr().err


def test_the_ch07_example_writes_under_runs():
    from conftest import PROJECT_ROOT

    done = subprocess.run([sys.executable, str(PROJECT_ROOT / "examples" / "ch07_instruct.py"), "--help"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "runs/ch07/instruction-data-with-response.json" in done.stdout
