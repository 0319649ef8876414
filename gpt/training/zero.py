"""ZeRO stage 1: the optimizer's state and its update sharded over the ranks of an MPI job.

Rajbhandari et al. 2020, "ZeRO: Memory Optimizations Toward Training Trillion Parameter
Models", section 5.1 (P_os). With N ranks, the P trainable parameters are laid out group by
group (AdamW's decay group, then its no-decay group) in one flat float32 vector padded to
N * S elements; rank r owns the block [r S, (r + 1) S). One step (`Trainer.train_step`):

    flat_grad[slot(p)] = p.grad                       (N S,) this rank's gradient of its rows
    Reduce_scatter_block(IN_PLACE, flat_grad)         flat_grad[:S]: the SUM over ranks of block r
    norm^2 = Allreduce(||flat_grad[:S]||^2) / N^2      the global norm of the averaged gradient
    AdamW on block r, gradient x clip / N             params, exp_avg, exp_avg_sq: (S,) views
    Allgather(IN_PLACE, flat_param)                   every rank receives every updated block

The parameters' arrays are views into flat_param (adopted once), so the Allgather writes the
new weights straight into the model. Each rank's AdamW sees one flat piece per group (at
most two arrays), so its update is a handful of whole-buffer passes; the arithmetic per
element is AdamW's, with the same step counts and learning rates, so N ranks give one
process's weights to float32 rounding (the sums over ranks, the norm's partial sums).
Dividing by N is folded into the update's gradient factor (exact for N a power of two).

Memory per rank: AdamW's two moments take 2 S floats instead of 2 P (saved: 8 (N-1)/N bytes
a parameter); the reduce-scatter is in place, so the gradient's block needs no buffer of its own. Communication per rank and step: Reduce-scatter
and Allgather each send (N-1) S floats, together 2 (N-1)/N * 4P bytes: the same volume as the
one Allreduce they replace (a ring Allreduce is a reduce-scatter followed by an all-gather).

Checkpoints stay in the one-process format (optimizer.state_dict() of AdamW, per parameter):
`state_dict()` gathers the shards on rank 0 (a collective call: every rank makes it), and a
run resumes on any number of ranks (`load_state_dict` takes each rank's slice of the full
state). A rank-independent file means resuming on M != N ranks, or in one process, just works.

Under diagnostics (`whole=True`) the gradient is all-reduced instead, so every rank holds the
whole averaged gradient in `.grad` as without ZeRO; otherwise the parameters' `.grad` are
released after the reduce-scatter (no rank holds the whole averaged gradient).
"""
from __future__ import annotations

import math
import time

import numpy as np

from minigrad import Tensor

from .errors import TrainingError


class ShardedOptimizer:
    """ZeRO-1 around a built optimizer (AdamW) over the model's parameters, for an MPIWorld.

    Has what the trainer uses of an optimizer: param_groups (the full groups: set "lr" there),
    step(grad_factor), zero_grad(), state_dict(), load_state_dict(); plus the collective
    reduce_gradients(parameters, whole) and grad_norm() that replace the Allreduce and the
    clipping norm. The wrapped optimizer keeps the groups; its own state is emptied.
    """

    def __init__(self, optimizer, world):
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
        self.flat_param = np.zeros(self.shard_size * size, dtype)  # (N S,)
        self.flat_grad = np.zeros(self.shard_size * size, dtype)   # (N S,)
        self.block = self.flat_grad[:self.shard_size]  # (S,) this rank's summed block, once reduced
        self._views = [None] * len(self.params)
        self._adopt_parameters()
        self._grad_scale = 1.0 / size  # the block holds sums: the mean is sum / N
        self._build_pieces()
        self._adopt_state()

    # ---------------------------------------------------------------- layout
    def _adopt_parameters(self) -> None:
        """Make every parameter's array a view of its slot in flat_param (once; again for a
        parameter whose array was replaced since, e.g. by model.load_state_dict)."""
        for index, (param, (start, stop)) in enumerate(zip(self.params, self.slots)):
            if param.data is not self._views[index]:
                self.flat_param[start:stop] = param.data.reshape(-1)
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
        the sum over the ranks into flat_grad[:S] (an in-place Reduce_scatter_block); the .grad
        are released. whole=True: an Allreduce instead, every .grad a view of the averaged
        flat_grad, and this rank's block read where it lies."""
        timings = self.world.timings
        started = time.perf_counter()
        self._adopt_parameters()  # (a parameter whose array was replaced since the last step)
        for param, (start, stop) in zip(self.params, self.slots):
            grad, slot = param.grad, self.flat_grad[start:stop]  # (n,) view
            if grad is None:
                slot.fill(0)
            else:
                slot[...] = (grad.data if isinstance(grad, Tensor) else grad).reshape(-1)
            param.grad = None
        self.flat_grad[self.total:] = 0  # the padding (MPI may have used it as scratch)
        reduce_start = time.perf_counter()
        if whole:
            self.comm.Allreduce(self.MPI.IN_PLACE, self.flat_grad, op=self.MPI.SUM)
            np.divide(self.flat_grad, self.world.size, out=self.flat_grad)  # mean, as without ZeRO
            for param, (start, stop) in zip(self.params, self.slots):
                param.grad = self.flat_grad[start:stop].reshape(param.shape)
            self.block = self.flat_grad[self.lo:self.hi]  # (S,)
            self._grad_scale = 1.0
        else:
            self.comm.Reduce_scatter_block(self.MPI.IN_PLACE, self.flat_grad, op=self.MPI.SUM)
            self.block = self.flat_grad[:self.shard_size]  # (S,) the sum of block r
            self._grad_scale = 1.0 / self.world.size
        for piece, (_, start, stop) in zip(self._inner_params(), self.pieces):
            piece.grad = self.block[start - self.lo:stop - self.lo]
        timings["reduce_scatter"] = timings.get("reduce_scatter", 0.0) + time.perf_counter() - reduce_start
        timings["average"] += time.perf_counter() - started
        timings["steps"] += 1

    def grad_norm(self) -> float:
        """The 2-norm of the whole averaged gradient: the shards' squared norms summed over
        the ranks (one Allreduce of a number)."""
        local = float(np.dot(self.block, self.block))  # (S,) . (S,)
        return math.sqrt(self.comm.allreduce(local, op=self.MPI.SUM)) * self._grad_scale

    # ---------------------------------------------------------------- the optimizer interface
    def step(self, closure=None, grad_factor: float = 1.0):
        """AdamW on this rank's block (gradient x grad_factor / N), then the Allgather of the
        parameters. Hyperparameters (the lr of the schedule) come from self.param_groups."""
        if closure is not None:
            raise TrainingError("ZeRO-1: step(closure) is not supported (the trainer does not use it)")
        if self.inner is not None:
            for inner_group, (group_index, _, _) in zip(self.inner.param_groups, self.pieces):
                inner_group.update(_hyperparameters(self.param_groups[group_index]))
            self.inner.step(grad_factor=float(grad_factor) * self._grad_scale)
        started = time.perf_counter()
        self.comm.Allgather(self.MPI.IN_PLACE, self.flat_param)
        timings = self.world.timings
        timings["allgather"] = timings.get("allgather", 0.0) + time.perf_counter() - started

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


def _hyperparameters(group: dict) -> dict:
    return {key: value for key, value in group.items() if key != "params"}


__all__ = ["ShardedOptimizer"]
