"""Chapter 5: pretraining, in the order one run uses its parts.

    config.py       TrainConfig: every setting of a run, with model presets
    run_dir.py      the run folder: refuse another run's, resume with the same settings
    data.py         from the settings to the run's token arrays, windows and loaders
    loop.py         the Trainer: forward, backward, clip, schedule, AdamW; `train(config)`
    optimizer.py    AdamW's parameter groups and the lr of every step (minigrad.optim's schedules)
    world.py        the data-parallel interface of the loop; SingleProcess, the launcher's rank
    interrupt.py    Ctrl-C: finish the step, save, stop
    evaluate.py     loss and perplexity on fixed batches
    diagnostics.py  per-layer activation and gradient statistics (`--diagnostics N`)
    progress.py     progress lines and metrics.jsonl
    flops.py        the machine's matmul speed and MFU
    checkpoint.py   checkpoint folders: save, verify, load, resume
    plot.py         the loss curves of a run (matplotlib, optional)
    threads.py      BLAS thread count
    distributed.py  data parallelism over MPI (an MPIWorld), with fingerprint.py: what ranks
                    must agree on, and zero.py: ZeRO-1, AdamW's state and update sharded
    errors.py       TrainingError
"""
from .config import PRESETS, TrainConfig
from .loop import TrainingError, TrainResult, train
from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .distributed import DistributedError, MPIWorld, world_from_env

__all__ = [
    "PRESETS", "TrainConfig", "TrainingError", "TrainResult", "train", "CheckpointError",
    "load_checkpoint", "save_checkpoint", "DistributedError", "MPIWorld", "world_from_env",
]
