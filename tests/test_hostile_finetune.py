"""Finetuning inputs built broken here: CSV labels of 10**9, fields over the csv module's
limit, files that are not UTF-8, instruction files that are an object, diverging settings
(--lr 1e6, --lora-alpha nan) and classifiers with NaN weights. Each ends with a clear error
naming the file, flag or step, in bounded memory, and no NaN weights are saved as a success."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

from gpt import GPTModel
from gpt.data import get_tokenizer
from gpt.finetune import write_classification_file
from gpt.finetune.classify import MAX_CLASSES, label_names_of, read_classification_file
from gpt.cli.finetune import main
from gpt.finetune.guards import DivergedError
from gpt.finetune.instruct import load_instruction_data
from gpt.finetune.runs import load_classifier
from gpt.training.checkpoint import CheckpointError, is_checkpoint, read_checkpoint, save_checkpoint
from gpt.training.data import DataError
from gpt.training.run_dir import RunLock
from minigrad.untrusted import MAX_MESSAGE

CFG = {"vocab_size": 257, "context_length": 32, "emb_dim": 16, "n_heads": 2, "n_layers": 1,
       "drop_rate": 0.0, "qkv_bias": False}


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    folder = tmp_path_factory.mktemp("base")
    save_checkpoint(folder, GPTModel(CFG, generator=np.random.default_rng(0)), get_tokenizer("bytes"))
    return folder


@pytest.fixture(scope="module")
def toy_csv(tmp_path_factory):
    records = [{"text": ("aeiou" if i % 2 else "bcdfg") * (1 + i % 3), "label": str(i % 2)} for i in range(40)]
    path = tmp_path_factory.mktemp("data") / "toy.csv"
    write_classification_file(records, path)
    return path


def refused(error_class, match, function, *args):
    with pytest.raises(error_class, match=match) as caught:
        function(*args)
    assert len(str(caught.value)) < MAX_MESSAGE
    return str(caught.value)


# ------------------------------------------------------------------ CSV / TSV files

def test_a_label_of_a_billion_is_bounded(tmp_path):
    path = tmp_path / "labels.csv"
    path.write_text("text,label\nhello,0\nworld,1000000000\n")
    message = refused(DataError, f"labels.csv line 3: integer label 1000000000 is not below the limit of {MAX_CLASSES:,}",
                      label_names_of, read_classification_file(path))
    path.write_text("text,label\nhello,0\nworld," + "9" * 5000 + "\n")  # past int()'s digit limit
    refused(DataError, "is not below the limit", label_names_of, read_classification_file(path))
    assert "line 3" in message


def test_a_field_over_the_csv_limit_names_the_file_and_line(tmp_path):
    path = tmp_path / "long.csv"
    path.write_text("text,label\nshort,a\n" + "x" * 200_000 + ",b\n")
    message = refused(DataError, r"long.csv line \d+: not readable as CSV: field larger than field limit",
                      read_classification_file, path)
    assert str(path) in message


def test_csv_that_is_not_utf8_or_has_no_header(tmp_path):
    path = tmp_path / "latin1.tsv"
    path.write_bytes(b"text\tlabel\ncaf\xe9\tx\n")
    refused(DataError, "latin1.tsv: not UTF-8", read_classification_file, path)
    path.write_bytes(b"")
    refused(DataError, "is empty", read_classification_file, path)
    path.write_text("words\tclass\nhi\tx\n")
    refused(DataError, "must name the columns", read_classification_file, path)


# ------------------------------------------------------------------ instruction JSON

@pytest.mark.parametrize("content, match", [
    (json.dumps({"instruction": "a", "output": "b"}), r"must be a list of records, got a dict \(with the keys"),
    (json.dumps([{"instruction": "a", "output": "b"}, 7]), "record 1 is a int"),
    ("[" * 100_000 + "]" * 100_000, "nested 100000 levels deep"),
    (b"[{\"instruction\": \"caf\xe9\"}]", "not UTF-8"),
    ('[{"instruction": "a", "output": ', "not valid JSON"),
])
def test_instruction_files_that_are_not_a_list_of_records(tmp_path, content, match):
    path = tmp_path / "data.json"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    message = refused(DataError, match, load_instruction_data, path)
    assert str(path) in message


# ------------------------------------------------------------------ diverging settings

def test_classify_train_with_a_huge_learning_rate_fails_and_saves_nothing(base, toy_csv, tmp_path, capsys):
    out = tmp_path / "cls"
    code = main(["classify-train", "--checkpoint", str(base), "--data", str(toy_csv), "--out", str(out),
                 "--lr", "1e6", "--epochs", "20", "--batch-size", "4", "--eval-every", "0",
                 "--trainable-blocks", "1"])
    assert code == 1
    error = capsys.readouterr().err
    assert "the training loss became" in error and "nothing was saved" in error
    assert not is_checkpoint(out)


def test_instruct_train_with_a_huge_learning_rate_fails_and_saves_nothing(tmp_path, capsys):
    base = tmp_path / "base"
    save_checkpoint(base, GPTModel({**CFG, "context_length": 192}, generator=np.random.default_rng(0)),
                    get_tokenizer("bytes"))
    data = tmp_path / "data.json"
    data.write_text(json.dumps([{"instruction": "Say", "input": w, "output": w} for w in "abcdefghij"] * 2))
    out = tmp_path / "inst"
    code = main(["instruct-train", "--checkpoint", str(base), "--data", str(data), "--out", str(out),
                 "--lr", "1e6", "--epochs", "20", "--batch-size", "4", "--eval-every", "0"])
    assert code == 1
    assert "the training loss became" in capsys.readouterr().err
    assert not is_checkpoint(out) and not (out / "test-responses.json").exists()


@pytest.mark.parametrize("flag, value", [("--lora-alpha", "nan"), ("--lr", "inf"), ("--weight-decay", "nan"),
                                         ("--grad-clip", "-1"), ("--seed", "-1")])
def test_non_finite_or_negative_flags_are_refused_by_name(base, toy_csv, tmp_path, capsys, flag, value):
    with pytest.raises(SystemExit) as caught:
        main(["classify-train", "--checkpoint", str(base), "--data", str(toy_csv), "--out", str(tmp_path / "o"),
              "--lora-rank", "2", flag, value])
    assert caught.value.code == 2
    assert f"argument {flag}" in capsys.readouterr().err


def test_classifier_with_nan_weights_is_refused_or_warned(base, toy_csv, tmp_path, capsys):
    out = tmp_path / "cls"
    assert main(["classify-train", "--checkpoint", str(base), "--data", str(toy_csv), "--out", str(out),
                 "--epochs", "1", "--batch-size", "4"]) == 0
    checkpoint = read_checkpoint(out)
    state = {name: np.array(value) for name, value in checkpoint.model_state.items()}
    state["out_head.weight"][0, 0] = np.nan
    model, tokenizer, _ = load_classifier(out)
    model.out_head.weight.data[0, 0] = np.nan
    save_checkpoint(out, model, tokenizer, model_config=checkpoint.model_config,
                    train_config=checkpoint.config["train_config"], state={"step": 1})
    with pytest.raises(DivergedError, match="out_head.weight"):
        load_classifier(out)
    assert main(["classify", "--checkpoint", str(out), "--text", "aeiou"]) == 1
    assert "hold NaN or infinity (out_head.weight)" in capsys.readouterr().err
    with pytest.warns(RuntimeWarning, match="NaN or infinity"):
        assert main(["classify", "--checkpoint", str(out), "--text", "aeiou", "--allow-non-finite"]) == 0


def test_classifier_whose_label_names_are_not_a_list(base, toy_csv, tmp_path):
    out = tmp_path / "cls"
    assert main(["classify-train", "--checkpoint", str(base), "--data", str(toy_csv), "--out", str(out),
                 "--epochs", "1", "--batch-size", "4"]) == 0
    checkpoint = read_checkpoint(out)
    model, tokenizer, _ = load_classifier(out)
    for names in ("ab", {"0": "a"}, ["only one"], None):
        save_checkpoint(out, model, tokenizer, model_config=checkpoint.model_config,
                        train_config={**checkpoint.config["train_config"], "label_names": names}, state={"step": 1})
        refused(CheckpointError, "label_names must be a list of 2 to", load_classifier, out)


def test_a_second_finetuning_process_on_the_same_out_is_refused(base, toy_csv, tmp_path, capsys):
    out = tmp_path / "cls"
    lock = RunLock(out)  # as another classify-train on the same --out would hold it
    try:
        assert main(["classify-train", "--checkpoint", str(base), "--data", str(toy_csv), "--out", str(out),
                     "--epochs", "1", "--batch-size", "4"]) == 1
        assert f"another process (pid {os.getpid()})" in capsys.readouterr().err
    finally:
        lock.release()
