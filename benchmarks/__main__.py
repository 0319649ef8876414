"""End-to-end benchmark of minigrad's GPT: `python -m benchmarks`.

    python -m benchmarks                          # bench-tiny, small and 124m on all cores
    python -m benchmarks --threads 2 --configs bench-tiny,small
    python -m benchmarks --profile                # plus a per-op time breakdown per config
    python -m benchmarks --compare old.json       # new/old ratios against an earlier run
    python -m benchmarks --markdown benchmarks/RESULTS.md

First it measures the machine's float32 GEMM FLOP/s (benchmarks.gemm: 2048^3 and the GPT
shapes; the maximum is the peak). Then, for each config, a fresh process (benchmarks.worker)
times a training step (forward + cross-entropy + backward + gradient clipping + AdamW step),
records the peak RSS of that process, times a forward pass alone and generation of 200 new
tokens at batch 1 with and without the KV cache. The "% of peak" column is nanoGPT's MFU:
(6 x matmul parameters + 12 x layers x context x width) x tokens per step / step time / peak.

When PyTorch is importable by `--torch-python` (default: this Python, or $BENCH_TORCH_PYTHON),
the same model and step run in PyTorch in their own processes after a pause, eager and with
`torch.compile` (inductor's C++ code; --no-compile skips it), and the table gets both rows
per config and both ratios. The package and its tests never import torch.

Output: the table on stdout, and benchmarks/results/latest.md and latest.json (plus a
timestamped copy of the JSON for later `--compare`). `--markdown PATH` replaces only this
benchmark's marked section of PATH (benchmarks/results_file.py), keeping the rest.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.configs import CONFIGS, DROP_RATE, GENERATION_TOKENS, flops_per_step, model_config
from benchmarks.results_file import write_section
from minigrad.runtime import available_cores

RESULTS_DIR = Path(__file__).resolve().parent / "results"
MARKDOWN_SECTION = "python -m benchmarks"  # the part of a --markdown file this writer owns
FLOORS = {"bench-tiny": 0.18, "small": 0.33, "124m": 0.33}  # fraction of the GEMM peak each config must reach
GEN_FLOOR_TOKENS_PER_S = 20.0  # 124m, batch 1, with the cache
GEN_FLOOR_SPEEDUP = 3.0        # cached / uncached
RSS_FLOOR_BYTES = 4.3e9        # PyTorch's peak for a 124m training step, measured here


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--configs", default="bench-tiny,small,124m",
                        help=f"comma-separated, from {','.join(CONFIGS)} (default: all)")
    parser.add_argument("--threads", type=int, default=None,
                        help="BLAS and kernel threads (default: the cores available)")
    parser.add_argument("--profile", action="store_true", help="per-op time breakdown")
    parser.add_argument("--compare", metavar="OLD.json", help="print ratios against an earlier run")
    parser.add_argument("--markdown", metavar="PATH",
                        help="also write the tables into this file's marked section (the rest is kept)")
    parser.add_argument("--drop-rate", type=float, default=DROP_RATE,
                        help=f"dropout rate of every config (default {DROP_RATE}, the book's)")
    parser.add_argument("--train-seconds", type=float, default=8.0,
                        help="time spent on timed training steps per config (at least 3 steps)")
    parser.add_argument("--no-generate", action="store_true", help="skip the generation runs")
    parser.add_argument("--torch-python", default=os.environ.get("BENCH_TORCH_PYTHON"),
                        help="a Python with PyTorch for the side-by-side rows")
    parser.add_argument("--no-torch", action="store_true", help="never run PyTorch")
    parser.add_argument("--no-compile", action="store_true",
                        help="PyTorch eager rows only (no torch.compile rows)")
    parser.add_argument("--pause", type=float, default=3.0,
                        help="seconds of pause between processes (BLAS threads wind down)")
    parser.add_argument("--wait-idle", type=float, default=0.0, metavar="SECONDS",
                        help="before each measurement, wait up to this long for other processes "
                             "to leave the cores idle (a shared machine)")
    args = parser.parse_args(argv)
    names = [c.strip().lower() for c in args.configs.split(",") if c.strip()]
    unknown = [c for c in names if c not in CONFIGS]
    if unknown or not names:
        parser.error(f"--configs: unknown config(s) {unknown}; choose from {','.join(CONFIGS)}")
    args.configs = names
    if args.threads is not None and args.threads < 1:
        parser.error(f"--threads must be >= 1, got {args.threads}")
    if args.threads is None:
        args.threads = available_cores()
    return args


def child_env(threads: int) -> dict:
    """Environment of every child process: the thread counts, set before NumPy loads BLAS."""
    env = dict(os.environ)
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = str(threads)
    root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def cpu_busy_seconds() -> float | None:
    """CPU-seconds the whole machine has spent busy since boot (/proc/stat), or None."""
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def children_cpu_seconds() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def wait_until_idle(max_wait: float, threshold: float = 0.15) -> float:
    """Wait (at most max_wait seconds) until other processes use under `threshold` cores for
    3 seconds in a row; returns the cores they used in the last second."""
    deadline, quiet, load = time.monotonic() + max_wait, 0, 0.0
    while True:
        before = cpu_busy_seconds()
        time.sleep(1.0)
        after = cpu_busy_seconds()
        if before is None or after is None:
            return float("nan")
        load = after - before
        quiet = quiet + 1 if load < threshold else 0
        if quiet >= 3 or time.monotonic() > deadline:
            return load


def run_child(command: list, env: dict, what: str, wait_idle: float = 0.0) -> dict:
    """Run a child process that prints `RESULT {json}`; return the parsed result, with the
    cores other processes kept busy meanwhile ("other_load"; needs /proc/stat)."""
    if wait_idle > 0:
        wait_until_idle(wait_idle)
    busy0, child0, t0 = cpu_busy_seconds(), children_cpu_seconds(), time.perf_counter()
    proc = subprocess.run(command, env=env, capture_output=True, text=True)
    busy1, child1, t1 = cpu_busy_seconds(), children_cpu_seconds(), time.perf_counter()
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("RESULT "):
            result = json.loads(line[len("RESULT "):])
            if busy0 is not None and busy1 is not None:
                result["other_load"] = max(0.0, (busy1 - busy0) - (child1 - child0)) / (t1 - t0)
            return result
    sys.stderr.write(proc.stdout[-2000:] + proc.stderr[-4000:])
    raise RuntimeError(f"benchmark: {what} failed (exit code {proc.returncode}); its output is above")


def torch_python(args) -> str | None:
    """A Python executable that can import torch, or None."""
    if args.no_torch:
        return None
    candidates = [args.torch_python] if args.torch_python else [sys.executable]
    for python in candidates:
        try:
            ok = subprocess.run([python, "-c", "import torch"], capture_output=True, timeout=120)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if ok.returncode == 0:
            return python
    if args.torch_python:
        print(f"note: {args.torch_python} cannot import torch; no PyTorch rows", file=sys.stderr)
    return None


# ------------------------------------------------------------------------------ derived figures
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


# ------------------------------------------------------------------------------ main
def main(argv=None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    env = child_env(args.threads)
    python = sys.executable
    gemm_runs = []

    def measure_peak():  # best of every measurement: a busy moment cannot lower the peak
        print(f"measuring the float32 GEMM peak with {args.threads} threads ...", flush=True)
        gemm_runs.append(run_child([python, "-m", "benchmarks.gemm", "--json"], env, "the GEMM measurement",
                                   args.wait_idle))
        print(f"  {gemm_runs[-1]['peak'] / 1e9:.0f} GFLOP/s", flush=True)

    measure_peak()
    torch_exe = torch_python(args)
    results = []
    for name in args.configs:
        parts = "train,forward" + ("" if args.no_generate else ",generate")
        common = ["--config", name, "--parts", parts, "--drop-rate", str(args.drop_rate),
                  "--train-seconds", str(args.train_seconds), "--threads", str(args.threads)]
        if args.profile:
            common.append("--profile")
        time.sleep(args.pause)
        print(f"{name}: minigrad ...", flush=True)
        result = derive(run_child([python, "-m", "benchmarks.worker", *common], env, f"{name} (minigrad)",
                                  args.wait_idle),
                        gemm_runs[0]["peak"])
        results.append(result)
        print("  " + summary_line(result), flush=True)
        for engine, extra in ([("pytorch", []), ("pytorch-compile", ["--compile"])]
                              [:1 if args.no_compile else 2] if torch_exe else []):
            time.sleep(args.pause)
            print(f"{name}: {engine} ...", flush=True)
            try:
                result = derive(run_child([torch_exe, "-m", "benchmarks.torch_worker", *common, *extra],
                                          env, f"{name} ({engine})", args.wait_idle), gemm_runs[0]["peak"])
                results.append(result)
                print("  " + summary_line(result), flush=True)
            except RuntimeError as error:
                print(f"  skipped: {error}", file=sys.stderr)
    time.sleep(args.pause)
    measure_peak()
    gemm = {"peak": max(run["peak"] for run in gemm_runs),
            "shapes": {shape: max(run["shapes"][shape] for run in gemm_runs) for shape in gemm_runs[0]["shapes"]},
            "runs": [run["peak"] for run in gemm_runs], "blas": gemm_runs[0].get("blas")}
    results = [derive(result, gemm["peak"]) for result in results]
    report = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": machine_description(),
        "numpy": numpy_version(),
        "blas": gemm.get("blas"),
        "threads": args.threads,
        "drop_rate": args.drop_rate,
        "gemm": gemm,
        "results": results,
        "seconds": time.perf_counter() - started,
    }
    text = markdown(report)
    print()
    print(text)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    (RESULTS_DIR / "latest.md").write_text(text)
    payload = json.dumps(report, indent=1)
    (RESULTS_DIR / "latest.json").write_text(payload)
    (RESULTS_DIR / time.strftime("run-%Y%m%d-%H%M%S.json")).write_text(payload)
    if args.markdown:
        write_section(args.markdown, MARKDOWN_SECTION, text)
    if args.compare:
        print(compare(report, args.compare))
    print(f"wrote {RESULTS_DIR / 'latest.md'} and latest.json")
    return 0


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


def machine_description() -> str:
    from gpt.training.flops import cpu_name

    return f"{cpu_name()}, {os.cpu_count()} logical CPUs"


def numpy_version() -> str:
    import numpy

    return numpy.__version__


if __name__ == "__main__":
    sys.exit(main())
