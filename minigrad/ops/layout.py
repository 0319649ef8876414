"""Shape ops that copy or move values: clone, expand, flip, roll, and the methods built on
reshape/index_select (squeeze, unsqueeze, flatten, repeat, tile, repeat_interleave, chunk,
unbind, narrow, movedim, unfold), with PyTorch's signatures.

Composite methods need no backward of their own: `repeat` is reshape -> expand -> reshape
(its gradient sums the copies), `repeat_interleave` and `unfold` pick rows with
index_select (their gradient adds the rows back with index_add).
"""
from __future__ import annotations

import math

import numpy as np

from ..autograd import Function
from ..tensor import Tensor
from .broadcast import BroadcastTo
from .index import IndexSelect
from .promote import check_dim


class Clone(Function):
    # a copy: d/da = g
    def forward(self, a):
        return a.copy()

    def backward(self, g):
        return g

    def backward_graph(self, g):
        return g


class Flip(Function):
    # out = a reversed along `dims`: d/da = g reversed along the same dims
    def forward(self, a, dims):
        self.dims = dims
        return np.flip(a, dims).copy()

    def backward(self, g):
        return np.flip(g, self.dims)

    def backward_graph(self, g):
        return Flip.apply(g, dims=self.dims)


class Roll(Function):
    # out = a shifted cyclically by `shifts` along `dims`: d/da = g shifted back
    def forward(self, a, shifts, dims):
        self.shifts, self.dims = shifts, dims
        return np.roll(a, shifts, dims)

    def backward(self, g):
        return np.roll(g, tuple(-s for s in self.shifts), self.dims)

    def backward_graph(self, g):
        return Roll.apply(g, shifts=tuple(-s for s in self.shifts), dims=self.dims)


def _sizes(sizes) -> tuple:
    if len(sizes) == 1 and isinstance(sizes[0], (tuple, list)):
        return tuple(sizes[0])
    return tuple(sizes)


def _dims(op: str, dims, ndim: int, shape) -> tuple:
    dims = (dims,) if isinstance(dims, (int, np.integer)) else tuple(dims)
    out = tuple(check_dim(op, d, ndim, shape) for d in dims)
    if len(set(out)) != len(out):
        raise ValueError(f"{op}: repeated dim in {dims} (shape {tuple(shape)})")
    return out


class LayoutMethods:
    """Shape methods with PyTorch's signatures (installed onto Tensor by minigrad.ops)."""

    def squeeze(self, dim=None):
        """Drop size-1 axes (all of them, or those in dim among the size-1 ones; a dim whose
        size is not 1 is left alone, as PyTorch). Backward: g reshaped back."""
        if dim is None:
            drop = {i for i, n in enumerate(self.shape) if n == 1}
        else:
            drop = {d for d in _dims("squeeze", dim, self.ndim, self.shape) if self.ndim and self.shape[d] == 1}
        return self.reshape(tuple(n for i, n in enumerate(self.shape) if i not in drop))

    def unsqueeze(self, dim: int):
        """Insert a size-1 axis at dim (in [-ndim-1, ndim]). Backward: g reshaped back."""
        dim = check_dim("unsqueeze", dim, self.ndim + 1, self.shape)
        return self.reshape(self.shape[:dim] + (1,) + self.shape[dim:])

    def flatten(self, start_dim: int = 0, end_dim: int = -1):
        """Merge axes start_dim..end_dim (inclusive) into one; a 0-d tensor becomes 1-d."""
        if self.ndim == 0:
            return self.reshape(1)
        start = check_dim("flatten", start_dim, self.ndim, self.shape)
        end = check_dim("flatten", end_dim, self.ndim, self.shape)
        if start > end:
            raise ValueError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim} (shape {self.shape})")
        merged = math.prod(self.shape[start:end + 1])
        return self.reshape(self.shape[:start] + (merged,) + self.shape[end + 1:])

    def unflatten(self, dim: int, sizes):
        """Split axis dim into `sizes` (one may be -1). Backward: g reshaped back."""
        dim = check_dim("unflatten", dim, self.ndim, self.shape)
        return self.reshape(self.shape[:dim] + tuple(sizes) + self.shape[dim + 1:])

    def expand(self, *sizes):
        """self broadcast to `sizes` (-1 keeps a dim; new dims go in front). Backward: g
        summed over the copies."""
        sizes = _sizes(sizes)
        if len(sizes) < self.ndim:
            raise ValueError(f"expand: {len(sizes)} sizes {sizes} for a tensor of {self.ndim} dims (shape {self.shape})")
        offset = len(sizes) - self.ndim
        shape = tuple(self.shape[i - offset] if n == -1 and i >= offset else n for i, n in enumerate(sizes))
        if any(n < 0 for n in shape):
            raise ValueError(f"expand: -1 is only allowed for existing dims, got {sizes} for shape {self.shape}")
        if any(n != m and n != 1 for n, m in zip(self.shape, shape[offset:])):
            raise ValueError(f"expand: cannot expand shape {self.shape} to {shape} (only size-1 dims "
                             f"stretch; new dims go in front)")
        return self if shape == self.shape else BroadcastTo.apply(self, shape=shape)

    def expand_as(self, other):
        """`expand(other.shape)`."""
        return self.expand(other.shape)

    broadcast_to = expand

    def repeat(self, *repeats):
        """Tile: out has self's shape (padded with leading 1s) times `repeats` per axis
        (len(repeats) >= ndim). Backward: g summed over the copies."""
        repeats = _sizes(repeats)
        if len(repeats) < self.ndim:
            raise ValueError(f"repeat: {len(repeats)} repeats {repeats} for a tensor of {self.ndim} dims "
                             f"(shape {self.shape}); give at least one per dim")
        shape = (1,) * (len(repeats) - self.ndim) + self.shape
        spread = self.reshape(tuple(v for n in shape for v in (1, n)))  # (1, s0, 1, s1, ...)
        tiled = spread.expand(tuple(v for r, n in zip(repeats, shape) for v in (r, n)))  # (r0, s0, ...)
        return tiled.reshape(tuple(r * n for r, n in zip(repeats, shape)))

    def tile(self, *dims):
        """`repeat`, with missing leading repeats taken as 1 (np.tile)."""
        dims = _sizes(dims)
        return self.repeat((1,) * (self.ndim - len(dims)) + dims)

    def repeat_interleave(self, repeats, dim=None):
        """Each element (or slice along dim) repeated `repeats` times in place: [a, b] ->
        [a, a, b, b]. repeats: an int or one count per slice; dim None flattens first.
        Backward: the gradients of the copies added up (index_add)."""
        source = self.reshape(-1) if dim is None else self
        dim = 0 if dim is None else check_dim("repeat_interleave", dim, self.ndim, self.shape)
        counts = repeats.data if isinstance(repeats, Tensor) else np.asarray(repeats)
        length = source.shape[dim] if source.ndim else 1
        if counts.ndim and counts.shape != (length,) or np.any(counts < 0):
            raise ValueError(f"repeat_interleave: repeats must be a non-negative int or {length} counts "
                             f"along dim {dim}, got {counts.tolist()} (shape {self.shape})")
        index = np.repeat(np.arange(length), counts)
        return IndexSelect.apply(source, Tensor._wrap(index, False), dim=dim)

    def flip(self, *dims):
        """Reverse the order along dims. Backward: g reversed along dims."""
        return Flip.apply(self, dims=_dims("flip", _sizes(dims), self.ndim, self.shape))

    def fliplr(self):
        return self.flip(1)

    def flipud(self):
        return self.flip(0)

    def roll(self, shifts, dims=None):
        """Shift cyclically: out[(i + shift) % n] = self[i] along each dim (dims None: the
        flattened tensor, reshaped back). Backward: g shifted back."""
        shifts = (shifts,) if isinstance(shifts, (int, np.integer)) else tuple(shifts)
        if dims is None:
            return Roll.apply(self.reshape(-1), shifts=shifts, dims=(0,)).reshape(self.shape)
        dims = _dims("roll", dims, self.ndim, self.shape)
        if len(dims) != len(shifts):
            raise ValueError(f"roll: {len(shifts)} shifts for {len(dims)} dims")
        return Roll.apply(self, shifts=shifts, dims=dims)

    def chunk(self, chunks: int, dim: int = 0):
        """Up to `chunks` pieces of ceil(n / chunks) along dim (the last may be smaller, and
        fewer pieces come out when n is small, as PyTorch; an empty dim gives `chunks` empty
        pieces)."""
        if chunks <= 0:
            raise ValueError(f"chunk: chunks must be positive, got {chunks}")
        dim = check_dim("chunk", dim, self.ndim, self.shape)
        if self.shape[dim] == 0:  # PyTorch: `chunks` empty pieces
            return self.split([0] * chunks, dim)
        return self.split(max(1, -(-self.shape[dim] // chunks)), dim)

    def tensor_split(self, sections, dim: int = 0):
        """np.array_split: `sections` near-equal pieces (an int) or cut at given indices."""
        dim = check_dim("tensor_split", dim, self.ndim, self.shape)
        length = self.shape[dim]
        if isinstance(sections, (int, np.integer)):
            sizes = [length // sections + (1 if i < length % sections else 0) for i in range(sections)]
        else:
            cuts = [0] + [min(max(int(c), 0), length) for c in sections] + [length]
            sizes = [max(b - a, 0) for a, b in zip(cuts, cuts[1:])]
        return self.split(sizes, dim)

    def unbind(self, dim: int = 0):
        """The slices along dim, each without that axis."""
        dim = check_dim("unbind", dim, self.ndim, self.shape)
        return tuple(self[(slice(None),) * dim + (i,)] for i in range(self.shape[dim]))

    def select(self, dim: int, index: int):
        """self[..., index, ...] at dim (the axis removed)."""
        dim = check_dim("select", dim, self.ndim, self.shape)
        if not -self.shape[dim] <= index < self.shape[dim]:
            raise IndexError(f"select: index {index} is out of range for dim {dim} of size {self.shape[dim]}")
        return self[(slice(None),) * dim + (index,)]

    def narrow(self, dim: int, start: int, length: int):
        """self[..., start:start + length, ...] at dim (start may be negative)."""
        dim = check_dim("narrow", dim, self.ndim, self.shape)
        size = self.shape[dim]
        start = start + size if start < 0 else start
        if not 0 <= start <= size or length < 0 or start + length > size:
            raise IndexError(f"narrow: start {start} + length {length} exceeds dim {dim} of size {size}")
        return self[(slice(None),) * dim + (slice(start, start + length),)]

    def movedim(self, source, destination):
        """Move axes `source` to positions `destination` (others keep their order)."""
        src = _dims("movedim", source, self.ndim, self.shape)
        dst = _dims("movedim", destination, self.ndim, self.shape)
        if len(src) != len(dst):
            raise ValueError(f"movedim: {len(src)} source dims for {len(dst)} destinations")
        order = [d for d in range(self.ndim) if d not in src]
        for d, s in sorted(zip(dst, src)):
            order.insert(d, s)
        return self.permute(order)

    moveaxis = movedim

    def unfold(self, dimension: int, size: int, step: int):
        """Sliding windows along `dimension`: that axis becomes (n - size) // step + 1 window
        positions and a new last axis of length `size`. Backward: index_add of the windows."""
        dim = check_dim("unfold", dimension, self.ndim, self.shape)
        length = self.shape[dim] if self.ndim else 1
        if size > length or size < 0 or step <= 0:
            raise ValueError(f"unfold: window size {size} (step {step}) does not fit dim {dim} of "
                             f"length {length} (shape {self.shape})")
        starts = np.arange(0, length - size + 1, step)
        index = (starts[:, None] + np.arange(size)).reshape(-1)  # (windows * size,)
        source = self if self.ndim else self.reshape(1)
        picked = IndexSelect.apply(source, Tensor._wrap(index, False), dim=dim)
        shape = source.shape[:dim] + (len(starts), size) + source.shape[dim + 1:]
        return picked.reshape(shape).movedim(dim + 1, -1)  # (..., windows, ..., size)
