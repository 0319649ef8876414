"""Run folders built broken here, each read by load_checkpoint (or resumed): a consistent
manifest over a config without model_config, a manifest whose files are a list, a state.npz
without step, a config.json claiming 100,000 layers (or 10**7), JSON nested 100,000 deep or not
UTF-8. Each is a CheckpointError naming the file, raised before any big allocation, in one
short message; and a float64 load works."""
from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

import minigrad
from gpt import GPTModel
from gpt.data import get_tokenizer
from gpt.training import checkpoint as ckpt
from gpt.training.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from gpt.training.loop import TrainConfig, train
from minigrad.untrusted import MAX_MESSAGE, FileFormatError

CFG = {"vocab_size": 257, "context_length": 8, "emb_dim": 8, "n_heads": 2, "n_layers": 1,
       "drop_rate": 0.0, "qkv_bias": False}


@pytest.fixture
def run(tmp_path):
    save_checkpoint(tmp_path / "run", GPTModel(CFG, generator=np.random.default_rng(0)), get_tokenizer("bytes"),
                    state={"step": 3})
    return tmp_path / "run"


def rewrite(run, name: str, content: bytes) -> None:
    """Replace one file of the checkpoint and keep the manifest consistent (size, SHA-256)."""
    folder = run / "checkpoint"
    (folder / name).write_bytes(content)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["files"][name] = {"bytes": len(content), "sha256": hashlib.sha256(content).hexdigest()}
    (folder / "manifest.json").write_text(json.dumps(manifest))


def refused(run, match, loader=load_checkpoint):
    with pytest.raises(CheckpointError, match=match) as caught:
        loader(run)
    message = str(caught.value)
    assert len(message) < MAX_MESSAGE and isinstance(caught.value, FileFormatError)
    return message


def config_with(run, **changes) -> bytes:
    config = json.loads((run / "checkpoint" / "config.json").read_text())
    config.update(changes)
    return json.dumps(config).encode()


def test_config_without_model_config(run):
    rewrite(run, "config.json", config_with(run, model_config=None))
    assert "config.json: no 'model_config' object" in refused(run, "model_config")


@pytest.mark.parametrize("n_layers, match", [(100_000, "n_layers is 100,000, more than the limit of 1,024"),
                                             (10 ** 7, "more than the limit"),
                                             (500, "describes .* parameters, but model.npz holds only")])
def test_config_claiming_huge_models_is_refused_before_building(run, n_layers, match):
    rewrite(run, "config.json", config_with(run, model_config={**CFG, "n_layers": n_layers}))
    assert "config.json" in refused(run, match)


@pytest.mark.parametrize("content, match", [
    (b"[" * 100_000 + b"]" * 100_000, "nested 100000 levels deep"),
    (b'{"format": "minigrad-gpt checkpoint", "model_config": "\xff"}', "not UTF-8"),
    (b"[1, 2]", "must be a JSON object, got a list"),
])
def test_config_json_that_is_nested_not_utf8_or_not_an_object(run, content, match):
    rewrite(run, "config.json", content)
    assert "config.json" in refused(run, match)


def test_manifest_whose_files_are_a_list_or_escape_the_folder(run):
    manifest_path = run / "checkpoint" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    for files in (list(manifest["files"]), {"../../outside": {"bytes": 1, "sha256": "x"}},
                  {"model.npz": {"bytes": "12", "sha256": "x"}}):
        manifest_path.write_text(json.dumps({**manifest, "files": files}))
        assert "manifest.json is corrupt" in refused(run, "'files' must map each file name")


def test_state_without_step_cannot_be_resumed(run, tmp_path):
    text = tmp_path / "t.txt"
    text.write_text("hello world " * 400)
    out = tmp_path / "r"
    settings = dict(data=[str(text)], tokenizer="bytes", preset="tiny", batch_size=4, max_steps=2,
                    eval_every=2, eval_batches=1, sample_tokens=0, quiet=True)
    train(TrainConfig(out=str(out), **settings))
    state = minigrad.load(out / "checkpoint" / "state.npz")
    del state["step"]
    minigrad.save(state, out / "state.npz")
    rewrite(out, "state.npz", (out / "state.npz").read_bytes())
    with pytest.raises(CheckpointError, match=r"state.npz: 'step' is missing or malformed") as caught:
        train(TrainConfig(out=str(out), resume=True, **settings))
    assert len(str(caught.value)) < MAX_MESSAGE


def test_model_npz_that_is_not_a_state_dict(run):
    minigrad.save([np.zeros(5000)], run / "x.npz")  # big enough for the config
    rewrite(run, "model.npz", (run / "x.npz").read_bytes())
    assert "model.npz holds a list" in refused(run, "expected a dict")


def test_load_checkpoint_in_float64(run):
    model, _, info = load_checkpoint(run, dtype=np.float64)
    assert info["step"] == 3
    assert {value.dtype for value in model.state_dict().values()} == {np.dtype(np.float64)}
    float32_model, _, _ = load_checkpoint(run)
    for name, value in float32_model.state_dict().items():
        assert np.array_equal(model.state_dict()[name], value.astype(np.float64)), name


def test_nan_weights_are_refused_unless_allowed(run):
    model, tokenizer, _ = load_checkpoint(run)
    model.tok_emb.weight.data[3, 1] = np.nan
    save_checkpoint(run, model, tokenizer, state={"step": 4})
    assert "tok_emb.weight" in refused(run, "hold NaN or infinity")
    with pytest.warns(RuntimeWarning, match="NaN or infinity"):
        model, tokenizer, _ = load_checkpoint(run, allow_non_finite=True)
    from gpt import generate
    with pytest.raises(ValueError, match="logits hold NaN or infinity"):
        generate(model, np.array([[3, 4]]), max_new_tokens=2)
