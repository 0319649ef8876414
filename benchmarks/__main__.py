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

from benchmarks.configs import CONFIGS, DROP_RATE
from benchmarks.report import compare, derive, markdown, summary_line
from benchmarks.results_file import write_section
from minigrad.runtime import available_cores

RESULTS_DIR = Path(__file__).resolve().parent / "results"
MARKDOWN_SECTION = "python -m benchmarks"  # the part of a --markdown file this writer owns


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


def machine_description() -> str:
    from gpt.training.flops import cpu_name

    return f"{cpu_name()}, {os.cpu_count()} logical CPUs"


def numpy_version() -> str:
    import numpy

    return numpy.__version__


if __name__ == "__main__":
    sys.exit(main())
