"""Mini-batches of example indices (what the book gets from torch's DataLoader).

    for index in batch_indices(len(dataset), batch_size=8, shuffle=True, drop_last=True, rng=rng):
        ...                                  # index: (B,) int array of example numbers
"""
from __future__ import annotations

import numpy as np


def batch_indices(num_examples: int, batch_size: int, shuffle: bool = False, drop_last: bool = False,
                  rng: np.random.Generator | None = None):
    """Yield (B,) index arrays covering 0..num_examples-1 once (shuffled with `rng` when asked).
    With `drop_last` a final batch smaller than `batch_size` is skipped, as the book's training
    loaders do."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    order = np.arange(num_examples)
    if shuffle:
        order = (rng if rng is not None else np.random.default_rng()).permutation(num_examples)
    for start in range(0, num_examples, batch_size):
        index = order[start:start + batch_size]
        if drop_last and len(index) < batch_size:
            return
        yield index


def num_batches(num_examples: int, batch_size: int, drop_last: bool = False) -> int:
    """How many batches `batch_indices` yields."""
    return num_examples // batch_size if drop_last else -(-num_examples // batch_size)
