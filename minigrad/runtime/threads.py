"""minigrad's own worker threads: one pool, shared by the fused kernels and the optimizers.

Why threads at all: NumPy's elementwise operations run on one core, but they release the
GIL, so two Python threads working on disjoint ranges of an array use two cores. The fused
kernels (softmax, GELU, layer norm, attention, ...) and the optimizers' in-place updates
split their work with `parallel_for`; the calling thread runs the first range itself.

The pool is a few daemon threads taking (task, reply queue) pairs from one shared queue
(queue.SimpleQueue, implemented in C), not a ThreadPoolExecutor: no Future, no Python-level
Condition per task. Once the calling thread is done with its own range it takes the tasks
that no worker has picked up yet and runs them itself, so a worker that is slow to wake
(a busy machine) costs nothing. Measured (2 threads, old and new alternated in one process,
best of 6): two empty tasks cost the caller 15 us of CPU and 32 us wall with
ThreadPoolExecutor, 4 us and 7 us with this pool; a 2-way tanh over 256K float32 took
133 us wall, now 114 us.

One default: the CPUs this process may run on (its affinity mask), at most MAX_DEFAULT.
`set_threads(1)` runs everything inline on the calling thread. A pool is created on first
use (never at import) and again in a forked child, whose parent's threads do not exist.
"""
from __future__ import annotations

import os
import queue
import threading

MAX_DEFAULT = 8  # default cap: past this, elementwise passes are bound by memory bandwidth

_threads: int | None = None  # None: the default, available_cores() capped at MAX_DEFAULT
_pool: "_Pool | None" = None
_pool_key = None  # (pid, workers) the pool was made for
_lock = threading.Lock()
_local = threading.local()  # .busy: this thread is already inside parallel_for


def available_cores() -> int:
    """The number of CPUs this process may run on (its affinity mask; all CPUs elsewhere)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def get_threads() -> int:
    """Threads minigrad's kernels and optimizers use (the calling thread included)."""
    return _threads if _threads is not None else min(available_cores(), MAX_DEFAULT)


def set_threads(n: int | None) -> None:
    """Use `n` threads from now on (None: back to the default). BLAS is not changed here
    (`minigrad.runtime.configure(threads=n)` sets both)."""
    global _threads, _pool
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise ValueError(f"minigrad.runtime: threads must be a positive int or None, got {n!r}")
    with _lock:
        _threads = n
        if _pool is not None and _pool_key[0] == os.getpid():
            _pool.shutdown()
        _pool = None


class _Pool:
    """`workers` daemon threads serving one shared queue of (task, reply) pairs; each puts
    None (done) or the exception raised into the task's reply queue."""

    def __init__(self, workers: int):
        self.inbox = queue.SimpleQueue()
        self.threads = [threading.Thread(target=self._serve, name=f"minigrad-{i}", daemon=True)
                        for i in range(workers)]
        for thread in self.threads:
            thread.start()

    def _serve(self) -> None:
        _local.busy = True  # tasks run on a worker never split again
        while (item := self.inbox.get()) is not None:
            _run_one(*item)

    def shutdown(self) -> None:
        for _ in self.threads:
            self.inbox.put(None)
        for thread in self.threads:
            thread.join()


def _run_one(task, reply) -> None:
    try:
        task()
    except BaseException as error:  # handed to the caller, raised there
        reply.put(error)
    else:
        reply.put(None)


def _get_pool(workers: int) -> _Pool:
    global _pool, _pool_key
    with _lock:
        key = (os.getpid(), workers)
        if _pool is None or _pool_key != key:
            if _pool is not None and _pool_key[0] == os.getpid():
                _pool.shutdown()
            _pool = _Pool(workers)  # also in a forked child: its parent's threads are gone
            _pool_key = key
        return _pool


def run_parallel(tasks: list) -> None:
    """Call every `task()` in `tasks`, the first on the calling thread, the others on the
    pool (or on the calling thread, if it gets to them first); returns when all are done,
    re-raising the first error. Nested calls (from inside a task) run inline."""
    if len(tasks) <= 1 or getattr(_local, "busy", False) or get_threads() <= 1:
        for task in tasks:
            task()
        return
    pool = _get_pool(get_threads() - 1)
    reply = queue.SimpleQueue()
    for task in tasks[1:]:
        pool.inbox.put((task, reply))
    _local.busy = True
    try:
        _run_one(tasks[0], reply)
        sentinels = 0
        while sentinels <= len(pool.threads):  # tasks no worker has taken yet: run them here
            try:
                item = pool.inbox.get_nowait()
            except queue.Empty:
                break
            if item is None:  # a shutdown sentinel (set_threads elsewhere) stays queued, at
                pool.inbox.put(None)  # the back: seen once more than there are, all is taken
                sentinels += 1
            else:
                _run_one(*item)  # ours, or another calling thread's (it gets the reply)
    finally:
        _local.busy = False
    errors = [reply.get() for _ in tasks]  # wait for all
    first = next((error for error in errors if error is not None), None)
    if first is not None:
        raise first


def parallel_for(n: int, body, min_items: int = 1) -> None:
    """Call `body(lo, hi)` on disjoint ranges covering [0, n), one range per thread.

    Each range gets at least `min_items` items. Results do not depend on the thread count
    except for the order of partial sums that a caller adds up afterwards.
    """
    parts = min(get_threads(), n // max(1, min_items))
    if parts <= 1 or getattr(_local, "busy", False):
        if n > 0:
            body(0, n)
        return
    bounds = [n * i // parts for i in range(parts + 1)]
    run_parallel([lambda lo=lo, hi=hi: body(lo, hi) for lo, hi in zip(bounds, bounds[1:])])


def parallel_for_sizes(sizes: list, body, min_total: int = 1) -> None:
    """Call `body(lo, hi)` on contiguous runs [lo, hi) of items covering range(len(sizes)),
    one run per thread, each with about the same sum of `sizes` (items of unequal size, e.g.
    chunks of several arrays); on the calling thread alone below `min_total` in all."""
    total = sum(sizes)
    threads = min(get_threads(), len(sizes))
    if threads <= 1 or total < min_total or getattr(_local, "busy", False):
        if sizes:
            body(0, len(sizes))
        return
    bounds, done = [0], 0
    for index, size in enumerate(sizes):
        done += size
        if done >= total * len(bounds) / threads and len(bounds) < threads:
            bounds.append(index + 1)
    bounds.append(len(sizes))
    run_parallel([lambda lo=lo, hi=hi: body(lo, hi) for lo, hi in zip(bounds, bounds[1:]) if hi > lo])
