"""F.linear_dropout_add, dropout(x W^T + b) + residual as one node: the numbers of F.linear then
F.dropout_add bit for bit (forward, every gradient and the generator's state after, on one
thread and on two, float or boolean mask kept, a generator that cannot jump ahead), its
reference, gradcheck and gradgradcheck in float64 on hypothesis shapes, the fallbacks and
clear errors. (gpt's TransformerBlock uses it: tests/test_dropout_add.py.)"""
from __future__ import annotations

import importlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minigrad as mg
from minigrad import Tensor, runtime
from minigrad.nn import functional as F

dropout_module = importlib.import_module("minigrad.nn.functional.dropout")
fused_module = importlib.import_module("minigrad.nn.functional.linear_dropout_add")


def arrays(shape, n_in, n_out, dtype, seed=1):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape + (n_in,)).astype(dtype)
    w = rng.standard_normal((n_out, n_in)).astype(dtype)
    b = rng.standard_normal(n_out).astype(dtype)
    r, g = (rng.standard_normal(shape + (n_out,)).astype(dtype) for _ in range(2))
    return x, w, b, r, g


def run(fn, x, w, b, r, g, generator):
    """([y, dx, dw, db, dr, where the generator was left], y's node name and whether it kept a
    boolean mask) of fn(x, w, b, r, generator)."""
    tensors = [Tensor(a, requires_grad=True) if a is not None else None for a in (x, w, b, r)]
    y = fn(*tensors, generator)
    node = (type(y._ctx).__name__, getattr(y._ctx, "keep", None) is not None)  # (released by backward)
    y.backward(g)
    source = generator.bit_generator  # where it was left: its buffered half-draw and next draws
    after = (source.state.get("has_uint32"), source.state.get("uinteger"), source.random_raw(8).tolist())
    return [y.data] + [t.grad for t in tensors if t is not None] + [after], node


def unfused(x, w, b, r, generator, p=0.3):
    return F.dropout_add(F.linear(x, w, b), r, p, generator=generator)


def fused(x, w, b, r, generator, p=0.3):
    return F.linear_dropout_add(x, w, b, r, p, generator=generator)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("lean", [False, True])
@pytest.mark.parametrize("shape,n_in,n_out", [((2, 9), 12, 7), ((16, 128), 128, 128), ((2048,), 64, 192),
                                              ((3, 700), 30, 300), ((1, 0), 5, 4), ((), 6, 3)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("with_bias", [True, False])
def test_is_linear_then_dropout_add_bit_for_bit(monkeypatch, threads, lean, shape, n_in, n_out, dtype, with_bias):
    x, w, b, r, g = arrays(shape, n_in, n_out, dtype)
    b = b if with_bias else None
    if lean:  # the mask kept as booleans, by both
        monkeypatch.setattr(dropout_module, "BOOL_MASK_ABOVE_BYTES", 0)
        monkeypatch.setattr(fused_module, "BOOL_MASK_ABOVE_BYTES", 0)
    previous = runtime.get_threads()
    try:
        runtime.set_threads(threads)
        plain, _ = run(unfused, x, w, b, r, g, np.random.default_rng(5))
        one, node = run(fused, x, w, b, r, g, np.random.default_rng(5))
    finally:
        runtime.set_threads(previous)
    assert node == ("LinearDropoutAdd", r.nbytes > fused_module.BOOL_MASK_ABOVE_BYTES)  # (5 MB: lean anyway)
    for a, c in zip(plain[:-1], one[:-1]):
        assert a.dtype == c.dtype == dtype
        np.testing.assert_array_equal(a, c)
    assert plain[-1] == one[-1]  # the generator left where dropout_add leaves it


@pytest.mark.parametrize("bit_generator", [np.random.MT19937, np.random.Philox, np.random.PCG64DXSM])
def test_other_bit_generators_give_dropout_adds_mask(bit_generator):
    x, w, b, r, g = arrays((64,), 32, 48, np.float32)
    plain, _ = run(unfused, x, w, b, r, g, np.random.Generator(bit_generator(3)))
    one, _ = run(fused, x, w, b, r, g, np.random.Generator(bit_generator(3)))
    for a, c in zip(plain[:-1], one[:-1]):
        np.testing.assert_array_equal(a, c)
    assert plain[-1] == one[-1]


def test_the_reference_gives_the_same_values_and_gradients():
    x, w, b, r, g = arrays((5, 3), 6, 4, np.float64)
    multiplier = dropout_module.dropout_multiplier(np.random.default_rng(9), (15, 4), 0.4, np.float64)
    fast, _ = run(lambda *t: F.linear_dropout_add(*t[:4], 0.4, generator=t[4]), x, w, b, r, g,
                  np.random.default_rng(9))
    reference, _ = run(lambda *t: fused_module.linear_dropout_add_reference(*t[:4], multiplier.reshape(5, 3, 4)),
                       x, w, b, r, g, np.random.default_rng(9))
    for a, c in zip(fast[:-1], reference[:-1]):
        np.testing.assert_allclose(a, c, rtol=1e-13, atol=1e-13)


@settings(max_examples=25, deadline=None)
@given(lead=st.lists(st.integers(0, 3), min_size=0, max_size=2).map(tuple), n_in=st.integers(1, 4),
       n_out=st.integers(1, 4), p=st.sampled_from([0.1, 0.5]), seed=st.integers(0, 2**16),
       with_bias=st.booleans(), lean=st.booleans())
def test_gradcheck_and_gradgradcheck(lead, n_in, n_out, p, seed, with_bias, lean):
    rng = np.random.default_rng(seed)
    x = Tensor(rng.standard_normal(lead + (n_in,)), requires_grad=True)
    w = Tensor(rng.standard_normal((n_out, n_in)), requires_grad=True)
    r = Tensor(rng.standard_normal(lead + (n_out,)), requires_grad=True)
    inputs = (x, w, r) + ((Tensor(rng.standard_normal(n_out), requires_grad=True),) if with_bias else ())

    def fn(a, weight, res, *bias):  # the same mask every call (a fresh generator); squares: curvature
        return F.linear_dropout_add(a * a, weight, bias[0] if bias else None, res * res, p,
                                    generator=np.random.default_rng(seed))

    previous = fused_module.BOOL_MASK_ABOVE_BYTES
    try:
        fused_module.BOOL_MASK_ABOVE_BYTES = 0 if lean else previous
        assert mg.gradcheck(fn, *inputs)
        assert mg.gradgradcheck(fn, *inputs)
    finally:
        fused_module.BOOL_MASK_ABOVE_BYTES = previous


def test_only_some_inputs_needing_gradients():
    x, w, b, r, g = arrays((4,), 3, 2, np.float64)
    tr = Tensor(r, requires_grad=True)
    F.linear_dropout_add(x, w, b, tr, 0.5, generator=np.random.default_rng(0)).backward(g)
    np.testing.assert_array_equal(tr.grad, g)  # dL/dr = g, the Linear's inputs constants
    tw = Tensor(w, requires_grad=True)
    y = F.linear_dropout_add(x, tw, b, r, 0.5, generator=np.random.default_rng(0))
    y.backward(g)
    mask = dropout_module.dropout_multiplier(np.random.default_rng(0), (4, 2), 0.5, np.float64)
    np.testing.assert_allclose(tw.grad, (g * mask).T @ x, rtol=1e-14)


def test_fallbacks_are_the_two_ops():
    x, w, b, r, _ = arrays((3,), 4, 5, np.float64)
    for kwargs in (dict(training=False), dict(p=0.0)):
        out = F.linear_dropout_add(x, w, b, r, **{"p": 0.5, **kwargs})
        np.testing.assert_array_equal(out.data, x @ w.T + b + r)
    for other in (r[0], r.astype(np.float32)):  # a broadcast residual, another dtype
        out = F.linear_dropout_add(x, w, b, other, 0.5, generator=np.random.default_rng(4))
        plain = F.dropout_add(F.linear(x, w, b), other, 0.5, generator=np.random.default_rng(4))
        assert type(out._ctx).__name__ != "LinearDropoutAdd" and out.dtype == plain.dtype
        np.testing.assert_array_equal(out.data, plain.data)


def test_bad_input_names_the_op_and_the_shapes():
    with pytest.raises(ValueError, match=r"linear_dropout_add: p must be in \[0, 1\)"):
        F.linear_dropout_add(np.ones((2, 3)), np.ones((4, 3)), None, np.ones((2, 4)), 1.0)
    with pytest.raises(ValueError, match=r"linear_dropout_add: input \(2, 3\) does not match weight \(4, 5\)"):
        F.linear_dropout_add(np.ones((2, 3)), np.ones((4, 5)), None, np.ones((2, 4)), 0.1)
    with pytest.raises(ValueError, match=r"linear_dropout_add: bias has shape \(3,\), expected \(4,\)"):
        F.linear_dropout_add(np.ones((2, 3)), np.ones((4, 3)), np.ones(3), np.ones((2, 4)), 0.1)
