"""The data-parallel interface of the training loop, and how a process learns its place.

The loop (gpt.training.loop) talks to its `world` through a few methods; `SingleProcess` is
the world of a plain run, where they do nothing, and gpt.training.distributed's MPIWorld gives
them their meaning over MPI. Both the loop and the MPI code import this module, never each
other:

    shard(inputs, targets)         this rank's rows of the global batch (B, T) -> (B/N, T)
    average_gradients(params)      .grad averaged over the ranks, in place (ZeRO-1: each rank
                                   gets its block of the flat gradient, gpt.training.zero)
    grad_norm(params)              the global norm of the averaged gradient (for clipping)
    shard_optimizer(optimizer)     ZeRO-1: each rank keeps and updates 1/N of the optimizer
    average(value), any(flag)      a loss averaged, a stop request shared
    check_same(what, value)        ranks that disagree fail clearly
    setup(trainer), guard()        start-up checks; an error on one rank ends them all
    rank, size, is_main            rank 0 alone prints and writes

An MPI launcher announces the world size and this process's rank in environment variables
(MPICH/Intel MPI: PMI_SIZE; Open MPI: OMPI_COMM_WORLD_SIZE; MVAPICH: MV2_COMM_WORLD_SIZE;
PMIx: PMIX_RANK); `launched_size` and `launched_rank` read them without importing mpi4py.
"""
from __future__ import annotations

import contextlib
import os

import numpy as np

from minigrad import nn

# Environment variables by which MPI launchers announce the world size and this process's rank.
SIZE_VARS = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "MV2_COMM_WORLD_SIZE")
RANK_VARS = ("OMPI_COMM_WORLD_RANK", "PMI_RANK", "MV2_COMM_WORLD_RANK", "PMIX_RANK")


class SingleProcess:
    """The data-parallel hooks of a one-process run (an MPI world provides the same methods)."""

    rank = 0
    size = 1
    is_main = True

    def shard(self, inputs: np.ndarray, targets: np.ndarray):
        """This rank's rows of the global batch (B, T) -> (B / size, T)."""
        return inputs, targets

    def average_gradients(self, parameters: list, whole: bool = False) -> None:
        """Average `.grad` over the ranks, in place (nothing to do in one process). whole:
        every rank must hold the whole averaged gradient afterwards (diagnostics read it)."""

    def grad_norm(self, parameters: list) -> float:
        """The 2-norm of all the (averaged) gradients together."""
        return nn.utils.grad_norm(parameters)

    def shard_optimizer(self, optimizer):
        """The optimizer as each rank runs it (ZeRO-1 shards it; one process: unchanged)."""
        return optimizer

    def average(self, value: float) -> float:
        """Average a number (a loss) over the ranks."""
        return value

    def check_same(self, what: str, value) -> None:
        """Fail clearly when ranks disagree on `value` (configs, data sizes)."""

    def any(self, flag: bool) -> bool:
        """True on every rank when `flag` is True on any (so all ranks stop at the same step)."""
        return flag

    def setup(self, trainer) -> None:
        """Called once the trainer is built: checks across ranks, the gradient buffer."""

    def guard(self):
        """Context around a run: an error on one rank ends them all (nothing in one process)."""
        return contextlib.nullcontext(self)


# ------------------------------------------------------------------------------ the launcher
def _env_int(name: str, environ) -> int | None:
    text = environ.get(name)
    if text is None:
        return None
    try:
        return int(text.strip())
    except ValueError:
        return None


def launched_size(environ=None) -> int | None:
    """World size announced by an MPI launcher: 1 when there is none, None when a launcher
    started this process but did not say how many ranks (ask MPI)."""
    environ = os.environ if environ is None else environ
    sizes = [size for size in (_env_int(var, environ) for var in SIZE_VARS) if size is not None]
    if sizes:
        return max(sizes)
    if any(var in environ for var in RANK_VARS):
        return None
    return 1


def launched_rank(environ=None) -> int:
    """This process's rank as the launcher's environment says (0 without a launcher)."""
    environ = os.environ if environ is None else environ
    for var in RANK_VARS:
        rank = _env_int(var, environ)
        if rank is not None:
            return rank
    return 0


def is_main_process(environ=None) -> bool:
    """True on rank 0 (and in a plain process): the one that prints and writes."""
    return launched_rank(environ) == 0
