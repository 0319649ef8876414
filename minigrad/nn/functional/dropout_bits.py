"""Dropout bits drawn piece by piece: the mask dropout.dropout_multiplier would draw for a whole
array, any range of it on any thread, without drawing the rest.

A PCG64 generator (minigrad's) can jump ahead by k raw draws (`advance`), so the values of the
elements [first, first + count) of a mask are found by starting a copy of the generator at
the draw that holds element `first` (`DropoutBits.flat`), or row after row of one head of an
attention mask (`DropoutBits.head`). The attention kernels draw their masks this way, item by
item on the items' threads (attention.py, blocked_attention.py, which draws it again in
backward instead of keeping it), and so does linear_dropout_add, by rows on the threads of
its product. Afterwards the generator stands where the full draw would leave it. Another
bit generator, which cannot jump ahead, seeds a PCG64 with one draw.
"""
from __future__ import annotations

import math

import numpy as np

from .dropout import bit_layout, thread_bit_generator


class DropoutBits:
    """The dropout multipliers of an (A, H, Tq, Tk) array, keep / (1 - p), drawn piece by
    piece: element e of the flat array is the e-th 16- or 32-bit value (`dropout.bit_layout`)
    of the generator's raw 64-bit draws from `state` on (dropout.dropout_multiplier's layout)."""

    def __init__(self, generator: np.random.Generator, shape: tuple, p: float, dtype):
        source = generator.bit_generator
        if not isinstance(source, (np.random.PCG64, np.random.PCG64DXSM)):  # cannot jump ahead
            source = np.random.PCG64(int(generator.integers(0, 2**63)))
        self.kind, self.threshold = bit_layout(p)  # kept where value >= threshold
        self.per_draw = 8 // np.dtype(self.kind).itemsize  # values per raw draw
        self.source_type, self.state = type(source), source.state
        source.advance(-(-math.prod(shape) // self.per_draw))  # where drawing the whole mask leaves it
        after = source.state  # (advance() drops the buffered half of a 64-bit draw, which
        after["has_uint32"], after["uinteger"] = self.state["has_uint32"], self.state["uinteger"]
        source.state = after  # random_raw keeps)
        self.shape, self.dtype, self.scale = shape, dtype, 1.0 / (1.0 - p)

    def head(self, a: int, h: int) -> "_HeadBits":
        """The bits of sequence a, head h, from its first row on."""
        _, n_heads, n_queries, n_keys = self.shape
        return _HeadBits(self, ((a * n_heads + h) * n_queries) * n_keys)

    def flat(self, first: int, count: int) -> np.ndarray:
        """(count,) values: the bits of the elements [first, first + count) of the flat array."""
        source = thread_bit_generator(self.source_type)  # (this thread's: none made per call)
        source.state = self.state
        source.advance(first // self.per_draw)  # to the draw that holds element `first`
        skip = first % self.per_draw
        raw = source.random_raw(-(-(skip + count) // self.per_draw))
        return raw.view(self.kind)[skip:skip + count]

    def full(self) -> np.ndarray:
        """The whole (A, H, Tq, Tk) multiplier array (the reference's; the kernel never builds it)."""
        n_seq, n_heads, n_queries, n_keys = self.shape
        out = np.empty(self.shape, self.dtype)
        for a in range(n_seq):
            for h in range(n_heads):
                np.copyto(out[a, h], self.head(a, h).keep(n_queries, n_keys))  # 1.0 kept, 0.0 dropped
        out *= self.scale
        return out


class _HeadBits:
    """One head's keep/drop bits, row after row (a generator of its own, jumped to the head)."""

    def __init__(self, bits: DropoutBits, start: int):
        self.bits, self.spare = bits, None  # spare: the unused values of the last draw
        source = bits.source_type(0)
        source.state = bits.state
        source.advance(start // bits.per_draw)
        self.source = np.random.Generator(source)
        if start % bits.per_draw:  # the head starts inside a draw
            self.spare = self._raw(1).view(bits.kind)[start % bits.per_draw:]

    def _raw(self, n: int) -> np.ndarray:
        """The next n raw 64-bit draws: integers over the full range returns them unchanged
        (the same numbers as random_raw)."""
        return self.source.integers(0, 2**64 - 1, size=n, dtype=np.uint64, endpoint=True)

    def _rows(self, n_rows: int) -> np.ndarray:
        """(n_rows, Tk) values: those of the next n_rows rows."""
        n_keys, spare = self.bits.shape[-1], self.spare
        need, have = n_rows * n_keys, 0 if self.spare is None else self.spare.size
        if need <= have:  # (a few keys per row: the spare values are enough)
            self.spare = spare[need:] if need < have else None
            return spare[:need].reshape(n_rows, n_keys)
        fresh = need - have
        raw = self._raw(-(-fresh // self.bits.per_draw)).view(self.bits.kind)
        flat = raw[:fresh] if spare is None else np.concatenate([spare, raw[:fresh]])
        self.spare = raw[fresh:] if raw.size > fresh else None  # the last draw's unused values
        return flat.reshape(n_rows, n_keys)

    def keep(self, n_rows: int, keys: int) -> np.ndarray:
        """(n_rows, keys) booleans, True where kept, of the next n_rows rows (their first keys)."""
        return np.greater_equal(self._rows(n_rows)[:, :keys], self.bits.threshold)

    def keep_into(self, out: np.ndarray) -> None:
        """out (n_rows, keys) <- 1.0 where kept, 0.0 where dropped, for the next n_rows rows."""
        np.greater_equal(self._rows(out.shape[0])[:, :out.shape[1]], self.bits.threshold, out=out)
