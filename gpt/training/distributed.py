"""Data-parallel training across processes and machines with MPI, as llm.c does it.

    pip install -e ".[mpi]"                            # mpi4py and MPICH, both from PyPI
    mpiexec -n 2 gpt train --out runs/dp               # 2 ranks on this machine
    mpiexec -n 8 -hosts a,b gpt train --out /shared/r  # 8 ranks on 2 machines (a shared folder)

Every rank runs the same program on the same data with the same seed, so all ranks start
from the same weights and draw the same global batches in the same order. One step
(gpt.training.loop.Trainer.train_step, with `world` an MPIWorld):

    inputs, targets = loader.next_batch()        (B, T) each: the GLOBAL batch (--batch-size B)
    rows r*B/N ... (r+1)*B/N - 1                 (B/N, T): this rank's contiguous shard   shard()
    forward + backward on the shard              .grad of the shard's mean loss
    flat[slot(p)] = p.grad for every parameter   (P,) float32, one preallocated buffer that
                                                 backward writes the gradients into (the
                                                 slots are the parameters' gradient buffers)
    ZeRO-1 (the default, gpt.training.zero):     each rank updates and keeps 1/N of AdamW
      Reduce_scatter_block(flat -> shard)        (P/N,) the sum of this rank's block
      global norm: Allreduce of ||shard||^2      clipping folded into the update
      AdamW on the block; Allgather(params)      every rank gets all the new weights
      (on one machine: shared memory, the block summed from every rank's buffer, one copy
       of the weights for all ranks, barriers instead of the two collectives)
    --zero-stage 0 (every rank runs all of AdamW):
      Allreduce(IN_PLACE, flat, SUM); flat /= N  ONE collective call per step   average_gradients()
      p.grad = flat[slot(p)].reshape(p.shape)    views of the averaged buffer
      clip + AdamW step                          identical on every rank: same grads, same state

Why N ranks equal one process with the same global batch: the loss of a batch is the mean
over its B*T targets, and with N shards of equal size the mean of the N shard means is that
mean; gradients are linear in the loss, so averaging the shard gradients gives the batch
gradient. Only float32 rounding differs (each sum over rows is split into N partial sums).
Two caveats: (1) the equality needs equal numbers of counted targets per shard: true for
pretraining windows, approximate when targets are ignored (padding, ignore_index);
(2) dropout: masks are drawn per rank for the rank's own rows, so with dropout > 0 the run
depends on N. Equality holds with dropout 0 (the default of `gpt train`). Rank 0 keeps the
run's generator; rank r > 0 draws from a stream seeded by (seed, rank, step at start), so the
ranks do not all drop the same units.

Rank 0 alone prints, writes metrics.jsonl and checkpoints. A checkpoint holds the position of
the GLOBAL loader (how many batches of B were served), never a rank's, so a run written by N
ranks resumes on any M ranks (B divisible by M), or in one process.

Failures end the whole job, never leave ranks waiting in a collective call:
- before training starts (bad flags, an occupied folder, data too short, ...) every rank meets
  the others at one rendezvous (an allgather of "ready" or the error): rank 0 prints the
  error once, as one process would, and every rank exits with code 1;
- ranks whose configs, data, weights or step differ: a clear list of the differences on
  rank 0, exit code 1;
- an exception on any rank during training: that rank prints it (naming its rank) and calls
  MPI_Abort, which ends every rank; a rank killed outright is noticed by mpiexec, which ends
  the others. Checkpoints are written atomically (gpt.training.checkpoint), so the last one stays
  loadable.
- Ctrl-C (mpiexec forwards it to every rank): the ranks agree each step on whether a stop was
  asked (`any`), so all stop after the same step and rank 0 saves.
- A rank that hangs (rather than fails) stalls the others in the next Allreduce: MPI has no
  timeout of its own; MPICH's mpiexec ends the job after MPIEXEC_TIMEOUT seconds when set.

Without an MPI launcher, or with one rank, `world_from_env()` returns gpt.training.world's
SingleProcess: nothing changes and mpi4py is never imported. The launcher is recognised by its
environment variables (gpt.training.world.launched_size).
"""
from __future__ import annotations

import os
import sys
import time
import traceback
from contextlib import contextmanager

import numpy as np

import minigrad
from minigrad import nn, runtime
from minigrad.autograd.engine import set_grad_buffer

from .errors import TrainingError
from .fingerprint import differences_message, run_fingerprint, value_digest
from .world import SingleProcess, launched_size
from .zero import ShardedOptimizer

THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
INSTALL_HINT = "pip install 'minigrad-gpt[mpi]' (mpi4py and MPICH)"


class DistributedError(TrainingError):
    """A data-parallel run cannot go on. `collective`: every rank raised it at the same point
    (so no rank waits for another and the job can end cleanly, with the message on rank 0)."""

    def __init__(self, message: str, collective: bool = False):
        super().__init__(message)
        self.collective = collective


# ------------------------------------------------------------------------------ the world
def world_from_env(environ=None):
    """The data-parallel world of this process: SingleProcess unless an MPI launcher
    started more than one rank, then an MPIWorld (importing mpi4py only then)."""
    size = launched_size(environ)
    if size == 1:
        return SingleProcess()
    world = MPIWorld.create(expected_size=size)
    return world if world is not None else SingleProcess()


# ------------------------------------------------------------------------------ the MPI world
class MPIWorld:
    """The data-parallel hooks of the training loop (shard, average_gradients, grad_norm,
    shard_optimizer, average, any, check_same, setup, guard) over an MPI communicator.

    timings: seconds spent in `average_gradients` ("average": copies + collective + scaling)
    and in its Allreduce alone ("allreduce"), with the number of calls ("steps"); under ZeRO-1
    also the parts of its step, wall and CPU time (see gpt.training.zero).
    """

    def __init__(self, comm, mpi_module):
        self.MPI = mpi_module
        self.comm = comm
        self.rank = comm.Get_rank()
        self.size = comm.Get_size()
        self.is_main = self.rank == 0
        self._started = False     # True once every rank has passed the start-up rendezvous
        self._buffer = None       # (P,) flat gradient buffer
        self._slots = None        # [(start, stop)] of each parameter in the buffer
        self._layout = None       # (id, shape) of each parameter the buffer was laid out for
        self._buffered = []       # the parameters whose gradient buffer is their slot of it
        self.sharded = None       # the ShardedOptimizer once shard_optimizer() made one (ZeRO-1)
        self.timings = {"average": 0.0, "allreduce": 0.0, "steps": 0}

    @classmethod
    def create(cls, expected_size: int | None = None) -> "MPIWorld | None":
        """MPI_COMM_WORLD as a world (None when MPI says there is only one rank)."""
        try:
            from mpi4py import MPI  # optional (the mpi extra): imported only under an MPI launcher
        except ImportError as error:
            ranks = f"{expected_size} ranks" if expected_size else "several ranks"
            raise DistributedError(
                f"this process was started by an MPI launcher ({ranks}) but mpi4py cannot be "
                f"imported ({error}); install it with {INSTALL_HINT}, or run without mpiexec") from None
        comm = MPI.COMM_WORLD
        if expected_size is not None and comm.Get_size() != expected_size:
            library = MPI.Get_library_version().strip().splitlines()[0]
            raise DistributedError(
                f"the launcher started {expected_size} ranks but MPI sees {comm.Get_size()}: the "
                f"mpiexec used is not the one of the MPI that mpi4py was built with ({library}); "
                f"use that installation's mpiexec (with the mpi extra: the one in the Python "
                f"environment's bin folder)")
        if comm.Get_size() == 1:
            return None
        world = cls(comm, MPI)
        world._default_threads()
        return world

    def _default_threads(self) -> None:
        """Share the machine's cores between the ranks on it, for BLAS and minigrad's threads
        (unless the user chose: the thread variables, which OpenBLAS read when it loaded and
        minigrad then follows, or --threads, which the trainer applies after this)."""
        if any(var in os.environ for var in THREAD_VARS):
            runtime.configure(threads=runtime.get_blas_threads())
            return
        local = self.comm.Split_type(self.MPI.COMM_TYPE_SHARED)
        local_ranks = local.Get_size()
        local.Free()
        runtime.configure(threads=max(1, runtime.available_cores() // local_ranks))

    # ---------------------------------------------------------------- the training hooks
    def shard(self, inputs: np.ndarray, targets: np.ndarray):
        """This rank's contiguous rows of the global batch: (B, T) -> (B / N, T)."""
        batch = inputs.shape[0]
        if batch % self.size:
            raise DistributedError(batch_size_message(batch, self.size), collective=True)
        rows = batch // self.size
        start = self.rank * rows
        return inputs[start:start + rows], targets[start:start + rows]  # (B/N, T) each

    def shard_optimizer(self, optimizer, shared_memory: bool | None = None) -> ShardedOptimizer:
        """ZeRO-1: `optimizer` (built, maybe restored) sharded over the ranks; from here on
        average_gradients reduce-scatters and grad_norm sums the shards' norms. shared_memory:
        None = when every rank is on this machine (see gpt.training.zero), False = never."""
        self._started = True
        self._check_same_size([p for group in optimizer.param_groups for p in group["params"]])
        self.sharded = ShardedOptimizer(optimizer, self, shared_memory=shared_memory)
        return self.sharded

    def grad_norm(self, parameters: list) -> float:
        """The 2-norm of the averaged gradient (after average_gradients)."""
        if self.sharded is not None:
            return self.sharded.grad_norm()
        return nn.utils.grad_norm(parameters)

    def average_gradients(self, parameters: list, whole: bool = False) -> None:
        """Average every parameter's `.grad` over the ranks with ONE in-place Allreduce of a
        flat buffer; afterwards each `.grad` is a view of its slice of that buffer (valid until
        the next call). A parameter without a gradient counts as zeros. Under ZeRO-1 a
        Reduce-scatter instead (each rank gets its block; see gpt.training.zero), unless
        `whole` asks every rank to hold the whole averaged gradient (for diagnostics)."""
        self._started = True  # collectives have begun: failures from here on abort
        if self.sharded is not None:
            self.sharded.reduce_gradients(parameters, whole=whole)
            return
        started = time.perf_counter()
        buffer, slots = self._flat_buffer(parameters)
        for param, (start, stop) in zip(parameters, slots):
            grad, slot = param.grad, buffer[start:stop]  # slot: (n,) view
            if grad is None:
                slot.fill(0)
            elif not np.shares_memory(grad, slot):  # (else backward wrote it there: its grad buffer)
                slot[...] = grad.reshape(-1)
        reduce_start = time.perf_counter()
        self.comm.Allreduce(self.MPI.IN_PLACE, buffer, op=self.MPI.SUM)
        reduce_end = time.perf_counter()
        np.divide(buffer, self.size, out=buffer)  # sum -> mean (an int divisor keeps float32)
        for param, (start, stop) in zip(parameters, slots):
            param.grad = buffer[start:stop].reshape(param.shape)
        self.timings["allreduce"] += reduce_end - reduce_start
        self.timings["average"] += time.perf_counter() - started
        self.timings["steps"] += 1

    def average(self, value: float) -> float:
        """The mean over the ranks of a number (a loss)."""
        self._started = True
        return float(self.comm.allreduce(float(value), op=self.MPI.SUM)) / self.size

    def any(self, flag: bool) -> bool:
        """True on every rank when it is True on any (a stop asked by Ctrl-C)."""
        self._started = True
        return bool(self.comm.allreduce(bool(flag), op=self.MPI.LOR))

    def check_same(self, what: str, value) -> None:
        """Raise a collective DistributedError listing the differences when the ranks do not
        all hold the same `value` (JSON-able: dicts, lists, numbers, strings)."""
        self._started = True
        values = self.comm.allgather(value_digest(value))
        if len(set(values)) == 1:
            return
        everything = self.comm.allgather(value)
        raise DistributedError(differences_message(what, everything), collective=True)

    # ---------------------------------------------------------------- start-up
    def setup(self, trainer) -> None:
        """After the trainer is built, before the first step: the start-up rendezvous (every
        rank reports ready or its error), the consistency check across ranks, the dropout
        streams, the gradient buffer, and one line saying how the work is shared."""
        batch = trainer.data.batch_size
        if batch % self.size:
            raise DistributedError(batch_size_message(batch, self.size))
        fingerprint = run_fingerprint(trainer)
        statuses = self._rendezvous(("ready", fingerprint))
        _raise_failed_ranks(statuses)
        everything = [payload for _kind, payload in statuses]
        if len({value_digest(item) for item in everything}) > 1:
            raise DistributedError(differences_message("the run", everything), collective=True)

        config = trainer.config
        if trainer.model_config.get("drop_rate", 0.0) > 0 and self.rank > 0:
            stream = np.random.default_rng([int(config.seed), self.rank, int(trainer.step)])
            minigrad.random.set_state(stream.bit_generator.state)
        trainer.peak = trainer.peak * self.size  # MFU of the job: all ranks' peaks (equal ranks)
        if config.zero_stage == 1:  # the trainer steps the sharded optimizer from here on
            trainer.optimizer = self.shard_optimizer(trainer.optimizer)
            flat = self.sharded.flat_grad
            exchange = ("the ranks share memory (one machine): each sums its block of the "
                        f"{flat.size:,} {flat.dtype} gradients ({flat.nbytes / 1e6:,.1f} MB) from "
                        "every rank's buffer, and all read one copy of the weights"
                        if self.sharded.shared else
                        f"per step one Reduce-scatter of the {flat.size:,} {flat.dtype} gradients and "
                        f"one Allgather of the parameters ({flat.nbytes / 1e6:,.1f} MB each)")
            how = (f"ZeRO-1: each rank updates and keeps 1/{self.size} of AdamW's state "
                   f"({self.sharded.shard_size:,} parameters); " + exchange)
        else:
            flat, _slots = self._flat_buffer(trainer.parameters)
            how = (f"gradients averaged in one Allreduce of {flat.size:,} {flat.dtype} "
                   f"({flat.nbytes / 1e6:,.1f} MB) per step; every rank runs all of AdamW")

        threads = runtime.get_blas_threads()
        library = " ".join(self.MPI.Get_library_version().strip().splitlines()[0].split())
        trainer.progress.line(
            f"data parallel: {self.size} MPI ranks ({library}); each takes {batch // self.size} of "
            f"the {batch} windows of a batch; {threads if threads else '?'} BLAS thread(s) per rank; "
            + how)

    def _rendezvous(self, status) -> list:
        """The start-up allgather: ("ready", fingerprint) or ("error", text) from every rank."""
        self._started = True  # (set first: an error from here on must not meet the others again)
        return self.comm.allgather(status)

    def _flat_buffer(self, parameters: list):
        """(buffer (P,), slots) laid out for `parameters` (made once; remade if they change)."""
        layout = [(id(p), p.shape) for p in parameters]
        if layout != self._layout:
            dtypes = sorted({p.data.dtype.name for p in parameters})
            if len(dtypes) > 1:
                raise DistributedError(f"average_gradients needs parameters of one dtype for its one "
                                       f"flat buffer, got {', '.join(dtypes)}")
            dtype = np.dtype(dtypes[0]) if dtypes else np.dtype(np.float32)
            slots, offset = [], 0
            for param in parameters:
                slots.append((offset, offset + param.numel()))
                offset += param.numel()
            self._check_same_size(parameters, dtype)
            self._buffer = np.empty(offset, dtype=dtype)  # (P,)
            for param in self._buffered:  # (a new layout: the old one's buffers are let go)
                set_grad_buffer(param, None)
            for param, (start, stop) in zip(parameters, slots):  # backward writes the grads there
                set_grad_buffer(param, self._buffer[start:stop].reshape(param.shape))
            self._slots, self._layout, self._buffered = slots, layout, list(parameters)
        return self._buffer, self._slots

    def _check_same_size(self, parameters: list, dtype=None) -> None:
        """A collective DistributedError unless every rank has as many parameters, of one dtype."""
        if dtype is None:
            dtype = parameters[0].data.dtype if parameters else np.dtype(np.float32)
        shapes = self.comm.allgather((sum(p.numel() for p in parameters), np.dtype(dtype).name))
        if len(set(shapes)) > 1:
            listed = ", ".join(f"rank {rank}: {size:,} {name}" for rank, (size, name) in enumerate(shapes))
            raise DistributedError(f"the ranks' gradients differ in size or dtype ({listed}): "
                                   f"every rank must train the same model", collective=True)

    # ---------------------------------------------------------------- failures
    @contextmanager
    def guard(self):
        """Around a whole run: an exception on any rank ends every rank, with a message.

        Collective errors (raised by every rank at once) and errors before the start-up
        rendezvous end the job cleanly: rank 0 re-raises (the command line prints it once),
        the other ranks exit silently with the same code. Any other exception: this rank
        prints it and calls MPI_Abort, which ends all ranks (none is left waiting).
        """
        try:
            yield self
        except BaseException as error:
            if isinstance(error, DistributedError) and error.collective:
                self._leave(error)
            if not self._started:
                self._rendezvous(("error", f"{type(error).__name__}: {error}"))
                if not self.is_main:
                    self._leave(error)
                raise  # rank 0's own error, as one process would show it
            self._abort(error)
            raise

    def _leave(self, error: BaseException):
        """End this rank after an error that all ranks know about."""
        if self.is_main:
            raise error
        raise SystemExit(exit_code(error))

    def _abort(self, error: BaseException) -> None:
        """Print `error` (naming this rank) and end every rank of the job with MPI_Abort."""
        try:
            sys.stdout.flush()
            if isinstance(error, (ValueError, OSError, RuntimeError, KeyboardInterrupt, SystemExit)) \
                    and not os.environ.get("GPT_DEBUG"):
                text = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
                print(f"gpt: rank {self.rank} of {self.size}: {text}", file=sys.stderr)
            else:
                print(f"gpt: rank {self.rank} of {self.size} failed:", file=sys.stderr)
                traceback.print_exception(error, file=sys.stderr)
            print(f"gpt: ending all {self.size} ranks (MPI_Abort); the last checkpoint written "
                  f"stays loadable", file=sys.stderr)
            sys.stderr.flush()
            time.sleep(0.3)  # let mpiexec forward the message before it ends the processes
        finally:
            self.comm.Abort(exit_code(error))
            os._exit(exit_code(error))  # (MPI_Abort may return before the launcher ends this rank)


# ------------------------------------------------------------------------------ helpers
def exit_code(error: BaseException) -> int:
    if isinstance(error, KeyboardInterrupt):
        return 130
    if isinstance(error, SystemExit):
        return error.code if isinstance(error.code, int) and error.code else 1
    return 1


def batch_size_message(batch: int, size: int) -> str:
    lower = batch - batch % size
    options = f"{lower} or {lower + size}" if lower else f"{size}"
    return (f"--batch-size {batch} (the global batch) is not divisible by the {size} MPI ranks: "
            f"each rank takes an equal shard; use a multiple of {size} such as {options}, "
            f"or another number of ranks")


def _raise_failed_ranks(statuses: list) -> None:
    """After the rendezvous of a rank that is ready: the errors of the ranks that were not."""
    failed = [(rank, payload) for rank, (kind, payload) in enumerate(statuses) if kind == "error"]
    if failed:
        listed = "; ".join(f"rank {rank}: {text}" for rank, text in failed)
        raise DistributedError(f"{len(failed)} of {len(statuses)} MPI ranks failed before training "
                               f"started: {listed}", collective=True)


__all__ = ["MPIWorld", "DistributedError", "world_from_env"]
