"""Input-target windows over a token array, and a resumable batch loader (the book's section 2.6).

The book's `GPTDatasetV1` cuts the token ids into windows of `max_length` with a step of
`stride`; the target of each window is the same window shifted one token right:

    inputs  = ids[i     : i + L]        i = 0, stride, 2*stride, ...
    targets = ids[i + 1 : i + L + 1]    (the next token at every position)

Here the windows are never copied up front: `SlidingWindowDataset` keeps the (T,) array (a
NumPy array or a memory map of a token cache) and gathers a batch when asked, so a corpus of
tens of millions of tokens costs no more memory than its file.

`DataLoader` yields (inputs, targets) int64 arrays of shape (B, L). Its shuffle order for an
epoch is a permutation drawn from (seed, epoch), so its whole state is four integers
(`state_dict()`): training stopped after any batch resumes with exactly the batches that
remain (`load_state_dict()`).
"""
from __future__ import annotations

import math
import operator

import numpy as np

from .corpus import tokenize_files  # noqa: F401  (token storage; re-exported here)


def _positive_int(value, what: str) -> int:
    try:
        number = operator.index(value)
    except TypeError:
        raise TypeError(f"{what} must be an int, got {type(value).__name__}") from None
    if number <= 0:
        raise ValueError(f"{what} must be positive, got {number}")
    return number


def _token_array(token_ids) -> np.ndarray:
    """A (T,) integer array of `token_ids` (arrays and memory maps kept as they are, lists converted)."""
    ids = token_ids if isinstance(token_ids, np.ndarray) else np.asarray(getattr(token_ids, "data", token_ids))
    if ids.ndim != 1:
        raise ValueError(f"token_ids must be one sequence of shape (T,), got shape {tuple(ids.shape)}")
    if ids.size and ids.dtype.kind not in "iu":
        raise TypeError(f"token_ids must be integers, got dtype {ids.dtype}")
    return ids


class SlidingWindowDataset:
    """Windows (inputs ids[i:i+L], targets ids[i+1:i+L+1]) for i = 0, stride, 2*stride, ...

    token_ids: (T,) integer array (kept, not copied). max_length: L, tokens per window.
    stride: step between window starts (stride = L: windows touch without overlap).
    """

    def __init__(self, token_ids, max_length: int, stride: int):
        self.token_ids = _token_array(token_ids)
        self.max_length = _positive_int(max_length, "max_length")
        self.stride = _positive_int(stride, "stride")
        n_tokens = len(self.token_ids)
        if n_tokens < self.max_length + 1:
            raise ValueError(
                f"the text has {n_tokens} tokens; max_length {self.max_length} needs at least "
                f"{self.max_length + 1} (inputs plus the one-token shift of the targets)"
            )
        self.num_windows = (n_tokens - self.max_length - 1) // self.stride + 1
        self._offsets = np.arange(self.max_length + 1)  # (L+1,)

    def __len__(self) -> int:
        return self.num_windows

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """(inputs, targets): two (L,) views into token_ids."""
        index = operator.index(index)
        if index < 0:
            index += self.num_windows
        if not 0 <= index < self.num_windows:
            raise IndexError(f"window {index} is out of range for a dataset of {self.num_windows} windows")
        start = index * self.stride
        return (self.token_ids[start:start + self.max_length],
                self.token_ids[start + 1:start + self.max_length + 1])

    def batch(self, indices) -> tuple[np.ndarray, np.ndarray]:
        """(inputs, targets), each (B, L) int64, for the window numbers `indices` (B,)."""
        indices = np.asarray(indices, dtype=np.int64)
        if indices.size and (indices.min() < 0 or indices.max() >= self.num_windows):
            raise IndexError(f"window indices must lie in 0..{self.num_windows - 1}")
        positions = indices[:, None] * self.stride + self._offsets  # (B, L+1)
        chunk = self.token_ids[positions].astype(np.int64)          # (B, L+1), one gather
        inputs = np.ascontiguousarray(chunk[:, :-1])                # (B, L)
        targets = np.ascontiguousarray(chunk[:, 1:])                # (B, L)
        return inputs, targets

    def __repr__(self) -> str:
        return (f"SlidingWindowDataset({len(self.token_ids)} tokens, max_length={self.max_length}, "
                f"stride={self.stride}: {self.num_windows} windows)")


class DataLoader:
    """Batches of windows: yields (inputs, targets), each (B, L) int64.

    Iterating runs the rest of the current epoch (the whole of it when fresh), then moves
    to the next epoch; `next_batch()` does the same one batch at a time, crossing epochs.
    shuffle: windows in a new random order each epoch, drawn from (seed, epoch).
    drop_last: leave out the last batch when it would be smaller than batch_size.
    """

    def __init__(self, dataset: SlidingWindowDataset, batch_size: int, shuffle: bool = False,
                 drop_last: bool = True, seed: int = 0):
        self.dataset = dataset
        self.batch_size = _positive_int(batch_size, "batch_size")
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.seed = operator.index(seed)
        n = len(dataset)
        if drop_last and n < self.batch_size:
            raise ValueError(
                f"the dataset has {n} windows, fewer than batch_size {self.batch_size}, so drop_last=True "
                f"leaves no batch; use a smaller batch_size, max_length or stride, more text, or drop_last=False"
            )
        self.epoch = 0     # the epoch being served (0-based)
        self.position = 0  # batches of the current epoch already handed out
        self._order_epoch, self._order = None, None

    def __len__(self) -> int:
        """Batches per epoch."""
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def order(self, epoch: int) -> np.ndarray:
        """The window order of `epoch`: (N,) int64, a permutation when shuffling."""
        if self._order_epoch != epoch:
            n = len(self.dataset)
            if self.shuffle:
                self._order = np.random.default_rng([self.seed, epoch]).permutation(n)
            else:
                self._order = np.arange(n)
            self._order_epoch = epoch
        return self._order

    def next_batch(self) -> tuple[np.ndarray, np.ndarray]:
        """The next batch, starting a new epoch when the current one is done."""
        if self.position >= len(self):
            self.epoch += 1
            self.position = 0
        start = self.position * self.batch_size
        indices = self.order(self.epoch)[start:start + self.batch_size]
        self.position += 1  # counted before use: a state saved after this batch resumes at the next
        return self.dataset.batch(indices)

    def __iter__(self):
        if self.position >= len(self):  # the previous epoch ended
            self.epoch += 1
            self.position = 0
        while self.position < len(self):
            yield self.next_batch()

    def state_dict(self) -> dict:
        """Where the loader is: JSON-able ints and bools (with the settings they depend on)."""
        return {"epoch": self.epoch, "position": self.position, "seed": self.seed,
                "shuffle": self.shuffle, "batch_size": self.batch_size, "drop_last": self.drop_last,
                "num_windows": len(self.dataset)}

    def load_state_dict(self, state: dict) -> None:
        """Continue from `state_dict()`: the next batch is the one that followed when it was saved."""
        for key in ("batch_size", "shuffle", "drop_last", "num_windows"):
            if key in state:
                mine = len(self.dataset) if key == "num_windows" else getattr(self, key)
                if state[key] != mine:
                    raise ValueError(
                        f"loader state was saved with {key}={state[key]!r} but this loader has {key}={mine!r} "
                        "(resume with the same data, max_length, stride and batch settings)"
                    )
        epoch, position = int(state["epoch"]), int(state["position"])
        if epoch < 0 or not 0 <= position <= len(self):
            raise ValueError(f"loader state out of range: epoch {epoch}, position {position} of {len(self)} batches")
        self.epoch, self.position = epoch, position
        self.seed = int(state.get("seed", self.seed))
        self._order_epoch = None

    def __repr__(self) -> str:
        return (f"DataLoader({len(self.dataset)} windows, batch_size={self.batch_size}, shuffle={self.shuffle}, "
                f"drop_last={self.drop_last}: {len(self)} batches per epoch; at epoch {self.epoch}, batch {self.position})")


def train_val_split(token_ids, train_ratio: float = 0.9) -> tuple[np.ndarray, np.ndarray]:
    """(train ids, validation ids): the first `train_ratio` of the tokens and the rest, as views."""
    ids = _token_array(token_ids)
    if not 0.0 < float(train_ratio) < 1.0:
        raise ValueError(f"train_ratio must lie strictly between 0 and 1, got {train_ratio}")
    split = int(train_ratio * len(ids))
    if split == 0 or split == len(ids):
        raise ValueError(f"{len(ids)} tokens are too few to split with train_ratio {train_ratio}")
    return ids[:split], ids[split:]


def create_dataloader(token_ids, batch_size: int = 4, max_length: int = 256, stride: int = 128,
                      shuffle: bool = True, drop_last: bool = True, seed: int = 0) -> DataLoader:
    """The book's `create_dataloader_v1`, on token ids: a SlidingWindowDataset in a DataLoader."""
    return DataLoader(SlidingWindowDataset(token_ids, max_length, stride), batch_size,
                      shuffle=shuffle, drop_last=drop_last, seed=seed)
