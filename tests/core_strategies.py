"""Hypothesis strategies shared by the minigrad core tests (tests/test_ops_*.py, ...).

Shapes are small (gradcheck costs two forward passes per input element) and values stay
away from the points where a derivative is undefined (kinks, poles, ties), so that central
finite differences are a fair reference.
"""
from __future__ import annotations

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import minigrad as mg

MAX_SIDE = 3

# (input_shapes, result_shape) pairs: prepended axes, size-1 axes, 0-d shapes
broadcast_pairs = hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, max_side=MAX_SIDE)
broadcast_triples = hnp.mutually_broadcastable_shapes(num_shapes=3, min_dims=0, max_dims=3, max_side=MAX_SIDE)
shapes = hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=MAX_SIDE)
nonscalar_shapes = hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=MAX_SIDE)
kernel_shapes = hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4)  # fused kernels' tests

# the same with empty axes (size 0) too, as PyTorch allows them: an op on an empty tensor gives
# an empty result (and an empty gradient), and broadcasting stretches a size-1 axis to size 0.
# The tensor-API tests draw these; ops with no identity (max over an empty dim) must raise.
broadcast_pairs_with_empty = hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, min_side=0, max_side=MAX_SIDE)
broadcast_triples_with_empty = hnp.mutually_broadcastable_shapes(num_shapes=3, min_dims=0, max_dims=3, min_side=0, max_side=MAX_SIDE)
shapes_with_empty = hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=MAX_SIDE)
nonscalar_shapes_with_empty = hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=MAX_SIDE)


def values(shape, low: float = -2.0, high: float = 2.0):
    """float64 arrays of `shape` with elements in [low, high]."""
    return hnp.arrays(np.float64, shape, elements=st.floats(low, high))


def away_from_zero(shape, low: float = 0.3, high: float = 2.0):
    """float64 arrays whose elements have magnitude in [low, high] (either sign): safe
    denominators, and inputs away from the kink of relu/abs."""
    magnitude = st.floats(low, high)
    return hnp.arrays(np.float64, shape, elements=st.one_of(magnitude, magnitude.map(lambda v: -v)))


def spaced(shape, odd: bool = False):
    """float64 arrays of even (or, with `odd`, odd) multiples of 0.1 in [-2, 2]: an even and
    an odd array never tie elementwise and always differ by at least 0.1 (for maximum)."""
    ints = st.integers(-10, 9).map(lambda k: 2 * k + (1 if odd else 0))
    return hnp.arrays(np.int64, shape, elements=ints).map(lambda a: a / 10.0)


def distinct(shape):
    """float64 arrays whose elements are all different, at least 0.1 apart (max without ties)."""
    return hnp.arrays(np.int64, shape, elements=st.integers(-40, 40), unique=True).map(lambda a: a / 10.0)


def leaf(array, dtype=np.float64) -> mg.Tensor:
    """A leaf requiring grad (float64 unless `dtype` says), holding a writeable copy of `array`."""
    return mg.Tensor(np.array(array, dtype=dtype), requires_grad=True)


def with_zeros(shape, low: float = 0.3, high: float = 2.0):
    """float64 arrays like `away_from_zero`, with one or more elements (any positions, at
    least one when the shape is not empty) set exactly to 0: products and cumprods at zeros."""
    size = int(np.prod(shape))

    def plant(pair):
        array, picks = pair
        array = array.copy()
        array.reshape(-1)[list(picks)] = 0.0
        return array

    picks = st.sets(st.integers(0, max(size - 1, 0)), min_size=1 if size else 0, max_size=size) if size else st.just(set())
    return st.tuples(away_from_zero(shape, low, high), picks).map(plant)
