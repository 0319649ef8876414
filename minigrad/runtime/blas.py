"""OpenBLAS (the BLAS in NumPy's wheels), found once through ctypes: its thread count, its
idle threads' spinning, and `single_blas_thread()`.

Found among the libraries this process has loaded (`/proc/self/maps`, Linux): NumPy's
bundled scipy-openblas or a system libopenblas. With another BLAS (MKL, Accelerate) or
elsewhere than Linux, `threadpoolctl` sets the thread count when it is installed, and the
rest does nothing. Nothing here runs at import.

Thread timeout: after each product, OpenBLAS's idle workers spin (sched_yield) for 2^n CPU
cycles waiting for the next one before they sleep; OpenBLAS's default n = 28 is ~0.1 s. A
training step alternates products with elementwise kernels that run on minigrad's threads,
so spinning BLAS workers take the cores from them, and where other processes also run, a
product's threads wait for each other at every call. OpenBLAS reads OPENBLAS_THREAD_TIMEOUT
when it loads, before any minigrad code runs, so `set_thread_timeout` puts the value in
the environment for an instant, has OpenBLAS read its environment again
(`openblas_read_env`) and restarts its threads (`blas_thread_shutdown_`, as OpenBLAS does
itself before a fork, then `blas_thread_init`, which reads the new timeout). Measured on the 2-core benchmark machine (tiny config, 2 threads, other jobs
running): best step 1.13-1.15 s with the default, 0.30-0.99 s with n = 12, ~4 microseconds
of spinning; GEMM throughput of large products is unchanged.

axpby_function: OpenBLAS's level-1 `cblas_?axpby` (y = alpha x + beta y, one pass over two
contiguous vectors), for the optimizers' in-place updates: one BLAS call does what NumPy
needs three passes for (y *= beta; t = alpha x; y += t); measured on one 128K-element float32
chunk in cache: 13 us against 39 us.

single_blas_thread: attention multiplies many small matrices (one (T, D) @ (D, T) per batch
and head). OpenBLAS splits each over its threads and synchronizes them per call; measured
on 2 cores, 96 products of 256x64 @ 64x256 took 9 ms idle with 2 BLAS threads, 11 ms with
1, and 1-3 SECONDS with 2 when other processes competed for the cores. So attention runs its
products on minigrad's threads with one BLAS thread each, and so does Linear (its forward
split by rows when there are many, its backward's two products side by side: about as fast
as OpenBLAS's own threads at the GPT's shapes, and at load 8 a bench-tiny step took
0.27-0.48 s against 1.9-2.8 s with OpenBLAS's threads).
"""
from __future__ import annotations

import contextlib
import ctypes
import os
import threading

import numpy as np

THREAD_TIMEOUT = 12  # 2^12 cycles of spinning before an idle OpenBLAS thread sleeps

_PREFIXES = ("scipy_openblas", "openblas")  # NumPy's bundled build names its symbols scipy_*
_SUFFIXES = ("64_", "")  # 64-bit-integer builds append 64_

_lock = threading.Lock()
_library = None  # the OpenBLAS ctypes.CDLL; False when none is loaded (looked up once)
_depth = 0  # threads inside single_blas_thread()
_saved = None  # the thread count to restore when the last one leaves
_limiter = None  # keeps threadpoolctl's limits object alive
_axpby = {}  # dtype -> the axpby callable or None (looked up once per dtype)


def _find_library():
    """The loaded OpenBLAS (a ctypes.CDLL), or None."""
    global _library
    if _library is None:
        _library = False
        try:
            with open("/proc/self/maps") as maps:
                paths = sorted({line.split()[-1] for line in maps
                                if "openblas" in line.lower() and ".so" in line})
        except OSError:  # not Linux
            paths = []
        for path in paths:
            try:
                library = ctypes.CDLL(path)
            except OSError:
                continue
            if _symbol(library, "openblas_set_num_threads") is not None:
                _library = library
                break
    return _library or None


def _symbol(library, name: str):
    """`name` as this build spells it (scipy_openblas_..64_ in NumPy's wheels), or None."""
    for prefix in _PREFIXES if name.startswith("openblas_") else ():
        for suffix in _SUFFIXES:
            function = getattr(library, prefix + name[len("openblas"):] + suffix, None)
            if function is not None:
                return function
    return getattr(library, name, None)


def _function(name: str, restype=None):
    library = _find_library()
    function = None if library is None else _symbol(library, name)
    if function is not None and restype is not None:
        function.restype = restype
    return function


def controllable() -> bool:
    """True when OpenBLAS's thread count can be read and set from here."""
    return _find_library() is not None


def describe() -> str | None:
    """e.g. "openblas 0.3.31 Haswell, 2 threads" read from OpenBLAS itself, or None."""
    version = _function("openblas_get_config", ctypes.c_char_p)
    core = _function("openblas_get_corename", ctypes.c_char_p)
    if version is None or core is None:
        return None
    words = version().decode(errors="replace").split()  # "OpenBLAS 0.3.31 USE64BITINT ..."
    number = words[1] if len(words) > 1 else "?"
    return f"openblas {number} {core().decode(errors='replace')}, {get_blas_threads()} threads"


def get_blas_threads() -> int | None:
    """The BLAS thread count in force, or None when it cannot be told."""
    getter = _function("openblas_get_num_threads", ctypes.c_int)
    if getter is not None:
        return int(getter())
    try:
        from threadpoolctl import threadpool_info  # optional: other BLAS libraries
    except ImportError:
        return None
    counts = [info["num_threads"] for info in threadpool_info() if info.get("user_api") == "blas"]
    return int(counts[0]) if counts else None


def set_blas_threads(n: int) -> str:
    """Use `n` BLAS threads from now on; returns how it was done ("" when it could not be)."""
    global _limiter
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"minigrad.runtime: BLAS threads must be a positive int, got {n!r}")
    setter = _function("openblas_set_num_threads")
    if setter is not None:
        setter(ctypes.c_int(n))
        return "OpenBLAS"
    try:
        from threadpoolctl import threadpool_limits  # optional: other BLAS libraries
    except ImportError:
        return ""
    _limiter = threadpool_limits(limits=n, user_api="blas")
    return "threadpoolctl"


def get_thread_timeout() -> int | None:
    """The n of OpenBLAS's 2^n-cycle spin as it last read it (0: its default), or None."""
    getter = _function("openblas_thread_timeout", ctypes.c_int)
    return None if getter is None else int(getter())


def set_thread_timeout(n: int = THREAD_TIMEOUT) -> bool:
    """Make idle OpenBLAS threads sleep after 2^n cycles of spinning (see the module
    docstring). Left alone when the user set OPENBLAS_THREAD_TIMEOUT. Call it while no
    other thread runs a BLAS product. Returns True when the setting is in force."""
    if "OPENBLAS_THREAD_TIMEOUT" in os.environ:
        return False
    read_env = _function("openblas_read_env")
    stop, start = _function("blas_thread_shutdown_"), _function("blas_thread_init")
    if read_env is None or stop is None or start is None:
        return False
    os.environ["OPENBLAS_THREAD_TIMEOUT"] = str(int(n))
    try:
        read_env()
    finally:
        del os.environ["OPENBLAS_THREAD_TIMEOUT"]
    stop()  # join OpenBLAS's threads, then start them again: they read the new timeout
    start()
    return get_thread_timeout() == int(n)


@contextlib.contextmanager
def single_blas_thread():
    """Inside the block, BLAS calls use one thread; the previous count is restored after
    the last of (possibly several concurrent) callers leaves."""
    global _depth, _saved
    setter = _function("openblas_set_num_threads")
    getter = _function("openblas_get_num_threads", ctypes.c_int)
    if setter is None or getter is None:
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


def axpby_function(dtype):
    """OpenBLAS's y = alpha x + beta y for float32 or float64 as `f(n, alpha, x, beta, y)`,
    x and y the addresses of n contiguous elements (y is written), or None (another dtype, or
    no OpenBLAS). Not threaded by OpenBLAS; each element's result does not depend on where it
    sits in the vector (so a chunked update gives the same bits for any chunking)."""
    dtype = np.dtype(dtype)
    if dtype not in _axpby:
        kinds = {np.dtype(np.float32): ("s", ctypes.c_float), np.dtype(np.float64): ("d", ctypes.c_double)}
        library, function = _find_library(), None
        if dtype in kinds and library is not None:
            letter, scalar = kinds[dtype]
            for prefix in ("scipy_", ""):  # NumPy's bundled build names its symbols scipy_*
                for suffix, integer in (("64_", ctypes.c_int64), ("", ctypes.c_int)):
                    raw = getattr(library, f"{prefix}cblas_{letter}axpby{suffix}", None)
                    if raw is not None and function is None:
                        raw.argtypes = [integer, scalar, ctypes.c_void_p, integer, scalar,
                                        ctypes.c_void_p, integer]
                        raw.restype = None
                        function = (lambda raw: lambda n, alpha, x, beta, y:
                                    raw(n, alpha, x, 1, beta, y, 1))(raw)
        _axpby[dtype] = function
    return _axpby[dtype]
