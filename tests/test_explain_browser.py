"""The page of `gpt explain` in a real browser: headless Chromium (Debian's `chromium` package)
loads it, and the DOM it leaves shows the prompt's tokens, no script error, and next-token
probabilities recomputed by the page's JavaScript that match gpt.generate's sampler.

Skips, saying why, where Chromium is absent; under CI (CI=true) a missing Chromium is a failure,
because .ci/run installs it.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile

import numpy as np
import pytest

from gpt import GPTModel, get_tokenizer
from gpt.explain.build import explain
from gpt.training.checkpoint import save_checkpoint

from conftest import shared_path


def chromium_binary() -> str:
    for name in (os.environ.get("CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if name and shutil.which(name):
            return shutil.which(name)
    reason = "headless Chromium not found (Debian: apt-get install chromium; or set CHROMIUM=/path)"
    if os.environ.get("CI"):
        pytest.fail(reason + ": .ci/run should have installed it")
    pytest.skip(reason)


def dump_dom(path) -> str:
    """The DOM after the page's scripts ran, as headless Chromium serialises it."""
    with tempfile.TemporaryDirectory() as profile:
        result = subprocess.run(
            [chromium_binary(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--no-first-run", "--no-default-browser-check", f"--user-data-dir={profile}",
             "--dump-dom", f"file://{path}"],
            capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL)
    assert result.returncode == 0 and "<html" in result.stdout, result.stderr[-2000:]
    return result.stdout


def check_page(dom: str, token_ids: list, reference: list, rtol: float) -> None:
    assert 'data-explain-ready="1"' in dom, "the page's scripts did not finish"
    error = re.search(r'data-explain-error="([^"]*)"', dom)
    assert error is None, f"script error in the page: {error.group(1)}"
    chips = re.findall(r'class="chip token[^"]*" data-position="(\d+)" data-id="(\d+)"', dom)
    assert [int(i) for _, i in chips] == token_ids
    probs = json.loads(re.search(r'id="distribution-check"[^>]*data-probs="([^"]*)"', dom).group(1)
                       .replace("&quot;", '"'))
    np.testing.assert_allclose(probs, reference, rtol=rtol, atol=1e-7)


def page_data(path) -> dict:
    text = open(path, encoding="utf-8").read()
    return json.loads(re.search(r'id="explain-data">(.*?)</script>', text, re.S).group(1))


def test_tiny_gpt2_page_renders_in_chromium(tmp_path):
    folder = shared_path("tiny-gpt2", "hf")
    out = tmp_path / "tiny.html"
    explain(folder, "Every effort moves you toward the quiet old house", out=out, max_new_tokens=3, seed=1)
    dom = dump_dom(out)
    data = page_data(out)
    check_page(dom, data["tokens"], data["generation"]["steps"][0]["reference_probs"], rtol=2e-3)
    for piece in ("Every", "effort", "house"):
        assert f">{piece}<" in dom or f"{piece}</span>" in dom  # the pieces are on the page as text
    assert len(re.findall(r'class="thumb( on)?"', dom)) == 5  # the head mean and the 4 heads of a layer
    assert 'id="lens-table"' in dom and 'id="distribution-bars"' in dom


def test_run_page_with_filters_and_metrics_renders_in_chromium(tmp_path):
    run = tmp_path / "run"
    cfg = {"vocab_size": 257, "context_length": 32, "emb_dim": 16, "n_heads": 2, "n_layers": 2,
           "drop_rate": 0.0, "qkv_bias": False}
    save_checkpoint(run, GPTModel(cfg, generator=np.random.default_rng(0)), get_tokenizer("bytes"),
                    state={"step": 20})
    records = [{"step": s, "train_loss": 5.0 - 0.1 * s, "lr": 1e-3,
                "diagnostics": {"layers": [{"act_std": 1.0 + 0.01 * s * i} for i in range(2)]}}
               for s in range(0, 21, 5)] + [{"step": 20, "val_loss": 3.4}]
    (run / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n")
    out = tmp_path / "run.html"
    explain(run, "caf\u00e9 \u00e0 la <b>", out=out, max_new_tokens=2, temperature=1.3, top_k=40, top_p=0.9,
            seed=0)
    dom = dump_dom(out)
    data = page_data(out)
    check_page(dom, data["tokens"], data["generation"]["steps"][0]["reference_probs"], rtol=2e-3)
    assert dom.count('class="card"><div class="title">') >= 4  # loss, lr, one diagnostics chart, MLP cards
    assert "layers[N].act_std" in dom and "<summary>diagnostics.layers: 1 chart<" in dom


def test_page_tail_approximation_for_high_temperature_top_p(tmp_path):
    """Top-p cutting deep into the 50,257-token tail, which the page holds as a histogram."""
    out = tmp_path / "tail.html"
    explain(shared_path("tiny-gpt2", "openai"), "Every effort moves you", out=out, max_new_tokens=1,
            temperature=1.5, top_p=0.5, seed=2)
    data = page_data(out)
    check_page(dump_dom(out), data["tokens"], data["generation"]["steps"][0]["reference_probs"], rtol=2e-2)
