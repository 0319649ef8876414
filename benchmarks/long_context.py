"""Long-context training step, blocked against stored attention: `python -m benchmarks.long_context`.

    python -m benchmarks.long_context                          # 124m at context 1024, batch 4
    python -m benchmarks.long_context --rounds 2               # blocked, stored, blocked, stored
    python -m benchmarks.long_context --config small --context 2048 --batch 2 --kernels blocked
    python -m benchmarks.long_context --layer --threads 1      # one attention layer, both kernels

Each run is a fresh process that trains a benchmark config (benchmarks.configs) with its
context and batch replaced, and reports its step times (wall and CPU), the peak RSS of the
process (VmHWM, in which the whole step's saved state lives) and its losses. The kernels:

  blocked   what scaled_dot_product_attention does: above 64 MB of (B, H, T, T) weights the
            blocked kernel (minigrad/nn/functional/blocked_attention.py), which keeps no weights
  stored    the kernel that keeps the weights for backward, at every size (the blocked
            threshold set to infinity: what training ran before the blocked kernel)

The runs alternate (A B A B ...), so on a shared machine both kernels see the same load;
compare the best steps, and the CPU seconds, which load changes less. The same seed gives
both kernels the same dropout masks, so their losses agree to float32 rounding.

--layer times one causal attention call instead (forward, then backward) at the config's
heads and head size, (batch, heads, context, head size), both kernels alternated in this one
process, --rounds x --steps calls each; there `blocked` is the blocked kernel at every size,
so that the two can be compared below the threshold too. It reports the best wall and CPU
milliseconds of the forward and of the backward and the largest difference of the outputs
and gradients between the kernels.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

from benchmarks.configs import CONFIGS, DROP_RATE, model_config

KERNELS = ("blocked", "stored")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.long_context",
                                     description=__doc__.split("\n")[0], allow_abbrev=False)
    parser.add_argument("--config", default="124m", choices=sorted(CONFIGS),
                        help="the model (default 124m: GPT_CONFIG_124M)")
    parser.add_argument("--context", type=int, default=1024, help="context length (default 1024)")
    parser.add_argument("--batch", type=int, default=4, help="batch size (default 4)")
    parser.add_argument("--kernels", default="blocked,stored",
                        help="comma-separated, from blocked,stored, run in this order (default both)")
    parser.add_argument("--rounds", type=int, default=1, help="times each kernel runs (default 1)")
    parser.add_argument("--steps", type=int, default=2, help="timed steps per run (default 2)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps first (default 1)")
    parser.add_argument("--drop-rate", type=float, default=DROP_RATE,
                        help=f"dropout rate (default {DROP_RATE}, the book's)")
    parser.add_argument("--threads", type=int, default=None,
                        help="BLAS and kernel threads (default: the cores available)")
    parser.add_argument("--layer", action="store_true",
                        help="time one attention layer's forward and backward, not a training step (default off)")
    parser.add_argument("--child", choices=KERNELS, help=argparse.SUPPRESS)  # one run, in this process
    args = parser.parse_args(argv)
    args.kernels = [k.strip() for k in args.kernels.split(",") if k.strip()]
    if not args.kernels or any(k not in KERNELS for k in args.kernels):
        parser.error(f"--kernels: choose from {','.join(KERNELS)}, got {args.kernels}")
    for name in ("context", "batch", "rounds", "steps"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1, got {getattr(args, name)}")
    if args.warmup < 0:
        parser.error(f"--warmup must be >= 0, got {args.warmup}")
    return args


def run_one(args) -> dict:
    """Train `args.steps` timed steps with kernel `args.child` in this process."""
    import numpy as np

    import gpt
    import minigrad as mg
    from benchmarks.worker import peak_rss_bytes, summary, timed_steps
    from minigrad import nn, optim, runtime
    from minigrad.nn.functional import attention

    runtime.configure(threads=args.threads)
    if args.child == "stored":
        attention.BLOCKED_ABOVE_BYTES = float("inf")
    cfg = dict(model_config(args.config, args.drop_rate), context_length=args.context)
    mg.random.manual_seed(0)
    model = gpt.GPTModel(cfg)
    model.train()
    rng = np.random.default_rng(0)
    inputs = rng.integers(0, cfg["vocab_size"], size=(args.batch, args.context), dtype=np.int64)
    targets = rng.integers(0, cfg["vocab_size"], size=(args.batch, args.context), dtype=np.int64)
    parameters = list(model.parameters())
    optimizer = optim.AdamW(parameters, lr=4e-4, weight_decay=0.1)
    losses = []

    def train_step():
        loss = model(inputs, targets=targets)  # fused head + cross-entropy: logits in row chunks
        loss.backward()
        norm = nn.utils.grad_norm(parameters)  # clipping to 1.0 as `gpt train` does: its
        optimizer.step(grad_factor=nn.utils.clip_factor(norm, 1.0))  # scaling inside the update
        optimizer.zero_grad()
        losses.append(loss.item())

    times = timed_steps(train_step, warmup=args.warmup, budget=0.0, min_steps=args.steps,
                        max_steps=args.steps)
    return {"kernel": args.child, "config": args.config, "context": args.context,
            "batch": args.batch, "drop_rate": args.drop_rate, "train": summary(times),
            "peak_rss": peak_rss_bytes(), "losses": losses}


def time_layer(args) -> None:
    """Both kernels on one causal attention call, alternated in this process (--layer)."""
    import numpy as np

    import minigrad as mg
    from minigrad import runtime
    from minigrad.nn import functional as F
    from minigrad.nn.functional import attention

    runtime.configure(threads=args.threads)
    cfg = model_config(args.config, args.drop_rate)
    heads, head_dim = cfg["n_heads"], cfg["emb_dim"] // cfg["n_heads"]
    rng = np.random.default_rng(0)
    split = (args.batch, args.context, heads, head_dim)  # as the model's split of the heads
    leaves = [mg.Tensor(rng.standard_normal(split, dtype=np.float32), requires_grad=True) for _ in range(3)]
    grad = mg.Tensor(rng.standard_normal(split, dtype=np.float32).transpose(0, 2, 1, 3))  # (B, H, T, D)
    best = {kernel: [float("inf")] * 4 for kernel in args.kernels}  # fwd wall, fwd CPU, bwd wall, bwd CPU
    results = {}
    previous = attention.BLOCKED_ABOVE_BYTES
    try:
        for _ in range(args.rounds * args.steps + args.warmup):
            for kernel in args.kernels:
                attention.BLOCKED_ABOVE_BYTES = -1 if kernel == "blocked" else float("inf")
                for leaf in leaves:
                    leaf.grad = None
                q, k, v = (leaf.transpose(1, 2) for leaf in leaves)  # (B, H, T, D)
                wall, cpu = time.perf_counter(), time.process_time()
                out = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=args.drop_rate,
                                                     generator=np.random.default_rng(1))
                middle = time.perf_counter(), time.process_time()
                out.backward(grad)
                end = time.perf_counter(), time.process_time()
                times = (middle[0] - wall, middle[1] - cpu, end[0] - middle[0], end[1] - middle[1])
                best[kernel] = [min(a, b) for a, b in zip(best[kernel], times)]
                results[kernel] = [out.data] + [leaf.grad for leaf in leaves]
                del out
    finally:
        attention.BLOCKED_ABOVE_BYTES = previous
    first = results[args.kernels[0]]
    print(f"{args.config} attention layer {(args.batch, heads, args.context, head_dim)}, causal, dropout "
          f"{args.drop_rate}, {args.threads or 'all'} threads: best of {args.rounds * args.steps} calls each")
    print("| kernel | forward ms | forward CPU ms | backward ms | backward CPU ms | max difference | load (1 min) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for kernel in args.kernels:
        difference = max(float(np.abs(a - b).max()) for a, b in zip(results[kernel], first))
        f_wall, f_cpu, b_wall, b_cpu = (1e3 * t for t in best[kernel])
        print(f"| {kernel} | {f_wall:.1f} | {f_cpu:.1f} | {b_wall:.1f} | {b_cpu:.1f} | {difference:.1e} "
              f"| {os.getloadavg()[0]:.2f} |")


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.layer:
        time_layer(args)
        return
    if args.child:
        print("RESULT " + json.dumps(run_one(args)), flush=True)
        return
    base = [sys.executable, "-m", "benchmarks.long_context", "--config", args.config,
            "--context", str(args.context), "--batch", str(args.batch), "--steps", str(args.steps),
            "--warmup", str(args.warmup), "--drop-rate", str(args.drop_rate)]
    if args.threads is not None:
        base += ["--threads", str(args.threads)]
    print(f"{args.config}, context {args.context}, batch {args.batch}, dropout {args.drop_rate}: "
          f"{args.warmup} warm-up + {args.steps} timed steps per run")
    print("| kernel | best step s | median step s | CPU s/step | peak RSS GB | losses | load (1 min) |")
    print("|---|---:|---:|---:|---:|---|---:|")
    for _ in range(args.rounds):
        for kernel in args.kernels:
            proc = subprocess.run(base + ["--child", kernel], capture_output=True, text=True)
            lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
            if proc.returncode or not lines:
                sys.stderr.write(proc.stdout[-2000:] + proc.stderr[-4000:])
                raise SystemExit(f"benchmarks.long_context: the {kernel} run failed "
                                 f"(exit code {proc.returncode}); its output is above")
            r = json.loads(lines[-1][len("RESULT "):])
            train = r["train"]
            losses = ", ".join(f"{x:.4f}" for x in r["losses"])
            print(f"| {kernel} | {train['best']:.2f} | {train['median']:.2f} | {train['cpu_median']:.1f} "
                  f"| {r['peak_rss'] / 1e9:.2f} | {losses} | {os.getloadavg()[0]:.2f} |", flush=True)
            time.sleep(2.0)  # BLAS threads wind down between processes


if __name__ == "__main__":
    main()
