"""The memory-reuse policy: keep freed heap memory mapped, so that large arrays do not
page-fault in again every step (Linux with glibc; elsewhere this does nothing).

Why: glibc's malloc serves each request above its mmap threshold (32 MB at most) with a
fresh `mmap` and hands it back to the kernel with `munmap` when freed. A training step
allocates and frees the same large arrays every step (the (tokens, vocab) logits and their
gradient, the weight gradients, activations), so every step the kernel maps and zeroes those
pages again on first touch. Measured on the 2-core benchmark machine, one thread, per
training step: 29,000 minor page faults and 0.09 s of system time (tiny config), 28,000 and
0.8 s (small), 58,000 and 0.9 s (GPT_CONFIG_124M), that is 17-37% of the CPU time of a step;
with reuse on: under 10 faults and no system time.

`set_memory_reuse(True)` sets, through `mallopt`:
  M_MMAP_MAX = 0            large requests come from the heap, not from fresh mappings
  M_TRIM_THRESHOLD = 2 GiB  freed memory at the top of the heap is not given back at once
so a freed buffer's pages stay mapped and the next array of that size reuses them. The cost:
the process keeps the high-water mark of its heap (as PyTorch's caching allocators do).
`set_memory_reuse(False)` restores glibc's defaults for later allocations. This changes the
allocator of the whole process, so it is never done at import: `minigrad.runtime.configure`
does it (the `gpt` command line and `gpt.train` call that).
"""
from __future__ import annotations

import ctypes
import platform

_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_GLIBC_DEFAULTS = {_M_MMAP_MAX: 65536, _M_TRIM_THRESHOLD: 128 * 1024}  # glibc's initial values
_REUSE = {_M_MMAP_MAX: 0, _M_TRIM_THRESHOLD: 2**31 - 1}

_enabled = False


def _mallopt():
    """glibc's mallopt, or None (another C library, or no ctypes access)."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        function = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return None
    function.argtypes = (ctypes.c_int, ctypes.c_int)
    function.restype = ctypes.c_int
    return function


def set_memory_reuse(enabled: bool) -> bool:
    """Keep freed heap memory for reuse (True) or restore glibc's defaults (False).

    Returns True when the setting was applied (Linux with glibc), False otherwise. Affects
    allocations made afterwards; arrays already allocated keep their memory.
    """
    global _enabled
    mallopt = _mallopt()
    if mallopt is None:
        return False
    settings = _REUSE if enabled else _GLIBC_DEFAULTS
    ok = all(mallopt(param, value) == 1 for param, value in settings.items())
    _enabled = bool(enabled) and ok
    return ok


def memory_reuse_enabled() -> bool:
    """True while freed memory is kept for reuse (see set_memory_reuse)."""
    return _enabled
