"""What a checkpoint's contents must satisfy before they are used (gpt.training.checkpoint reads
the files; these checks say, naming the file, why one cannot be used).

- `check_model_config`: config.json's model_config is a valid, bounded model whose parameters
  can fit in model.npz, checked before any model is built (a few bytes of JSON must not make
  us allocate gigabytes: `n_layers` 100,000 is refused in microseconds, in one short line).
- `check_resumable`: state.npz and optimizer.npz hold what resuming needs, and
  `check_same_data`: the data read now is the data the checkpoint was trained on.
- `check_finite_state`: weights holding NaN or infinity (a diverged run) are refused, or
  only warned about when allowed.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from minigrad.serialization import CheckpointError
from minigrad.untrusted import short_repr, shorten

from ..model.config import count_parameters, validate_config


def check_model_config(config_path: Path, model_state_path: Path, config: dict) -> None:
    """config.json (at `config_path`) names a valid model that fits in `model_state_path`."""
    model_config = config.get("model_config")
    if not isinstance(model_config, dict):
        raise CheckpointError(f"{config_path}: no 'model_config' object (got {short_repr(model_config)}); "
                              f"the checkpoint does not say which model it holds")
    try:
        validate_config(model_config)
        parameters = count_parameters(model_config, tied=True)
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"{config_path}: bad model_config: {shorten(error)}") from None
    stored = model_state_path.stat().st_size
    if parameters > stored:  # at least one byte per parameter, whatever the dtype
        raise CheckpointError(f"{config_path}: model_config describes {parameters:,} parameters, but "
                              f"{model_state_path.name} holds only {stored:,} bytes (the config is altered)")


def check_resumable(checkpoint, state_path: Path) -> None:
    """The checkpoint's state (from `state_path`) and optimizer state hold what resuming needs:
    the step, the data loader's position, the RNG state and the optimizer's moments."""
    for key, kind in (("step", int), ("loader", dict), ("rng", (dict, list, tuple))):
        value = checkpoint.state.get(key)
        if isinstance(value, bool) or not isinstance(value, kind) or (kind is int and value < 0):
            raise CheckpointError(f"{state_path}: {key!r} is missing or malformed (got {short_repr(value)}); "
                                  f"this checkpoint can be used for generate/eval but not resumed")
    if checkpoint.optimizer_state is None:
        raise CheckpointError(f"checkpoint {checkpoint.path} has no optimizer state: it can be "
                              f"used for generate/eval but not resumed")


def check_same_data(checkpoint, data) -> None:
    """Resuming trains on the data the checkpoint was trained on: the token ids' SHA-256
    recorded at each save must be the one of the data read now (checkpoints from before the
    record pass). A data file changed in place since is an error, not other text silently."""
    recorded = checkpoint.state.get("data_sha256")
    if recorded is not None and recorded != data.content_sha256:
        raise CheckpointError(f"checkpoint {checkpoint.path} was trained on other data: the token ids now "
                              f"read ({data.description}) have SHA-256 {data.content_sha256[:16]}..., the "
                              f"checkpoint recorded {str(recorded)[:16]}...; the data changed since, so "
                              f"resuming would train on other text (restore the data, or start a new run)")


def non_finite_names(state: dict) -> list[str]:
    """Names of the float arrays of a state dict that hold NaN or infinity."""
    return [name for name, value in state.items()
            if np.asarray(value).dtype.kind == "f" and not np.isfinite(np.asarray(value)).all()]


def check_finite_state(state: dict, where: str, allow: bool = False, error=CheckpointError) -> None:
    """Refuse (`error`) weights holding NaN or infinity (a diverged run); `allow`: warn only."""
    bad = non_finite_names(state)
    if not bad:
        return
    shown = ", ".join(bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
    message = f"{where}: {len(bad)} weight tensor(s) hold NaN or infinity ({shown})"
    if allow:
        warnings.warn(message + "; its outputs are meaningless", RuntimeWarning, stacklevel=3)
        return
    raise error(message + "; the model diverged while it was trained (allow_non_finite=True, "
                          "or --allow-non-finite, loads it anyway)")
