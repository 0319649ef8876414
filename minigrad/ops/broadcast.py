"""Broadcasting as two ops, each the other's gradient: `BroadcastTo` stretches an array to a
shape (NumPy's rules), `SumTo` sums one back to a shape (`unbroadcast` as a node).

    sum_to(g, shape)         # the Tensor form of unbroadcast(g, shape); g itself if nothing to sum

They exist for the backward rules that build a graph (create_graph=True): the gradient of a
broadcast is a sum, and the gradient of a sum is a broadcast, to any order.
"""
from __future__ import annotations

import numpy as np

from ..autograd import Function, unbroadcast


class BroadcastTo(Function):
    # out = a stretched to `shape`: every output element copies one input element, so the
    # gradient sums the copies back (unbroadcast)
    def forward(self, a, shape):
        self.in_shape = a.shape
        try:
            return np.broadcast_to(a, shape).copy()  # a writeable array of its own
        except ValueError:
            raise ValueError(f"broadcast_to: cannot broadcast {a.shape} to {tuple(shape)}") from None

    def backward(self, g):
        return unbroadcast(g, self.in_shape)

    def backward_graph(self, g):
        return sum_to(g, self.in_shape)


class SumTo(Function):
    # out = unbroadcast(a, shape): d out / d a is 1 for every element summed, so the gradient
    # is g broadcast back to a's shape
    def forward(self, a, shape):
        self.in_shape = a.shape
        return unbroadcast(a, shape)

    def backward(self, g):
        return np.broadcast_to(g, self.in_shape)  # a read-only view, no copy

    def backward_graph(self, g):
        return BroadcastTo.apply(g, shape=self.in_shape)


def sum_to(g, shape):
    """`g` (a Tensor) summed back to `shape` over its broadcast axes: unbroadcast as an op."""
    shape = tuple(shape)
    return g if g.shape == shape else SumTo.apply(g, shape=shape)
