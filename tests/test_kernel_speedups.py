"""The speed-ups of the training kernels change no value: dropout's bits drawn on several
threads are the bits of one sequential draw, and the generator is left as that draw leaves it;
cross-entropy without the max shift equals the shifted formula, also where it falls back."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

from minigrad import Tensor, runtime
from minigrad.nn import functional as F
from minigrad.nn.functional.activation import dropout_multiplier


def sequential_multiplier(generator, n: int, p: float) -> np.ndarray:
    """The multiplier from one sequential draw of n values of 16 bits (four per raw draw) for
    1/64 <= p <= 63/64, else of 32 bits (two per raw draw): the plain formula."""
    bits = 16 if 1 / 64 <= p <= 63 / 64 else 32
    kind = np.uint16 if bits == 16 else np.uint32
    values = generator.bit_generator.random_raw(-(-n * bits // 64)).view(kind)[:n]
    keep = values >= kind(np.ceil(p * 2**bits))
    return keep.astype(np.float32) * np.float32(1 / (1 - p))


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("bit_generator", [np.random.PCG64, np.random.PCG64DXSM])
@pytest.mark.parametrize("p", [0.1, 0.001])  # 16 and 32 bits per element
def test_dropout_bits_drawn_in_parallel_are_the_sequential_ones(threads, bit_generator, p):
    previous = runtime.get_threads()
    try:
        runtime.set_threads(threads)
        for n in (5, 65536, 262145, 300001, 1 << 20):  # below and above the parallel threshold, odd sizes
            ours, plain = (np.random.Generator(bit_generator(3)) for _ in range(2))
            ours.random(dtype=np.float32), plain.random(dtype=np.float32)  # leaves half a draw buffered
            mask = dropout_multiplier(ours, (n,), p)
            assert np.array_equal(mask, sequential_multiplier(plain, n, p)), n
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


def reference_cross_entropy(logits: np.ndarray, targets: np.ndarray):
    """Mean cross-entropy and its gradient in float64, shifted by the row max (the textbook way)."""
    z = logits.astype(np.float64)
    shifted = z - z.max(axis=1, keepdims=True)
    log_sum = np.log(np.exp(shifted).sum(axis=1))  # (N,)
    rows = np.arange(len(z))
    loss = (log_sum - shifted[rows, targets]).mean()
    grad = np.exp(shifted - log_sum[:, None])
    grad[rows, targets] -= 1.0
    return loss, grad / len(z)


@pytest.mark.parametrize("scale", [1.0, 20.0, 60.0, 500.0, 1e4])
def test_cross_entropy_without_the_max_shift_matches_the_shifted_formula(scale):
    # small logits take exp(z) unshifted; large ones (exp overflows, or 1/sum underflows) and
    # rows far below zero are redone with the shift; blocks mix both kinds of rows
    rng = np.random.default_rng(int(scale))
    logits = (rng.standard_normal((64, 300)) * scale).astype(np.float32)
    logits[::7] -= 80.0  # rows whose exponentials are all tiny
    targets = rng.integers(0, 300, 64)
    x = Tensor(logits, requires_grad=True)
    with warnings.catch_warnings():  # no overflow warning from the unshifted exp(z)
        warnings.simplefilter("error", RuntimeWarning)
        loss = F.cross_entropy(x, targets)
        loss.backward()
    expected_loss, expected_grad = reference_cross_entropy(logits, targets)
    assert loss.dtype == np.float32
    np.testing.assert_allclose(loss.item(), expected_loss, rtol=2e-6)
    np.testing.assert_allclose(x.grad, expected_grad, rtol=1e-4, atol=1e-9)


def test_layer_norm_on_two_threads_gives_the_same_bits_every_run():
    # each thread sums its own blocks of rows; the blocks' partial sums are added in row order
    # afterwards, so thread timing never changes the weight and bias gradients
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2048, 320)).astype(np.float32)  # above the two-thread size
    weight, bias = (rng.standard_normal(320).astype(np.float32) for _ in range(2))
    g = rng.standard_normal(x.shape).astype(np.float32)
    previous = runtime.get_threads()
    runs = []
    try:
        runtime.set_threads(2)
        for _ in range(3):
            xt, wt, bt = (Tensor(a, requires_grad=True) for a in (x, weight, bias))
            y = F.layer_norm(xt, (320,), wt, bt)
            y.backward(g)
            runs.append((y.data, xt.grad, wt.grad, bt.grad))
    finally:
        runtime.set_threads(previous)
    for run in runs[1:]:
        for first, again in zip(runs[0], run):
            np.testing.assert_array_equal(again, first)


def test_cross_entropy_of_nan_and_infinite_logits_as_before():
    logits = np.zeros((3, 4), np.float32)
    logits[0, 1] = np.nan
    logits[1] = [-np.inf, 0.0, -np.inf, -np.inf]  # all the mass on class 1
    targets = np.array([0, 1, 2])
    with np.errstate(invalid="ignore"):
        losses = F.cross_entropy(Tensor(logits), targets, reduction="none").data
    assert np.isnan(losses[0]) and losses[1] == 0.0 and np.isclose(losses[2], np.log(4.0))


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_layer_norm_and_gelu_split_over_threads_give_the_one_thread_values(threads):
    # above the parallel threshold (2048 x 300 rows, 614K elements; GELU over 2.4M): each thread
    # normalizes its own rows and sums its part of the weight and bias gradients
    rng = np.random.default_rng(threads)
    x = rng.standard_normal((4, 512, 300)).astype(np.float32)
    weight, bias = (rng.standard_normal(300).astype(np.float32) for _ in range(2))
    g = rng.standard_normal(x.shape).astype(np.float32)
    g4 = rng.standard_normal((4, 512, 1200)).astype(np.float32)
    previous = runtime.get_threads()
    results = {}
    try:
        for n in (1, threads):
            runtime.set_threads(n)
            xt, wt, bt = (Tensor(a, requires_grad=True) for a in (x, weight, bias))
            F.layer_norm(xt, (300,), wt, bt).backward(g)
            ht = Tensor(np.concatenate([x] * 4, axis=-1), requires_grad=True)  # (4, 512, 1200)
            h = F.gelu(ht, approximate="tanh")
            h.backward(g4)
            results[n] = (xt.grad, wt.grad, bt.grad, h.data, ht.grad)
    finally:
        runtime.set_threads(previous)
    mean = x.astype(np.float64).mean(axis=-1, keepdims=True)
    xhat = (x - mean) / np.sqrt(x.astype(np.float64).var(axis=-1, keepdims=True) + 1e-5)
    np.testing.assert_allclose(results[threads][1], (g * xhat).sum(axis=(0, 1)), rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(results[threads][2], g.astype(np.float64).sum(axis=(0, 1)), rtol=1e-4, atol=1e-3)
    for single, split in zip(results[1], results[threads]):  # (sums of 2048 terms of size ~1)
        np.testing.assert_allclose(split, single, rtol=1e-5, atol=2e-4)
