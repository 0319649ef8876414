"""`gpt explain` on the command line: a run folder and GPT-2 folders, the same tokens as
`gpt generate` with the same seed, and clear errors (exit 1, no traceback) for bad input."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest

from gpt import GPTModel, get_tokenizer
from gpt.cli import main
from gpt.training.checkpoint import save_checkpoint

from conftest import shared_path

CFG = {"vocab_size": 257, "context_length": 32, "emb_dim": 16, "n_heads": 2, "n_layers": 2,
       "drop_rate": 0.0, "qkv_bias": False}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("run")
    save_checkpoint(folder, GPTModel(CFG, generator=np.random.default_rng(0)), get_tokenizer("bytes"),
                    state={"step": 3})
    (folder / "metrics.jsonl").write_text(json.dumps({"step": 0, "train_loss": 5.5, "val_loss": 5.6}) + "\n")
    return folder


def page_data(path) -> dict:
    text = path.read_text(encoding="utf-8")
    return json.loads(re.search(r'id="explain-data">(.*?)</script>', text, re.S).group(1))


def test_explain_picks_the_tokens_gpt_generate_picks(run_dir, tmp_path, capsys):
    out = tmp_path / "page.html"
    flags = ["--checkpoint", str(run_dir), "--prompt", "The for", "--max-new-tokens", "6",
             "--temperature", "1.1", "--top-k", "40", "--seed", "7"]
    assert main(["explain", *flags, "--out", str(out)]) == 0
    assert re.search(r"wrote .*page\.html \(0\.\d+ MB\) in \d+\.\d s", capsys.readouterr().out)
    chosen = [step["chosen"] for step in page_data(out)["generation"]["steps"]]
    assert main(["generate", *flags]) == 0
    generated = capsys.readouterr().out.rstrip("\n")
    assert generated == "The for" + get_tokenizer("bytes").decode(chosen)


@pytest.mark.parametrize("layout", ["openai", "hf"])
def test_explain_a_gpt2_folder(layout, tmp_path, capsys):
    out = tmp_path / "gpt2.html"
    assert main(["explain", "--checkpoint", str(shared_path("tiny-gpt2", layout)), "--prompt",
                 " ".join(["Every effort moves you"] * 10), "--out", str(out), "--max-new-tokens", "2"]) == 0
    printed = capsys.readouterr().out
    assert "note: The prompt is 40 tokens, longer than the model's context of 32" in printed
    data = page_data(out)
    assert len(data["tokens"]) == 32 and data["training"] is None


def test_explain_bad_input(run_dir, tmp_path, capsys):
    missing = tmp_path / "no" / "page.html"
    assert main(["explain", "--checkpoint", str(run_dir), "--prompt", "x", "--out", str(missing)]) == 1
    assert "the folder" in capsys.readouterr().err and not missing.parent.exists()
    assert main(["explain", "--checkpoint", str(tmp_path / "absent"), "--prompt", "x"]) == 1
    assert "does not exist" in capsys.readouterr().err
    assert main(["explain", "--checkpoint", str(run_dir), "--prompt", "x", "--top-p", "0"]) == 1
    assert "--top-p" in capsys.readouterr().err
    classifier = tmp_path / "classifier"
    save_checkpoint(classifier, GPTModel(CFG), get_tokenizer("bytes"), train_config={"task": "classification"})
    assert main(["explain", "--checkpoint", str(classifier), "--prompt", "x", "--out", str(tmp_path / "c.html")]) == 1
    assert "holds a classifier" in capsys.readouterr().err
    out = tmp_path / "empty.html"
    assert main(["explain", "--checkpoint", str(run_dir), "--prompt", "", "--out", str(out)]) == 0
    assert "note: The prompt is empty" in capsys.readouterr().out
    assert page_data(out)["tokens"] == [256]
    with pytest.raises(SystemExit):  # argparse: --prompt is required
        main(["explain", "--checkpoint", str(run_dir)])
