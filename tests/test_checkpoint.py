"""gpt.training.checkpoint: round trip, atomic folder swap, and clear errors for damaged checkpoints."""
from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest

import gpt
import minigrad
from gpt.training import checkpoint as ckpt
from gpt.data.bpe import train_bpe
from gpt.data.corpus import default_corpus_text
from gpt.model import GPTModel

CFG = {"vocab_size": 300, "context_length": 16, "emb_dim": 32, "n_heads": 2, "n_layers": 2,
       "drop_rate": 0.0, "qkv_bias": False}


@pytest.fixture
def saved(tmp_path):
    """A run folder with a checkpoint of a tiny model and a trained BPE (300 tokens)."""
    minigrad.random.manual_seed(0)
    model = GPTModel(CFG)
    tokenizer = train_bpe(default_corpus_text()[:20000], 300)
    assert tokenizer.n_vocab == 300
    run = tmp_path / "run"
    ckpt.save_checkpoint(run, model, tokenizer, model_config=CFG,
                         train_config={"lr": 1e-3}, state={"step": 5, "epoch": 1, "metrics": [
                             {"step": 5, "train_loss": 2.0, "val_loss": 2.5}]})
    return run, model, tokenizer


def test_round_trip(saved):
    run, model, tokenizer = saved
    loaded, loaded_tokenizer, info = ckpt.load_checkpoint(run)
    ids = np.arange(16, dtype=np.int64).reshape(1, 16)
    model.eval()
    assert np.array_equal(loaded(ids).data, model(ids).data)
    assert info["step"] == 5 and info["val_loss"] == 2.5 and info["model_config"] == CFG
    assert info["train_config"] == {"lr": 1e-3}
    text = "the dog sat on the mat"
    assert loaded_tokenizer.encode(text) == tokenizer.encode(text)
    # the checkpoint folder itself works too
    assert ckpt.load_checkpoint(run / "checkpoint")[2]["step"] == 5


def test_second_save_replaces_the_first_and_leaves_no_temporaries(saved):
    run, model, tokenizer = saved
    ckpt.save_checkpoint(run, model, tokenizer, state={"step": 9})
    assert ckpt.read_checkpoint(run).step == 9
    assert sorted(p.name for p in run.iterdir()) == ["checkpoint"]


def test_crash_between_the_two_renames_uses_the_old_folder(saved):
    run, _, _ = saved
    os.rename(run / "checkpoint", run / "checkpoint.old")
    assert ckpt.load_checkpoint(run)[2]["step"] == 5


def test_truncated_file_is_an_error_naming_it(saved):
    run, _, _ = saved
    path = run / "checkpoint" / "model.npz"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ckpt.CheckpointError, match=r"model\.npz is truncated"):
        ckpt.load_checkpoint(run)


def test_flipped_byte_is_an_error_naming_the_file(saved):
    run, _, _ = saved
    path = run / "checkpoint" / "state.npz"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ckpt.CheckpointError, match=r"state\.npz is corrupt"):
        ckpt.load_checkpoint(run)


def test_missing_manifest_means_an_unfinished_save(saved):
    run, _, _ = saved
    (run / "checkpoint" / "manifest.json").unlink()
    with pytest.raises(ckpt.CheckpointError, match="incomplete"):
        ckpt.load_checkpoint(run)


def test_folder_without_checkpoint(tmp_path):
    with pytest.raises(ckpt.CheckpointError, match="no checkpoint"):
        ckpt.load_checkpoint(tmp_path)
    with pytest.raises(FileNotFoundError):
        ckpt.load_checkpoint(tmp_path / "absent")
    assert not ckpt.is_checkpoint(tmp_path)


def test_other_model_shape_is_a_clear_error(saved):
    run, _, _ = saved
    other = GPTModel({**CFG, "emb_dim": 64})
    state = ckpt.read_checkpoint(run).model_state
    with pytest.raises(ckpt.CheckpointError, match=r"tok_emb\.weight is \(300, 32\) in the checkpoint"):
        ckpt.check_model_state(other, state)


def test_manifest_with_consistent_but_wrong_config_is_an_error(saved):
    """A config.json edited (and the manifest re-hashed) to another shape: the weights do not fit."""
    run, _, _ = saved
    folder = run / "checkpoint"
    config = json.loads((folder / "config.json").read_text())
    config["model_config"]["n_layers"] = 3
    (folder / "config.json").write_text(json.dumps(config))
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["files"]["config.json"] = {"bytes": (folder / "config.json").stat().st_size,
                                        "sha256": ckpt.file_sha256(folder / "config.json")}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ckpt.CheckpointError, match="does not fit"):
        ckpt.load_checkpoint(run)


def test_stale_temporary_folder_is_ignored_and_cleaned(saved):
    run, model, tokenizer = saved
    stale = run / ".checkpoint.tmp-99999"
    stale.mkdir()
    (stale / "model.npz").write_bytes(b"half")
    assert ckpt.load_checkpoint(run)[2]["step"] == 5
    ckpt.save_checkpoint(run, model, tokenizer, state={"step": 6})
    assert not stale.exists()
    shutil.rmtree(run / "checkpoint")
    with pytest.raises(ckpt.CheckpointError, match="no checkpoint"):
        ckpt.load_checkpoint(run)


def test_one_checkpoint_error_class_for_files_and_folders(tmp_path):
    assert gpt.CheckpointError is minigrad.CheckpointError is ckpt.CheckpointError
    bad = tmp_path / "model.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(gpt.CheckpointError):
        minigrad.load(bad)          # a damaged file ...
    with pytest.raises(minigrad.CheckpointError):
        ckpt.read_checkpoint(tmp_path)  # ... and a folder that holds no checkpoint: one except clause
