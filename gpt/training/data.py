"""From a TrainConfig to batches: text -> tokenizer -> token ids -> train/val windows -> loaders.

The text and tokenizer come from gpt.data.corpus.prepare_corpus (the embedded default corpus
or the files of `--data`; "bytes", "gpt2", or a "bpe:N" trained on that text). The token ids
are split by `val_fraction` (the last part is validation, as in the book) and cut into windows
of the context length (stride: the context length unless given).
"""
from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass

import numpy as np

from minigrad.untrusted import FileFormatError

from ..data.corpus import prepare_corpus
from ..data.loader import DataLoader, SlidingWindowDataset, train_val_split


class DataError(FileFormatError):
    """The data cannot be used: a data file is malformed (the message names it and the line),
    or it does not fit the run's settings (too few tokens for the context or batch)."""


@dataclass
class RunData:
    """The run's tokenizer, token arrays and loaders."""

    tokenizer: object
    train_tokens: np.ndarray       # (N_train,)
    val_tokens: np.ndarray         # (N_val,)
    train_loader: DataLoader       # shuffled windows of the train split, crossing epochs
    val_dataset: SlidingWindowDataset
    batch_size: int
    description: str

    @functools.cached_property
    def content_sha256(self) -> str:
        """SHA-256 of the train and validation token ids: recorded in each checkpoint, so a
        resumed run can tell when its data changed on disk since (it would train on other text)."""
        digest = hashlib.sha256()
        for tokens in (self.train_tokens, self.val_tokens):
            digest.update(str(np.asarray(tokens).dtype).encode())
            digest.update(np.ascontiguousarray(tokens).tobytes())
        return digest.hexdigest()

    @property
    def epoch(self) -> int:
        """1-based epoch of the next training batch (as people count epochs)."""
        loader = self.train_loader
        return loader.epoch + 1 + (1 if loader.position >= len(loader) else 0)

    @property
    def batches_per_epoch(self) -> int:
        return len(self.train_loader)

    @property
    def n_train_tokens(self) -> int:
        return len(self.train_tokens)

    @property
    def n_val_tokens(self) -> int:
        return len(self.val_tokens)

    def next_train_batch(self) -> tuple[np.ndarray, np.ndarray]:
        return self.train_loader.next_batch()  # (B, T), (B, T)

    def eval_train_batches(self, n_batches: int):
        return evenly_spaced_batches(self.train_loader.dataset, self.batch_size, n_batches)

    def eval_val_batches(self, n_batches: int):
        return evenly_spaced_batches(self.val_dataset, self.batch_size, n_batches)


def evenly_spaced_batches(dataset: SlidingWindowDataset, batch_size: int, n_batches: int):
    """Up to n_batches batches of windows spread evenly over the dataset (all windows when it has
    fewer): a fixed, representative estimate that uses no random numbers."""
    n_windows = min(len(dataset), batch_size * n_batches)
    indices = np.unique(np.linspace(0, len(dataset) - 1, n_windows).round().astype(np.int64))
    for start in range(0, len(indices), batch_size):
        yield dataset.batch(indices[start:start + batch_size])  # (b, T), (b, T)


def build_data(config, tokenizer=None, progress=None) -> RunData:
    """Tokenize the run's text (with `tokenizer`, or a new one per config.tokenizer) and make loaders."""
    log = progress.line if progress is not None else None
    tokenizer, token_ids, description = prepare_corpus(
        config.data or None, tokenizer if tokenizer is not None else config.tokenizer,
        config.tokenizer_path, log=log, cache_beside=config.cache_beside_data)  # (N,) token ids
    context = config.resolved_model_dims()["context_length"]
    stride = config.stride or context
    batch_size = config.resolved_batch_size()
    check_fits(len(token_ids), config.val_fraction, context, stride, batch_size)
    train_tokens, val_tokens = train_val_split(token_ids, 1.0 - config.val_fraction)
    train_dataset = SlidingWindowDataset(train_tokens, context, stride)
    val_dataset = SlidingWindowDataset(val_tokens, context, context)
    loader = DataLoader(train_dataset, batch_size, shuffle=True, drop_last=True, seed=config.seed)
    return RunData(tokenizer, train_tokens, val_tokens, loader, val_dataset, batch_size, description)


def windows(n_tokens: int, context: int, stride: int) -> int:
    """Windows of `context` tokens (plus the shifted target) in n_tokens, `stride` apart."""
    return 0 if n_tokens < context + 1 else (n_tokens - context - 1) // stride + 1


def check_fits(n_tokens: int, val_fraction: float, context: int, stride: int, batch_size: int) -> None:
    """Say with numbers when the text is too short for one batch of training windows or one
    validation window."""
    n_train = int((1.0 - val_fraction) * n_tokens)
    n_val = n_tokens - n_train
    train_windows = windows(n_train, context, stride)
    if train_windows < batch_size:
        needed = (batch_size - 1) * stride + context + 1
        raise DataError(
            f"the training split has {n_train:,} tokens ({1 - val_fraction:.0%} of {n_tokens:,}), which give "
            f"{train_windows:,} windows of context {context} (stride {stride}); batch size {batch_size} needs "
            f"{batch_size} windows, that is at least {needed:,} tokens. Use more text, a smaller "
            f"--batch-size or --context-length, or a smaller --stride")
    if n_val < context + 1:
        raise DataError(
            f"the validation split has {n_val:,} tokens ({val_fraction:.0%} of {n_tokens:,}); one window of "
            f"context {context} needs {context + 1:,}. Use more text, a larger --val-fraction or a "
            f"smaller --context-length")


def model_config_for(config, tokenizer) -> dict:
    """The GPTModel config of the run (vocabulary from the tokenizer)."""
    return config.model_config(tokenizer.n_vocab)
