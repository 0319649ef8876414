"""`gpt classify-train` and `gpt classify` end to end on a tiny checkpoint (in-process, plus one
subprocess run through `python -m gpt`)."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import minigrad
from gpt import GPTModel
from gpt.training.checkpoint import save_checkpoint
from gpt.finetune import write_classification_file
from gpt.cli.finetune import main
from gpt.finetune.runs import load_classifier
from gpt.data import get_tokenizer

CFG = {"vocab_size": 257, "context_length": 32, "emb_dim": 16, "n_heads": 2, "n_layers": 2,
       "drop_rate": 0.0, "qkv_bias": False}


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    folder = tmp_path_factory.mktemp("base")
    save_checkpoint(folder, GPTModel(CFG, generator=np.random.default_rng(0)), get_tokenizer("bytes"))
    return folder


@pytest.fixture(scope="module")
def toy_csv(tmp_path_factory):
    rng = np.random.default_rng(0)
    records = []
    for i in range(60):
        letters = "aeiou" if i % 2 == 0 else "bcdfg"
        records.append({"text": "".join(rng.choice(list(letters), size=rng.integers(3, 10))),
                        "label": "vowels" if i % 2 == 0 else "consonants"})
    path = tmp_path_factory.mktemp("data") / "toy.csv"
    write_classification_file(records, path)
    return path


def test_classify_train_and_classify(base, toy_csv, tmp_path, capsys):
    out = tmp_path / "cls"
    code = main(["classify-train", "--checkpoint", str(base), "--data", str(toy_csv), "--out", str(out),
                 "--lr", "3e-3", "--epochs", "8", "--eval-every", "10"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "classes ['consonants', 'vowels']" in printed
    assert f"next:\n  gpt classify --checkpoint {out} --text" in printed
    test_accuracy = float(printed.split("Test accuracy: ")[1].split("%")[0])
    assert test_accuracy >= 90.0
    model, tokenizer, config = load_classifier(out)
    assert config["label_names"] == ["consonants", "vowels"] and config["lora"] is None
    assert model.out_head.weight.shape == (2, 16)
    from gpt.training.plot import accuracy_curves, default_x, loss_curves
    from gpt.training.progress import read_metrics

    records = read_metrics(out)  # metrics.jsonl: losses per evaluation, accuracies per epoch
    assert default_x(records) == "examples"
    losses, accuracies = loss_curves(records, "examples"), accuracy_curves(records, "examples")
    assert len(accuracies["val"][0]) == 8 and accuracies["val"][0] == sorted(accuracies["val"][0])
    assert losses["val"][0] and all(x > 0 for x in losses["val"][0])
    from gpt.cli import main as gpt_main

    assert gpt_main(["generate", "--checkpoint", str(out), "--prompt", "aei"]) == 1
    assert "use gpt classify --checkpoint" in capsys.readouterr().err
    assert main(["classify", "--checkpoint", str(out), "--text", "aeiouae", "--text", "bcdfgbc"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("vowels\t(consonants ") and lines[1].startswith("consonants\t")
    # an occupied output folder is refused
    assert main(["classify-train", "--checkpoint", str(base), "--data", str(toy_csv), "--out", str(out)]) == 1
    assert "--overwrite" in capsys.readouterr().err


def test_classify_train_with_lora(base, toy_csv, tmp_path, capsys):
    out = tmp_path / "lora"
    code = main(["classify-train", "--checkpoint", str(base), "--data", str(toy_csv), "--out", str(out),
                 "--lr", "5e-3", "--epochs", "3", "--eval-every", "0", "--lora-rank", "4", "--lora-alpha", "2"])
    assert code == 0
    printed = capsys.readouterr().out
    # rank 4 on 6 Linear layers per block (16->16 x4, 16->64, 64->16) and the 16->2 head
    assert "parameters: 2,376 trainable of" in printed
    lora = minigrad.load(out / "lora.npz")
    assert set(lora) and all(key.endswith((".A", ".B")) for key in lora)
    model, _, config = load_classifier(out)  # merged: plain Linear layers
    assert config["lora"] == {"rank": 4, "alpha": 2.0, "scale_by_rank": False}
    assert not any(name.endswith(".A") for name in model.state_dict())


def test_classify_errors(base, toy_csv, tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("text,label\nhello,a\n,b\n")
    assert main(["classify-train", "--checkpoint", str(base), "--data", str(bad), "--out", str(tmp_path / "o")]) == 1
    assert "bad.csv line 3: the text is empty" in capsys.readouterr().err
    assert main(["classify-train", "--checkpoint", str(tmp_path / "none"), "--data", str(toy_csv),
                 "--out", str(tmp_path / "o2")]) == 1
    assert "base model not found" in capsys.readouterr().err
    assert main(["classify", "--checkpoint", str(base), "--text", "x"]) == 1
    assert "not a classifier" in capsys.readouterr().err
    assert main(["classify-train", "--checkpoint", str(base), "--data", str(toy_csv), "--num-classes", "3",
                 "--out", str(tmp_path / "o3")]) == 1
    assert "--num-classes 3" in capsys.readouterr().err


def test_commands_are_mounted_on_gpt():
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
    for command in ("classify-train", "classify", "instruct-train"):
        result = subprocess.run([sys.executable, "-m", "gpt", command, "--help"], capture_output=True,
                                text=True, env=env, timeout=120)
        assert result.returncode == 0, result.stderr
        assert "--checkpoint" in result.stdout


def test_classify_train_from_a_gpt2_folder(toy_csv, tmp_path, capsys):
    from conftest import shared_path

    folder = shared_path("tiny-gpt2", "hf")  # a real GPT-2 layout: tied head, 50,257 tokens
    out = tmp_path / "gpt2-cls"
    assert main(["classify-train", "--checkpoint", str(folder), "--data", str(toy_csv), "--out", str(out),
                 "--epochs", "1", "--lr", "1e-3", "--lora-rank", "2", "--eval-every", "0"]) == 0
    assert "base: GPT-2 weights from" in capsys.readouterr().out
    model, tokenizer, config = load_classifier(out)
    assert tokenizer.n_vocab == 50257 and config["pad_token_id"] == 50256
    assert model.out_head.weight.shape == (2, 8) and not model.weights_tied
    assert main(["classify", "--checkpoint", str(out), "--text", "aeiou"]) == 0
    assert capsys.readouterr().out.split("\t")[0] in ("vowels", "consonants")
