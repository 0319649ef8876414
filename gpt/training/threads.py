"""`gpt ... --threads N`: minigrad's threads and BLAS's threads, through minigrad.runtime.

minigrad.runtime finds OpenBLAS (what NumPy's wheels ship) among the loaded libraries and
sets its thread count through ctypes, at any time; with another BLAS it uses `threadpoolctl`
when installed. NumPy's own element-wise operations are single-threaded whatever is set
here; minigrad's fused kernels and optimizers split theirs over minigrad's threads.
"""
from __future__ import annotations

from minigrad import runtime
from minigrad.runtime import get_blas_threads


def set_blas_threads(n: int) -> str:
    """Use `n` BLAS threads from now on; returns how it was done (for messages and tests)."""
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"--threads must be a positive integer, got {n!r}")
    return runtime.set_blas_threads(n) or "not controllable from here (an unknown BLAS)"


def set_threads(n: int) -> str:
    """`--threads N`: the runtime switched on with N threads for BLAS, minigrad's kernels and
    optimizers. Returns how the BLAS count was set."""
    how = set_blas_threads(n)  # validates n
    runtime.configure(threads=n)
    return how


__all__ = ["set_threads", "set_blas_threads", "get_blas_threads"]
