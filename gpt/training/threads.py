"""Set the number of BLAS threads NumPy's matrix multiplies use (`gpt train --threads N`).

What works, in order of preference:
1. `threadpoolctl` when installed (`pip install threadpoolctl`, or the `bench` extra): changes
   the thread count of any loaded BLAS (OpenBLAS, MKL, BLIS) at any time.
2. Without it, OpenBLAS (what NumPy's wheels ship) is found among the libraries loaded by this
   process (`/proc/self/maps`, Linux) and its `openblas_set_num_threads` is called through
   ctypes: also effective after NumPy is imported.
3. Otherwise the environment variables `OPENBLAS_NUM_THREADS`, `OMP_NUM_THREADS` and
   `MKL_NUM_THREADS` are set: BLAS reads them only when NumPy is first imported, so this works
   only when called before that (for example from the shell: `OMP_NUM_THREADS=1 gpt train`).

NumPy's own element-wise operations are single-threaded whatever is set here.
"""
from __future__ import annotations

import ctypes
import importlib
import os
import sys

_ENV_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
_SET_NAMES = ("scipy_openblas_set_num_threads64_", "scipy_openblas_set_num_threads",
              "openblas_set_num_threads64_", "openblas_set_num_threads")
_GET_NAMES = ("scipy_openblas_get_num_threads64_", "scipy_openblas_get_num_threads",
              "openblas_get_num_threads64_", "openblas_get_num_threads")
_limiter = None  # keeps threadpoolctl's limits object alive


def _loaded_openblas() -> list:
    """ctypes handles of the OpenBLAS libraries loaded in this process (Linux only)."""
    try:
        with open("/proc/self/maps") as f:
            paths = {line.split()[-1] for line in f if "openblas" in line.lower() and ".so" in line}
    except OSError:
        return []
    handles = []
    for path in sorted(paths):
        try:
            handles.append(ctypes.CDLL(path))
        except OSError:
            continue
    return handles


def _openblas_function(names: tuple):
    for library in _loaded_openblas():
        for name in names:
            function = getattr(library, name, None)
            if function is not None:
                return function
    return None


def set_blas_threads(n: int) -> str:
    """Use `n` BLAS threads from now on; returns how it was done (for messages and tests)."""
    global _limiter
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"--threads must be a positive integer, got {n!r}")
    if "numpy" not in sys.modules:
        for var in _ENV_VARS:
            os.environ[var] = str(n)
        return "environment variables (set before NumPy was imported)"
    try:
        from threadpoolctl import threadpool_limits  # optional (the bench extra)

        _limiter = threadpool_limits(limits=n, user_api="blas")
        return "threadpoolctl"
    except ImportError:
        pass
    function = _openblas_function(_SET_NAMES)
    if function is not None:
        function(ctypes.c_int(n))
        return "OpenBLAS via ctypes"
    for var in _ENV_VARS:
        os.environ[var] = str(n)
    return "environment variables only (NumPy was already imported: may have no effect)"


def set_threads(n: int) -> str:
    """`--threads N`: BLAS threads, and the thread pools of minigrad's optimizer and fused
    kernels (when they have one). Returns how the BLAS count was set."""
    how = set_blas_threads(n)
    for module_name in ("minigrad.optim", "minigrad.nn.functional"):
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        setter = getattr(module, "set_num_threads", None)
        if setter is not None:
            setter(n)
    return how


def get_blas_threads() -> int | None:
    """The BLAS thread count in force, or None when it cannot be told."""
    try:
        from threadpoolctl import threadpool_info  # optional (the bench extra)

        counts = [info["num_threads"] for info in threadpool_info() if info.get("user_api") == "blas"]
        if counts:
            return int(counts[0])
    except ImportError:
        pass
    function = _openblas_function(_GET_NAMES)
    if function is not None:
        function.restype = ctypes.c_int
        return int(function())
    for var in _ENV_VARS:
        if os.environ.get(var, "").isdigit():
            return int(os.environ[var])
    return None
