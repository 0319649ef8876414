"""Helpers shared by the fused kernels: input coercion, axis checks, and cache-sized blocks
run on a small thread pool.

Why blocks and threads: a kernel such as GELU or softmax is a chain of 5-10 elementwise
NumPy passes. Run over a whole (2048, 3072) array, every pass streams 25 MB through memory;
run over blocks of ~64K elements, the chain stays in the L2 cache and only the first read and
the last write touch memory. NumPy's elementwise ops use one core; they release the GIL, so
two Python threads working on disjoint row ranges use two cores (`parallel_for`, from
minigrad/runtime/threads.py: one pool for all of minigrad). GEMMs run on those threads too,
with OpenBLAS limited to one thread meanwhile (minigrad/runtime/blas.py): a Linear's products
(linear.py) and attention's many small ones. Handing work to a thread has a fixed cost, so
arrays below 2 x PARALLEL_MIN_ELEMENTS stay on the calling thread.
"""
from __future__ import annotations

import math

import numpy as np

from ...runtime.threads import parallel_for
from ...tensor import Tensor

BLOCK_ELEMENTS = 1 << 16  # elements per block: 256 KB of float32, a fraction of L2
PARALLEL_MIN_ELEMENTS = 1 << 18  # per thread; below this, waking a thread costs more than it saves
# (measured on the 2-core benchmark machine, a VM: handing a task to a sleeping worker costs
# 30-60 us before it starts, and the two threads then take turns at the GIL between NumPy
# calls; at 2048 x 128 = 256K elements, bench-tiny's activations, layer norm and dropout took
# longer on two threads than on one, and a single tanh pass 158 us against 93 us; GELU over
# 1M elements and dropout over 512K still gain from two)


def block_rows(row_elements: int, elements: int = BLOCK_ELEMENTS) -> int:
    """Rows per block of about `elements` elements (default: cache-sized) for rows of
    `row_elements` elements; at least one."""
    return max(1, elements // max(1, row_elements))


def for_row_blocks(n_rows: int, row_elements: int, body, rows: int | None = None) -> None:
    """Call `body(lo, hi)` on blocks of `rows` rows covering [0, n_rows), split over threads."""
    rows = rows or block_rows(row_elements)
    min_rows = max(rows, PARALLEL_MIN_ELEMENTS // max(1, row_elements))

    def run(lo, hi):
        for start in range(lo, hi, rows):
            body(start, min(start + rows, hi))

    parallel_for(n_rows, run, min_rows)


def parallel_multiply(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a * b for two arrays of one shape, split over threads (a fresh array)."""
    a, b = np.asarray(a, order="C"), np.asarray(b, order="C")
    out = np.empty(a.shape, dtype=np.result_type(a, b))
    fa, fb, fo = a.reshape(-1), b.reshape(-1), out.reshape(-1)
    parallel_for(fo.size, lambda lo, hi: np.multiply(fa[lo:hi], fb[lo:hi], out=fo[lo:hi]),
                 PARALLEL_MIN_ELEMENTS)
    return out


# ---------------------------------------------------------------- input coercion
def as_tensor(x) -> Tensor:
    """A Tensor as is; anything else (ndarray, list, number) wrapped in a new Tensor."""
    return x if isinstance(x, Tensor) else Tensor(x)


def as_float_tensor(x, op: str, name: str = "input") -> Tensor:
    """A floating-point Tensor; integer or boolean data is converted to float32."""
    tensor = as_tensor(x)
    if tensor.dtype.kind != "f":  # (dtype.kind: a few times cheaper than np.issubdtype)
        if tensor.dtype.kind not in "iub":
            raise TypeError(f"{op}: {name} must be numeric, got dtype {tensor.dtype}")
        tensor = Tensor(tensor.data.astype(np.float32))
    return tensor


def as_index_array(x, op: str, name: str) -> np.ndarray:
    """An integer ndarray from an integer ndarray/Tensor/list; floats and bools -> TypeError."""
    array = np.asarray(x.data if isinstance(x, Tensor) else x)
    if not np.issubdtype(array.dtype, np.integer):
        raise TypeError(f"{op}: {name} must be integers, got dtype {array.dtype}")
    return array


def check_axis(axis, ndim: int, op: str, shape: tuple) -> int:
    """`axis` as a non-negative int, or a ValueError naming the op and the shape."""
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise TypeError(f"{op}: axis must be an int, got {axis!r}")
    span = max(ndim, 1)
    if not -span <= axis < span:
        raise ValueError(f"{op}: axis {axis} is out of range for a tensor of shape {tuple(shape)}")
    return int(axis) % span


class RowLayout:
    """View an array as contiguous rows (N, C) with `axis` last, and map results back.

    For the usual axis=-1 on a contiguous array both directions are free reshapes. Empty axes
    are fine: N = 0 rows, or rows of C = 0 entries (so the row count is spelled out, not -1).
    """

    def __init__(self, shape: tuple, axis: int):
        self.shape, self.axis = tuple(shape), axis
        self.moved = len(shape) > 0 and axis != len(shape) - 1

    def to_rows(self, a: np.ndarray) -> np.ndarray:
        if a.ndim == 0:
            return a.reshape(1, 1)
        if self.moved:
            a = np.moveaxis(a, self.axis, -1)
        return np.ascontiguousarray(a).reshape(math.prod(a.shape[:-1]), a.shape[-1])  # (N, C)

    def from_rows(self, rows: np.ndarray) -> np.ndarray:
        if not self.shape:
            return rows.reshape(())
        if self.moved:
            moved_shape = self.shape[:self.axis] + self.shape[self.axis + 1:] + (self.shape[self.axis],)
            return np.moveaxis(rows.reshape(moved_shape), -1, self.axis)
        return rows.reshape(self.shape)
