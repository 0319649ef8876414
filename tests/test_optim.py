"""minigrad.optim: SGD, Adam, AdamW against closed-form updates, parameter groups, learning
small problems, state dicts, bad input, chunking/threading invariance."""
from __future__ import annotations

import math

import numpy as np
import pytest

import minigrad as mg
from minigrad import nn, optim
from minigrad import runtime
from minigrad.optim import optimizer as optimizer_module

GRADS = [np.array([[0.5, -1.0, 2.0], [0.0, 3.0, -0.25]]),
         np.array([[-0.1, 0.2, 0.3], [1.5, -2.0, 0.75]]),
         np.array([[1.0, 1.0, -1.0], [0.5, 0.0, 4.0]]),
         np.array([[2.0, -0.5, 0.1], [-3.0, 1.0, 1.0]])]
START = np.array([[1.0, -2.0, 0.5], [0.25, 3.0, -1.5]])


def run_steps(make_optimizer, grads=GRADS):
    param = nn.Parameter(START.copy())
    opt = make_optimizer([param])
    for grad in grads:
        param.grad = grad.copy()
        opt.step()
    return param.data


def test_adamw_matches_closed_form():
    lr, b1, b2, eps, wd = 0.01, 0.9, 0.999, 1e-8, 0.1
    p, m, v = START.copy(), np.zeros_like(START), np.zeros_like(START)
    for t, g in enumerate(GRADS, start=1):
        p = p - lr * wd * p                      # decoupled decay first
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        m_hat, v_hat = m / (1 - b1 ** t), v / (1 - b2 ** t)
        p = p - lr * m_hat / (np.sqrt(v_hat) + eps)
    got = run_steps(lambda ps: optim.AdamW(ps, lr=lr, betas=(b1, b2), eps=eps, weight_decay=wd))
    np.testing.assert_allclose(got, p, rtol=1e-12, atol=1e-14)


def test_adamw_first_step_by_hand():
    # step 1: m_hat = g, v_hat = g^2, so p1 = p0 (1 - lr wd) - lr * g / (|g| + eps)
    got = run_steps(lambda ps: optim.AdamW(ps, lr=0.1, weight_decay=0.5, eps=0.0),
                    grads=[np.array([[2.0, -4.0, 1.0], [1.0, 1.0, 1.0]])])
    expected = START * (1 - 0.05) - 0.1 * np.array([[1, -1, 1], [1, 1, 1]])
    np.testing.assert_allclose(got, expected, rtol=1e-14)


def test_adam_with_l2_decay_matches_closed_form():
    lr, b1, b2, eps, wd = 0.02, 0.8, 0.99, 1e-6, 0.05
    p, m, v = START.copy(), np.zeros_like(START), np.zeros_like(START)
    for t, g in enumerate(GRADS, start=1):
        g = g + wd * p                           # coupled (L2) decay
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        p = p - lr * (m / (1 - b1 ** t)) / (np.sqrt(v / (1 - b2 ** t)) + eps)
    got = run_steps(lambda ps: optim.Adam(ps, lr=lr, betas=(b1, b2), eps=eps, weight_decay=wd))
    np.testing.assert_allclose(got, p, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("momentum,dampening,nesterov,wd", [
    (0.0, 0.0, False, 0.0), (0.9, 0.0, False, 0.0), (0.9, 0.0, True, 0.01),
    (0.5, 0.3, False, 0.1),
])
def test_sgd_matches_closed_form(momentum, dampening, nesterov, wd):
    lr = 0.1
    p, buf = START.copy(), None
    for g in GRADS:
        d = g + wd * p
        if momentum:
            buf = d.copy() if buf is None else momentum * buf + (1 - dampening) * d
            d = d + momentum * buf if nesterov else buf
        p = p - lr * d
    got = run_steps(lambda ps: optim.SGD(ps, lr=lr, momentum=momentum, dampening=dampening,
                                         nesterov=nesterov, weight_decay=wd))
    np.testing.assert_allclose(got, p, rtol=1e-13, atol=1e-15)


def test_float32_stays_float32_and_updates_in_place():
    param = nn.Parameter(np.ones((3, 4), np.float32))
    data = param.data
    opt = optim.AdamW([param], lr=np.float64(0.1))  # a NumPy float64 lr must not upcast
    param.grad = np.ones((3, 4), np.float32)
    opt.step()
    assert param.data is data and param.data.dtype == np.float32
    assert opt.state[param]["exp_avg"].dtype == np.float32


def test_parameters_without_grad_are_skipped_and_keep_their_own_step():
    a, b = nn.Parameter(np.ones(2)), nn.Parameter(np.ones(2))
    opt = optim.AdamW([a, b], lr=0.1)
    a.grad = np.ones(2)
    opt.step()
    np.testing.assert_array_equal(b.data, np.ones(2))
    assert b not in opt.state and opt.state[a]["step"] == 1
    b.grad = np.ones(2)
    opt.step()
    assert opt.state[a]["step"] == 2 and opt.state[b]["step"] == 1


def test_param_groups_no_decay_for_biases_and_norms():
    model = nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4), nn.Linear(4, 2))
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]
    opt = optim.AdamW([{"params": decay, "weight_decay": 0.1},
                       {"params": no_decay, "weight_decay": 0.0}], lr=0.01)
    assert [g["weight_decay"] for g in opt.param_groups] == [0.1, 0.0]
    assert opt.param_groups[1]["betas"] == (0.9, 0.999)  # from the defaults
    # zero gradients: only the decayed group shrinks
    before = [p.data.copy() for p in model.parameters()]
    for p in model.parameters():
        p.grad = np.zeros_like(p.data)
    opt.step()
    for p, old in zip(model.parameters(), before):
        if p.ndim >= 2:
            np.testing.assert_allclose(p.data, old * (1 - 0.01 * 0.1), rtol=1e-6)
        else:
            np.testing.assert_array_equal(p.data, old)
    extra = nn.Parameter(np.zeros(3, np.float32))
    opt.add_param_group({"params": [extra], "lr": 0.5})
    assert opt.param_groups[2]["lr"] == 0.5 and opt.param_groups[2]["weight_decay"] == 0.01


def test_zero_grad():
    layer = nn.Linear(2, 2)
    opt = optim.SGD(layer.parameters(), lr=0.1)
    layer(mg.Tensor(np.ones((1, 2), np.float32))).sum().backward()
    opt.zero_grad(set_to_none=False)
    assert np.all(layer.weight.grad == 0)
    opt.zero_grad()
    assert layer.weight.grad is None and layer.bias.grad is None


def test_bad_input():
    p = nn.Parameter(np.zeros(2, np.float32))
    with pytest.raises(TypeError, match="ndarray"):
        optim.AdamW([p, np.zeros(2)])
    with pytest.raises(TypeError, match="single Parameter"):
        optim.SGD(p, lr=0.1)
    with pytest.raises(ValueError, match="empty"):
        optim.AdamW([])
    with pytest.raises(ValueError, match="more than once"):
        optim.AdamW([p, p])
    with pytest.raises(ValueError, match="more than once"):
        optim.AdamW([{"params": [p]}, {"params": [p]}])
    with pytest.raises(ValueError, match="lr"):
        optim.AdamW([p], lr=-1.0)
    with pytest.raises(ValueError, match="lr"):
        optim.SGD([p], lr=-0.1)
    with pytest.raises(ValueError, match="eps"):
        optim.Adam([p], eps=-1e-8)
    with pytest.raises(ValueError, match="beta2"):
        optim.AdamW([p], betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="beta1"):
        optim.AdamW([p], betas=(-0.1, 0.9))
    with pytest.raises(ValueError, match="Nesterov"):
        optim.SGD([p], lr=0.1, nesterov=True)
    with pytest.raises(TypeError, match="number"):
        optim.SGD([p], lr="0.1")
    with pytest.raises(TypeError, match="dtype int64"):
        optim.SGD([mg.Tensor(np.arange(3))], lr=0.1)
    with pytest.raises(ValueError, match="not a leaf"):
        optim.SGD([p * 2], lr=0.1)
    with pytest.raises(TypeError, match="set"):
        optim.SGD([{"params": {p}}], lr=0.1)


def _xor_data():
    x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], np.float32)
    y = np.array([[0], [1], [1], [0]], np.float32)
    return x, y


def test_mlp_learns_xor():
    mg.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 16), nn.Tanh(), nn.Linear(16, 1))
    opt = optim.AdamW(model.parameters(), lr=0.05, weight_decay=0.0)
    x, y = _xor_data()
    for _ in range(300):
        error = model(mg.Tensor(x)) - y
        loss = (error * error).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 1e-4
    predictions = model(mg.Tensor(x)).data
    np.testing.assert_array_equal(predictions > 0.5, y > 0.5)


def test_mlp_fits_a_noisy_regression_with_sgd_momentum():
    rng = np.random.default_rng(0)
    x = rng.uniform(-2, 2, (128, 1)).astype(np.float32)
    noise = rng.normal(0, 0.01, (128, 1)).astype(np.float32)
    y = np.sin(x) + noise
    model = nn.Sequential(nn.Linear(1, 32, generator=rng), nn.Tanh(), nn.Linear(32, 1, generator=rng))
    opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    for _ in range(800):
        error = model(mg.Tensor(x)) - y
        loss = (error * error).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 1e-3  # near the noise floor (1e-4)


def test_closure():
    p = nn.Parameter(np.array([2.0]))
    opt = optim.SGD([p], lr=0.25)

    def closure():
        opt.zero_grad()
        loss = (p * p).sum()
        loss.backward()
        return loss

    loss = opt.step(closure)
    assert loss.item() == 4.0 and p.data[0] == pytest.approx(1.0)


@pytest.mark.parametrize("make", [
    lambda ps: optim.AdamW(ps, lr=0.01, weight_decay=0.1),
    lambda ps: optim.SGD(ps, lr=0.01, momentum=0.9, nesterov=True, weight_decay=0.01),
])
def test_results_do_not_depend_on_chunk_size_or_threads(monkeypatch, make):
    rng = np.random.default_rng(0)
    shapes = [(300, 70), (70,), (1000,), (5, 6, 7)]
    start = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    grads = [[rng.standard_normal(s).astype(np.float32) for s in shapes] for _ in range(3)]
    # a transposed (non-contiguous) parameter must be updated in place too
    start.append(np.asfortranarray(rng.standard_normal((40, 30)).astype(np.float32)))
    for step_grads in grads:
        step_grads.append(rng.standard_normal((40, 30)).astype(np.float32))

    def run(chunk, threads, min_elements):
        monkeypatch.setattr(optimizer_module, "CHUNK_SIZE", chunk)
        monkeypatch.setattr(optimizer_module, "PARALLEL_MIN_ELEMENTS", min_elements)
        runtime.set_threads(threads)
        params = [nn.Parameter(s.copy(order="K")) for s in start]
        opt = make(params)
        for step_grads in grads:
            for p, g in zip(params, step_grads):
                p.grad = g.copy()
            opt.step()
        return [p.data for p in params]

    try:
        reference = run(1 << 20, 1, 1 << 40)
        for chunk, threads in [(64, 1), (1000, 2), (4096, 2)]:
            for got, want in zip(run(chunk, threads, 0), reference):
                np.testing.assert_array_equal(got, want)
    finally:
        runtime.set_threads(None)
    assert not np.array_equal(reference[-1], start[-1])


def test_set_num_threads_rejects_bad_values():
    with pytest.raises(ValueError):
        runtime.set_threads(0)
    assert runtime.get_threads() >= 1


def test_repr():
    text = repr(optim.AdamW([nn.Parameter(np.zeros(1))], lr=0.5))
    assert text.startswith("AdamW (\nParameter Group 0\n") and "lr: 0.5" in text


def test_threaded_step_works_in_a_forked_child(monkeypatch):
    import multiprocessing

    if "fork" not in multiprocessing.get_all_start_methods():
        pytest.skip("no fork on this platform")
    monkeypatch.setattr(optimizer_module, "PARALLEL_MIN_ELEMENTS", 0)
    monkeypatch.setattr(optimizer_module, "CHUNK_SIZE", 256)
    runtime.set_threads(2)
    params = [nn.Parameter(np.ones(4096, np.float32))]
    opt = optim.SGD(params, lr=0.5)
    params[0].grad = np.ones(4096, np.float32)
    opt.step()  # the parent's pool now exists
    context = multiprocessing.get_context("fork")
    queue = context.Queue()

    def child():
        params[0].grad = np.ones(4096, np.float32)
        opt.step()
        queue.put(float(params[0].data.sum()))

    process = context.Process(target=child)
    process.start()
    process.join(timeout=30)
    try:
        assert process.exitcode == 0, "the forked child hung or failed"
        assert queue.get(timeout=5) == 0.0
    finally:
        if process.is_alive():
            process.kill()
        runtime.set_threads(None)
