"""`single_blas_thread()`: run a block of code with OpenBLAS limited to one thread.

Why: attention multiplies many small matrices (one (T, D) @ (D, T) per batch and head).
OpenBLAS splits each of these small GEMMs over its threads and synchronizes them per call;
measured here on 2 cores, 96 products of 256x64 @ 64x256 took 9 ms on an idle machine with
2 BLAS threads, 11 ms with 1, and 1-3 SECONDS with 2 when other processes competed for the
cores (every per-call synchronization waits for a descheduled thread). The attention kernel
therefore runs its batched products with one BLAS thread each, in its own worker threads
(one slice of the batch per thread), which is never slower and immune to that collapse.

OpenBLAS (NumPy's bundled scipy-openblas or a system one) is found through ctypes; with
another BLAS the context manager does nothing.
"""
from __future__ import annotations

import contextlib
import ctypes
import threading

_SET_NAMES = ("scipy_openblas_set_num_threads64_", "scipy_openblas_set_num_threads",
              "openblas_set_num_threads64_", "openblas_set_num_threads")
_GET_NAMES = ("scipy_openblas_get_num_threads64_", "scipy_openblas_get_num_threads",
              "openblas_get_num_threads64_", "openblas_get_num_threads")

_lock = threading.Lock()
_functions = None  # (set, get) ctypes functions, (None, None) when not found; looked up once
_depth = 0  # how many threads are inside single_blas_thread()
_saved = None  # the thread count to restore when the last one leaves


def _find_openblas():
    global _functions
    if _functions is not None:
        return _functions
    _functions = (None, None)
    try:
        with open("/proc/self/maps") as maps:
            paths = sorted({line.split()[-1] for line in maps
                            if "openblas" in line.lower() and ".so" in line})
    except OSError:  # not Linux: leave BLAS alone
        return _functions
    for path in paths:
        try:
            library = ctypes.CDLL(path)
        except OSError:
            continue
        setter = next((getattr(library, n) for n in _SET_NAMES if hasattr(library, n)), None)
        getter = next((getattr(library, n) for n in _GET_NAMES if hasattr(library, n)), None)
        if setter is not None and getter is not None:
            getter.restype = ctypes.c_int
            _functions = (setter, getter)
            break
    return _functions


def blas_threads_controllable() -> bool:
    """True when OpenBLAS's thread count can be read and set from here."""
    return _find_openblas()[0] is not None


@contextlib.contextmanager
def single_blas_thread():
    """Inside the block, BLAS calls use one thread; the previous count is restored after
    the last of (possibly several concurrent) callers leaves."""
    global _depth, _saved
    setter, getter = _find_openblas()
    if setter is None:
        yield
        return
    with _lock:
        if _depth == 0:
            _saved = int(getter())
            if _saved != 1:
                setter(ctypes.c_int(1))
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _saved != 1:
                setter(ctypes.c_int(_saved))
