"""Forward+backward time of each fused kernel at GPT-2-small shapes, next to one matmul.

    python -m benchmarks.kernels                 # all kernels, default threads
    python -m benchmarks.kernels --threads 1     # one BLAS thread and no kernel threads
    python -m benchmarks.kernels --only attention cross_entropy

Shapes: B=8 sequences of T=256 tokens, width C=768, H=12 heads of D=64, MLP width 3072,
vocabulary V=50,257. Each kernel is timed forward only and forward+backward (best of
--repeat runs after one warm-up), and next to it one float32 matmul: the GEMM of equal FLOPs
for attention and linear, otherwise the model's GEMM that produces (or consumes) an array of
the kernel's size. The ratio says how many such matmuls the kernel's forward+backward costs.
conv2d (batch 32, 64 -> 64 channels, 32x32, 3x3, padding 1: a small ResNet's layer) and
linear_cross_entropy (the output head, its weight the embedding table as in GPT-2, with the
loss) are timed against one GEMM with the FLOPs of their forward AND backward (three GEMMs'
worth), so the ratio is the GEMM's FLOP rate over the kernel's: 1 means the GEMM's rate, 2
half of it.
The last column gives process CPU times (all threads), which other processes on a shared
machine do not inflate; with --threads 1 they are the idle-machine wall times.

`--markdown benchmarks/RESULTS.md` also writes the table as that file's kernels section,
between its markers (benchmarks/results_file.py): `python -m benchmarks --markdown` keeps it.
"""
from __future__ import annotations

import argparse
import os
import sys
import time


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=None,
                        help="BLAS threads and kernel threads (default: all cores)")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per kernel (best is kept)")
    parser.add_argument("--only", nargs="*", default=None, help="kernel names to run")
    parser.add_argument("--markdown", metavar="PATH", default=None,
                        help="also write the table into this file's marked kernels section, keeping "
                             "the rest (e.g. benchmarks/RESULTS.md; default: stdout only)")
    return parser.parse_args(argv)


ARGS = parse_args() if __name__ == "__main__" else None
if ARGS is not None and ARGS.threads:  # must be set before NumPy loads BLAS
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(ARGS.threads)

import numpy as np  # noqa: E402

from benchmarks.results_file import write_section  # noqa: E402

import minigrad as mg  # noqa: E402
import minigrad.nn.functional as F  # noqa: E402
from minigrad import runtime  # noqa: E402

B, T, C, H, D, HIDDEN, VOCAB = 8, 256, 768, 12, 64, 3072, 50257
N = B * T
CONV_N, CONV_C, CONV_HW = 32, 64, 32  # the conv2d line: a small ResNet's 3x3 layer
MARKDOWN_SECTION = "python -m benchmarks.kernels"  # the part of a --markdown file this writes


def best_time(fn, repeat: int) -> tuple[float, float]:
    """Best wall time and best process CPU time of fn() in milliseconds, after one warm-up.

    CPU time sums all threads of this process; with --threads 1 it is what the wall time
    would be on an otherwise idle machine (other processes do not inflate it).
    """
    fn()
    walls, cpus = [], []
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        cpus.append(time.process_time() - cpu)
        walls.append(time.perf_counter() - wall)
    return min(walls) * 1e3, min(cpus) * 1e3


def param(rng, *shape, scale=1.0):
    return mg.Tensor((rng.standard_normal(shape) * scale).astype(np.float32), requires_grad=True)


def cases(rng):
    """[(name, shape text, forward callable returning a Tensor, reference GEMM (m, k, n), its
    label)], and the leaf tensors (whose .grad is cleared before each timed backward)."""
    x_c = param(rng, N, C)
    x_h = param(rng, N, HIDDEN)
    w_ln, b_ln = param(rng, C), param(rng, C)
    q, k, v = (param(rng, B, H, T, D) for _ in range(3))
    logits = param(rng, N, VOCAB)
    targets = rng.integers(0, VOCAB, N)
    table = param(rng, VOCAB, C, scale=0.02)
    ids = rng.integers(0, VOCAB, (B, T))
    w_fc, b_fc = param(rng, HIDDEN, C, scale=0.02), param(rng, HIDDEN, scale=0.02)
    scores = param(rng, B, H, T, T)
    attention_flops = 2 * (2 * B * H * T * T * D)  # q k^T and P v
    # a small-ResNet convolution: batch 32, 64 -> 64 channels, 32x32, 3x3, padding 1
    images = param(rng, CONV_N, CONV_C, CONV_HW, CONV_HW)
    conv_w, conv_b = param(rng, CONV_C, CONV_C, 3, 3, scale=0.05), param(rng, CONV_C, scale=0.05)
    conv_gemm = (CONV_C, CONV_C * 9, 3 * CONV_N * CONV_HW * CONV_HW)  # forward + 2 backward GEMMs
    leaves = [x_c, x_h, w_ln, b_ln, q, k, v, logits, table, w_fc, b_fc, scores, images, conv_w, conv_b]
    return [
        ("attention", f"q,k,v ({B},{H},{T},{D}) causal",
         lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True), (N, C, attention_flops // (2 * N * C)),
         "equal FLOPs"),
        ("attention+dropout", f"q,k,v ({B},{H},{T},{D}) p=0.1",
         lambda: F.scaled_dot_product_attention(q, k, v, dropout_p=0.1, is_causal=True),
         (N, C, attention_flops // (2 * N * C)), "equal FLOPs"),
        ("softmax", f"({B},{H},{T},{T})", lambda: F.softmax(scores, dim=-1), (N, C, C), "x @ W_attn_out"),
        ("layer_norm", f"({N},{C})", lambda: F.layer_norm(x_c, (C,), w_ln, b_ln), (N, C, C), "x @ W_attn_out"),
        ("gelu", f"({N},{C})", lambda: F.gelu(x_c, approximate="tanh"), (N, C, C), "x @ W_attn_out"),
        ("gelu", f"({N},{HIDDEN})", lambda: F.gelu(x_h, approximate="tanh"), (N, C, HIDDEN), "x @ W_fc"),
        ("dropout", f"({N},{C}) p=0.1", lambda: F.dropout(x_c, 0.1), (N, C, C), "x @ W_attn_out"),
        ("cross_entropy", f"({N},{VOCAB})", lambda: F.cross_entropy(logits, targets),
         (N, C, VOCAB), "x @ W_head"),
        ("linear_cross_entropy", f"({N},{C}) @ ({VOCAB},{C})^T, tied", lambda: F.linear_cross_entropy(
            x_c, table, None, targets), (N, 3 * C, VOCAB), "equal FLOPs (fwd+bwd)"),
        ("embedding", f"{VOCAB}x{C}, ids ({B},{T})", lambda: F.embedding(ids, table), (N, C, C),
         "x @ W_attn_out"),
        ("linear", f"({N},{C}) @ ({C},{HIDDEN})", lambda: F.linear(x_c, w_fc, b_fc), (N, C, HIDDEN),
         "equal FLOPs"),
        ("conv2d", f"({CONV_N},{CONV_C},{CONV_HW},{CONV_HW}) 3x3 pad 1 -> {CONV_C}",
         lambda: F.conv2d(images, conv_w, conv_b, padding=1), conv_gemm, "equal FLOPs (fwd+bwd)"),
    ], leaves


def forward_backward(fn, rng_out, leaves):
    def run():
        for leaf in leaves:  # as zero_grad() would: the timed backward writes fresh .grad
            leaf.grad = None
        out = fn()
        out.backward(rng_out(out))
    return run


def main(args) -> None:
    runtime.configure(threads=args.threads)
    rng = np.random.default_rng(0)
    gemm_cache = {}

    def gemm_ms(m, k, n):
        if (m, k, n) not in gemm_cache:
            a = rng.standard_normal((m, k), dtype=np.float32)
            b = rng.standard_normal((k, n), dtype=np.float32)
            gemm_cache[(m, k, n)] = best_time(lambda: a @ b, args.repeat)
        return gemm_cache[(m, k, n)]

    grads = {}

    def grad_for(out):  # one fixed upstream gradient per output shape (not timed after warm-up)
        if out.shape not in grads:
            grads[out.shape] = rng.standard_normal(out.shape).astype(out.dtype) if out.ndim else None
        return grads[out.shape]

    lines = []  # what is printed, kept for --markdown

    def emit(line: str) -> None:
        print(line, flush=True)
        lines.append(line)

    peak_ms = gemm_ms(2048, 2048, 2048)[0]
    emit(f"numpy {np.__version__}, kernel threads {runtime.get_threads()}, "
         f"float32 GEMM 2048^3: {2 * 2048**3 / peak_ms / 1e6:.0f} GFLOP/s, "
         f"load average {os.getloadavg()[0]:.1f}; {time.strftime('%Y-%m-%d %H:%M')}\n")
    emit("| kernel | shape | forward ms | fwd+bwd ms | matmul (m,k,n) | matmul ms | "
         "fwd+bwd / matmul | CPU ms: fwd+bwd / matmul |")
    emit("|" + "---|" * 8)
    all_cases, leaves = cases(rng)
    for name, shape, fn, (m, k, n), label in all_cases:
        if args.only and name not in args.only:
            continue
        with mg.no_grad():
            forward_ms = best_time(fn, args.repeat)[0]
        both_ms, both_cpu = best_time(forward_backward(fn, grad_for, leaves), args.repeat)
        ref_ms, ref_cpu = gemm_ms(m, k, n)
        emit(f"| {name} | {shape} | {forward_ms:.1f} | {both_ms:.1f} | ({m},{k},{n}) {label} | "
             f"{ref_ms:.1f} | {both_ms / ref_ms:.2f} | {both_cpu:.0f} / {ref_cpu:.0f} |")
    emit(f"\nload average at the end: {os.getloadavg()[0]:.1f} (wall times are only "
         f"meaningful when it stays below the core count)")
    if args.markdown:
        write_section(args.markdown, MARKDOWN_SECTION, markdown_section(lines, args))
        print(f"wrote the kernels section of {args.markdown}")


def markdown_section(lines: list, args) -> str:
    """The kernels section of a results file: a heading, the command, then the printed lines."""
    command = "python -m benchmarks.kernels" + (f" --threads {args.threads}" if args.threads else "") \
        + (f" --only {' '.join(args.only)}" if args.only else "")
    return "\n".join(["## Kernels (`python -m benchmarks.kernels`)", "", f"`{command}`:", "", *lines])


if __name__ == "__main__":
    sys.exit(main(ARGS))
