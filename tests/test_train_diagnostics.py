"""gpt train --diagnostics N: records every N steps with the documented keys and values that
match a direct computation, training unchanged by them, nothing at all when off, plotted."""
from __future__ import annotations

import math

import numpy as np
import pytest

import minigrad
from minigrad import Tensor, optim
from minigrad.nn import functional as F
from gpt.model.gpt_model import GPTModel
from gpt.training.diagnostics import SATURATION, StepDiagnostics, start
from gpt.training.loop import TrainConfig, train
from gpt.training.plot import plot_diagnostics

TEXT = ("The quick brown fox jumps over the lazy dog. A for statement iterates over the items "
        "of a sequence. ") * 40


@pytest.fixture
def text_file(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text(TEXT)
    return str(path)


def tiny(text_file, **overrides) -> TrainConfig:
    values = dict(data=[text_file], tokenizer="bytes", preset="tiny", batch_size=4, lr=3e-3,
                  warmup_steps=1, max_steps=6, eval_every=100, eval_batches=2, log_every=3,
                  save_every=1000, sample_tokens=0, quiet=True, seed=3, threads=1)
    values.update(overrides)
    return TrainConfig(**values)


CONFIG = {"vocab_size": 17, "context_length": 8, "emb_dim": 16, "n_heads": 2, "n_layers": 2,
          "drop_rate": 0.0, "qkv_bias": False}


def test_records_every_n_steps_with_the_documented_keys(text_file, tmp_path):
    result = train(tiny(text_file, diagnostics=2, out=str(tmp_path / "run")))
    records = [r for r in result.metrics if "diagnostics" in r]
    assert [r["step"] for r in records] == [2, 4, 6]
    names = [name for name, p in result.model.named_parameters()]
    for record in records:
        diagnostics = record["diagnostics"]
        assert list(diagnostics["layers"]) == ["trf_blocks.0", "trf_blocks.1"]
        for stats in diagnostics["layers"].values():
            assert set(stats) == {"mean", "std", "gelu_input_mean", "gelu_input_std",
                                  "gelu_saturation", "attention_max"}
            assert 0.0 <= stats["gelu_saturation"] <= 1.0 and 0.0 < stats["attention_max"] <= 1.0
        assert list(diagnostics["params"]) == names
        weight = diagnostics["params"]["trf_blocks.0.att.W_query.weight"]
        assert weight["grad_norm"] > 0 and weight["grad_to_data"] > 0
        assert -6 < weight["log10_update_to_data"] < 0
        grads = diagnostics["histograms"]["grad"]
        assert "trf_blocks.0.ff.layers.0.weight" in grads and "final_norm.scale" not in grads
        histogram = diagnostics["histograms"]["gelu_input"]["trf_blocks.1"]
        assert len(histogram["counts"]) == 40 and histogram["range"][0] < histogram["range"][1]
    assert sum(1 for line in open(tmp_path / "run" / "metrics.jsonl") if '"diagnostics"' in line) == 3


def test_diagnostics_do_not_change_training_and_off_means_no_hooks(text_file):
    watched = train(tiny(text_file, diagnostics=1))
    plain = train(tiny(text_file))
    assert not any("diagnostics" in r for r in plain.metrics)
    for (name, a), b in zip(watched.model.state_dict().items(), plain.model.state_dict().values()):
        assert np.array_equal(a, b), name
    assert all(module._hooks is None for module in plain.model.modules())
    assert all(module._hooks is None or module._hooks.empty() for module in watched.model.modules())


def test_step_statistics_match_a_direct_computation():
    minigrad.manual_seed(0)
    model = GPTModel(CONFIG)
    ids = np.random.default_rng(0).integers(0, 17, size=(3, 8))  # 3 <= ATTENTION_SEQUENCES
    gelu_inputs, queries, keys = [], [], []
    block = model.trf_blocks[1]
    block.ff.layers[1].register_forward_pre_hook(lambda m, args: gelu_inputs.append(args[0].data.copy()))
    block.att.W_query.register_forward_hook(lambda m, a, out: queries.append(out.data.copy()))
    block.att.W_key.register_forward_hook(lambda m, a, out: keys.append(out.data.copy()))

    watch = StepDiagnostics(model)
    loss = F.cross_entropy(model(ids), ids)
    loss.backward()
    named = list(model.named_parameters())
    watch.gradients(named)
    before = {name: p.data.copy() for name, p in named}
    optim.SGD([p for _, p in named], lr=0.1).step()
    record = watch.finish()

    x = gelu_inputs[0]
    stats = record["layers"]["trf_blocks.1"]
    assert stats["gelu_saturation"] == pytest.approx(np.mean(np.abs(x) > SATURATION))
    assert stats["gelu_input_std"] == pytest.approx(float(x.std()), rel=1e-5)
    q = queries[0].reshape(3, 8, 2, 8).transpose(0, 2, 1, 3)  # (B, H, T, D)
    k = keys[0].reshape(3, 8, 2, 8).transpose(0, 2, 1, 3)
    scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(8) + np.triu(np.full((8, 8), -np.inf), k=1)
    weights = np.exp(scores - scores.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)  # the book's softmax, one op at a time
    assert stats["attention_max"] == pytest.approx(float(weights.max(-1).mean()), rel=1e-5)
    name = "trf_blocks.0.ff.layers.2.weight"
    param = dict(named)[name]
    params = record["params"][name]
    assert params["grad_norm"] == pytest.approx(float(np.linalg.norm(param.grad)), rel=1e-5)
    assert params["grad_to_data"] == pytest.approx(
        float(np.linalg.norm(param.grad) / np.linalg.norm(before[name])), rel=1e-5)
    update = np.linalg.norm(param.data - before[name]) / np.linalg.norm(before[name])
    assert params["log10_update_to_data"] == pytest.approx(math.log10(update), abs=1e-5)
    assert record["params"]["trf_blocks.0.norm1.shift"]["grad_to_data"] is None  # zeros: undefined
    model(ids)  # the hooks removed themselves after the first forward
    assert len(gelu_inputs) == 2 and "gelu_input" in record["histograms"]


def test_bad_setting_is_refused():
    with pytest.raises(ValueError, match="diagnostics must be a number of steps >= 0"):
        TrainConfig(diagnostics=-1).validate()
    with pytest.raises(ValueError, match="every must be a number of steps >= 0"):
        start(GPTModel(CONFIG), 2, -3)
    model = GPTModel(CONFIG)
    assert start(model, 2, 3) is None and start(model, 5, 0) is None
    assert isinstance(start(model, 6, 3), StepDiagnostics)


def test_plot_draws_the_diagnostics(text_file, tmp_path):
    pytest.importorskip("matplotlib", reason="gpt plot needs the optional matplotlib (the plot extra)")
    run = tmp_path / "run"
    train(tiny(text_file, diagnostics=3, out=str(run)))
    path = plot_diagnostics(run)
    assert path == run / "diagnostics.png" and path.read_bytes()[:4] == b"\x89PNG"
    plain = tmp_path / "plain"
    train(tiny(text_file, out=str(plain)))
    assert plot_diagnostics(plain) is None  # no records: nothing drawn
