"""Data-parallel training on one machine: 1 rank with 2 BLAS threads against 2 MPI ranks with
1 thread each, on the default `gpt train` model and on GPT_CONFIG_124M.

    pip install -e ".[mpi]"
    python -m benchmarks.distributed                     # both models, prints a Markdown table
    python -m benchmarks.distributed --models default --steps 20

Each setup runs in fresh processes (`python -m benchmarks.distributed --worker ...`, under
`mpiexec -n 2` for the 2-rank setup). A worker times the training step of gpt.training.loop with the
data-parallel hooks of gpt.training.distributed: forward and backward on its shard of the global batch
(random token ids), one Allreduce of the flat gradient buffer, clipping, AdamW, and the mean
loss over the ranks. It reports, after warm-up steps:

  step time     the median (and the best) of the timed steps (rank 0's; the ranks wait for
                each other); on a busy machine the best is the fairer figure
  tokens/s      global batch x context / step time
  forward+backward, clip+AdamW   the medians of those parts of a step (every rank runs the
                whole AdamW update over all parameters: data parallelism shares the batch,
                not the optimizer)
  in Allreduce  the median time a step spends inside the Allreduce; this includes waiting for
                the slower rank, so it measures imbalance as well as transfer
  comm share    in Allreduce / step time
  Allreduce alone   the same Allreduce timed after a barrier (pure transfer of the buffer)
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

def _models() -> dict:
    """name -> model dims, vocabulary, global batch, dropout and timed steps."""
    from gpt.data.registry import parse_bpe_size
    from gpt.training.config import PRESETS, TrainConfig

    main_job = TrainConfig()  # `gpt train` with no options: the "default" preset, bpe:2048
    return {
        "default": main_job.resolved_model_dims() | {
            "vocab_size": parse_bpe_size(main_job.tokenizer), "batch": main_job.resolved_batch_size(),
            "drop_rate": main_job.resolved_dropout(), "steps": 15},
        # GPT_CONFIG_124M with context 256 and the GPT-2 vocabulary: the book's chapter 5
        # setting (batch 2, dropout 0.1)
        "124M": {key: PRESETS["124M"][key] for key in ("emb_dim", "n_layers", "n_heads", "context_length")}
        | {"vocab_size": 50257, "batch": 2, "drop_rate": 0.1, "steps": 4},
    }


MODELS = _models()
SETUPS = [("1 rank x 2 threads", 1, 2), ("2 ranks x 1 thread", 2, 1)]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated: " + ", ".join(MODELS))
    parser.add_argument("--steps", type=int, default=None, help="timed steps (default: per model)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--model", default="default", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


# ------------------------------------------------------------------------------ one worker
def worker(args) -> None:
    """Time training steps of one model in this process (one rank of a job, or alone)."""
    import numpy as np

    import minigrad
    from minigrad import nn, optim, runtime
    from minigrad.nn import functional as F

    from gpt.training.distributed import world_from_env
    from gpt.model import GPTModel
    from gpt.training.optimizer import parameter_groups

    world = world_from_env()
    runtime.configure(threads=args.threads)
    spec = MODELS[args.model]
    cfg = {key: spec[key] for key in ("vocab_size", "context_length", "emb_dim", "n_heads", "n_layers",
                                      "drop_rate")} | {"qkv_bias": False}
    batch, context = spec["batch"], spec["context_length"]
    minigrad.random.manual_seed(0)
    model = GPTModel(cfg)
    model.train()
    parameters = [p for p in model.parameters() if p.requires_grad]
    optimizer = optim.AdamW(parameter_groups(model, 0.1), lr=4e-4, weight_decay=0.1)
    rng = np.random.default_rng(0)
    token_ids = rng.integers(0, cfg["vocab_size"], size=(batch, context + 1), dtype=np.int64)
    inputs, targets = world.shard(token_ids[:, :-1], token_ids[:, 1:])  # (B/N, T) each

    phases = {"compute": [], "average": [], "update": []}  # seconds of each step's parts

    def step() -> float:
        start = time.perf_counter()
        logits = model(inputs)  # (B/N, T, V)
        loss = F.cross_entropy(logits, targets)
        loss.backward()
        computed = time.perf_counter()
        world.average_gradients(parameters)
        averaged = time.perf_counter()
        nn.utils.clip_grad_norm(parameters, 1.0)
        optimizer.step()
        optimizer.zero_grad()
        updated = time.perf_counter()
        phases["compute"].append(computed - start)
        phases["average"].append(averaged - computed)
        phases["update"].append(updated - averaged)
        return world.average(loss.item())

    timings = getattr(world, "timings", None)
    for _ in range(args.warmup):
        step()
    for values in phases.values():
        values.clear()
    step_times, reduce_times = [], []
    for _ in range(args.steps or spec["steps"]):
        before = timings["allreduce"] if timings else 0.0
        start = time.perf_counter()
        step()
        step_times.append(time.perf_counter() - start)
        reduce_times.append((timings["allreduce"] - before) if timings else 0.0)

    alone = None
    if world.size > 1:  # the Allreduce of the same buffer with every rank ready
        buffer = world._buffer
        samples = []
        for _ in range(3):
            world.comm.Barrier()
            start = time.perf_counter()
            world.comm.Allreduce(world.MPI.IN_PLACE, buffer, op=world.MPI.SUM)
            samples.append(time.perf_counter() - start)
        alone = statistics.median(samples)
    mine = {"step": statistics.median(step_times), "best": min(step_times),
            "allreduce": statistics.median(reduce_times)}
    mine |= {name: statistics.median(values) for name, values in phases.items()}
    ranks = world.comm.gather(mine, root=0) if world.size > 1 else [mine]
    if world.is_main:
        result = {"model": args.model, "ranks": world.size, "threads": runtime.get_blas_threads(),
                  "batch": batch, "context": context, "parameters": int(sum(p.numel() for p in parameters)),
                  **mine, "allreduce_alone": alone,
                  "per_rank": ranks, "steps": len(step_times),
                  "buffer_mb": None if world.size == 1 else world._buffer.nbytes / 1e6}
        print("RESULT " + json.dumps(result), flush=True)


# ------------------------------------------------------------------------------ the driver
def find_mpiexec() -> str | None:
    beside = Path(sys.executable).parent / "mpiexec"
    return str(beside) if beside.exists() else shutil.which("mpiexec")


def run_setup(model: str, ranks: int, threads: int, args) -> dict:
    command = [sys.executable, "-m", "benchmarks.distributed", "--worker", "--model", model,
               "--threads", str(threads), "--warmup", str(args.warmup)]
    if args.steps:
        command += ["--steps", str(args.steps)]
    if ranks > 1:
        mpiexec = find_mpiexec()
        if mpiexec is None:
            raise SystemExit("no mpiexec: pip install -e '.[mpi]' (mpi4py and MPICH)")
        command = [mpiexec, "-n", str(ranks)] + command
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads),
               MKL_NUM_THREADS=str(threads))
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=root)
    for line in done.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    raise SystemExit(f"{' '.join(command)} failed (exit {done.returncode}):\n{done.stderr[-3000:]}")


def table(results: list) -> str:
    """The Markdown table of the README's performance section."""
    def ms(seconds):
        return "-" if seconds is None else f"{seconds * 1000:,.1f} ms"

    lines = ["| model | setup | step time: median (best) | tokens/s (best) | forward+backward "
             "| clip+AdamW | in Allreduce | comm share | Allreduce alone | buffer |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        tokens = r["batch"] * r["context"]
        several = r["ranks"] > 1
        share = f"{100 * r['allreduce'] / r['step']:.1f}%" if several else "-"
        buffer = f"{r['buffer_mb']:,.0f} MB" if several else "-"
        lines.append(f"| {r['model']} ({r['parameters'] / 1e6:.1f}M, batch {r['batch']} x {r['context']}) "
                     f"| {r['setup']} | {ms(r['step'])} ({ms(r['best'])}) "
                     f"| {tokens / r['step']:,.0f} ({tokens / r['best']:,.0f}) "
                     f"| {ms(r['compute'])} | {ms(r['update'])} "
                     f"| {ms(r['allreduce']) if several else '-'} | {share} "
                     f"| {ms(r['allreduce_alone'])} | {buffer} |")
    return "\n".join(lines)


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.worker:
        worker(args)
        return
    models = [name.strip() for name in args.models.split(",") if name.strip()]
    unknown = [name for name in models if name not in MODELS]
    if unknown:
        raise SystemExit(f"unknown model(s) {', '.join(unknown)}; choose from {', '.join(MODELS)}")
    print(f"# {os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.2f} at start", flush=True)
    results = []
    for model in models:
        for setup, ranks, threads in SETUPS:
            result = run_setup(model, ranks, threads, args) | {"setup": setup}
            results.append(result)
            print(f"# {model}, {setup}: step {result['step'] * 1000:,.0f} ms", flush=True)
    print(f"# load average {os.getloadavg()[0]:.2f} at the end")
    print(table(results))


if __name__ == "__main__":
    main()
