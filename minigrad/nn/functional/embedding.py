"""Embedding lookup (a gather of table rows) with a scatter-add backward.

    out[..., :] = weight[ids[...], :]          dL/dweight[v] = sum of g[n] over n with ids[n] == v

np.add.at does the scatter-add but is slow; sorting the ids and summing each run of equal
ids with np.add.reduceat is faster (measured: 6 ms vs 14 ms for 2,048 ids with many repeats),
and when no id repeats the sums are plain row writes. Faster again (reduceat's strided inner
loops are short): the rows grouped by their rank among equal ids (the first occurrence of
each id, the second, ...): within one rank every id appears once, so each rank is one
collision-free `grad[ids_r] += g[rows_r]`, in the order reduceat adds them. Text is skewed
(Zipf-like: "the", ",") so ranks run only while MIN_RANK_ROWS rows have them; the rows of
the few ids seen more often go through reduceat. Measured (best of 9, load 3), against
reduceat alone, uniform / GPT-2 tokens of the-verdict.txt: 2048 ids of 256 x 128 0.48 /
0.48 -> 0.30 / 0.35 ms, 2048 of 50257 x 256 7.6 / 5.8 -> 4.7 / 4.3 ms, 512 of 50257 x 768
18.3 / 17.7 -> 12.0 / 7.4 ms. Every step is a fixed sequence of NumPy calls: the same sums
every run, for any thread count.
"""
from __future__ import annotations

import numpy as np

from ...autograd import Function
from ...tensor import Tensor
from . import reference as ref
from ._util import as_float_tensor, as_index_array

MIN_RANK_ROWS = 16  # rows a rank must have to be added as one; rarer ranks go to reduceat


class Embedding(Function):
    # out[n] = W[ids[n]]  =>  dL/dW[v] = sum_{n: ids[n] = v} g[n]   (0 for rows never used),
    # added in the order of n (rank by rank), the tail of frequent ids by reduceat
    reference = staticmethod(ref.embedding)  # weight[ids]

    def forward(self, weight, ids):
        if self.requires_grad:
            self.ids, self.weight_shape = ids, weight.shape
        return np.take(weight, ids, axis=0)  # (*ids.shape, C)

    def backward(self, g):
        vocab, width = self.weight_shape
        flat_ids = self.ids.reshape(-1)  # (N,)
        g2 = g.reshape(-1, width)  # (N, C)
        grad = np.zeros((vocab, width), dtype=g.dtype)  # (V, C)
        if flat_ids.size == 0:
            return grad
        n = flat_ids.size
        order = np.argsort(flat_ids, kind="stable")
        sorted_ids = flat_ids[order]  # (N,)
        run_starts = np.flatnonzero(np.r_[True, sorted_ids[1:] != sorted_ids[:-1]])
        if run_starts.size == n:  # every id distinct: no sums needed
            grad[flat_ids] = g2
            return grad
        # rank[i]: how many equal ids precede sorted position i (0 for each id's first)
        rank = np.arange(n) - np.repeat(run_starts, np.diff(np.r_[run_starts, n]))
        counts = np.bincount(rank)  # (max multiplicity,) rows of each rank, non-increasing
        ranks = max(1, int(np.count_nonzero(counts >= MIN_RANK_ROWS)))
        by_rank = np.argsort(rank, kind="stable")  # sorted positions, rank 0 first
        lo = 0
        for r in range(ranks):  # within a rank each id once: a plain (collision-free) add
            at = by_rank[lo:lo + counts[r]]
            lo += counts[r]
            if r == 0:
                grad[sorted_ids[at]] = g2[order[at]]
            else:
                grad[sorted_ids[at]] += g2[order[at]]
        if lo < n:  # the rows of rank >= ranks (ids seen more often), in sorted order
            tail = np.sort(by_rank[lo:])
            tail_ids = sorted_ids[tail]
            starts = np.flatnonzero(np.r_[True, tail_ids[1:] != tail_ids[:-1]])
            grad[tail_ids[starts]] += np.add.reduceat(g2[order[tail]], starts, axis=0)
        return grad


def embedding(ids, weight) -> Tensor:
    """Rows of `weight` (V, C) picked by integer `ids` of any shape -> (*ids.shape, C).
    Reference version: `reference.embedding` (weight[ids]).

    ids: an integer ndarray, list, or integer Tensor (never differentiated).
    """
    ids = as_index_array(ids, "embedding", "ids")
    weight = as_float_tensor(weight, "embedding", "weight")
    if weight.ndim != 2:
        raise ValueError(f"embedding: weight must be 2-D (num_embeddings, dim), got shape {weight.shape}")
    vocab = weight.shape[0]
    if ids.size:
        low, high = ids.min(), ids.max()
        if low < 0 or high >= vocab:
            bad = int(low if low < 0 else high)
            raise IndexError(
                f"embedding: id {bad} is out of range for a table of {vocab} rows "
                f"(valid ids are 0..{vocab - 1})"
            )
    return Embedding.apply(weight, ids=ids)
