"""From a TrainConfig to batches: text -> tokenizer -> token ids -> train/val windows -> loaders.

The text is the embedded default corpus (gpt.corpus.default_corpus_text: the Python Language
Reference shipped with CPython) or the files of `--data`. The tokenizer is "bytes", "gpt2" or
"bpe:N", a BPE trained on (the first BPE_TRAIN_CHARS characters of) that text. The token ids
are split by `val_fraction` (the last part is validation, as in the book) and cut into windows
of the context length (stride: the context length unless given).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..data.loader import DataLoader, SlidingWindowDataset, train_val_split

BPE_TRAIN_CHARS = 20_000_000  # a BPE is trained on at most this much of the text


class DataError(ValueError):
    """The data does not fit the run's settings (too few tokens for the context or batch)."""


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


def load_corpus(config) -> tuple[str | None, str]:
    """(text or None when --data files are tokenized from disk, description)."""
    if not config.data:
        from ..data.corpus import default_corpus_text

        return default_corpus_text(), "the default corpus (Python Language Reference, pydoc_data.topics)"
    from ..data.corpus import list_text_files

    files = list_text_files(config.data)
    shown = ", ".join(str(f) for f in files[:3]) + (f" and {len(files) - 3} more" if len(files) > 3 else "")
    return None, f"{len(files)} file(s): {shown}"


def build_tokenizer(name: str, text_for_bpe, path=None):
    """"bytes" / "gpt2" by name (gpt2's files from `path` or the usual search); "bpe:N" loaded
    from `path` when given, else trained on `text_for_bpe()` (called only then)."""
    from ..data.tokenizer import get_tokenizer

    key = name.strip().lower()
    if key.startswith("bpe:") and path is None:
        from ..data.bpe import train_bpe
        from ..data.tokenizer import _parse_bpe_size

        size = _parse_bpe_size(key)
        return train_bpe(text_for_bpe()[:BPE_TRAIN_CHARS], size)
    return get_tokenizer(key, path)


def build_data(config, tokenizer=None, progress=None) -> RunData:
    """Tokenize the run's text (with `tokenizer`, or a new one per config.tokenizer) and make loaders."""
    text, description = load_corpus(config)
    if tokenizer is None:
        def text_for_bpe():
            if text is not None:
                return text
            from ..data.corpus import load_text

            return load_text(config.data)

        if progress is not None and config.tokenizer.lower().startswith("bpe:") and not config.tokenizer_path:
            progress.line(f"training a {config.tokenizer} tokenizer on {description}")
        tokenizer = build_tokenizer(config.tokenizer, text_for_bpe, config.tokenizer_path)
    if text is not None:
        token_ids = tokenizer.encode_array(text)  # (N,)
    else:
        from ..data.corpus import tokenize_files

        token_ids = tokenize_files(config.data, tokenizer)  # (N,) cached, memory-mapped
    context = config.resolved_model_dims()["context_length"]
    stride = config.stride or context
    batch_size = config.resolved_batch_size()
    check_fits(len(token_ids), config.val_fraction, context, stride, batch_size)
    train_tokens, val_tokens = train_val_split(token_ids, 1.0 - config.val_fraction)
    train_dataset = SlidingWindowDataset(train_tokens, context, stride)
    val_dataset = SlidingWindowDataset(val_tokens, context, context)
    loader = DataLoader(train_dataset, batch_size, shuffle=True, drop_last=True, seed=config.seed)
    return RunData(tokenizer, train_tokens, val_tokens, loader, val_dataset, batch_size,
                   f"{description}, tokenizer {tokenizer.name}")


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
