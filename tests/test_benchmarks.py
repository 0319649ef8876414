"""The benchmark's bookkeeping (FLOP count, derived figures, floors, markdown, comparison)
and the per-op profiler, on synthetic results and one tiny training step (fast: no timing
is asserted)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/ is not installed

from benchmarks import __main__ as bench  # noqa: E402
from benchmarks import report as tables  # noqa: E402
from benchmarks.configs import CONFIGS, flops_per_step, matmul_params, model_config  # noqa: E402
from benchmarks.profile import OpProfiler, format_profile  # noqa: E402


def test_flops_match_the_training_mfu_formula():
    from gpt.training.flops import flops_per_token

    for name in CONFIGS:
        cfg = model_config(name)
        batch = CONFIGS[name]["batch"]
        tokens = batch * cfg["context_length"]
        assert flops_per_step(cfg, batch) == pytest.approx(flops_per_token(cfg) * tokens)
    # GPT_CONFIG_124M at context 256: 12 blocks of 12 d^2 plus the 768 x 50257 head
    assert matmul_params(model_config("124m")) == 12 * 12 * 768 * 768 + 768 * 50257


def fake_result(name, engine="minigrad", step=1.0, rss=1e9, cached=10.0, uncached=40.0):
    return {"config": name, "engine": engine, "parameters": 1_000_000, "drop_rate": 0.1,
            "train": {"best": step, "median": step, "count": 3, "cpu_median": step},
            "peak_rss": rss, "forward": {"best": step / 3, "median": step / 3, "count": 3},
            "generate_cached": {"seconds": cached, "tokens": 200},
            "generate_uncached": {"seconds": uncached, "tokens": 200}}


def test_derived_figures_and_floors():
    peak = 1e11
    cfg = model_config("124m")
    step = flops_per_step(cfg, 2) / (0.5 * peak)  # exactly 50% of the peak
    r = tables.derive(fake_result("124m", step=step, rss=5e9, cached=5.0, uncached=12.0), peak)
    assert r["mfu"] == pytest.approx(0.5)
    assert r["tokens_per_s"] == pytest.approx(512 / step)
    assert r["generate_cached_tokens_per_s"] == pytest.approx(40.0)
    assert r["cache_speedup"] == pytest.approx(12.0 / 5.0)
    checks = {what: ok for what, _, _, ok in tables.floor_checks([r])}
    assert checks["124m training step, % of GEMM peak"] is True
    assert checks["124m generation with the cache"] is True
    assert checks["124m generation, cached / uncached"] is False  # 2.4x < 3x
    assert checks["124m training step peak RSS"] is False  # 5 GB > 4.3 GB


def test_markdown_and_compare(tmp_path):
    peak = 2e11
    results = [tables.derive(fake_result("bench-tiny"), peak),
               tables.derive(fake_result("bench-tiny", engine="pytorch", step=1.5), peak),
               tables.derive(fake_result("bench-tiny", engine="pytorch-compile", step=0.5), peak)]
    report = {"date": "today", "machine": "test", "numpy": np.__version__, "blas": None,
              "threads": 2, "drop_rate": 0.1, "seconds": 1.0,
              "gemm": {"peak": peak, "shapes": {"2048x2048x2048": peak}}, "results": results}
    text = tables.markdown(report)
    assert "| bench-tiny | minigrad |" in text and "| bench-tiny | pytorch |" in text
    assert "PyTorch eager step time / minigrad step time (above 1: minigrad is faster): bench-tiny 1.50" in text
    assert "torch.compile step time / minigrad step time (above 1: minigrad is faster): bench-tiny 0.50" in text
    old = tmp_path / "old.json"
    slower = json.loads(json.dumps(report))
    slower["results"][0]["step_ms"] *= 2
    old.write_text(json.dumps(slower))
    comparison = tables.compare(report, str(old))
    assert "| bench-tiny | minigrad | step ms |" in comparison and "| 0.50 |" in comparison


def test_bad_config_names_are_refused():
    with pytest.raises(SystemExit):
        bench.parse_args(["--configs", "bench-tiny,huge"])


def test_profiler_times_every_op_of_a_training_step():
    import gpt
    from minigrad import nn, optim
    from minigrad.nn import functional as F

    cfg = dict(model_config("bench-tiny"), n_layers=1, context_length=16)
    model = gpt.GPTModel(cfg, generator=np.random.default_rng(0))
    params = list(model.parameters())
    optimizer = optim.AdamW(params, lr=1e-3)
    rng = np.random.default_rng(1)
    ids = rng.integers(0, cfg["vocab_size"], (2, 16))

    def train_step():
        loss = F.cross_entropy(model(ids), ids)
        loss.backward()
        optimizer.step(grad_factor=nn.utils.clip_factor(nn.utils.grad_norm(params), 1.0))
        optimizer.zero_grad()

    with OpProfiler() as profiler:
        profiler.step(train_step, optimizer)
    report = profiler.report()
    names = {row["name"]: row for row in report["rows"]}
    assert {"Linear", "CrossEntropy", "QKVAttention", "AdamW step", "clipping norm"} <= set(names)
    assert names["clipping norm"]["forward_ms"] > 0
    assert names["Linear"]["calls"] == 1  # the head (the q, k, v projections are QKVAttention's)
    assert names["QKVAttention"]["calls"] == 1 and names["QKVAttention"]["backward_ms"] > 0
    assert names["LinearGELU"]["calls"] == 1  # the first feed-forward Linear with the GELU
    assert names["LinearDropoutAdd"]["calls"] == 2  # out_proj and the second feed-forward Linear
    for fused in ("LinearGELU", "LinearDropoutAdd"):  # one backward timed per node (Linear's
        assert profiler.ops[fused][3] == names[fused]["calls"]  # rule inside is no second)
    assert names["Linear"]["backward_ms"] > 0
    assert report["step_ms"] >= sum(r["forward_ms"] + r["backward_ms"] for r in report["rows"]) * 0.99
    assert "| Linear | 1 |" in format_profile(report, "bench-tiny")
    # the wrappers are gone afterwards
    from minigrad.nn.functional.linear import Linear

    assert Linear.forward.__qualname__ == "Linear.forward"
