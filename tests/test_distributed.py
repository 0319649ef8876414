"""gpt.training.distributed without MPI: launcher detection, sharding, the flat-buffer average, the
failure paths (on a fake communicator), and that a plain run imports no mpi4py."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import minigrad
from gpt.training import distributed, fingerprint, world
from gpt.training.config import TrainConfig
from gpt.training.distributed import DistributedError, MPIWorld
from gpt.training.loop import train
from gpt.training.world import SingleProcess

TEXT = ("The quick brown fox jumps over the lazy dog. "
        "A for statement iterates over the items of a sequence. ") * 60


# ------------------------------------------------------------------------------ a fake MPI
class FakeMPI:
    """The few names of mpi4py.MPI that MPIWorld uses."""

    IN_PLACE = object()
    SUM = "sum"
    LOR = "lor"
    COMM_TYPE_SHARED = "shared"

    @staticmethod
    def Get_library_version():
        return "Fake MPI 1.0\n"


class Aborted(Exception):
    pass


class FakeComm:
    """`size` ranks that all hold what this rank holds, except `others` (rank -> value) in
    allgathers; Allreduce adds `peer_grads` (what the other ranks contribute) to the buffer."""

    def __init__(self, rank=0, size=2, peer_grads=None, others=None):
        self.rank, self.size = rank, size
        self.peer_grads = peer_grads
        self.others = others or {}
        self.allreduce_calls = 0
        self.reduce_scatter_calls = 0
        self.aborted = None

    def Get_rank(self):
        return self.rank

    def Get_size(self):
        return self.size

    def Allreduce(self, sendbuf, recvbuf, op):
        assert sendbuf is FakeMPI.IN_PLACE and op == FakeMPI.SUM
        self.allreduce_calls += 1
        recvbuf += self.peer_grads if self.peer_grads is not None else recvbuf * (self.size - 1)

    def Reduce_scatter_block(self, sendbuf, recvbuf, op):  # every rank sent what this one did
        assert sendbuf is FakeMPI.IN_PLACE and op == FakeMPI.SUM
        self.reduce_scatter_calls += 1
        block = recvbuf.size // self.size
        recvbuf[:block] = recvbuf[self.rank * block:(self.rank + 1) * block] * self.size

    def Allgather(self, sendbuf, recvbuf):  # the other ranks' blocks stay as they are
        assert sendbuf is FakeMPI.IN_PLACE

    def allreduce(self, value, op):
        return value * self.size if op == FakeMPI.SUM else value

    def allgather(self, value):
        return [self.others.get(rank, value) for rank in range(self.size)]

    def Split_type(self, split_type):  # each rank on a machine of its own: ZeRO-1 uses collectives
        assert split_type == FakeMPI.COMM_TYPE_SHARED
        return FakeComm(rank=0, size=1)

    def Free(self):
        pass

    def Abort(self, code):
        self.aborted = code
        raise Aborted(code)


def fake_world(**kwargs) -> MPIWorld:
    return MPIWorld(FakeComm(**kwargs), FakeMPI)


# ------------------------------------------------------------------------------ the launcher
@pytest.mark.parametrize("environ, size, rank", [
    ({}, 1, 0),
    ({"PMI_SIZE": "4", "PMI_RANK": "3"}, 4, 3),                          # MPICH (hydra), Intel MPI
    ({"OMPI_COMM_WORLD_SIZE": "2", "OMPI_COMM_WORLD_RANK": "1"}, 2, 1),  # Open MPI
    ({"MV2_COMM_WORLD_SIZE": "8", "MV2_COMM_WORLD_RANK": "0"}, 8, 0),    # MVAPICH
    ({"PMIX_RANK": "2"}, None, 2),                                       # PMIx: size unknown, ask MPI
    ({"PMI_SIZE": "1", "PMI_RANK": "0"}, 1, 0),
    ({"PMI_SIZE": "junk"}, 1, 0),
])
def test_launcher_variables(environ, size, rank):
    assert world.launched_size(environ) == size
    assert world.launched_rank(environ) == rank
    assert world.is_main_process(environ) == (rank == 0)


def test_one_rank_or_no_launcher_is_a_single_process():
    assert isinstance(distributed.world_from_env({}), SingleProcess)
    assert isinstance(distributed.world_from_env({"PMI_SIZE": "1", "PMI_RANK": "0"}), SingleProcess)


def test_launcher_without_mpi4py_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "mpi4py", None)  # import mpi4py -> ImportError
    with pytest.raises(DistributedError, match=r"2 ranks.*mpi4py cannot be imported.*\[mpi\]"):
        distributed.world_from_env({"PMI_SIZE": "2", "PMI_RANK": "0"})


def test_plain_run_imports_no_mpi4py(tmp_path):
    """`gpt train` without a launcher, and with a launcher of one rank: mpi4py stays unloaded."""
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(TEXT)
    script = textwrap.dedent(f"""
        import os, sys
        from gpt.cli import main
        args = ["train", "--data", {str(corpus)!r}, "--tokenizer", "bytes", "--preset", "tiny",
                "--batch-size", "4", "--max-steps", "2", "--sample-tokens", "0", "--eval-batches", "2",
                "--quiet", "--out", {str(tmp_path / "run")!r}, "--overwrite"]
        assert main(args) == 0
        os.environ.update(PMI_SIZE="1", PMI_RANK="0")  # as `mpiexec -n 1` sets them
        assert main(args) == 0
        assert "mpi4py" not in sys.modules, "mpi4py was imported"
        print("ok")
    """)
    env = {key: value for key, value in os.environ.items()
           if key not in world.SIZE_VARS + world.RANK_VARS}
    done = subprocess.run([sys.executable, "-c", script], env=env | {"GPT_PEAK_FLOPS": "1e11"},
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "ok" in done.stdout, done.stderr[-2000:]


# ------------------------------------------------------------------------------ the hooks
def test_shard_takes_this_ranks_contiguous_rows():
    inputs = np.arange(24).reshape(6, 4)  # (B, T)
    targets = inputs + 100
    for rank in range(3):
        mine, theirs = fake_world(rank=rank, size=3).shard(inputs, targets)
        assert mine.shape == (2, 4)
        np.testing.assert_array_equal(mine, inputs[2 * rank:2 * rank + 2])
        np.testing.assert_array_equal(theirs, targets[2 * rank:2 * rank + 2])


def test_batch_not_divisible_by_ranks_is_a_clear_error():
    with pytest.raises(DistributedError, match=r"--batch-size 7 .* not divisible by the 2 MPI ranks.*6 or 8"):
        fake_world(size=2).shard(np.zeros((7, 4)), np.zeros((7, 4)))


def _params(rng, shapes, dtype=np.float32):
    params = [minigrad.Tensor(rng.standard_normal(shape).astype(dtype), requires_grad=True) for shape in shapes]
    for param in params:
        param.grad = rng.standard_normal(param.shape).astype(dtype)
    return params


def test_average_gradients_is_one_allreduce_of_one_flat_buffer():
    rng = np.random.default_rng(0)
    shapes = [(3, 4), (4,), (2, 2, 5)]
    params = _params(rng, shapes)
    total = sum(int(np.prod(shape)) for shape in shapes)
    peer = rng.standard_normal(total).astype(np.float32)  # what the other rank adds
    mine = np.concatenate([p.grad.reshape(-1) for p in params])
    world = fake_world(size=2, peer_grads=peer)
    world.average_gradients(params)
    assert world.comm.allreduce_calls == 1
    expected = (mine + peer) / 2
    flat = np.concatenate([p.grad.reshape(-1) for p in params])
    np.testing.assert_array_equal(flat, expected)
    for param, shape in zip(params, shapes):
        assert param.grad.shape == shape and param.grad.dtype == np.float32
        assert np.shares_memory(param.grad, world._buffer)  # views of the one buffer
    buffer = world._buffer
    for param in params:  # next step: fresh gradients (the optimizer set them to None)
        param.grad = np.ones(param.shape, np.float32)
    world.comm.peer_grads = np.ones(total, np.float32)
    world.average_gradients(params)
    assert world._buffer is buffer  # allocated once
    assert all(np.array_equal(p.grad, np.ones(p.shape, np.float32)) for p in params)
    assert world.timings["steps"] == 2 and world.timings["allreduce"] >= 0


def test_missing_gradient_counts_as_zero_and_one_dtype_is_needed():
    rng = np.random.default_rng(1)
    params = _params(rng, [(2, 3), (3,)])
    params[1].grad = None
    world = fake_world(size=2, peer_grads=np.full(9, 2.0, np.float32))
    world.average_gradients(params)
    np.testing.assert_array_equal(params[1].grad, np.ones(3, np.float32))  # (0 + 2) / 2
    mixed = _params(rng, [(2,)]) + _params(rng, [(2,)], dtype=np.float64)
    with pytest.raises(DistributedError, match="one dtype.*float32, float64"):
        fake_world(size=2).average_gradients(mixed)


def test_ranks_with_different_models_are_refused():
    params = _params(np.random.default_rng(2), [(2, 3)])
    world = fake_world(size=2, others={1: (7, "float32")})
    with pytest.raises(DistributedError, match="rank 0: 6 float32, rank 1: 7 float32") as caught:
        world.average_gradients(params)
    assert caught.value.collective


def test_average_any_and_check_same():
    world = fake_world(size=4)
    assert world.average(2.5) == 2.5
    assert world.any(True) is True and world.any(False) is False
    world.check_same("the config", {"lr": 1e-3})  # all equal: nothing
    other = fake_world(size=2)
    calls = []

    def allgather(value):  # rank 1 holds lr 2e-3: first its digest, then its value
        calls.append(value)
        return [value, "another digest" if len(calls) == 1 else {"lr": 2e-3, "seed": 1}]

    other.comm.allgather = allgather
    with pytest.raises(DistributedError, match=r"(?s)disagree on the config.*lr: 0.001 on rank 0, 0.002 on rank 1") as caught:
        other.check_same("the config", {"lr": 1e-3, "seed": 1})
    assert caught.value.collective


def test_differences_message_lists_the_fields():
    message = fingerprint.differences_message("the run", [
        {"config": {"lr": 0.001, "seed": 1}, "step": 0},
        {"config": {"lr": 0.001, "seed": 2}, "step": 0},
        {"config": {"lr": 0.001, "seed": 1}, "step": 5},
    ])
    assert "config.seed: 1 on rank 0, 2 on rank 1" in message
    assert "step: 0 on rank 0, 5 on rank 2" in message
    assert "lr" not in message


# ------------------------------------------------------------------------------ failure paths
def test_error_before_the_rendezvous_rank0_reraises_other_ranks_exit_quietly():
    world = fake_world(rank=0, size=2)
    with pytest.raises(FileNotFoundError, match="no such corpus"):
        with world.guard():
            raise FileNotFoundError("no such corpus")
    assert world.comm.aborted is None
    world = fake_world(rank=1, size=2)
    with pytest.raises(SystemExit) as caught:
        with world.guard():
            raise FileNotFoundError("no such corpus")
    assert caught.value.code == 1 and world.comm.aborted is None
    world = fake_world(rank=1, size=2)
    with pytest.raises(SystemExit) as caught:
        with world.guard():
            raise KeyboardInterrupt
    assert caught.value.code == 130


def test_rank0_reports_the_startup_errors_of_other_ranks():
    with pytest.raises(DistributedError, match="1 of 2 MPI ranks failed before training started: "
                                               "rank 1: FileNotFoundError: gone") as caught:
        distributed._raise_failed_ranks([("ready", {}), ("error", "FileNotFoundError: gone")])
    assert caught.value.collective


def test_error_during_training_aborts_every_rank(capsys, monkeypatch):
    monkeypatch.setattr(distributed.time, "sleep", lambda seconds: None)
    monkeypatch.setattr(distributed.os, "_exit", lambda code: None)
    world = fake_world(rank=1, size=2)
    world.average(1.0)  # a collective call: the run has started
    with pytest.raises(Aborted):
        with world.guard():
            raise RuntimeError("the disk is full")
    assert world.comm.aborted == 1
    err = capsys.readouterr().err
    assert "rank 1 of 2: RuntimeError: the disk is full" in err and "MPI_Abort" in err


def test_collective_error_after_start_ends_cleanly():
    world = fake_world(rank=1, size=2)
    world.any(False)
    with pytest.raises(SystemExit):
        with world.guard():
            raise DistributedError("configs differ", collective=True)
    assert world.comm.aborted is None


# ------------------------------------------------------------------------------ setup in a run
def test_setup_in_a_run_checks_batch_and_seeds_dropout_per_rank(tmp_path, monkeypatch):
    monkeypatch.setenv("GPT_PEAK_FLOPS", "1e11")  # no matmul measurement
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(TEXT)
    settings = dict(data=[str(corpus)], tokenizer="bytes", preset="tiny", batch_size=4, max_steps=2,
                    sample_tokens=0, quiet=True, warmup_steps=0, eval_every=100, eval_batches=2)
    with pytest.raises(DistributedError, match="--batch-size 3 .* 2 MPI ranks"):
        train(TrainConfig(**settings | {"batch_size": 3}), world=fake_world(rank=0, size=2))

    states = {}
    for rank in (0, 1):
        world = fake_world(rank=rank, size=2)
        # the collectives as if the other rank held the same gradients: the average is this rank's
        result = train(TrainConfig(**settings | {"dropout": 0.1}), world=world)
        assert result.step == 2 and world.comm.reduce_scatter_calls == 2  # ZeRO-1: the default
        assert world.comm.allreduce_calls == 0 and world.sharded is not None
        states[rank] = minigrad.random.get_state()["state"]["state"]
    assert states[0] != states[1]  # rank 1 draws its own dropout masks
    world = fake_world(rank=0, size=2)
    result = train(TrainConfig(**settings | {"zero_stage": 0}), world=world)
    assert result.step == 2 and world.comm.allreduce_calls == 2 and world.comm.reduce_scatter_calls == 0


def test_single_process_hooks_do_nothing():
    world = SingleProcess()
    assert world.any(True) is True and world.any(False) is False
    with world.guard():
        pass
    assert world.setup(object()) is None
