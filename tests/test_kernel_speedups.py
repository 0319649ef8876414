"""The speed-ups of the training kernels change no value: dropout's bits drawn on several
threads are the bits of one sequential draw, and the generator is left as that draw leaves it."""
from __future__ import annotations

import numpy as np
import pytest

from minigrad import runtime
from minigrad.nn.functional.activation import dropout_multiplier


def sequential_multiplier(generator, n: int, p: float) -> np.ndarray:
    """The multiplier from one sequential draw of n 32-bit values (the plain formula)."""
    bits = generator.bit_generator.random_raw((n + 1) // 2).view(np.uint32)[:n]
    keep = bits >= np.uint32(np.ceil(p * 2**32))
    return keep.astype(np.float32) * np.float32(1 / (1 - p))


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("bit_generator", [np.random.PCG64, np.random.PCG64DXSM])
def test_dropout_bits_drawn_in_parallel_are_the_sequential_ones(threads, bit_generator):
    previous = runtime.get_threads()
    try:
        runtime.set_threads(threads)
        for n in (5, 65536, 262145, 300001, 1 << 20):  # below and above the parallel threshold, odd sizes
            ours, plain = (np.random.Generator(bit_generator(3)) for _ in range(2))
            ours.random(dtype=np.float32), plain.random(dtype=np.float32)  # leaves half a draw buffered
            mask = dropout_multiplier(ours, (n,), 0.1)
            assert np.array_equal(mask, sequential_multiplier(plain, n, 0.1)), n
            assert ours.bit_generator.state == plain.bit_generator.state
            assert ours.random(dtype=np.float32) == plain.random(dtype=np.float32)  # the buffered half
            assert ours.random() == plain.random()
    finally:
        runtime.set_threads(previous)


def test_dropout_rate_holds_on_the_parallel_path():
    previous = runtime.get_threads()
    try:
        runtime.set_threads(2)
        for p in (0.1, 0.5):
            mask = dropout_multiplier(np.random.default_rng(11), (1024, 1024), p)
            assert set(np.unique(mask)) == {0.0, np.float32(1 / (1 - p))}
            # 2^20 draws: the standard deviation of the rate is below 5e-4
            assert abs((mask == 0).mean() - p) < 0.003
    finally:
        runtime.set_threads(previous)
