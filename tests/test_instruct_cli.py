"""`gpt instruct-train` end to end on a tiny checkpoint (in-process)."""
from __future__ import annotations

import json

import numpy as np

from gpt import GPTModel
from gpt.training.checkpoint import load_checkpoint, save_checkpoint
from gpt.cli.finetune import main
from gpt.data import get_tokenizer

CFG = {"vocab_size": 257, "context_length": 192, "emb_dim": 16, "n_heads": 2, "n_layers": 1,
       "drop_rate": 0.0, "qkv_bias": False}
RECORDS = [{"instruction": "Name the color.", "input": word, "output": color}
           for word, color in [("sky", "blue"), ("grass", "green"), ("snow", "white"), ("coal", "black")]] * 5


def test_instruct_train_writes_model_and_responses(tmp_path, capsys):
    base = tmp_path / "base"
    save_checkpoint(base, GPTModel(CFG, generator=np.random.default_rng(0)), get_tokenizer("bytes"))
    data = tmp_path / "data.json"
    data.write_text(json.dumps(RECORDS))
    out = tmp_path / "out"
    code = main(["instruct-train", "--checkpoint", str(base), "--data", str(data), "--out", str(out),
                 "--epochs", "1", "--batch-size", "4", "--lr", "1e-3", "--max-new-tokens", "5",
                 "--lora-rank", "2", "--mask-prompt"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "17 train, 1 val, 2 test records" in printed  # 85/5/10 of 20 records
    assert f"next:\n  gpt generate --checkpoint {out} --prompt" in printed
    responses = json.loads((out / "test-responses.json").read_text())
    assert [r["input"] for r in responses] == ["grass", "snow"]  # records 17 and 18
    assert all(set(r) == {"instruction", "input", "output", "model_response"} for r in responses)
    model, tokenizer, info = load_checkpoint(out)  # a plain GPT checkpoint (LoRA merged)
    assert info["train_config"]["task"] == "instruction" and info["train_config"]["lora"]["rank"] == 2
    assert (out / "lora.npz").is_file()
    from gpt.training.plot import loss_curves
    from gpt.training.progress import read_metrics

    assert loss_curves(read_metrics(out), "examples")["val"][0]  # metrics.jsonl: against examples seen
    from gpt.cli import main as gpt_main

    capsys.readouterr()
    assert gpt_main(["eval", "--checkpoint", str(out)]) == 0  # its validation records, not the JSON as text
    printed = capsys.readouterr().out
    assert "the val records of" in printed and "1 records" in printed and "perplexity" in printed

    long_prompt = tmp_path / "long.json"
    long_prompt.write_text(json.dumps([{"instruction": "x" * 300, "output": "y"}] * 20))
    assert main(["instruct-train", "--checkpoint", str(base), "--data", str(long_prompt),
                 "--out", str(tmp_path / "o2")]) == 1
    assert "record 0: the prompt has" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"instruction": "a", "output": "b"}, {"input": "c", "output": "d"}]))
    assert main(["instruct-train", "--checkpoint", str(base), "--data", str(bad), "--out", str(tmp_path / "o3")]) == 1
    assert "record 1 lacks the field(s) ['instruction']" in capsys.readouterr().err
