"""Progress lines, metrics.jsonl, the MFU formula, the FLOP/s cache and --threads."""
from __future__ import annotations

import io
import json

import pytest

from gpt import GPT_CONFIG_124M
from gpt.training.flops import estimate_mfu, flops_per_token, matmul_params, peak_flops
from gpt.training.progress import MetricsLog, Progress, format_duration, format_step_line, read_metrics


def test_format_duration():
    assert format_duration(0) == "0:00"
    assert format_duration(75.4) == "1:15"
    assert format_duration(3725) == "1:02:05"
    assert format_duration(float("inf")) == "?"


def test_step_line_has_every_field():
    line = format_step_line(120, 2000, 2, 3.14159, 3e-4, 41234.5, 0.213, 42.0, 658.0)
    assert line == ("step  120/2000 | epoch 2 | loss 3.1416 | lr 3.00e-04 | 41,234 tok/s | mfu 21.3% | "
                    "0:42 elapsed | ETA 10:58")


def test_progress_plain_and_tty():
    plain = io.StringIO()
    progress = Progress(plain, tty=False)
    progress.step("step 1")
    progress.step("step 2")
    progress.line("eval")
    assert plain.getvalue() == "step 1\nstep 2\neval\n"
    screen = io.StringIO()
    progress = Progress(screen, tty=True)
    progress.step("step 1")
    progress.step("step 2")
    progress.line("eval")
    assert screen.getvalue() == "\r\033[Kstep 1\r\033[Kstep 2\neval\n"
    silent = io.StringIO()
    Progress(silent, enabled=False).line("nothing")
    assert silent.getvalue() == ""


def test_metrics_log_round_trip(tmp_path):
    log = MetricsLog(tmp_path)
    log.write(step=1, train_loss=2.5, lr=1e-3, val_loss=None)
    log.write(step=2, train_loss=float("nan"))
    records = read_metrics(tmp_path)
    assert records == [{"step": 1, "train_loss": 2.5, "lr": 0.001}, {"step": 2, "train_loss": "nan"}]
    log.records = records[:1]
    log.rewrite()
    assert read_metrics(tmp_path) == records[:1]
    (tmp_path / "metrics.jsonl").write_text('{"step": 1}\nnot json\n')
    with pytest.raises(ValueError, match="line 2"):
        read_metrics(tmp_path)
    with pytest.raises(FileNotFoundError, match="metrics.jsonl"):
        read_metrics(tmp_path / "absent")


def test_mfu_formula_is_nanogpts():
    cfg = {**GPT_CONFIG_124M, "context_length": 256}
    n = 12 * (4 * 768 * 768 + 2 * 768 * 3072) + 768 * 50257
    assert matmul_params(cfg) == n
    assert flops_per_token(cfg) == 6 * n + 12 * 12 * 256 * 768
    assert estimate_mfu(cfg, 1000.0, 1e12) == pytest.approx(flops_per_token(cfg) * 1000 / 1e12)


def test_peak_flops_override_and_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GPT_PEAK_FLOPS", "2e11")
    assert peak_flops() == 2e11
    monkeypatch.setenv("GPT_PEAK_FLOPS", "fast")
    with pytest.raises(ValueError, match="GPT_PEAK_FLOPS"):
        peak_flops()
    monkeypatch.delenv("GPT_PEAK_FLOPS")
    monkeypatch.delenv("GPT_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    measured = peak_flops(size=256)
    assert measured > 1e8
    cache = json.loads((tmp_path / "minigrad-gpt" / "gemm_flops.json").read_text())
    assert list(cache.values()) == [measured]
    assert peak_flops(size=256) == measured  # from the cache, not measured again
    path = tmp_path / "minigrad-gpt" / "gemm_flops.json"
    path.write_text(json.dumps({key: 1.0 for key in cache}))  # as if measured on a busy machine
    assert peak_flops(size=256) == 1.0
    assert peak_flops(size=256, refresh=True) > 1e8  # measured again, the larger figure kept


def test_threads_can_be_set_and_read():
    from minigrad.runtime import get_blas_threads, set_blas_threads

    before = get_blas_threads()
    try:
        set_blas_threads(1)
        assert get_blas_threads() in (1, None)
        with pytest.raises(ValueError, match="positive"):
            set_blas_threads(0)
    finally:
        if before:
            set_blas_threads(before)
