"""Adam/AdamW's fast chunked kernel against the readable update (`adam_reference`, the formula
of adam.py's docstring): equal to float32 rounding over several steps, with parameter groups,
weight decay on and off, clipping's gradient factor, tiny and zero gradients; the bounds are
tight enough that PyTorch's semantics (decay first, bias corrections, eps outside the square
root) are pinned down: a planted change of any of them fails. Each test runs both ways of the
kernel: OpenBLAS's axpby passes and the NumPy passes."""
from __future__ import annotations

import math

import numpy as np
import pytest

from minigrad import nn, optim, runtime
from minigrad.optim import adam as adam_module
from minigrad.optim import optimizer as optimizer_module
from minigrad.optim.adam import adam_reference
from minigrad.runtime import blas

EPS32 = float(np.finfo(np.float32).eps)
SHAPES = [(64, 33), (33,), (5, 6, 7), (1,)]


def _problem(seed, steps=5):
    rng = np.random.default_rng(seed)
    start = [rng.standard_normal(s).astype(np.float32) for s in SHAPES]
    grads = []
    for _ in range(steps):
        step_grads = []
        for s in SHAPES:
            g = rng.standard_normal(s) * 10.0 ** rng.integers(-9, 2, size=s)  # 1e-9 .. 10
            g.reshape(-1)[::17] = 0.0  # gradients exactly zero (0 / (0 + eps) = 0)
            step_grads.append(g.astype(np.float32))
        grads.append(step_grads)
    return start, grads


def _run_minigrad(make, start, grads, factors, dtype):
    params = [nn.Parameter(s.astype(dtype)) for s in start]
    opt = make([{"params": params[0::2]}, {"params": params[1::2], "weight_decay": 0.0, "lr": 3e-3}])
    for step_grads, factor in zip(grads, factors):
        for p, g in zip(params, step_grads):
            p.grad = g.astype(dtype)
        opt.step(grad_factor=factor)
    return [p.data for p in params], opt


def _run_reference(opt, start, grads, factors, **changes):
    """float64 arrays through adam_reference with the optimizer's hyperparameters."""
    decoupled = type(opt).decoupled_weight_decay
    out = []
    for index, s in enumerate(start):
        group = opt.param_groups[index % 2]
        p, m, v = s.astype(np.float64), np.zeros(s.shape), np.zeros(s.shape)
        for step, (step_grads, factor) in enumerate(zip(grads, factors), start=1):
            hyper = dict(lr=group["lr"], beta1=group["betas"][0], beta2=group["betas"][1],
                         eps=group["eps"], weight_decay=group["weight_decay"], decoupled=decoupled,
                         step=step, grad_factor=factor)
            hyper.update(changes)
            p, m, v = adam_reference(p, step_grads[index].astype(np.float64), m, v, **hyper)
        out.append(p)
    return out


def _worst(got, want, lr, steps):
    """max |got - want| in units of float32 rounding: eps32 (|want| + steps lr)."""
    return max(float(np.max(np.abs(g.astype(np.float64) - w) / (EPS32 * (np.abs(w) + steps * lr))))
               for g, w in zip(got, want))


MAKERS = {
    "AdamW": lambda groups: optim.AdamW(groups, lr=1e-2, betas=(0.9, 0.95), weight_decay=0.1),
    "Adam L2": lambda groups: optim.Adam(groups, lr=1e-2, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.05),
}


@pytest.fixture(params=["blas", "numpy"])
def kernel(request, monkeypatch):
    """Both ways of the update: BLAS's axpby passes (when OpenBLAS is loaded, as with NumPy's
    wheels: then they must run) and the NumPy passes (any BLAS, any float dtype)."""
    calls = []
    if request.param == "numpy":
        monkeypatch.setattr(adam_module, "axpby_function", lambda dtype: None)
    else:
        def counted(dtype):
            function = blas.axpby_function(dtype)
            return None if function is None else (lambda *a: calls.append(1) or function(*a))
        monkeypatch.setattr(adam_module, "axpby_function", counted)
    yield request.param
    assert bool(calls) == (request.param == "blas" and blas.axpby_function(np.float32) is not None)


@pytest.mark.parametrize("name", list(MAKERS))
@pytest.mark.parametrize("factors", [[1.0] * 5, [0.25, 0.5, 1.0, 0.01, 0.75]])
def test_float32_kernel_is_the_formula_to_float32_rounding(name, factors, kernel):
    start, grads = _problem(seed=len(name))
    got, opt = _run_minigrad(MAKERS[name], start, grads, factors, np.float32)
    assert all(g.dtype == np.float32 for g in got)
    want = _run_reference(opt, start, grads, factors)
    # a few roundings of p per step (decay, update) plus a few of the update lr m / denom
    assert _worst(got, want, 1e-2, len(grads)) < 8.0
    # the bound is tight: each change of PyTorch's semantics is far outside it
    eps = opt.param_groups[0]["eps"]
    for planted in (dict(eps=10 * eps), dict(step=1), dict(weight_decay=0.0), dict(beta2=0.95 + 0.001)):
        if name == "Adam L2" and "beta2" in planted:
            planted = dict(beta2=0.99 + 0.001)
        wrong = _run_reference(opt, start, grads, factors, **planted)
        assert _worst(got, wrong, 1e-2, len(grads)) > 100.0, planted


@pytest.mark.parametrize("name", list(MAKERS))
def test_float64_kernel_is_the_formula_to_float64_rounding(name, kernel):
    start, grads = _problem(seed=3)
    factors = [0.5, 1.0, 0.2, 1.0, 0.9]
    got, opt = _run_minigrad(MAKERS[name], start, grads, factors, np.float64)
    want = _run_reference(opt, start, grads, factors)
    for g, w in zip(got, want):
        assert g.dtype == np.float64
        np.testing.assert_allclose(g, w, rtol=1e-13, atol=1e-15)


def test_eps_sits_outside_the_square_root_and_the_corrections_inside_the_step():
    # one element by hand at step 2 (float64): v = b2 v1 + (1 - b2) g2^2 etc.
    lr, b1, b2, eps = 0.1, 0.9, 0.99, 1e-3
    param = nn.Parameter(np.array([1.0]))
    opt = optim.AdamW([param], lr=lr, betas=(b1, b2), eps=eps, weight_decay=0.0)
    p, m, v = 1.0, 0.0, 0.0
    for t, g in enumerate([0.5, -0.01], start=1):
        param.grad = np.array([g])
        opt.step()
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        p -= lr * (m / (1 - b1 ** t)) / (math.sqrt(v / (1 - b2 ** t)) + eps)
    assert param.data[0] == pytest.approx(p, rel=1e-14)


def test_chunk_size_and_threads_do_not_change_the_bits(monkeypatch, kernel):
    start, grads = _problem(seed=7)
    factors = [0.5, 1.0, 0.3, 1.0, 0.9]
    results = []
    try:
        for chunk, threads, min_elements in [(1 << 20, 1, 1 << 40), (96, 2, 0), (1000, 2, 0)]:
            monkeypatch.setattr(optimizer_module, "CHUNK_SIZE", chunk)
            monkeypatch.setattr(optimizer_module, "PARALLEL_MIN_ELEMENTS", min_elements)
            runtime.set_threads(threads)
            results.append(_run_minigrad(MAKERS["AdamW"], start, grads, factors, np.float32)[0])
    finally:
        runtime.set_threads(None)
    for other in results[1:]:
        for a, b in zip(results[0], other):
            np.testing.assert_array_equal(a, b)



def test_a_gradient_of_another_dtype_takes_the_numpy_passes():
    # the BLAS passes read raw memory of the parameter's dtype: a float64 .grad on a float32
    # parameter must still be read as float64 values (NumPy casts them)
    start, grads = _problem(seed=11, steps=2)
    results = []
    for grad_dtype in (np.float32, np.float64):
        params = [nn.Parameter(s.copy()) for s in start]
        opt = MAKERS["AdamW"]([{"params": params}])
        for step_grads in grads:
            for p, g in zip(params, step_grads):
                p.grad = g.astype(grad_dtype)
            opt.step()
        results.append([p.data for p in params])
    for a, b in zip(*results):
        assert a.dtype == np.float32
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)


def test_small_parameters_packed_together_give_the_same_bits_and_state(monkeypatch, kernel):
    # many small parameters (packed into one kernel call when they share a step count), one
    # large one, a transposed one (runs whole), a non-contiguous gradient, a read-only
    # gradient (never written), and one parameter without a gradient at step 2 (its step
    # count then differs: it goes into another pack)
    rng = np.random.default_rng(3)
    shapes = [(7,), (128,), (3, 5), (1,), (512,), (9000,), (40, 30), (16, 8)]
    start = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    start[6] = np.asfortranarray(start[6])
    grads = [[rng.standard_normal(s).astype(np.float32) for s in shapes] for _ in range(4)]

    def run(pack_max):
        monkeypatch.setattr(adam_module, "PACK_MAX_ELEMENTS", pack_max)
        params = [nn.Parameter(s.copy(order="K")) for s in start]
        opt = optim.AdamW([{"params": params[:5]}, {"params": params[5:], "weight_decay": 0.0}],
                          lr=1e-2, weight_decay=0.1)
        for step, step_grads in enumerate(grads):
            for index, (p, g) in enumerate(zip(params, step_grads)):
                g = g.copy()
                if index == 7:
                    g = np.asfortranarray(g.T).T  # same values, transposed layout
                g.flags.writeable = False
                p.grad = None if (step == 1 and index == 2) else g
            opt.step(grad_factor=0.7)
        for p, g in zip(params, grads[-1]):
            np.testing.assert_array_equal(p.grad, g)
        state = opt.state_dict()["state"]
        return [p.data for p in params], [(s["step"], s["exp_avg"], s["exp_avg_sq"]) for s in state.values()]

    unpacked = run(0)
    for pack_max in (adam_module.PACK_MAX_ELEMENTS, 200):
        packed = run(pack_max)
        for a, b in zip(packed[0], unpacked[0]):
            np.testing.assert_array_equal(a, b)
        for (step_a, m_a, v_a), (step_b, m_b, v_b) in zip(packed[1], unpacked[1]):
            assert step_a == step_b
            np.testing.assert_array_equal(m_a, m_b)
            np.testing.assert_array_equal(v_a, v_b)
    assert [s[0] for s in unpacked[1]] == [4, 4, 3, 4, 4, 4, 4, 4]
    assert not np.array_equal(unpacked[0][0], start[0])


def test_packing_groups_by_shared_scalars_and_size():
    a, b, c = (np.zeros(n, np.float32) for n in (3, 4, 5))
    big = np.zeros(adam_module.PACK_MAX_ELEMENTS, np.float32)
    one, two = {"x": 1}, {"x": 1}  # equal but distinct: not packed together
    items = [([a, a.copy()], one), ([big, big.copy()], one), ([b, b.copy()], two), ([c, c.copy()], one)]
    out, packs = adam_module._pack_small(items)
    assert len(packs) == 1 and [len(arrays[0]) for arrays, _ in out] == [8, big.size, 4]
    out[0][0][0][:] = 1.0
    adam_module._unpack(packs, (0,))
    assert a.tolist() == [1.0] * 3 and c.tolist() == [1.0] * 5 and b.tolist() == [0.0] * 4
    assert not items[0][0][1].any()  # only the `written` arrays are copied back
