"""Data-parallel training on one machine: 1 rank with 2 BLAS threads against 2 MPI ranks with
1 thread each (ZeRO-1, the default of `gpt train`, through shared memory as on one machine and
through the Reduce-scatter and Allgather as across machines; and --zero-stage 0), on the
default `gpt train` model and on GPT_CONFIG_124M.

    pip install -e ".[mpi]"
    python -m benchmarks.distributed                     # both models, prints a Markdown table
    python -m benchmarks.distributed --models 124M --repeat 2   # setups alternated: A B C A B C
    python -m benchmarks.distributed --models 124M --update-only --steps 8   # after backward only

Each setup runs in fresh processes (`python -m benchmarks.distributed --worker ...`, under
`mpiexec -n 2` for the 2-rank setups). A worker times the training step of gpt.training.loop with
the data-parallel hooks of gpt.training.distributed: forward and backward on its shard of the
global batch (random token ids), the gradient exchange, the global norm, AdamW with clipping
folded in, and the mean loss over the ranks. It reports, after warm-up steps:

  step time     the median (and the best) of the timed steps (rank 0's; the ranks wait for
                each other); on a busy machine the best is the fairer figure
  tokens/s      global batch x context / step time
  forward+backward, norm+AdamW   the medians of those parts of a step (with ZeRO-1 each rank
                updates 1/N of the parameters; with --zero-stage 0 every rank updates all)
  in collectives  the median time a step spends inside Allreduce (stage 0) or Reduce-scatter +
                Allgather (ZeRO-1; with shared memory: the barriers, the sum of the ranks'
                blocks); this includes waiting for the slower rank, so it measures
                imbalance as well as transfer
  comm share    in collectives / step time
  alone         the same exchange timed after a barrier (pure transfer of the buffers)
  RSS           resident memory per rank at the end (MB; shared pages count in every rank
                that touches them), and AdamW's state held per rank
A second table splits rank 0's ZeRO-1 step after backward into its parts, wall time (CPU time
of the process): the copy of the gradients into the flat buffer, with shared memory the wait
at the barrier for the other ranks' backward, the reduction of its block, the norm, AdamW on the block, and the gather of the new weights (with shared memory: a
barrier). Under load compare the CPU times: a rank waiting in MPI spins, so a collective's CPU
time includes waiting too, while a copy's or AdamW's CPU time is its own work.
With --repeat K every setup runs K times in turn (A B C A B C ...) and the best run of each is
shown: on a shared machine, compare only figures measured alternately.
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
# (name, ranks, threads per rank, ZeRO stage, shared memory)
SETUPS = [("1 rank x 2 threads", 1, 2, 0, False), ("2 ranks x 1 thread, ZeRO-1", 2, 1, 1, True),
          ("2 ranks x 1 thread, ZeRO-1 (collectives)", 2, 1, 1, False),
          ("2 ranks x 1 thread, Allreduce", 2, 1, 0, False)]
PIECES = ("copy", "wait", "reduce_scatter", "norm", "update", "allgather")  # ZeRO-1's timings, in order


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated: " + ", ".join(MODELS))
    parser.add_argument("--steps", type=int, default=None, help="timed steps (default: per model)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    parser.add_argument("--repeat", type=int, default=1, help="run the setups this many times in turn; "
                        "the best run of each is shown")
    parser.add_argument("--update-only", action="store_true", help="time only what follows backward "
                        "(gradient exchange, norm, AdamW), with one fixed gradient per rank")
    parser.add_argument("--zero-stage", type=int, default=1, choices=(0, 1), help=argparse.SUPPRESS)
    parser.add_argument("--no-shared-memory", action="store_true", help=argparse.SUPPRESS)
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
    if world.size > 1 and args.zero_stage == 1:
        optimizer = world.shard_optimizer(optimizer, shared_memory=False if args.no_shared_memory else None)
    rng = np.random.default_rng(0)
    token_ids = rng.integers(0, cfg["vocab_size"], size=(batch, context + 1), dtype=np.int64)
    inputs, targets = world.shard(token_ids[:, :-1], token_ids[:, 1:])  # (B/N, T) each

    phases = {"compute": [], "average": [], "update": []}  # seconds of each step's parts

    fixed_grads = None
    if args.update_only:  # the same gradient every step (of this rank's rows: the first backward)
        F.cross_entropy(model(inputs), targets).backward()
        fixed_grads = [p.grad for p in parameters]
        optimizer.zero_grad()

    def step() -> float:
        start = time.perf_counter()
        if fixed_grads is None:
            logits = model(inputs)  # (B/N, T, V)
            loss = F.cross_entropy(logits, targets)
            loss.backward()
            value = loss.item()
        else:
            for param, grad in zip(parameters, fixed_grads):
                param.grad = grad  # (the optimizer only reads it)
            value = 0.0
        computed = time.perf_counter()
        world.average_gradients(parameters)
        averaged = time.perf_counter()
        norm = world.grad_norm(parameters)
        optimizer.step(grad_factor=nn.utils.clip_factor(norm, 1.0))  # (ZeRO-1: and the Allgather)
        optimizer.zero_grad()
        updated = time.perf_counter()
        phases["compute"].append(computed - start)
        phases["average"].append(averaged - computed)
        phases["update"].append(updated - averaged)
        return world.average(value)

    timings = getattr(world, "timings", None)

    def in_collectives() -> float:
        return sum(timings.get(key, 0.0) for key in ("allreduce", "wait", "reduce_scatter", "allgather")) if timings else 0.0

    for _ in range(args.warmup):
        step()
    for values in phases.values():
        values.clear()
    step_times, reduce_times = [], []
    pieces = {key: [] for piece in PIECES for key in (piece, "cpu " + piece)}
    for _ in range(args.steps or spec["steps"]):
        before, pieces_before = in_collectives(), dict(timings or {})
        start = time.perf_counter()
        step()
        step_times.append(time.perf_counter() - start)
        reduce_times.append(in_collectives() - before)
        for key, values in pieces.items():
            values.append((timings or {}).get(key, 0.0) - pieces_before.get(key, 0.0))

    alone, sharded = None, getattr(world, "sharded", None)
    if world.size > 1:  # the same collectives on the same buffers with every rank ready
        samples = []
        for _ in range(3):
            world.comm.Barrier()
            start = time.perf_counter()
            if sharded is not None:
                sharded.reduce_block()
                sharded.gather_parameters()
            else:
                world.comm.Allreduce(world.MPI.IN_PLACE, world._buffer, op=world.MPI.SUM)
            samples.append(time.perf_counter() - start)
        alone = statistics.median(samples)
    inner = sharded.inner if sharded is not None else optimizer
    state_mb = sum(value.nbytes for entry in inner.state.values() for value in entry.values()
                   if isinstance(value, np.ndarray)) / 1e6
    mine = {"step": statistics.median(step_times), "best": min(step_times),
            "allreduce": statistics.median(reduce_times), "rss_mb": _rss_mb(), "state_mb": state_mb}
    mine |= {name: statistics.median(values) for name, values in phases.items()}
    if sharded is not None:
        mine["pieces"] = {key: statistics.median(values) for key, values in pieces.items()}
    ranks = world.comm.gather(mine, root=0) if world.size > 1 else [mine]
    if world.is_main:
        result = {"model": args.model, "ranks": world.size, "threads": runtime.get_blas_threads(),
                  "batch": batch, "context": context, "parameters": int(sum(p.numel() for p in parameters)),
                  **mine, "allreduce_alone": alone,
                  "per_rank": ranks, "steps": len(step_times),
                  "buffer_mb": None if world.size == 1 else (sharded.flat_grad if sharded is not None
                                                              else world._buffer).nbytes / 1e6}
        print("RESULT " + json.dumps(result), flush=True)


def _rss_mb() -> float:
    """This process's resident memory now, in MB (Linux /proc; else the peak from getrusage)."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6
    except OSError:
        import resource
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3


# ------------------------------------------------------------------------------ the driver
def find_mpiexec() -> str | None:
    beside = Path(sys.executable).parent / "mpiexec"
    return str(beside) if beside.exists() else shutil.which("mpiexec")


def run_setup(model: str, ranks: int, threads: int, zero_stage: int, shared: bool, args) -> dict:
    command = [sys.executable, "-m", "benchmarks.distributed", "--worker", "--model", model,
               "--threads", str(threads), "--warmup", str(args.warmup), "--zero-stage", str(zero_stage)]
    if not shared:
        command.append("--no-shared-memory")
    if args.steps:
        command += ["--steps", str(args.steps)]
    if args.update_only:
        command.append("--update-only")
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
             "| norm+AdamW | in collectives | comm share | collectives alone | RSS per rank "
             "| AdamW state per rank |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        tokens = r["batch"] * r["context"]
        several = r["ranks"] > 1
        share = f"{100 * r['allreduce'] / r['step']:.1f}%" if several else "-"
        rss = " / ".join(f"{rank['rss_mb']:,.0f}" for rank in r["per_rank"]) + " MB"
        lines.append(f"| {r['model']} ({r['parameters'] / 1e6:.1f}M, batch {r['batch']} x {r['context']}) "
                     f"| {r['setup']} | {ms(r['step'])} ({ms(r['best'])}) "
                     f"| {tokens / r['step']:,.0f} ({tokens / r['best']:,.0f}) "
                     f"| {ms(r['compute'])} | {ms(r['update'])} "
                     f"| {ms(r['allreduce']) if several else '-'} | {share} "
                     f"| {ms(r['allreduce_alone'])} | {rss} | {r['state_mb']:,.0f} MB |")
    return "\n".join(lines)


def pieces_table(results: list) -> str:
    """Rank 0's ZeRO-1 step after backward, part by part: median wall ms (CPU ms). "wait for
    ranks" is the shared-memory path's barrier before the reduction (the other rank's backward
    still running); with MPI's collectives that wait is inside the reduction."""
    names = {"copy": "copy into flat", "wait": "wait for ranks", "reduce_scatter": "reduce block", "norm": "norm",
             "update": "AdamW on block", "allgather": "gather weights"}
    lines = ["| model | setup | " + " | ".join(names[piece] for piece in PIECES) + " |",
             "|---|---|" + "---:|" * len(PIECES)]
    for r in results:
        if "pieces" in r:
            cells = [f"{r['pieces'][piece] * 1000:,.1f} ({r['pieces']['cpu ' + piece] * 1000:,.1f})"
                     if piece != "wait" or r["pieces"][piece] else "-"  # (MPI's collective waits inside)
                     for piece in PIECES]
            lines.append(f"| {r['model']} | {r['setup']} | " + " | ".join(cells) + " |")
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
        best = {}
        for _ in range(max(args.repeat, 1)):  # A B C A B C: alternated, best of each
            for setup, ranks, threads, zero_stage, shared in SETUPS:
                result = run_setup(model, ranks, threads, zero_stage, shared, args) | {"setup": setup}
                print(f"# {model}, {setup}: step {result['step'] * 1000:,.0f} ms (best "
                      f"{result['best'] * 1000:,.0f} ms), load {os.getloadavg()[0]:.2f}", flush=True)
                if setup not in best or result["step"] < best[setup]["step"]:
                    best[setup] = result
        results += [best[setup] for setup, *_ in SETUPS]
    print(f"# load average {os.getloadavg()[0]:.2f} at the end")
    print(table(results))
    print()
    print(pieces_table(results))


if __name__ == "__main__":
    main()
