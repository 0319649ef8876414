"""OpenBLAS settings that must be in place before NumPy loads its BLAS (imported first by
minigrad/__init__.py; this module itself must not import NumPy).

OPENBLAS_THREAD_TIMEOUT: after each matrix product, OpenBLAS's idle worker threads keep
spinning (calling sched_yield) for 2^n CPU cycles, waiting for the next product, before they
sleep; OpenBLAS's default n = 28 is about 0.1 s. A minigrad training step alternates matrix
products with elementwise kernels that run on minigrad's own threads, so spinning BLAS
workers take the cores from them, and on a machine where other processes also run, a
product's threads wait for each other at every call. Measured on the 2-core benchmark
machine (tiny config, 2 threads, other jobs running): median step 3.0 s and 3.1 CPU-seconds
with the default, 0.15-0.5 s and 0.23-0.47 CPU-seconds with n = 12 (4 is as good); GEMM
throughput of large products is unchanged. minigrad sets n = 12 (about 4 microseconds of
spinning) unless the variable is already set, and only when NumPy is not imported yet
(afterwards OpenBLAS has read its environment and the setting would do nothing).
"""
from __future__ import annotations

import os
import sys

THREAD_TIMEOUT = "12"  # 2^12 cycles of spinning before an idle OpenBLAS thread sleeps


def configure_openblas() -> bool:
    """Set OPENBLAS_THREAD_TIMEOUT unless it is set or NumPy is already loaded.

    Returns True when this call set it (the setting is then in force for this process)."""
    if "numpy" in sys.modules or "OPENBLAS_THREAD_TIMEOUT" in os.environ:
        return False
    os.environ["OPENBLAS_THREAD_TIMEOUT"] = THREAD_TIMEOUT
    return True


configure_openblas()
