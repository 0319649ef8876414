"""minigrad.runtime: threads, BLAS and memory, in one place, switched on by one call.

    import minigrad
    minigrad.runtime.configure()                  # what `gpt train` and `gpt generate` do
    minigrad.runtime.configure(threads=2, memory_reuse=False)

`import minigrad` changes nothing outside minigrad: no environment variable, no allocator
setting, no BLAS setting, no thread started. Without `configure()`, minigrad's kernels and
optimizers still split their work over `get_threads()` threads of their own (a pool created
on first use) and attention runs its small products with one BLAS thread each while it
runs; BLAS and the allocator keep whatever the process had.

`configure(threads=None, memory_reuse=True)` changes the process (call it once, early,
before other threads run BLAS products):
  threads       minigrad's threads and BLAS's threads (None: leave both as they are; the
                default is the CPUs this process may run on, see threads.py)
  memory_reuse  keep freed heap memory mapped for reuse (see memory.py), or glibc's defaults
and, always, makes idle OpenBLAS threads sleep after a few microseconds instead of spinning
for 0.1 s (see blas.py; a user's OPENBLAS_THREAD_TIMEOUT is kept). minigrad reads no
environment variable of its own; OpenBLAS still reads its own (OPENBLAS_NUM_THREADS...) when
it loads.

    threads.py   the pool (parallel_for, parallel_for_sizes, run_parallel), available_cores(), get/set_threads
    blas.py      OpenBLAS through ctypes: thread count, thread timeout, single_blas_thread(),
                 axpby_function() (the optimizers' one-pass y = a x + b y)
    memory.py    the allocator policy (mallopt)
"""
from __future__ import annotations

from .blas import get_blas_threads, get_thread_timeout, set_blas_threads, set_thread_timeout
from .memory import memory_reuse_enabled, set_memory_reuse
from .threads import available_cores, get_threads, parallel_for, parallel_for_sizes, run_parallel, set_threads

_configured = False


def configure(threads: int | None = None, memory_reuse: bool = True) -> dict:
    """Switch minigrad's runtime on (see the module docstring); returns `status()`.

    threads: minigrad's and BLAS's thread count (None: leave both as they are).
    memory_reuse: keep freed heap memory mapped for reuse (True) or glibc's defaults (False).
    """
    global _configured
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int)
                                or threads < 1):
        raise ValueError(f"minigrad.runtime.configure: threads must be a positive int or "
                         f"None, got {threads!r}")
    if not isinstance(memory_reuse, bool):
        raise TypeError(f"minigrad.runtime.configure: memory_reuse must be True or False, "
                        f"got {memory_reuse!r}")
    if not _configured:
        set_thread_timeout()
    if threads is not None:
        set_threads(threads)
        set_blas_threads(threads)
    set_memory_reuse(memory_reuse)
    _configured = True
    return status()


def is_configured() -> bool:
    """True once `configure()` has run in this process."""
    return _configured


def status() -> dict:
    """What is in force: minigrad's threads, BLAS's threads and thread timeout (None when
    they cannot be told), memory reuse, and whether configure() ran."""
    return {"threads": get_threads(), "blas_threads": get_blas_threads(),
            "blas_thread_timeout": get_thread_timeout(),
            "memory_reuse": memory_reuse_enabled(), "configured": _configured}


__all__ = ["configure", "is_configured", "status", "get_threads", "set_threads",
           "available_cores", "parallel_for", "parallel_for_sizes", "run_parallel", "get_blas_threads",
           "set_blas_threads", "set_memory_reuse", "memory_reuse_enabled"]
