"""Dropout's random bits: 16 per element where p is coarse enough, 32 elsewhere, the drop
probability p rounded up to that resolution; the attention kernels' piecewise draw
(dropout_bits.DropoutBits, row by row per head) gives dropout_multiplier's mask, and leaves
the generator where it does."""
from __future__ import annotations

import importlib

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from minigrad.nn.functional.dropout_bits import DropoutBits

dropout = importlib.import_module("minigrad.nn.functional.dropout")  # (F's function hides it)


@pytest.mark.parametrize("p, kind, threshold", [
    (0.1, np.uint16, 6554), (0.5, np.uint16, 32768), (0.25, np.uint16, 16384),
    (1 / 64, np.uint16, 1024), (63 / 64, np.uint16, 64512), (3 * 2.0**-16, np.uint16, 3),
    (0.001, np.uint32, 4294968), (1e-12, np.uint32, 1), (0.999, np.uint32, 4290672329),
    (1 - 2.0**-40, np.uint32, 2**32 - 1)])
def test_bit_layout_rounds_p_up_to_its_resolution(p, kind, threshold):
    got_kind, got = dropout.bit_layout(p)
    assert got_kind is kind and type(got) is kind and int(got) == threshold
    bits = 8 * np.dtype(kind).itemsize
    drop = int(got) / 2**bits  # the drop probability the threshold gives
    assert p <= drop < p + 2.0**-bits or int(got) == 2**bits - 1
    if kind is np.uint16:  # p and 1 - p within 2^-10 of themselves
        assert drop - p <= 2.0**-10 * min(p, 1 - p)


@pytest.mark.parametrize("p", [0.1, 0.3, 0.001])
def test_dropout_rate_and_values(p):
    mask = dropout.dropout_multiplier(np.random.default_rng(1), (1 << 20,), p)
    assert set(np.unique(mask)) == {0.0, np.float32(1 / (1 - p))}
    assert abs((mask == 0).mean() - p) < 5 * np.sqrt(p * (1 - p) / mask.size)


@settings(max_examples=25, deadline=None)
@given(shape=st.tuples(st.integers(1, 2), st.integers(1, 3), st.integers(1, 9), st.integers(1, 9)),
       p=st.sampled_from([0.1, 0.5, 0.001]), chunks=st.lists(st.integers(1, 4), min_size=1, max_size=4))
def test_attention_bits_piece_by_piece_are_the_multiplier(shape, p, chunks):
    expected = dropout.dropout_multiplier(np.random.default_rng(7), shape, p, np.float64)
    generator = np.random.default_rng(7)
    bits = DropoutBits(generator, shape, p, np.float64)
    after = np.random.default_rng(7)
    dropout.dropout_multiplier(after, shape, p)
    assert generator.bit_generator.state == after.bit_generator.state  # where the full draw leaves it
    np.testing.assert_array_equal(bits.full(), expected)
    n_seq, n_heads, n_queries, n_keys = shape
    for a in range(n_seq):
        for h in range(n_heads):
            stream, rows, done = bits.head(a, h), [], 0
            for i in range(n_queries):  # rows in chunks of the drawn sizes, then the rest
                count = min(chunks[i % len(chunks)], n_queries - done)
                if count <= 0:
                    break
                rows.append(stream.keep(count, n_keys))
                done += count
            np.testing.assert_array_equal(np.concatenate(rows), expected[a, h] > 0)
            first = (a * n_heads + h) * n_queries * n_keys
            flat = bits.flat(first, n_queries * n_keys) >= bits.threshold
            np.testing.assert_array_equal(flat.reshape(n_queries, n_keys), expected[a, h] > 0)


def test_each_thread_draws_with_a_generator_of_its_own():
    import threading
    made = {}

    def record(name):
        made[name] = dropout.thread_bit_generator(np.random.PCG64)

    threads = [threading.Thread(target=record, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert made[0] is not made[1]
    assert dropout.thread_bit_generator(np.random.PCG64) is dropout.thread_bit_generator(np.random.PCG64)
    assert type(dropout.thread_bit_generator(np.random.PCG64DXSM)) is np.random.PCG64DXSM
    # many pieces drawn at once on several threads: each the sequential draw's values
    shape = (4, 2, 30, 30)
    bits = DropoutBits(np.random.default_rng(3), shape, 0.1, np.float32)
    expected = dropout.dropout_multiplier(np.random.default_rng(3), shape, 0.1) > 0
    pieces = {}

    def draw(i):
        for _ in range(20):
            pieces[i] = bits.flat(i * 1801, 1700)

    threads = [threading.Thread(target=draw, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for i, piece in pieces.items():
        np.testing.assert_array_equal(piece >= bits.threshold, expected.reshape(-1)[i * 1801:i * 1801 + 1700])
