"""The error a training run stops with: its message says why, with the numbers.

The command line prints it without a traceback (exit code 1); gpt.training.distributed's
DistributedError is one too.
"""


class TrainingError(RuntimeError):
    """Training cannot go on (a non-finite loss, a run folder conflict, ...): the message says why."""
