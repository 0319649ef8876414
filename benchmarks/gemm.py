"""The machine's float32 GEMM speed: the denominator of every "% of peak" figure.

The peak is the best FLOP/s of one `np.matmul` (best of `repeats` runs after a warm-up) over
a square 2048^3 product and the products a GPT training step makes at the benchmarked
shapes (tokens N = batch * context: (N, d) @ (d, d), (N, d) @ (d, 4d), (N, 4d) @ (4d, d),
(N, d) @ (d, vocab)). The maximum of them is the peak; every shape's figure is kept too, so
a reader sees how far the GPT shapes fall short of the square one.

    python -m benchmarks.gemm            # prints the table
    python -m benchmarks.gemm --json     # one line `RESULT {json}` (for benchmarks.__main__)
"""
from __future__ import annotations

import time

import numpy as np

SHAPES = [  # (m, k, n): out (m, n) = (m, k) @ (k, n)
    (2048, 2048, 2048),
    (512, 768, 768),      # 124M: attention projections, batch 2 x 256 tokens
    (512, 768, 3072),     # 124M: feed-forward up
    (512, 3072, 768),     # 124M: feed-forward down
    (512, 768, 50257),    # 124M: output head
    (2048, 256, 1024),    # small: feed-forward up, batch 8 x 256 tokens
    (2048, 256, 50257),   # small: output head
    (2048, 128, 512),     # bench-tiny: feed-forward up, batch 16 x 128 tokens
]


def gemm_flops(m: int, k: int, n: int, repeats: int = 3) -> float:
    """Best float32 FLOP/s of (m, k) @ (k, n) into a preallocated output."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((m, k), dtype=np.float32)
    b = rng.standard_normal((k, n), dtype=np.float32)
    out = np.empty((m, n), dtype=np.float32)
    np.matmul(a, b, out=out)  # warm-up: BLAS threads start, pages are touched
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        np.matmul(a, b, out=out)
        best = min(best, time.perf_counter() - start)
    return 2.0 * m * k * n / best


def measure(repeats: int = 3) -> dict:
    """{"peak": max FLOP/s, "shapes": {"m x k x n": FLOP/s}}."""
    shapes = {f"{m}x{k}x{n}": gemm_flops(m, k, n, repeats) for m, k, n in SHAPES}
    return {"peak": max(shapes.values()), "shapes": shapes}


def blas_description() -> str | None:
    """e.g. "openblas 0.3.31 SkylakeX, 2 threads" (OpenBLAS itself, else threadpoolctl), else None."""
    from minigrad.runtime import blas

    described = blas.describe()
    if described is not None:
        return described
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return None
    for info in threadpool_info():
        if info.get("user_api") == "blas":
            return (f"{info.get('internal_api')} {info.get('version')} {info.get('architecture')}, "
                    f"{info.get('num_threads')} threads")
    return None


if __name__ == "__main__":
    import json
    import sys

    result = measure()
    if "--json" in sys.argv:
        result["blas"] = blas_description()
        print("RESULT " + json.dumps(result))
        sys.exit(0)
    for shape, flops in result["shapes"].items():
        print(f"{shape:>18}  {flops / 1e9:7.1f} GFLOP/s")
    print(f"{'peak':>18}  {result['peak'] / 1e9:7.1f} GFLOP/s")
