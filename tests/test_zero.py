"""ZeRO-1 (gpt.training.zero) with N ranks simulated by N threads of this process, each with its
own copy of the parameters and its own gradients, the MPI collectives done through shared
memory: the sharded update equals one process's AdamW on the averaged gradient (bit for bit
with 2 ranks and no clipping, to float32 rounding otherwise), each rank holds 1/N of the
state, and the gathered state dict is AdamW's own, so a run moves between 1, 2 and 3 ranks.
(tests/test_distributed_mpi.py runs the same under a real mpiexec.)"""
from __future__ import annotations

import functools
import threading

import numpy as np
import pytest

from minigrad import Tensor, nn, optim
from gpt.training.distributed import MPIWorld
from gpt.training.errors import TrainingError
from gpt.training.zero import ShardedOptimizer

SHAPES = [(13, 7), (7,), (50,), (3, 5, 2), (13,), (6, 6)]  # 227 elements: not a multiple of 2 or 3
STEPS = 4


class ThreadWin:
    """An MPI-3 shared-memory window: each rank's segment a bytearray every thread can read."""

    def __init__(self, segments):
        self.segments = segments

    @classmethod
    def Allocate_shared(cls, size, disp_unit, comm):
        comm.collectives.append("Win.Allocate_shared")
        return cls(comm._exchange(bytearray(size)))

    def Shared_query(self, rank):
        return memoryview(self.segments[rank]), 1

    def Lock_all(self, assertion=0):
        pass

    def Sync(self):
        pass


class ThreadMPI:
    IN_PLACE = object()
    SUM = "sum"
    LOR = "lor"
    COMM_TYPE_SHARED = "shared"
    MODE_NOCHECK = 1
    Win = ThreadWin


class ThreadComm:
    """One rank of `shared["size"]` threads; every collective is an exchange of values."""

    def __init__(self, shared: dict, rank: int):
        self.shared, self.rank, self.size = shared, rank, shared["size"]
        self.collectives = []

    def Get_rank(self):
        return self.rank

    def Get_size(self):
        return self.size

    def Split_type(self, split_type):  # every thread is on this "machine"
        assert split_type == ThreadMPI.COMM_TYPE_SHARED
        return self

    def Free(self):
        pass

    def Barrier(self):
        self.collectives.append("Barrier")
        self._exchange(None)

    def _exchange(self, value):
        slots, barrier = self.shared["slots"], self.shared["barrier"]
        slots[self.rank] = value
        barrier.wait()
        everything = list(slots)
        barrier.wait()
        return everything

    def Reduce_scatter_block(self, sendbuf, recvbuf, op):  # in place: the result in the first block
        assert sendbuf is ThreadMPI.IN_PLACE and op == ThreadMPI.SUM
        self.collectives.append("Reduce_scatter_block")
        size = recvbuf.size // self.size
        block = slice(self.rank * size, (self.rank + 1) * size)
        everything = self._exchange(recvbuf.copy())
        recvbuf[self.size * size - 1] = np.nan  # MPI may use the rest as scratch: nothing may read it
        recvbuf[:size] = functools.reduce(np.add, [array[block] for array in everything])

    def Allgather(self, sendbuf, recvbuf):
        assert sendbuf is ThreadMPI.IN_PLACE
        self.collectives.append("Allgather")
        size = recvbuf.size // self.size
        for rank, array in enumerate(self._exchange(recvbuf.copy())):
            recvbuf[rank * size:(rank + 1) * size] = array[rank * size:(rank + 1) * size]

    def Allreduce(self, sendbuf, recvbuf, op):
        assert sendbuf is ThreadMPI.IN_PLACE
        self.collectives.append("Allreduce")
        recvbuf[...] = functools.reduce(np.add, self._exchange(recvbuf.copy()))

    def allreduce(self, value, op):
        values = self._exchange(value)
        return sum(values) if op == ThreadMPI.SUM else any(values)

    def allgather(self, value):
        return self._exchange(value)

    def gather(self, value, root=0):
        values = self._exchange(value)
        return values if self.rank == root else None

    def Gather(self, sendbuf, recvbuf, root=0):
        values = self._exchange(sendbuf.copy())
        if self.rank == root:
            recvbuf[...] = np.concatenate(values)


def run_ranks(size: int, job):
    """job(world) on `size` threads, each with its own MPIWorld; returns the results by rank."""
    shared = {"size": size, "slots": [None] * size, "barrier": threading.Barrier(size, timeout=60)}
    results, errors = [None] * size, []

    def main(rank):
        try:
            results[rank] = job(MPIWorld(ThreadComm(shared, rank), ThreadMPI))
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)
            shared["barrier"].abort()

    threads = [threading.Thread(target=main, args=(rank,)) for rank in range(size)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return results


def problem(seed=0):
    rng = np.random.default_rng(seed)
    start = [rng.standard_normal(s).astype(np.float32) for s in SHAPES]
    # grads[step][rank][param]: each of 3 ranks' gradient of its rows
    grads = [[[(2 * rng.standard_normal(s)).astype(np.float32) for s in SHAPES] for _ in range(3)]
             for _ in range(STEPS + 2)]
    return start, grads


def make_adamw(params):
    groups = [{"params": [p for p in params if p.ndim >= 2], "weight_decay": 0.1},
              {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}]
    return optim.AdamW(groups, lr=1e-2, betas=(0.9, 0.95))


def one_process(start, grads, size, steps, clip=None, state=None):
    """AdamW on the mean of the first `size` ranks' gradients (the one-process run)."""
    params = [nn.Parameter(s.copy()) for s in start]
    opt = make_adamw(params)
    if state is not None:
        opt.load_state_dict(state)
    for step_grads in grads[:steps]:
        for index, param in enumerate(params):
            param.grad = functools.reduce(np.add, [g[index] for g in step_grads[:size]]) / np.float32(size)
        factor = nn.utils.clip_factor(nn.utils.grad_norm(params), clip) if clip else 1.0
        opt.step(grad_factor=factor)
        opt.zero_grad()
    return [p.data.copy() for p in params], opt.state_dict()


def zero_job(start, grads, steps, clip=None, state=None, whole_at=(), shared_memory=False):
    def job(world):
        params = [nn.Parameter(s.copy()) for s in start]
        opt = make_adamw(params)
        if state is not None:
            opt.load_state_dict(state)
        sharded = world.shard_optimizer(opt, shared_memory=shared_memory)
        assert sharded.shared == shared_memory
        for step, step_grads in enumerate(grads[:steps]):
            for param, grad in zip(params, step_grads[world.rank]):
                param.grad = grad.copy()
            world.average_gradients(params, whole=step in whole_at)
            if step in whole_at:  # every rank holds the whole averaged gradient (diagnostics)
                mean = [functools.reduce(np.add, [g[i] for g in step_grads[:world.size]]) / np.float32(world.size)
                        for i in range(len(params))]
                for param, want in zip(params, mean):
                    np.testing.assert_array_equal(param.grad, want)
            norm = world.grad_norm(params)
            sharded.step(grad_factor=nn.utils.clip_factor(norm, clip) if clip else 1.0)
            sharded.zero_grad()
        held = sum(value.size for entry in sharded.inner.state.values() for value in entry.values()
                   if isinstance(value, np.ndarray))  # elements of AdamW state on this rank
        return [p.data.copy() for p in params], sharded.state_dict(), held, world.comm.collectives
    return job


SHARED = pytest.mark.parametrize("shared_memory", [False, True], ids=["collectives", "shared-memory"])


def step_collectives(shared_memory: bool, steps: int) -> list:
    """The collective calls of `steps` plain steps after shard_optimizer: a Reduce-scatter and
    an Allgather each, or with shared memory (after allocating the two windows and meeting
    once) two barriers each: before summing the blocks, and after the update."""
    if shared_memory:
        return ["Win.Allocate_shared"] * 2 + ["Barrier"] + ["Barrier", "Barrier"] * steps
    return ["Reduce_scatter_block", "Allgather"] * steps


def assert_ranks_equal(results, want):
    """Every rank's list of parameter arrays equals `want`, bit for bit."""
    for params in results:
        for got, expected in zip(params, want):
            np.testing.assert_array_equal(got, expected)


@SHARED
def test_two_ranks_equal_one_process_bit_for_bit_and_hold_half_the_state(shared_memory):
    start, grads = problem()
    want, want_state = one_process(start, grads, 2, STEPS)
    results = run_ranks(2, zero_job(start, grads, STEPS, shared_memory=shared_memory))
    for params, _, _, _ in results:  # every rank ends with all the weights
        for got, expected in zip(params, want):
            np.testing.assert_array_equal(got, expected)
    state = results[0][1]
    assert results[1][1] is None  # gathered on rank 0 only
    assert state["param_groups"] == want_state["param_groups"]
    assert state["state"].keys() == want_state["state"].keys()
    for index, entry in want_state["state"].items():
        assert state["state"][index]["step"] == entry["step"] == STEPS
        for key in ("exp_avg", "exp_avg_sq"):
            np.testing.assert_array_equal(state["state"][index][key], entry[key])
    assert sum(int(np.prod(s)) for s in SHAPES) == 227
    assert [held for _, _, held, _ in results] == [2 * 114, 2 * 113]  # 2 moments of half of 227 each
    assert results[0][3] == step_collectives(shared_memory, STEPS)


@SHARED
def test_three_ranks_with_clipping_and_a_whole_gradient_step_equal_one_process(shared_memory):
    start, grads = problem(seed=1)
    want, _ = one_process(start, grads, 3, STEPS, clip=1.0)
    results = run_ranks(3, zero_job(start, grads, STEPS, clip=1.0, whole_at=(1,), shared_memory=shared_memory))
    for params, _, _, _ in results:
        for got, expected in zip(params, want):
            np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    assert [held for _, _, held, _ in results] == [2 * 76, 2 * 76, 2 * 75]  # padded to 3 x 76
    steps = step_collectives(shared_memory, STEPS)  # step 1 all-reduces the whole gradient:
    steps[-6:-4] = ["Allreduce", "Barrier"] if shared_memory else ["Allreduce", "Allgather"]
    assert results[0][3] == steps


@SHARED
@pytest.mark.parametrize("first, second", [(2, 3), (3, 1), (1, 2)])
def test_the_state_moves_between_numbers_of_ranks(first, second, shared_memory):
    """2 steps on `first` ranks, the gathered state saved, 2 more on `second` ranks: one
    process's 4 steps. (Every rank gets the same gradient, so any N averages to it.)"""
    start, grads = problem(seed=2)
    grads = [[step[0]] * 3 for step in grads]

    def run(ranks, begin, step_grads, state=None):
        if ranks == 1:
            return one_process(begin, step_grads, 1, 2, state=state)
        results = run_ranks(ranks, zero_job(begin, step_grads, 2, state=state, shared_memory=shared_memory))
        return results[0][0], results[0][1]

    middle, state = run(first, start, grads[:2])
    assert all(entry["step"] == 2 for entry in state["state"].values()) and len(state["state"]) == len(SHAPES)
    final, _ = run(second, middle, grads[2:4], state=state)
    want, _ = one_process(start, grads, 1, 4)
    for got, expected in zip(final, want):
        np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-7)


@SHARED
def test_a_replaced_parameter_array_is_adopted_again(shared_memory):
    start, grads = problem(seed=3)
    want, _ = one_process(start, grads, 2, 2)

    def job(world):
        params = [nn.Parameter(s.copy()) for s in start]
        sharded = world.shard_optimizer(make_adamw(params), shared_memory=shared_memory)
        for step in range(2):
            if step == 1:  # as model.load_state_dict or `p.data = ...` would do
                for param in params:
                    param.data = param.data.copy()
            for param, grad in zip(params, grads[step][world.rank]):
                param.grad = grad.copy()
            world.average_gradients(params)
            sharded.step()
        return [p.data.copy() for p in params]

    assert_ranks_equal(run_ranks(2, job), want)


def test_parameters_of_one_group_at_different_steps_are_refused():
    params = [nn.Parameter(np.ones(s, np.float32)) for s in SHAPES]
    opt = make_adamw(params)
    params[0].grad = np.ones(SHAPES[0], np.float32)
    opt.step()  # only parameter 0 has a state (step 1); the others of its group have none

    def job(world):
        with pytest.raises(TrainingError, match="group 0 are at different steps.*--zero-stage 0"):
            ShardedOptimizer(opt, world)
        return True

    assert run_ranks(1, job) == [True]


def test_with_shared_memory_the_ranks_hold_one_copy_of_the_weights():
    start, grads = problem(seed=4)

    def job(world):
        params = [nn.Parameter(s.copy()) for s in start]
        sharded = world.shard_optimizer(make_adamw(params))  # default: shared when all on one machine
        world.average_gradients([p for p in params])  # (no .grad yet: zeros)
        sharded.step()
        return sharded.shared, [p.data for p in params], sharded.flat_grad

    (shared0, weights0, grad0), (shared1, weights1, grad1) = run_ranks(2, job)
    assert shared0 and shared1
    assert all(np.shares_memory(a, b) for a, b in zip(weights0, weights1))
    assert not np.shares_memory(grad0, grad1)  # each rank's gradient buffer is its own


@SHARED
def test_backward_writes_the_gradients_into_the_flat_buffer(shared_memory):
    """Gradients made by backward (two micro-batches: the second adds in place) land in each
    rank's flat_grad as they are made; the step equals one process's on their mean."""
    start, grads = problem(seed=5)
    want, _ = one_process(start, grads, 2, 2)

    def job(world):
        params = [nn.Parameter(s.copy()) for s in start]
        sharded = world.shard_optimizer(make_adamw(params), shared_memory=shared_memory)
        for step in range(2):
            for half in range(2):  # loss = sum(p * g / 2): d loss / d p = g / 2, twice
                loss = sum((param * Tensor(grad / np.float32(2))).sum()
                           for param, grad in zip(params, grads[step][world.rank]))
                loss.backward()
            assert all(np.shares_memory(param.grad, sharded.flat_grad) for param in params)
            world.average_gradients(params)
            sharded.step()
            sharded.zero_grad()
        return [p.data.copy() for p in params]

    assert_ranks_equal(run_ranks(2, job), want)


def test_shared_memory_across_machines_is_refused():
    def job(world):
        world.comm.Split_type = lambda split_type: ThreadComm({"size": 1}, 0)  # alone on its machine
        params = [nn.Parameter(s.copy()) for s in problem()[0]]
        with pytest.raises(TrainingError, match=r"shared_memory=True needs every rank on one machine \(1 of the 2"):
            world.shard_optimizer(make_adamw(params), shared_memory=True)
        assert world.shard_optimizer(make_adamw(params)).shared is False  # the default: collectives
        return True

    assert run_ranks(2, job) == [True, True]
