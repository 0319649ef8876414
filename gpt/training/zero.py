"""ZeRO stage 1: the optimizer's state and its update sharded over the ranks of an MPI job.

Rajbhandari et al. 2020, "ZeRO: Memory Optimizations Toward Training Trillion Parameter
Models", section 5.1 (P_os). With N ranks, the P trainable parameters are laid out group by
group (AdamW's decay group, then its no-decay group) in one flat float32 vector padded to
N * S elements; rank r owns the block [r S, (r + 1) S). One step (`Trainer.train_step`):

    flat_grad[slot(p)] = p.grad                       (N S,) this rank's gradient of its rows (*)
    Reduce_scatter_block(IN_PLACE, flat_grad)         flat_grad[:S]: the SUM over ranks of block r
    norm^2 = Allreduce(||flat_grad[:S]||^2) / N^2      the global norm of the averaged gradient
    AdamW on block r, gradient x clip / N             params, exp_avg, exp_avg_sq: (S,) views
    Allgather(IN_PLACE, flat_param)                   every rank receives every updated block

(*) written by backward itself: each parameter's slot is its gradient buffer
(minigrad.autograd.engine.set_grad_buffer), so a gradient is copied there as it is made, while
fresh in cache, and no separate pass over all the gradients follows backward.
The parameters' arrays are views into flat_param (adopted once), so the Allgather writes the
new weights straight into the model. Each rank's AdamW sees one flat piece per group (at
most two arrays), so its update is a handful of whole-buffer passes; the arithmetic per
element is AdamW's, with the same step counts and learning rates, so N ranks give one
process's weights to float32 rounding (the sums over ranks, the norm's partial sums).
Dividing by N is folded into the update's gradient factor (exact for N a power of two).

On one machine (every rank in MPI's COMM_TYPE_SHARED group: the default whenever that holds)
the buffers live in MPI-3 shared-memory windows instead, and the two collectives become
plain array passes between barriers:

    flat_grad[slot(p)] = p.grad                       into this rank's window, readable by all
    barrier; block r = sum over q of flat_grad_q[block r]   read from every rank's window, in
                                                      cache-sized pieces, each squared as it is summed
    norm^2 = Allreduce(||block r||^2) / N^2           (also: no rank reads another's flat_grad after it)
    AdamW on block r, written into THE flat_param     one copy of the weights for all ranks
    barrier                                           every block written: nothing to gather

The reduction reads N blocks and writes one (an MPI Reduce-scatter on one machine copies each
block through MPI's own shared buffers first), and the Allgather's copy of the other N - 1
blocks disappears: measured at 124M, 2 ranks, per step and rank, 25-37 ms of CPU for the
reduction against 70-83 ms for the Reduce-scatter, and 0.1 ms for the barrier against 43-55
ms for the Allgather (a machine shared with other jobs, load 5-8).

Memory per rank: AdamW's two moments take 2 S floats instead of 2 P (saved: 8 (N-1)/N bytes
a parameter); the reduce-scatter is in place, so the gradient's block needs no buffer of its
own; with shared memory the N ranks of a machine hold one flat_param between them.
Communication per rank and step across machines: Reduce-scatter and Allgather each send
(N-1) S floats, together 2 (N-1)/N * 4P bytes: the same volume as the one Allreduce they
replace (a ring Allreduce is a reduce-scatter followed by an all-gather).

Checkpoints stay in the one-process format (optimizer.state_dict() of AdamW, per parameter):
`state_dict()` gathers the shards on rank 0 (a collective call: every rank makes it), and a
run resumes on any number of ranks (`load_state_dict` takes each rank's slice of the full
state). A rank-independent file means resuming on M != N ranks, or in one process, just works.

Under diagnostics (`whole=True`) the gradient is all-reduced instead, so every rank holds the
whole averaged gradient in `.grad` as without ZeRO; otherwise the parameters' `.grad` are
released after the reduction (no rank holds the whole averaged gradient).

Timings (world.timings, seconds summed over steps, wall and "cpu " + name for the process's
CPU time): copy, wait (shared memory: the barrier before the reduction, where a rank waits
for the others to finish their backward; MPI's barrier polls, so its CPU time is its wall
time), reduce_scatter (the reduction of block r either way; with MPI's Reduce_scatter the wait
is inside it), norm, update (AdamW), allgather (the Allgather, or the barrier after the update).
"""
from __future__ import annotations

import math
import time

import numpy as np

from minigrad import Tensor
from minigrad.autograd.engine import set_grad_buffer

from .errors import TrainingError

REDUCE_PIECE = 1 << 17  # elements (512 KB) summed from the ranks' buffers, then squared, at a time


class ShardedOptimizer:
    """ZeRO-1 around a built optimizer (AdamW) over the model's parameters, for an MPIWorld.

    Has what the trainer uses of an optimizer: param_groups (the full groups: set "lr" there),
    step(grad_factor), zero_grad(), state_dict(), load_state_dict(); plus the collective
    reduce_gradients(parameters, whole) and grad_norm() that replace the Allreduce and the
    clipping norm. The wrapped optimizer keeps the groups; its own state is emptied.
    """

    def __init__(self, optimizer, world, shared_memory: bool | None = None):
        self.template = optimizer          # the full optimizer: its groups, and a scratch for loading
        self.param_groups = optimizer.param_groups
        self.defaults = optimizer.defaults
        self.world, self.comm, self.MPI = world, world.comm, world.MPI
        self.params = [p for group in self.param_groups for p in group["params"]]
        dtypes = sorted({p.data.dtype.name for p in self.params})
        if len(dtypes) != 1:
            raise TrainingError(f"ZeRO-1 needs parameters of one dtype for its flat buffer, got "
                                f"{', '.join(dtypes)}; use --zero-stage 0")
        dtype = np.dtype(dtypes[0])
        self.slots, offset = [], 0
        for param in self.params:  # group by group, in the groups' order
            self.slots.append((offset, offset + param.numel()))
            offset += param.numel()
        self.total = offset
        size, rank = world.size, world.rank
        self.shard_size = -(-offset // size)                   # S = ceil(P / N)
        self.lo, self.hi = rank * self.shard_size, (rank + 1) * self.shard_size
        self._window_sync = None  # set when the ranks share memory (_allocate)
        self.flat_param, self.flat_grad, self._peer_grads = self._allocate(dtype, shared_memory)
        self.shared = self._window_sync is not None
        self.block = self.flat_grad[:self.shard_size]  # (S,) this rank's summed block, once reduced
        self._block_sq = None  # its squared norm, when the reduction summed it on the way
        self._views = [None] * len(self.params)
        self._grad_views = [self.flat_grad[start:stop].reshape(param.shape)  # (param's shape) views
                            for param, (start, stop) in zip(self.params, self.slots)]
        for param, view in zip(self.params, self._grad_views):  # backward writes the gradients there
            set_grad_buffer(param, view)
        self._adopt_parameters()
        if self.shared:
            self._sync()  # every rank has written its block of the weights
        self._grad_scale = 1.0 / size  # the block holds sums: the mean is sum / N
        self._build_pieces()
        self._adopt_state()

    # ---------------------------------------------------------------- layout
    def _allocate(self, dtype, shared_memory):
        """flat_param and flat_grad, (N S,) each, and every rank's flat_grad (a list, or None).

        Ranks on one machine (all of them: MPI's COMM_TYPE_SHARED group is the whole job) share
        memory through MPI-3 windows, unless shared_memory=False: ONE flat_param that every rank
        reads (rank r writes block r only), and every rank's flat_grad readable by the others.
        Otherwise (several machines, or shared_memory=False) private arrays and MPI collectives."""
        length, MPI = self.shard_size * self.world.size, self.MPI
        if shared_memory is not False:
            node = self.comm.Split_type(MPI.COMM_TYPE_SHARED)  # the ranks on this machine
            if node.Get_size() == self.world.size:
                itemsize = dtype.itemsize
                params = MPI.Win.Allocate_shared(length * itemsize if node.Get_rank() == 0 else 0,
                                                 itemsize, comm=node)
                grads = MPI.Win.Allocate_shared(length * itemsize, itemsize, comm=node)
                for window in (params, grads):
                    window.Lock_all(MPI.MODE_NOCHECK)  # (a passive epoch for the whole run: Sync)
                self._windows, self._node = (params, grads), node  # (kept for the process's life)
                self._window_sync = (params.Sync, grads.Sync, node.Barrier)
                flat_param = np.frombuffer(params.Shared_query(0)[0], dtype, length)  # (N S,)
                peers = [np.frombuffer(grads.Shared_query(rank)[0], dtype, length)  # (N S,) each
                         for rank in range(node.Get_size())]
                flat_param[self.lo:self.hi] = 0
                return flat_param, peers[node.Get_rank()], peers
            local = node.Get_size()
            node.Free()
            if shared_memory:
                raise TrainingError(f"ZeRO-1: shared_memory=True needs every rank on one machine "
                                    f"({local} of the {self.world.size} ranks are on this one)")
        return np.zeros(length, dtype), np.zeros(length, dtype), None

    def _sync(self) -> None:
        """All ranks meet, and see each other's writes to the shared windows (MPI_Win_sync,
        MPI_Barrier, MPI_Win_sync: the unified memory model's fence)."""
        sync_params, sync_grads, barrier = self._window_sync
        sync_params(), sync_grads()
        barrier()
        sync_params(), sync_grads()

    def _adopt_parameters(self) -> None:
        """Make every parameter's array a view of its slot in flat_param (once; again for a
        parameter whose array was replaced since, e.g. by model.load_state_dict). With shared
        memory this rank copies only its block [lo, hi) of the values (the others copy theirs:
        every rank replaces the same arrays with the same values, as a resume does)."""
        low, high = (self.lo, self.hi) if self.shared else (0, self.total)
        for index, (param, (start, stop)) in enumerate(zip(self.params, self.slots)):
            if param.data is not self._views[index]:
                a, b = max(start, low), min(stop, high)
                if a < b:
                    self.flat_param[a:b] = param.data.reshape(-1)[a - start:b - start]
                param.data = self.flat_param[start:stop].reshape(param.shape)
                self._views[index] = param.data

    def _build_pieces(self) -> None:
        """This rank's block cut at group boundaries: one Tensor per group it overlaps, its
        data a view of flat_param and its grad a view of the reduced block; the inner optimizer (of
        the wrapped one's type) updates those pieces only (their grads: set by reduce_gradients)."""
        self.pieces = []  # (group index, start, stop) in flat coordinates
        inner_groups, first = [], 0
        for group_index, group in enumerate(self.param_groups):
            count = len(group["params"])
            group_start, group_stop = self.slots[first][0], self.slots[first + count - 1][1]
            first += count
            start, stop = max(group_start, self.lo), min(group_stop, self.hi)
            if start >= stop:
                continue
            piece = Tensor(self.flat_param[start:stop], requires_grad=True)  # (stop - start,) view
            self.pieces.append((group_index, start, stop))
            inner_groups.append({**_hyperparameters(group), "params": [piece]})
        self.inner = type(self.template)(inner_groups, **self.defaults) if inner_groups else None

    def _inner_params(self):
        return [] if self.inner is None else [g["params"][0] for g in self.inner.param_groups]

    def _covering(self, start: int, stop: int):
        """(index, param, (a, b) within the param, (a, b) within the piece) of every
        parameter overlapping flat range [start, stop)."""
        for index, (param_start, param_stop) in enumerate(self.slots):
            a, b = max(param_start, start), min(param_stop, stop)
            if a < b:
                yield index, (a - param_start, b - param_start), (a - start, b - start)

    def _adopt_state(self) -> None:
        """Move this rank's slices of the wrapped optimizer's per-parameter state into the
        pieces' state, and empty the wrapped optimizer's (so a rank keeps 1/N of it)."""
        kinds = type(self.template)._state_keys
        for piece, (group_index, start, stop) in zip(self._inner_params(), self.pieces):
            entries = [(self.template.state.get(self.params[i]), inside, there)
                       for i, inside, there in self._covering(start, stop)]
            if all(entry is None for entry, _, _ in entries):
                continue
            state = {}
            for key, kind in kinds.items():
                if kind == "int":
                    values = {None if e is None else int(e[key]) for e, _, _ in entries}
                    if len(values) != 1 or None in values:
                        raise TrainingError(
                            f"ZeRO-1: the parameters of optimizer group {group_index} are at different "
                            f"steps ({sorted(map(str, values))}) in the optimizer state; ZeRO-1 steps a "
                            f"group together. Resume with --zero-stage 0")
                    state[key] = values.pop()
                else:
                    array = np.empty(stop - start, self.flat_param.dtype)  # (piece,)
                    for entry, (a, b), (c, d) in entries:
                        array[c:d] = entry[key].reshape(-1)[a:b]
                    state[key] = array
            self.inner.state[piece] = state
        self.template.state.clear()

    # ---------------------------------------------------------------- the step's collectives
    def reduce_gradients(self, parameters, whole: bool = False) -> None:
        """Every parameter's .grad (missing: zeros) into flat_grad, then this rank's block of
        the sum over the ranks: into flat_grad[:S] by an in-place Reduce_scatter_block, or,
        with shared memory, summed straight from every rank's flat_grad into flat_grad[lo:hi].
        The .grad are released. whole=True: an Allreduce instead, every .grad a view of the
        averaged flat_grad, and this rank's block read where it lies."""
        timings, clock = self.world.timings, _Clock(self.world.timings)
        self._adopt_parameters()  # (a parameter whose array was replaced since the last step)
        for param, (start, stop), view in zip(self.params, self.slots, self._grad_views):
            grad, slot = param.grad, self.flat_grad[start:stop]  # (n,) view
            if grad is None:
                slot.fill(0)
            elif grad is not view:  # (a gradient set by hand, or from create_graph: copied)
                slot[...] = (grad.data if isinstance(grad, Tensor) else grad).reshape(-1)
            param.grad = None
        self.flat_grad[self.total:] = 0  # the padding (MPI may have used it as scratch)
        clock.lap("copy")
        self._block_sq = None  # ||block||^2, when the reduction computes it on the way
        if whole:
            self.comm.Allreduce(self.MPI.IN_PLACE, self.flat_grad, op=self.MPI.SUM)
            np.divide(self.flat_grad, self.world.size, out=self.flat_grad)  # mean, as without ZeRO
            for param, view in zip(self.params, self._grad_views):
                param.grad = view
            self.block = self.flat_grad[self.lo:self.hi]  # (S,)
            self._grad_scale = 1.0
        else:
            self.reduce_block(clock)
        for piece, (_, start, stop) in zip(self._inner_params(), self.pieces):
            piece.grad = self.block[start - self.lo:stop - self.lo]
        clock.lap("reduce_scatter")
        timings["average"] += clock.total
        timings["steps"] += 1

    def reduce_block(self, clock: "_Clock | None" = None) -> None:
        """self.block (S,) := the sum over the ranks of block r of their flat_grad (with a
        clock and shared memory, the barrier's wait is timed apart, as "wait")."""
        if self.shared:
            self._sync()  # every rank's gradient is in its flat_grad
            if clock is not None:
                clock.lap("wait")
            self.block = self.flat_grad[self.lo:self.hi]  # (S,) this rank's rows of its own buffer
            peers = [peer[self.lo:self.hi] for rank, peer in enumerate(self._peer_grads)
                     if rank != self.world.rank]  # block r of the others' buffers: read, never written
            partial = []  # ||piece||^2 of each summed piece while it is in cache: the norm's pass
            for start in range(0, self.block.size, REDUCE_PIECE):
                piece = self.block[start:start + REDUCE_PIECE]
                for peer in peers:
                    np.add(piece, peer[start:start + REDUCE_PIECE], out=piece)
                partial.append(np.dot(piece, piece))
            self._block_sq = math.fsum(partial)  # float64 sum, in piece order
        else:
            self.comm.Reduce_scatter_block(self.MPI.IN_PLACE, self.flat_grad, op=self.MPI.SUM)
            self.block = self.flat_grad[:self.shard_size]  # (S,) the sum of block r
        self._grad_scale = 1.0 / self.world.size

    def gather_parameters(self) -> None:
        """Every rank's flat_param := all the ranks' updated blocks (an Allgather; with shared
        memory there is one flat_param: a barrier after which every block is written)."""
        if self.shared:
            self._sync()
        else:
            self.comm.Allgather(self.MPI.IN_PLACE, self.flat_param)

    def grad_norm(self) -> float:
        """The 2-norm of the whole averaged gradient: the shards' squared norms summed over
        the ranks (one Allreduce of a number; with shared memory it is also the point after
        which no rank reads another's flat_grad: each has summed its block)."""
        clock = _Clock(self.world.timings)
        local = self._block_sq  # summed with the reduction (shared memory), else one more pass
        if local is None:
            local = float(np.dot(self.block, self.block))  # (S,) . (S,)
        total = self.comm.allreduce(local, op=self.MPI.SUM)
        clock.lap("norm")
        return math.sqrt(total) * self._grad_scale

    # ---------------------------------------------------------------- the optimizer interface
    def step(self, closure=None, grad_factor: float = 1.0):
        """AdamW on this rank's block (gradient x grad_factor / N), then every rank gets the
        others' blocks: an Allgather of the parameters, or with shared memory (one flat_param
        for all ranks) a barrier after which the new weights are there to read.
        Hyperparameters (the lr of the schedule) come from self.param_groups."""
        if closure is not None:
            raise TrainingError("ZeRO-1: step(closure) is not supported (the trainer does not use it)")
        clock = _Clock(self.world.timings)
        if self.inner is not None:
            for inner_group, (group_index, _, _) in zip(self.inner.param_groups, self.pieces):
                inner_group.update(_hyperparameters(self.param_groups[group_index]))
            self.inner.step(grad_factor=float(grad_factor) * self._grad_scale)
        clock.lap("update")
        self.gather_parameters()
        clock.lap("allgather")

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.template.zero_grad(set_to_none)

    def state_dict(self) -> dict:
        """The one-process state dict (AdamW's, per parameter), gathered on rank 0; None on
        the other ranks. A collective call: every rank must make it."""
        kinds = type(self.template)._state_keys
        pieces = [(start, stop, {key: value for key, value in self.inner.state[piece].items()
                                 if kinds.get(key) == "int"})
                  for piece, (_, start, stop) in zip(self._inner_params(), self.pieces)
                  if piece in self.inner.state]
        everyone = self.comm.gather(pieces, root=0)  # the small part: ranges and step counts
        arrays = {}
        for key in (key for key, kind in kinds.items() if kind == "array"):
            block = np.zeros(self.shard_size, self.flat_param.dtype)  # (S,) this rank's block
            for piece, (_, start, stop) in zip(self._inner_params(), self.pieces):
                if piece in self.inner.state:
                    block[start - self.lo:stop - self.lo] = self.inner.state[piece][key]
            whole = np.empty(self.flat_param.size, block.dtype) if self.world.is_main else None
            self.comm.Gather(block, whole, root=0)  # (N S,) on rank 0
            arrays[key] = whole
        if not self.world.is_main:
            return None
        held = [piece for rank_pieces in everyone for piece in rank_pieces]
        state, groups, index = {}, [], 0
        for group in self.param_groups:
            indices = []
            for _param in group["params"]:
                start, stop = self.slots[index]
                covering = [scalars for a, b, scalars in held if a < stop and start < b]
                if covering:  # (a parameter cut between two ranks: both pieces hold its steps)
                    entry = dict(covering[0])
                    entry.update({key: whole[start:stop].reshape(self.params[index].shape)
                                  for key, whole in arrays.items()})
                    state[index] = {key: entry[key] for key in kinds}
                indices.append(index)
                index += 1
            groups.append({**_hyperparameters(group), "params": indices})
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict) -> None:
        """Load a one-process state dict (checked as the wrapped optimizer checks it) and keep
        this rank's slice of it."""
        self.template.load_state_dict(state_dict)
        self._build_pieces()
        self._adopt_state()


class _Clock:
    """Adds the wall and CPU seconds (the process's: all its threads) of consecutive parts of
    a call to timings[part] and timings["cpu " + part]."""

    def __init__(self, timings: dict):
        self.timings, self.total = timings, 0.0
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def lap(self, part: str) -> None:
        wall, cpu = time.perf_counter(), time.process_time()
        self.timings[part] = self.timings.get(part, 0.0) + wall - self.wall
        self.timings["cpu " + part] = self.timings.get("cpu " + part, 0.0) + cpu - self.cpu
        self.total += wall - self.wall
        self.wall, self.cpu = wall, cpu


def _hyperparameters(group: dict) -> dict:
    return {key: value for key, value in group.items() if key != "params"}


__all__ = ["ShardedOptimizer"]
