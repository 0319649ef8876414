"""The tables of `python -m benchmarks`: a worker's figures derived against the GEMM peak, the
floors each config must reach, the Markdown report and the comparison with an earlier run."""
from __future__ import annotations

import json
from pathlib import Path

from benchmarks.configs import CONFIGS, DROP_RATE, GENERATION_TOKENS, flops_per_step, model_config

FLOORS = {"bench-tiny": 0.18, "small": 0.33, "124m": 0.33}  # fraction of the GEMM peak each config must reach
GEN_FLOOR_TOKENS_PER_S = 20.0  # 124m, batch 1, with the cache
GEN_FLOOR_SPEEDUP = 3.0        # cached / uncached
RSS_FLOOR_BYTES = 4.3e9        # PyTorch's peak for a 124m training step, measured here


def derive(result: dict, peak: float) -> dict:
    """Add tokens/s, % of peak and generation rates to a worker's result."""
    name = result["config"]
    cfg = model_config(name, result.get("drop_rate", DROP_RATE))
    batch = CONFIGS[name]["batch"]
    tokens = batch * cfg["context_length"]
    if "train" in result:
        step = result["train"]["best"]
        result["step_ms"] = 1e3 * step
        result["tokens_per_s"] = tokens / step
        result["mfu"] = flops_per_step(cfg, batch) / step / peak
        result["mfu_median"] = flops_per_step(cfg, batch) / result["train"]["median"] / peak
    if "forward" in result:
        result["forward_tokens_per_s"] = tokens / result["forward"]["best"]
    for key in ("generate_cached", "generate_uncached"):
        if key in result:
            result[key + "_tokens_per_s"] = result[key]["tokens"] / result[key]["seconds"]
    if "generate_cached" in result and "generate_uncached" in result:
        result["cache_speedup"] = result["generate_cached_tokens_per_s"] / result["generate_uncached_tokens_per_s"]
    return result


def floor_checks(results: list) -> list:
    """[(what, value text, floor text, ok)] for the MFU floors (FLOORS), for the configs that ran."""
    checks = []
    for r in results:
        if r["engine"] != "minigrad":
            continue
        name = r["config"]
        if "mfu" in r and name in FLOORS:
            checks.append((f"{name} training step, % of GEMM peak", f"{100 * r['mfu']:.1f}%",
                           f">= {100 * FLOORS[name]:.0f}%", r["mfu"] >= FLOORS[name]))
        if name == "124m":
            if "generate_cached_tokens_per_s" in r:
                rate = r["generate_cached_tokens_per_s"]
                checks.append(("124m generation with the cache", f"{rate:.1f} tokens/s",
                               f">= {GEN_FLOOR_TOKENS_PER_S:.0f} tokens/s", rate >= GEN_FLOOR_TOKENS_PER_S))
            if "cache_speedup" in r:
                checks.append(("124m generation, cached / uncached", f"{r['cache_speedup']:.1f}x",
                               f">= {GEN_FLOOR_SPEEDUP:.0f}x", r["cache_speedup"] >= GEN_FLOOR_SPEEDUP))
            if "peak_rss" in r:
                checks.append(("124m training step peak RSS", f"{r['peak_rss'] / 1e9:.2f} GB",
                               f"<= {RSS_FLOOR_BYTES / 1e9:.1f} GB", r["peak_rss"] <= RSS_FLOOR_BYTES))
    return checks


# ------------------------------------------------------------------------------ formatting
def _fmt(value, spec, missing="-"):
    return missing if value is None else format(value, spec)


def markdown(report: dict) -> str:
    gemm = report["gemm"]
    lines = [
        f"Machine: {report['machine']}, {report['threads']} threads, NumPy {report['numpy']}, "
        f"BLAS {report.get('blas', '?')}; {report['date']}.",
        "",
        f"Measured float32 GEMM peak: **{gemm['peak'] / 1e9:.0f} GFLOP/s** (best of 2048^3 "
        f"and the GPT shapes, measured before and after the configs: "
        + ", ".join(f"{shape} {flops / 1e9:.0f}" for shape, flops in gemm["shapes"].items())
        + " GFLOP/s).",
        "",
        f"Training step = forward + cross-entropy + backward + clipping to norm 1.0 + AdamW step "
        f"(minigrad: the norm, its scaling folded into the step as `gpt train` does), "
        f"dropout {report['drop_rate']}, best of the timed steps after 2 warm-up steps; "
        f"% of peak = nanoGPT's MFU against the measured GEMM peak. Generation: "
        f"{GENERATION_TOKENS} new tokens, batch 1, greedy, eval mode. Other load: CPU cores "
        f"that other processes kept busy during that row's run (0 when the machine was ours).",
        "",
        "| config | engine | params | batch x context | step ms | tokens/s | % of GEMM peak "
        "| peak RSS | forward tokens/s | gen tok/s (cache) | gen tok/s (no cache) | cache speedup "
        "| other load |",
        "|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in report["results"]:
        cfg = CONFIGS[r["config"]]
        lines.append(
            f"| {r['config']} | {r['engine']} | {r['parameters'] / 1e6:.1f}M | "
            f"{cfg['batch']} x {cfg['context_length']} | {_fmt(r.get('step_ms'), '.0f')} | "
            f"{_fmt(r.get('tokens_per_s'), ',.0f')} | "
            f"{_fmt(r.get('mfu') and 100 * r['mfu'], '.1f')}% | "
            f"{_fmt(r.get('peak_rss') and r['peak_rss'] / 1e9, '.2f')} GB | "
            f"{_fmt(r.get('forward_tokens_per_s'), ',.0f')} | "
            f"{_fmt(r.get('generate_cached_tokens_per_s'), '.1f')} | "
            f"{_fmt(r.get('generate_uncached_tokens_per_s'), '.1f')} | "
            f"{_fmt(r.get('cache_speedup'), '.1f')}{'x' if r.get('cache_speedup') else ''} | "
            f"{_fmt(r.get('other_load'), '.2f')} |")
    for engine, label in (("pytorch", "PyTorch eager"), ("pytorch-compile", "PyTorch with torch.compile")):
        ratios = pytorch_ratios(report["results"], engine)
        if ratios:
            lines += ["", f"{label} step time / minigrad step time (above 1: minigrad is faster): "
                      + ", ".join(f"{name} {ratio:.2f}" for name, ratio in ratios.items()) + "."]
    checks = floor_checks(report["results"])
    if checks:
        lines += ["", "| floor | measured | floor | |", "|---|---:|---:|---|"]
        for what, value, floor, ok in checks:
            lines.append(f"| {what} | {value} | {floor} | {'ok' if ok else 'MISSED'} |")
    if report.get("seconds"):
        lines += ["", f"Benchmark wall time: {report['seconds']:.0f} s."]
    for r in report["results"]:
        if "profile" in r:
            from benchmarks.profile import format_profile

            lines += ["", format_profile(r["profile"], f"{r['config']} ({r['engine']}) per-op profile")]
    return "\n".join(lines) + "\n"


def pytorch_ratios(results: list, engine: str = "pytorch") -> dict:
    """{config: PyTorch's step time / minigrad's} for `engine` ("pytorch", "pytorch-compile")."""
    ours = {r["config"]: r for r in results if r["engine"] == "minigrad" and "step_ms" in r}
    theirs = {r["config"]: r for r in results if r["engine"] == engine and "step_ms" in r}
    return {name: theirs[name]["step_ms"] / ours[name]["step_ms"] for name in ours if name in theirs}


def compare(report: dict, old_path: str) -> str:
    old = json.loads(Path(old_path).read_text())
    old_results = {(r["config"], r["engine"]): r for r in old["results"]}
    keys = [("step_ms", "step ms", False), ("tokens_per_s", "tokens/s", True), ("mfu", "% of peak", True),
            ("peak_rss", "peak RSS", False), ("forward_tokens_per_s", "forward tokens/s", True),
            ("generate_cached_tokens_per_s", "gen cached tok/s", True),
            ("generate_uncached_tokens_per_s", "gen uncached tok/s", True)]
    lines = [f"Compared with {old_path} (peak then {old['gemm']['peak'] / 1e9:.0f}, now "
             f"{report['gemm']['peak'] / 1e9:.0f} GFLOP/s):", "",
             "| config | engine | figure | old | new | new/old |", "|---|---|---|---:|---:|---:|"]
    for r in report["results"]:
        previous = old_results.get((r["config"], r["engine"]))
        if previous is None:
            continue
        for key, label, _higher_better in keys:
            if key in r and key in previous and previous[key]:
                lines.append(f"| {r['config']} | {r['engine']} | {label} | {previous[key]:.4g} | "
                             f"{r[key]:.4g} | {r[key] / previous[key]:.2f} |")
    return "\n".join(lines) + "\n"


def summary_line(r: dict) -> str:
    parts = [f"step {r['step_ms']:.0f} ms", f"{r['tokens_per_s']:,.0f} tokens/s",
             f"{100 * r['mfu']:.1f}% of peak", f"peak RSS {r['peak_rss'] / 1e9:.2f} GB"]
    if "forward_tokens_per_s" in r:
        parts.append(f"forward {r['forward_tokens_per_s']:,.0f} tokens/s")
    if "generate_cached_tokens_per_s" in r:
        parts.append(f"generate {r['generate_cached_tokens_per_s']:.1f} (cache) / "
                     f"{r['generate_uncached_tokens_per_s']:.1f} tokens/s")
    if r.get("other_load") is not None:
        parts.append(f"other processes used {r['other_load']:.2f} cores meanwhile")
    return ", ".join(parts)
