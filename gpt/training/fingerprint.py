"""What every rank of a data-parallel run must agree on, and how to say where they differ.

`run_fingerprint(trainer)` gathers the settings, model, tokenizer, data, step and a checksum of
the weights; rank 0 compares every rank's against its own and `differences_message` lists the
entries that differ, so a mismatched launch fails with the names of the settings at fault.
"""
from __future__ import annotations

import hashlib
import json

import numpy as np

# Settings that may differ between ranks (they change no computed value).
PER_RANK_FIELDS = ("threads", "quiet")


def run_fingerprint(trainer) -> dict:
    """What must be equal on every rank: settings, model, tokenizer, data, step and weights."""
    config = {key: value for key, value in trainer.config.to_dict().items() if key not in PER_RANK_FIELDS}
    data = trainer.data
    return {
        "config": config,
        "model": dict(trainer.model_config),
        "tokenizer": f"{getattr(trainer.tokenizer, 'name', '?')} ({trainer.tokenizer.n_vocab} tokens)",
        "data": {"train tokens": int(data.n_train_tokens), "val tokens": int(data.n_val_tokens),
                 "token checksum": _tokens_checksum(data.train_tokens, data.val_tokens)},
        "step": int(trainer.step),
        "loader": data.train_loader.state_dict(),
        "weights checksum": _weights_checksum(trainer.parameters),
    }


def _tokens_checksum(*arrays) -> str:
    """SHA-256 of at most ~65,536 evenly spaced tokens of each array (cheap on huge corpora)."""
    digest = hashlib.sha256()
    for tokens in arrays:
        step = max(1, len(tokens) // 65536)
        digest.update(np.ascontiguousarray(tokens[::step], dtype=np.int64).tobytes())
    return digest.hexdigest()[:16]


def _weights_checksum(parameters) -> str:
    """SHA-256 of each parameter's float64 sum and shape: equal weights, equal checksum."""
    digest = hashlib.sha256()
    for param in parameters:
        digest.update(repr(tuple(param.shape)).encode())
        digest.update(np.float64(param.data.sum(dtype=np.float64)).tobytes())
    return digest.hexdigest()[:16]


def value_digest(value) -> str:
    """SHA-256 of `value` as sorted JSON: equal values, equal digest."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def _flatten(value, prefix: str = "") -> dict:
    """{"config.lr": 0.001, ...} from nested dicts."""
    if isinstance(value, dict):
        flat = {}
        for key, item in value.items():
            flat.update(_flatten(item, f"{prefix}{key}."))
        return flat
    return {prefix.rstrip("."): value}


def differences_message(what: str, values: list) -> str:
    """Which entries of each rank's `values[rank]` differ from rank 0's."""
    reference = _flatten(values[0])
    lines = []
    for rank, value in enumerate(values[1:], start=1):
        flat = _flatten(value)
        for key in sorted(set(reference) | set(flat)):
            mine, theirs = reference.get(key, "(missing)"), flat.get(key, "(missing)")
            if mine != theirs:
                lines.append(f"  {key or what}: {mine!r} on rank 0, {theirs!r} on rank {rank}")
    if not lines:
        lines.append("  (the values differ in a way the listing does not show)")
    shown = lines[:20] + ([f"  ... and {len(lines) - 20} more"] if len(lines) > 20 else [])
    return (f"the MPI ranks disagree on {what}; every rank must run the same command on the "
            f"same data (and resume the same checkpoint):\n" + "\n".join(shown))
