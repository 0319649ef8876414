"""Data-parallel training under a real `mpiexec`: 2 ranks equal 1 process, checkpoints
move between 1 and 2 ranks, and bad input or a failing rank ends the job with a message, never
a hang (every launch has a timeout). Skipped, with the reason, where mpi4py or mpiexec is
missing (`pip install -e ".[mpi]"` installs both)."""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from gpt.training import checkpoint as ckpt
from gpt.training import world
from gpt.training.loop import TrainConfig, train


def find_mpiexec() -> str | None:
    """The mpiexec beside this Python (the mpich wheel's), else the one on PATH."""
    beside = Path(sys.executable).parent / "mpiexec"
    return str(beside) if beside.exists() else shutil.which("mpiexec")


MPIEXEC = find_mpiexec()
if importlib.util.find_spec("mpi4py") is None:
    pytest.skip("mpi4py is not installed (pip install -e '.[mpi]')", allow_module_level=True)
if MPIEXEC is None:
    pytest.skip("no mpiexec found beside Python or on PATH (pip install -e '.[mpi]')",
                allow_module_level=True)

TIMEOUT = 60  # seconds for any one launch: a hang fails the test instead of the suite
TEXT = ("The quick brown fox jumps over the lazy dog. "
        "A for statement iterates over the items of a sequence. "
        "The while statement repeats while a condition is true. ") * 40

SETTINGS = dict(tokenizer="bytes", preset="tiny", batch_size=8, lr=3e-3, warmup_steps=2, max_steps=6,
                eval_every=3, eval_batches=4, log_every=1, save_every=1000, sample_tokens=0, seed=7,
                quiet=True)


def cli_args(settings: dict) -> list[str]:
    """`gpt train` flags for a TrainConfig dict."""
    args = []
    for key, value in settings.items():
        flag = "--" + key.replace("_", "-")
        if value is True:
            args.append(flag)
        elif value is False or value is None:
            continue
        elif isinstance(value, list):
            args += [flag, *map(str, value)]
        else:
            args += [flag, str(value)]
    return args


def child_env() -> dict:
    env = {key: value for key, value in os.environ.items()
           if key not in world.SIZE_VARS + world.RANK_VARS}
    return env | {"GPT_PEAK_FLOPS": "1e11", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}


def launch(*programs, timeout=TIMEOUT, interrupt_after=None):
    """Run `mpiexec -n N cmd... [: -n M cmd...]` (programs: (n, [cmd...]) pairs); returns the
    CompletedProcess. The whole process group is killed if it outlives `timeout`."""
    command = [MPIEXEC]
    for index, (ranks, argv) in enumerate(programs):
        command += ([":"] if index else []) + ["-n", str(ranks), *argv]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=child_env(), start_new_session=True)
    try:
        if interrupt_after is not None:
            interrupt_after(process)
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        pytest.fail(f"mpiexec did not end within {timeout} s (a hang): {' '.join(command)}")
    return subprocess.CompletedProcess(command, process.returncode, out, err)


def gpt_train(settings: dict) -> list[str]:
    return [sys.executable, "-m", "gpt", "train", *cli_args(settings)]


def weights(path) -> dict:
    model, _tokenizer, info = ckpt.load_checkpoint(path)
    return {"step": info["step"], **{name: value.copy() for name, value in model.state_dict().items()}}


def assert_close(a: dict, b: dict, lr: float = SETTINGS["lr"]) -> None:
    """Same step; parameters equal up to float32 rounding, as AdamW carries it.

    The ranks split each sum over rows into partial sums, so gradients differ in their last
    bits (test_gradients_of_two_ranks_equal_one_process checks them tightly). AdamW then moves
    each element by about lr * m / sqrt(v): where a gradient is a near-total cancellation (a
    sum of terms much larger than itself) its rounding error can reach a few percent of one
    step. So: 99.9% of the elements within 1e-6 (a few float32 ulps of weights of order 1;
    the observed 99.9% quantile is about 2e-7 and varies with the BLAS kernel's summation
    order), every element within lr / 10.
    """
    assert a["step"] == b["step"]
    assert a.keys() == b.keys()
    names = [name for name in a if name != "step"]
    differences = np.concatenate([np.abs(a[name] - b[name]).ravel() for name in names])
    assert np.quantile(differences, 0.999) < 1e-6, np.quantile(differences, 0.999)
    for name in names:
        np.testing.assert_allclose(a[name], b[name], rtol=0, atol=lr / 10, err_msg=name)


@pytest.fixture(autouse=True, scope="module")
def one_blas_thread():
    """The in-process runs: tiny matrices gain nothing from BLAS threads (restored after)."""
    from minigrad.runtime import get_blas_threads, set_blas_threads

    before = get_blas_threads()
    set_blas_threads(1)
    yield
    if before:
        set_blas_threads(before)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    path = tmp_path_factory.mktemp("mpi") / "corpus.txt"
    path.write_text(TEXT)
    return str(path)


@pytest.fixture(scope="module")
def one_process_runs(corpus, tmp_path_factory):
    """6 steps in one process, without and with gradient accumulation (the references)."""
    os.environ.setdefault("GPT_PEAK_FLOPS", "1e11")
    runs = {}
    for accum in (1, 2):
        out = tmp_path_factory.mktemp(f"single{accum}") / "run"
        result = train(TrainConfig(**SETTINGS, data=[corpus], grad_accum_steps=accum, out=str(out)))
        runs[accum] = weights(out)
        runs[f"losses{accum}"] = [r["train_loss"] for r in result.metrics if "lr" in r]
    return runs


@pytest.mark.parametrize("accum, zero_stage", [(1, 1), (2, 1), (1, 0)])
def test_two_ranks_equal_one_process(corpus, one_process_runs, tmp_path, accum, zero_stage):
    """ZeRO-1 (the default: each rank updates half of the parameters) and --zero-stage 0."""
    out = tmp_path / "run"
    done = launch((2, gpt_train(SETTINGS | {"data": [corpus], "grad_accum_steps": accum, "out": str(out),
                                            "quiet": False, "zero_stage": zero_stage})))
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("done: 6 steps") == 1  # rank 0 alone prints
    assert "data parallel: 2 MPI ranks" in done.stdout and "4 of the 8 windows" in done.stdout
    assert ("ZeRO-1: each rank updates and keeps 1/2 of AdamW's state" in done.stdout) == (zero_stage == 1)
    assert_close(weights(out), one_process_runs[accum])
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(records) == 6 + 3  # one writer: 6 step lines, evaluations at steps 0, 3, 6
    losses = [r["train_loss"] for r in records if "lr" in r]  # the step lines: mean over the ranks
    np.testing.assert_allclose(losses, one_process_runs[f"losses{accum}"], rtol=1e-5)


GRADIENTS = textwrap.dedent("""
    import sys
    import numpy as np
    from minigrad.nn import functional as F
    from gpt.training.loop import Trainer, TrainConfig

    config = TrainConfig(**eval(sys.argv[1]))
    trainer = Trainer(config)                         # MPIWorld under mpiexec, SingleProcess alone
    world = trainer.world
    for _ in range(2):                                # two micro-batches of the global batch
        inputs, targets = world.shard(*trainer.data.next_train_batch())  # (B/N, T)
        loss = F.cross_entropy(trainer.model(inputs), targets) / 2
        loss.backward()
    world.average_gradients(trainer.parameters)
    if world.rank == 0:
        np.savez(sys.argv[2], *[p.grad for p in trainer.parameters])
""")


def test_gradients_of_two_ranks_equal_one_process(corpus, tmp_path):
    """One step's averaged gradient equals the global batch's gradient to float32 rounding."""
    script = tmp_path / "gradients.py"
    script.write_text(GRADIENTS)
    settings = repr(SETTINGS | {"data": [corpus], "batch_size": 16})
    grads = {}
    for ranks in (1, 2):
        path = tmp_path / f"grads{ranks}.npz"
        done = launch((ranks, [sys.executable, str(script), settings, str(path)]))
        assert done.returncode == 0, done.stderr[-3000:]
        with np.load(path) as saved:
            grads[ranks] = [saved[key] for key in sorted(saved.files, key=lambda k: int(k.split("_")[1]))]
    assert len(grads[1]) == len(grads[2]) > 0
    for one, two in zip(grads[1], grads[2]):
        assert one.dtype == two.dtype == np.float32
        np.testing.assert_allclose(two, one, rtol=1e-5, atol=1e-6 * float(np.abs(one).max()))


SHARDED_STEPS = textwrap.dedent("""
    import sys
    import numpy as np
    from minigrad import nn, optim
    from gpt.training.distributed import world_from_env

    def adamw(params):
        return optim.AdamW([{"params": params[:2], "weight_decay": 0.1},
                            {"params": params[2:], "weight_decay": 0.0}], lr=1e-2)

    world = world_from_env()                          # 2 ranks under mpiexec, 1 process alone
    start = np.random.default_rng(0)
    params = [nn.Parameter(start.standard_normal(s).astype(np.float32)) for s in [(13, 7), (3, 5, 2), (50,), (7,)]]
    optimizer = adamw(params)
    shared = {"shared": True, "collectives": False}.get(sys.argv[1])
    if world.size > 1:
        optimizer = world.shard_optimizer(optimizer, shared_memory=shared)
        assert optimizer.shared == shared
    ranks = [np.random.default_rng(1 + rank) for rank in range(2)]
    for step in range(3):                             # rank r's gradient: stream r (alone: the mean)
        draws = [[rng.standard_normal(p.shape).astype(np.float32) for p in params] for rng in ranks]
        for index, param in enumerate(params):
            param.grad = draws[world.rank][index] if world.size > 1 else (draws[0][index] + draws[1][index]) / np.float32(2)
        world.average_gradients(params)
        optimizer.step(grad_factor=nn.utils.clip_factor(world.grad_norm(params), 1.0))
        optimizer.zero_grad()
    state = optimizer.state_dict()
    if world.rank == 0:
        np.savez(sys.argv[2], *[p.data for p in params], *[state["state"][i]["exp_avg_sq"] for i in range(4)])
""")


def test_zero1_through_shared_memory_and_through_collectives_equal_one_process(tmp_path):
    """On one machine ZeRO-1 shares memory between the ranks; across machines it uses the
    Reduce-scatter and Allgather: both, under a real mpiexec, give one process's weights and state."""
    script = tmp_path / "sharded.py"
    script.write_text(SHARDED_STEPS)
    results = {}
    for ranks, how in [(1, "one"), (2, "shared"), (2, "collectives")]:
        path = tmp_path / f"{how}.npz"
        done = launch((ranks, [sys.executable, str(script), how, str(path)]))
        assert done.returncode == 0, done.stderr[-3000:]
        with np.load(path) as saved:
            results[how] = [saved[f"arr_{index}"] for index in range(8)]
    for shared, collectives, one in zip(results["shared"], results["collectives"], results["one"]):
        np.testing.assert_array_equal(shared, collectives)  # (2 ranks: a + b either way)
        np.testing.assert_allclose(shared, one, rtol=1e-5, atol=1e-7)


def test_checkpoint_moves_between_two_ranks_and_one_process(corpus, one_process_runs, tmp_path):
    # 2 ranks -> 1 process
    out = tmp_path / "two_then_one"
    done = launch((2, gpt_train(SETTINGS | {"data": [corpus], "out": str(out), "stop_at": 3})))
    assert done.returncode == 0, done.stderr[-3000:]
    assert weights(out)["step"] == 3
    train(TrainConfig(**SETTINGS, data=[corpus], out=str(out), resume=True))
    assert_close(weights(out), one_process_runs[1])
    # 1 process -> 2 ranks
    out = tmp_path / "one_then_two"
    train(TrainConfig(**SETTINGS, data=[corpus], out=str(out), stop_at=3))
    done = launch((2, gpt_train(SETTINGS | {"data": [corpus], "out": str(out), "resume": True})))
    assert done.returncode == 0, done.stderr[-3000:]
    assert_close(weights(out), one_process_runs[1])


def test_config_mismatch_between_ranks_is_a_clear_error(corpus, tmp_path):
    base = SETTINGS | {"data": [corpus], "out": str(tmp_path / "run")}
    done = launch((1, gpt_train(base | {"lr": 0.001})), (1, gpt_train(base | {"lr": 0.002})))
    assert done.returncode == 1
    assert done.stderr.count("the MPI ranks disagree on the run") == 1  # once, from rank 0
    assert "config.lr: 0.001 on rank 0, 0.002 on rank 1" in done.stderr
    assert "Traceback" not in done.stderr


def test_bad_input_before_training_ends_every_rank_with_one_message(corpus, tmp_path):
    base = SETTINGS | {"data": [corpus], "out": str(tmp_path / "run")}
    done = launch((2, gpt_train(base | {"batch_size": 7})))
    assert done.returncode == 1
    assert done.stderr.count("--batch-size 7 (the global batch) is not divisible by the 2 MPI ranks") == 1
    missing = str(tmp_path / "missing.txt")
    done = launch((1, gpt_train(base)), (1, gpt_train(base | {"data": [missing]})))
    assert done.returncode == 1
    assert "1 of 2 MPI ranks failed before training started: rank 1: FileNotFoundError" in done.stderr
    assert missing in done.stderr


DYING_RANK = textwrap.dedent("""
    import importlib, os, sys
    train_module = importlib.import_module("gpt.training.loop")
    original = train_module.Trainer.train_step

    def train_step(self):  # rank 1 fails in step 4 (after the checkpoint of step 2)
        if self.world.rank == 1 and self.step == 3:
            if sys.argv[1] == "die":
                os._exit(9)  # killed outright: no message, no MPI_Abort
            raise RuntimeError("simulated failure on rank 1")
        return original(self)

    train_module.Trainer.train_step = train_step
    from gpt.cli import main
    sys.exit(main(sys.argv[2:]))
""")


@pytest.mark.parametrize("how", ["die", "raise"])
def test_a_failing_rank_ends_the_job_and_the_checkpoint_stays(corpus, tmp_path, how):
    script = tmp_path / "dying_rank.py"
    script.write_text(DYING_RANK)
    out = tmp_path / "run"
    settings = SETTINGS | {"data": [corpus], "out": str(out), "max_steps": 8, "save_every": 2}
    started = time.perf_counter()
    done = launch((2, [sys.executable, str(script), how, "train", *cli_args(settings)]))
    assert done.returncode != 0
    assert time.perf_counter() - started < TIMEOUT
    if how == "raise":
        assert "rank 1 of 2: RuntimeError: simulated failure on rank 1" in done.stderr
        assert "MPI_Abort" in done.stderr
    assert weights(out)["step"] == 2  # the last checkpoint written before the failure loads


def test_ctrl_c_stops_every_rank_after_the_same_step(corpus, tmp_path):
    out = tmp_path / "run"
    settings = SETTINGS | {"data": [corpus], "out": str(out), "max_steps": 100_000, "eval_every": 100_000,
                           "log_every": 10, "quiet": False}

    def interrupt(process):
        deadline = time.monotonic() + TIMEOUT / 2
        while not (out / "metrics.jsonl").exists() and time.monotonic() < deadline:
            time.sleep(0.1)  # training has begun once the step-0 evaluation is logged
        time.sleep(1.0)
        process.send_signal(signal.SIGINT)  # mpiexec forwards it to every rank

    done = launch((2, gpt_train(settings)), interrupt_after=interrupt)
    assert done.returncode == 130, done.stderr[-3000:]
    saved = weights(out)
    assert 0 < saved["step"] < 100_000
    assert f"interrupted at step {saved['step']}" in done.stdout


def test_one_rank_under_mpiexec_imports_no_mpi4py(corpus, tmp_path):
    script = textwrap.dedent(f"""
        import sys
        from gpt.cli import main
        assert main(["train", "--data", {corpus!r}, "--tokenizer", "bytes", "--preset", "tiny",
                     "--batch-size", "4", "--max-steps", "2", "--sample-tokens", "0", "--quiet",
                     "--eval-batches", "2", "--out", {str(tmp_path / "run")!r}]) == 0
        assert "mpi4py" not in sys.modules
        print("ok")
    """)
    done = launch((1, [sys.executable, "-c", script]))
    assert done.returncode == 0 and "ok" in done.stdout, done.stderr[-3000:]
