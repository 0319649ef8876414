"""optimizer.step(grad_factor=c): clipping's scaling folded into the update gives the numbers of
clip_grad_norm followed by step() -- bit for bit for SGD, RMSprop and Adagrad (the gradient is
scaled into a scratch chunk first), to float32 rounding for Adam and AdamW (whose kernel folds c
into the scalars that multiply the gradient anyway) -- over several steps and parameter groups,
any chunk size and thread count, and leaves .grad untouched."""
from __future__ import annotations

import numpy as np
import pytest

from minigrad import nn, optim, runtime
from minigrad.optim import optimizer as optimizer_module

MAKERS = {
    "AdamW": lambda groups: optim.AdamW(groups, lr=0.01, betas=(0.9, 0.95), weight_decay=0.1),
    "Adam (L2)": lambda groups: optim.Adam(groups, lr=0.01, weight_decay=0.05),
    "SGD nesterov": lambda groups: optim.SGD(groups, lr=0.01, momentum=0.9, nesterov=True, weight_decay=0.01),
    "RMSprop centered": lambda groups: optim.RMSprop(groups, lr=0.01, momentum=0.5, centered=True),
    "Adagrad": lambda groups: optim.Adagrad(groups, lr=0.1, weight_decay=0.01),
}
SHAPES = [(300, 70), (70,), (1000,), (5, 6, 7)]
FOLDED_INTO_SCALARS = {"AdamW", "Adam (L2)"}  # c g rounds once more or less: float32 rounding
EPS32 = float(np.finfo(np.float32).eps)


def _problem(seed=0, steps=4):
    rng = np.random.default_rng(seed)
    start = [rng.standard_normal(s).astype(np.float32) for s in SHAPES]
    start.append(np.asfortranarray(rng.standard_normal((40, 30)).astype(np.float32)))  # not C-contiguous
    grads = [[(3 * rng.standard_normal(p.shape)).astype(np.float32) for p in start] for _ in range(steps)]
    return start, grads


def _run(make, start, grads, folded: bool, max_norm=1.0):
    params = [nn.Parameter(s.copy(order="K")) for s in start]
    groups = [{"params": params[0::2], "weight_decay": 0.2}, {"params": params[1::2], "lr": 0.003}]
    opt = make(groups)
    norms = []
    for step_grads in grads:
        for p, g in zip(params, step_grads):
            p.grad = g.copy()
        if folded:
            norm = nn.utils.grad_norm(params)
            opt.step(grad_factor=nn.utils.clip_factor(norm, max_norm))
            for p, g in zip(params, step_grads):
                np.testing.assert_array_equal(p.grad, g)  # the gradients are not written
        else:
            norm = nn.utils.clip_grad_norm(params, max_norm)
            opt.step()
        norms.append(norm)
    return [p.data for p in params], norms


@pytest.mark.parametrize("name", list(MAKERS))
def test_folded_clipping_equals_clip_then_step(name, monkeypatch):
    start, grads = _problem()
    want, want_norms = _run(MAKERS[name], start, grads, folded=False)
    assert all(norm > 1.0 for norm in want_norms)  # clipping is active at every step
    try:
        for chunk, threads, min_elements in [(1 << 20, 1, 1 << 40), (1000, 2, 0), (64, 1, 0)]:
            monkeypatch.setattr(optimizer_module, "CHUNK_SIZE", chunk)
            monkeypatch.setattr(optimizer_module, "PARALLEL_MIN_ELEMENTS", min_elements)
            runtime.set_threads(threads)
            got, norms = _run(MAKERS[name], start, grads, folded=True)
            assert norms == want_norms
            for a, b in zip(got, want):
                assert a.dtype == np.float32
                if name in FOLDED_INTO_SCALARS:  # a few roundings of p and of 4 updates of lr 0.01
                    bound = 8 * EPS32 * (np.abs(b) + 4 * 0.01)
                    assert np.all(np.abs(a - b) <= bound)
                else:
                    np.testing.assert_array_equal(a, b)
    finally:
        runtime.set_threads(None)


def test_factor_one_is_the_plain_step_and_no_clipping_below_max_norm():
    start, grads = _problem(seed=1, steps=2)
    plain, _ = _run(MAKERS["AdamW"], start, grads, folded=False, max_norm=1e9)  # never clipped
    folded, _ = _run(MAKERS["AdamW"], start, grads, folded=True, max_norm=1e9)
    for a, b in zip(plain, folded):
        np.testing.assert_array_equal(a, b)
    assert nn.utils.clip_factor(0.5, 1.0) == 1.0
    assert nn.utils.clip_factor(4.0, 1.0) == 1.0 / (4.0 + 1e-6)  # PyTorch's clip_coef
    assert nn.utils.clip_factor(float("nan"), 1.0) == 1.0


def test_bad_grad_factor_and_max_norm_are_clear_errors():
    param = nn.Parameter(np.ones(3, np.float32))
    param.grad = np.ones(3, np.float32)
    opt = optim.AdamW([param])
    for bad in (float("nan"), float("inf"), -1.0):
        with pytest.raises(ValueError, match="AdamW: invalid grad_factor"):
            opt.step(grad_factor=bad)
    with pytest.raises(TypeError, match="AdamW: grad_factor must be a number"):
        opt.step(grad_factor="2")
    np.testing.assert_array_equal(param.data, np.ones(3, np.float32))  # nothing was updated
    with pytest.raises(ValueError, match="clip_factor: max_norm must be >= 0"):
        nn.utils.clip_factor(1.0, -1.0)
