"""minigrad.runtime: importing minigrad changes nothing outside it; configure() switches the
thread counts, OpenBLAS's thread timeout and the memory-reuse policy on, and `gpt` does it."""
from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

import minigrad
from minigrad.runtime.threads import parallel_for_sizes, set_threads
from minigrad import runtime
from minigrad.runtime import blas, memory

glibc = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"
needs_openblas = pytest.mark.skipif(not blas.controllable(), reason="OpenBLAS not found via ctypes")
ROOT = Path(__file__).resolve().parent.parent

# a 64 MB float32 array allocated and freed: prints how many MB of resident memory the free
# gave back (glibc's default: all of it, by munmap; with reuse: none, kept for the next array)
GIVEN_BACK = """
import numpy as np
def resident_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 1e6
array = np.ones(16 * 1024 * 1024, dtype=np.float32)
before = resident_mb(); del array
print(before - resident_mb())
"""


def run(code: str, **env) -> str:
    """Run `code` in a fresh Python (this tree first on the path); its last output line."""
    environment = {k: v for k, v in os.environ.items() if k != "OPENBLAS_THREAD_TIMEOUT"}
    environment["PYTHONPATH"] = str(ROOT) + os.pathsep + environment.get("PYTHONPATH", "")
    environment.update(env)
    out = subprocess.run([sys.executable, "-c", code], env=environment, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip().splitlines()[-1]


@pytest.mark.parametrize("package", ["minigrad", "gpt"])
def test_import_sets_no_environment_variable(package):
    code = f"import os; e = dict(os.environ); import {package}; assert dict(os.environ) == e; print('ok')"
    assert run(code) == "ok"


@pytest.mark.skipif(not glibc, reason="mallopt settings exist on Linux with glibc only")
def test_import_leaves_the_allocator_alone_and_configure_switches_reuse_on():
    assert float(run("import minigrad" + GIVEN_BACK)) > 48, "import minigrad changed malloc"
    assert float(run("import minigrad; minigrad.runtime.configure()" + GIVEN_BACK)) < 16
    assert float(run("import minigrad; minigrad.runtime.configure(memory_reuse=False)"
                     + GIVEN_BACK)) > 48


@needs_openblas
def test_import_leaves_openblas_alone_and_configure_sets_its_thread_timeout():
    code = ("import os, json, minigrad; from minigrad import runtime; before = runtime.status(); "
            "e = dict(os.environ); after = runtime.configure(); assert dict(os.environ) == e; "
            "print(json.dumps([before, after]))")
    before, after = json.loads(run(code))
    assert before["blas_thread_timeout"] == 0 and not before["configured"]  # 0: OpenBLAS's default
    assert after["blas_thread_timeout"] == blas.THREAD_TIMEOUT and after["configured"]
    assert after["memory_reuse"] is glibc


@needs_openblas
def test_a_users_thread_timeout_is_kept():
    code = "import minigrad; print(minigrad.runtime.configure()['blas_thread_timeout'])"
    assert run(code, OPENBLAS_THREAD_TIMEOUT="20") == "20"


@needs_openblas
def test_configure_sets_minigrads_and_blas_threads_and_none_leaves_them():
    code = ("import json, minigrad; from minigrad import runtime; a = runtime.configure(threads=1); "
            "b = runtime.configure(); c = runtime.configure(threads=3); "
            "print(json.dumps([a, b, c]))")
    one, unchanged, three = json.loads(run(code))
    assert (one["threads"], one["blas_threads"]) == (1, 1)
    assert (unchanged["threads"], unchanged["blas_threads"]) == (1, 1)
    assert (three["threads"], three["blas_threads"]) == (3, 3)


def test_configure_rejects_bad_arguments():
    for threads in (0, -1, 1.5, True, "2"):
        with pytest.raises(ValueError, match="configure: threads must be a positive int"):
            runtime.configure(threads=threads)
    with pytest.raises(TypeError, match="memory_reuse must be True or False"):
        runtime.configure(memory_reuse="yes")
    with pytest.raises(ValueError, match="positive int or None"):
        runtime.set_threads(0)


def test_the_gpt_command_line_switches_the_runtime_on():
    code = ("import json, sys; from gpt import cli; from minigrad import runtime\n"
            "try:\n    cli.main(['generate', '--threads', '1', '--help'])\n"
            "except SystemExit:\n    pass\n"
            "print(json.dumps(runtime.status()))")
    status = json.loads(run(code))
    assert status["configured"] and status["threads"] == 1
    assert status["memory_reuse"] is glibc


def test_gpt_train_switches_the_runtime_on(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("The quick brown fox jumps over the lazy dog. " * 100)
    code = ("import json, gpt; from minigrad import runtime; assert not runtime.is_configured()\n"
            f"gpt.train(gpt.TrainConfig(data=[{str(corpus)!r}], tokenizer='bytes', preset='tiny', "
            "batch_size=4, max_steps=1, eval_every=1, eval_batches=1, sample_tokens=0, quiet=True, "
            "threads=1))\n"
            "print(json.dumps(runtime.status()))")
    status = json.loads(run(code))
    assert status["configured"] and status["threads"] == 1
    assert status["memory_reuse"] is glibc


@pytest.mark.skipif(not glibc, reason="mallopt settings exist on Linux with glibc only")
def test_a_freed_large_array_is_reused_without_page_faults():
    assert runtime.set_memory_reuse(True) is True
    assert memory.memory_reuse_enabled()
    size = 16 * 1024 * 1024  # 64 MB of float32: far above glibc's largest mmap threshold
    first = np.ones(size, dtype=np.float32)
    del first
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    second = np.ones(size, dtype=np.float32)  # writes every page
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    assert second[-1] == 1.0
    # glibc's default: 16,384 faults (4 KB pages) or ~500 (transparent huge pages); reuse: ~0
    assert faults < 100, f"{faults} page faults for a reused 64 MB buffer"


@pytest.mark.skipif(not glibc, reason="mallopt settings exist on Linux with glibc only")
def test_reuse_can_be_switched_off_and_on():
    try:
        assert runtime.set_memory_reuse(False) is True
        assert not memory.memory_reuse_enabled()
    finally:
        assert runtime.set_memory_reuse(True) is True
    assert memory.memory_reuse_enabled()


def test_one_pool_serves_kernels_and_optimizers():
    from minigrad.nn.functional import _util
    from minigrad.optim import optimizer

    assert _util.parallel_for is runtime.parallel_for
    assert optimizer.parallel_for_sizes is runtime.parallel_for_sizes
    assert minigrad.runtime is runtime


@pytest.fixture
def three_threads():
    previous = runtime.get_threads()
    runtime.set_threads(3)
    yield
    runtime.set_threads(previous)


def test_run_parallel_runs_every_task_once_and_the_workers_really_run(three_threads):
    import threading

    # task 0 (the calling thread) waits for task 1: only a worker thread can run task 1
    started = threading.Event()
    ran = []
    tasks = [lambda: ran.append(("first", started.wait(30)))]
    tasks.append(lambda: (ran.append(("second", threading.current_thread().name)), started.set()))
    tasks += [lambda i=i: ran.append(i) for i in range(7)]  # more tasks than threads
    runtime.run_parallel(tasks)
    assert ("first", True) in ran
    assert sorted(x for x in ran if isinstance(x, int)) == list(range(7))
    (name,) = [x[1] for x in ran if isinstance(x, tuple) and x[0] == "second"]
    assert name.startswith("minigrad-")
    assert len(ran) == 9


def test_run_parallel_raises_a_tasks_error_after_all_tasks_finished(three_threads):
    done = []

    def fail():
        raise ZeroDivisionError("task 2 failed")

    tasks = [lambda: done.append(0), lambda: done.append(1), fail, lambda: done.append(3)]
    with pytest.raises(ZeroDivisionError, match="task 2 failed"):
        runtime.run_parallel(tasks)
    assert sorted(done) == [0, 1, 3]
    with pytest.raises(KeyError):
        runtime.run_parallel([lambda: {}["missing"], lambda: done.append(4)])
    assert done[-1] == 4
    runtime.run_parallel([lambda: done.append(5)] * 3)  # the pool still works afterwards
    assert done[-3:] == [5, 5, 5]


def test_parallel_for_covers_the_range_and_nested_calls_run_inline(three_threads):
    seen, inner = [], []

    def body(lo, hi):
        seen.append((lo, hi))
        runtime.parallel_for(10, lambda a, b: inner.append((a, b)))  # inside a task: inline

    runtime.parallel_for(100, body, min_items=10)
    assert sorted(seen) == [(0, 33), (33, 66), (66, 100)]
    assert inner == [(0, 10)] * 3
    hits = np.zeros(1000, dtype=int)
    runtime.parallel_for(1000, lambda lo, hi: np.add.at(hits, np.arange(lo, hi), 1), min_items=1)
    assert (hits == 1).all()


def test_a_forked_child_gets_its_own_pool():
    code = """
import os, threading
from minigrad import runtime
runtime.set_threads(2)
runtime.run_parallel([lambda: None, lambda: None])  # the parent's pool exists
pid = os.fork()
if pid == 0:
    gate, names = threading.Event(), []
    runtime.run_parallel([lambda: gate.wait(30),
                          lambda: (names.append(threading.current_thread().name), gate.set())])
    os._exit(0 if gate.is_set() and names[0].startswith("minigrad-") else 3)
_, status = os.waitpid(pid, 0)
print(os.waitstatus_to_exitcode(status))
"""
    assert run(code) == "0"


def test_run_parallel_takes_its_tasks_queued_behind_a_shutdown_sentinel(three_threads):
    import threading

    from minigrad.runtime import threads

    runtime.set_threads(2)  # one worker
    pool = threads._get_pool(1)
    started, gate, ran = threading.Event(), threading.Event(), []
    pool.inbox.put((lambda: (started.set(), gate.wait(30)), threads.queue.SimpleQueue()))
    assert started.wait(30)  # the only worker is busy
    pool.inbox.put(None)  # as set_threads in another thread would queue it
    runtime.run_parallel([lambda: ran.append(0), lambda: ran.append(threading.current_thread())])
    assert ran == [0, threading.current_thread()]  # the caller ran task 1, behind the sentinel
    gate.set()
    pool.threads[0].join(30)
    assert not pool.threads[0].is_alive()  # the worker still got its sentinel


def test_parallel_for_sizes_covers_every_item_once_in_balanced_contiguous_runs():
    sizes = [5, 1, 1, 1, 8, 2, 2, 4]  # 24 in all
    runs, lock = [], threading.Lock()

    def body(lo, hi):
        with lock:
            runs.append((lo, hi))

    set_threads(2)
    try:
        parallel_for_sizes(sizes, body)
        assert sorted(runs) == [(0, 5), (5, 8)]  # 5+1+1+1+8 = 16 reaches half of 24 first
        runs.clear()
        parallel_for_sizes(sizes, body, min_total=25)  # too little work: one run, inline
        assert runs == [(0, 8)]
        runs.clear()
        parallel_for_sizes([], body)
        assert runs == []
    finally:
        set_threads(None)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_axpby_function_computes_alpha_x_plus_beta_y_in_place(dtype):
    function = blas.axpby_function(dtype)
    if function is None:
        pytest.skip("no OpenBLAS loaded in this process (NumPy built against another BLAS)")
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal(1001).astype(dtype), rng.standard_normal(1001).astype(dtype)
    expected = dtype(0.25) * x + dtype(-1.5) * y
    before = x.copy()
    function(y.size - 1, 0.25, x.ctypes.data, -1.5, y.ctypes.data)  # all but the last element
    np.testing.assert_allclose(y[:-1], expected[:-1], rtol=1e-6 if dtype == np.float32 else 1e-14)
    assert y[-1] != expected[-1] and np.array_equal(x, before)  # n respected, x only read


def test_axpby_function_is_none_for_other_dtypes():
    assert blas.axpby_function(np.float16) is None and blas.axpby_function(np.int32) is None


@needs_openblas
def test_describe_names_openblas_its_version_core_and_threads():
    code = ("import minigrad; from minigrad.runtime import blas; blas.set_blas_threads(1); "
            "print(blas.describe())")
    name, version, core_and_threads = run(code).split(" ", 2)
    assert name == "openblas" and version[0].isdigit() and version.count(".") >= 2 and core_and_threads.endswith(", 1 threads")
    assert core_and_threads.split(",")[0].strip()  # the kernel family OpenBLAS chose (Haswell, ...)
