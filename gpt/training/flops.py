"""The machine's float32 matmul speed, and nanoGPT's model FLOPs utilization (MFU).

MFU says what fraction of the machine's matmul throughput a training step achieves:

    mfu = flops_per_token * tokens_per_second / peak_flops_per_second

with nanoGPT's count (from the PaLM paper, appendix B) of the FLOPs of one token's forward and
backward pass:

    flops_per_token = 6 * N + 12 * n_layers * context_length * emb_dim

where N is the number of parameters that take part in matrix multiplies (every weight except
the embeddings: each costs 2 FLOPs per token forward and 4 backward), and the second term is
attention's QK^T and attention-times-V products.

The peak is not a datasheet number: it is measured here, once, as the best float32 GEMM
(2048 x 2048 x 2048) NumPy's BLAS reaches with the current thread count, and cached in the
user cache directory (`gemm_flops.json` in $GPT_CACHE_DIR, else $XDG_CACHE_HOME/minigrad-gpt,
else ~/.cache/minigrad-gpt; delete it to measure again). Set `GPT_PEAK_FLOPS` (FLOP/s, e.g.
`2e11`) to skip the measurement.
"""
from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

import numpy as np

from minigrad import runtime


def cache_dir() -> Path:
    """The package's cache folder (not created here): $GPT_CACHE_DIR, else
    $XDG_CACHE_HOME/minigrad-gpt, else ~/.cache/minigrad-gpt (as gpt.data.corpus's token cache)."""
    if os.environ.get("GPT_CACHE_DIR"):
        return Path(os.environ["GPT_CACHE_DIR"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "minigrad-gpt"


def _blas_threads() -> int | None:
    """The BLAS thread count in force, when it can be told (minigrad.runtime)."""
    return runtime.get_blas_threads()


def cpu_name() -> str:
    """The CPU's model name from /proc/cpuinfo, else what `platform` knows."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return cpu


def _cache_key(size: int) -> str:
    """What the measurement depends on: CPU, NumPy build, thread count and matrix size."""
    cpu = cpu_name()
    return f"{cpu}|numpy {np.__version__}|threads {_blas_threads()}|cpus {os.cpu_count()}|n {size}"


def measure_gemm_flops(size: int = 2048, repeats: int = 3) -> float:
    """Best float32 FLOP/s of `size`^3 matrix products over `repeats` timed runs (after a warm-up)."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size), dtype=np.float32)
    b = rng.standard_normal((size, size), dtype=np.float32)
    out = np.empty((size, size), dtype=np.float32)
    np.matmul(a, b, out=out)  # warm-up: thread pool start, page faults
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        np.matmul(a, b, out=out)
        best = min(best, time.perf_counter() - start)
    return 2.0 * size**3 / best


def peak_flops(size: int = 2048, use_cache: bool = True, refresh: bool = False) -> float:
    """The machine's float32 matmul FLOP/s: from `GPT_PEAK_FLOPS`, the cache, or measured (~1 s).

    refresh=True measures again and caches the larger of the new and the cached figure (a
    measurement taken while other programs were busy is too low: an MFU above 100% shows it,
    and the trainer then calls this).
    """
    override = os.environ.get("GPT_PEAK_FLOPS")
    if override:
        try:
            value = float(override)
        except ValueError:
            raise ValueError(f"GPT_PEAK_FLOPS must be a number of FLOP/s like 2e11, got {override!r}")
        if value <= 0:
            raise ValueError(f"GPT_PEAK_FLOPS must be positive, got {override!r}")
        return value
    key = _cache_key(size)
    path = cache_dir() / "gemm_flops.json"
    cached = {}
    if use_cache:
        try:
            cached = json.loads(path.read_text())
            if isinstance(cached.get(key), (int, float)) and cached[key] > 0 and not refresh:
                return float(cached[key])
        except (OSError, ValueError, AttributeError):
            cached = {}
    value = measure_gemm_flops(size)
    previous = cached.get(key) if isinstance(cached, dict) else None
    if isinstance(previous, (int, float)) and previous > value:
        value = float(previous)
    if use_cache:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            cached = cached if isinstance(cached, dict) else {}
            cached[key] = value
            temporary = path.with_suffix(f".tmp{os.getpid()}")
            temporary.write_text(json.dumps(cached, indent=1))
            os.replace(temporary, path)
        except OSError:
            pass  # a read-only home: measure again next time
    return value


def matmul_params(model_cfg: dict) -> int:
    """Weights used in matrix multiplies of a GPT with the book's config keys (biases ignored).

    Per block: W_query, W_key, W_value, out_proj (4 d^2) and the feed-forward (2 * d * 4d);
    plus the output head (d * vocab), tied to the token embedding or not (it multiplies either
    way). The embedding lookups are not matmuls and are not counted.
    """
    d = model_cfg["emb_dim"]
    per_block = 4 * d * d + 2 * d * 4 * d
    return model_cfg["n_layers"] * per_block + d * model_cfg["vocab_size"]


def flops_per_token(model_cfg: dict, context_length: int | None = None) -> float:
    """nanoGPT's training FLOPs per token: 6 N + 12 L T d (T = the context actually used)."""
    context = context_length or model_cfg["context_length"]
    return 6.0 * matmul_params(model_cfg) + 12.0 * model_cfg["n_layers"] * context * model_cfg["emb_dim"]


def estimate_mfu(model_cfg: dict, tokens_per_second: float, peak: float,
                 context_length: int | None = None) -> float:
    """Fraction of the measured peak achieved at `tokens_per_second` training throughput."""
    if peak <= 0:
        return 0.0
    return flops_per_token(model_cfg, context_length) * tokens_per_second / peak
