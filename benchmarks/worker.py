"""One benchmark config in a fresh process: `python -m benchmarks.worker --config bench-tiny`.

Run by `python -m benchmarks` once per config (a fresh process each, so one config's peak
memory or warm caches do not leak into another's). Prints one line `RESULT {json}`.

What it times (after warm-up steps that are not counted):
  train     one training step = forward + cross-entropy + backward + clipping to norm 1.0
            + AdamW step + zero_grad (clipping as `gpt train` does it: the norm, then the
            factor passed to the step, which scales the gradient in its own first pass), on random token ids (batch x context); best and
            median step time; then the peak RSS of the process (VmHWM) so far
  forward   the same batch, forward only, eval mode, no graph (no_grad)
  generate  200 new tokens greedily at batch 1 from a 4-token prompt, with and without
            the KV cache
  profile   (--profile) a few more training steps with every Function's forward and
            backward timed (benchmarks.profile), plus the optimizer and clipping
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time


def parse_args(argv=None, compile_flag: bool = False):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    if compile_flag:  # benchmarks.torch_worker only
        parser.add_argument("--compile", action="store_true", help="time torch.compile's code")
    parser.add_argument("--config", required=True)
    parser.add_argument("--parts", default="train,forward,generate")
    parser.add_argument("--drop-rate", type=float, default=None)
    parser.add_argument("--train-seconds", type=float, default=8.0,
                        help="time budget of the timed training steps (at least 3 steps)")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--threads", type=int, default=None,
                        help="BLAS, kernel and optimizer threads (minigrad.runtime.configure)")
    return parser.parse_args(argv)


def peak_rss_bytes() -> int:
    """High-water mark of this process's resident memory (VmHWM), in bytes."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource  # ru_maxrss is in KiB on Linux

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def timed_steps(step, warmup: int, budget: float, min_steps: int = 3, max_steps: int = 30) -> list:
    """Run `step()` `warmup` times, then until `budget` seconds (min_steps..max_steps runs);
    returns the timed durations in seconds."""
    for _ in range(warmup):
        step()
    times, cpu_times = [], []
    start = time.perf_counter()
    while len(times) < max_steps and (len(times) < min_steps or time.perf_counter() - start < budget):
        t0, c0 = time.perf_counter(), time.process_time()
        step()
        times.append(time.perf_counter() - t0)
        cpu_times.append(time.process_time() - c0)
    timed_steps.cpu_times = cpu_times  # CPU seconds of the process (all threads) per run
    return times


def summary(times: list) -> dict:
    """Best and median wall time of the timed runs, and the median CPU time of the process
    (all its threads: on a loaded machine it tells how much work a run was)."""
    cpu = getattr(timed_steps, "cpu_times", None) or [float("nan")]
    return {"best": min(times), "median": statistics.median(times), "count": len(times),
            "cpu_median": statistics.median(cpu)}


def main(argv=None) -> None:
    args = parse_args(argv)
    import minigrad as mg
    import numpy as np

    from minigrad import nn, optim, runtime
    import gpt
    from benchmarks.configs import (CONFIGS, DROP_RATE, GENERATION_TOKENS, PROMPT_TOKENS,
                                    model_config)

    runtime.configure(threads=args.threads)  # as `gpt train` does
    spec = CONFIGS[args.config]
    drop_rate = DROP_RATE if args.drop_rate is None else args.drop_rate
    cfg = model_config(args.config, drop_rate)
    batch, context = spec["batch"], cfg["context_length"]
    parts = set(args.parts.split(","))
    result = {"config": args.config, "engine": "minigrad", "batch": batch, "drop_rate": drop_rate,
              "threads": threads_in_use(runtime)}

    mg.random.manual_seed(0)
    t0 = time.perf_counter()
    model = gpt.GPTModel(cfg)
    result["init_seconds"] = time.perf_counter() - t0
    rng = np.random.default_rng(0)
    inputs = rng.integers(0, cfg["vocab_size"], size=(batch, context), dtype=np.int64)
    targets = rng.integers(0, cfg["vocab_size"], size=(batch, context), dtype=np.int64)
    parameters = list(model.parameters())
    result["parameters"] = int(sum(p.numel() for p in parameters))

    if "train" in parts or args.profile:
        model.train()
        optimizer = optim.AdamW(parameters, lr=4e-4, weight_decay=0.1)  # the book's chapter 5
        losses = []

        def train_step():
            loss = model(inputs, targets=targets)  # fused head + cross-entropy (no whole logits)
            loss.backward()
            norm = nn.utils.grad_norm(parameters)  # clipping to 1.0 as `gpt train` does: its
            optimizer.step(grad_factor=nn.utils.clip_factor(norm, 1.0))  # scaling inside the update
            optimizer.zero_grad()
            losses.append(loss.item())

        if "train" in parts:
            times = timed_steps(train_step, warmup=2, budget=args.train_seconds)
            result["train"] = summary(times)
            result["peak_rss"] = peak_rss_bytes()
            result["loss_first_last"] = [losses[0], losses[-1]]
        if args.profile:
            from benchmarks.profile import OpProfiler

            with OpProfiler() as profiler:
                for _ in range(3):
                    profiler.step(train_step, optimizer)
            result["profile"] = profiler.report()
        del optimizer
        for p in parameters:
            p.grad = None

    model.eval()
    if "forward" in parts:
        def forward_step():
            with mg.no_grad():
                model(inputs)

        result["forward"] = summary(timed_steps(forward_step, warmup=1, budget=args.train_seconds / 2))

    if "generate" in parts:
        prompt = rng.integers(0, cfg["vocab_size"], size=(1, PROMPT_TOKENS), dtype=np.int64)
        generated = {}
        for use_cache in (True, False):
            gpt.generate(model, prompt, 2, use_cache=use_cache)  # warm-up
            t0 = time.perf_counter()
            ids = gpt.generate(model, prompt, GENERATION_TOKENS, use_cache=use_cache)
            elapsed = time.perf_counter() - t0
            generated[use_cache] = ids
            result["generate_cached" if use_cache else "generate_uncached"] = {
                "seconds": elapsed, "tokens": GENERATION_TOKENS}
        result["generate_same_ids"] = bool(np.array_equal(generated[True], generated[False]))

    print("RESULT " + json.dumps(result), flush=True)


def threads_in_use(runtime) -> dict:
    info = dict(runtime.status(), OPENBLAS_NUM_THREADS=os.environ.get("OPENBLAS_NUM_THREADS"))
    try:
        from threadpoolctl import threadpool_info

        blas = [i for i in threadpool_info() if i.get("user_api") == "blas"]
        if blas:
            info.update(blas_threads=blas[0]["num_threads"], blas=blas[0].get("internal_api"),
                        blas_kernel=blas[0].get("architecture"))
    except ImportError:
        pass
    return info


if __name__ == "__main__":
    sys.exit(main())
