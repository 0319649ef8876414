"""RMSprop and Adagrad against hand-computed float64 steps (PyTorch's update rules), the
lr_scheduler formulas (StepLR, LambdaLR, CosineAnnealingLR, OneCycleLR) with get_last_lr and
state_dict, and nn.init's fan and gain rules."""
from __future__ import annotations

import math

import numpy as np
import pytest

import minigrad as mg
from minigrad import nn, optim
from minigrad.optim import lr_scheduler


def parameter(values):
    return nn.Parameter(np.array(values, dtype=np.float64))


GRADS = [np.array([0.5, -1.0, 2.0]), np.array([-0.3, 0.4, 1.0]), np.array([1.5, 0.0, -0.7])]
START = [1.0, -2.0, 0.5]


def run(optimizer_factory, steps=3):
    p = parameter(START)
    opt = optimizer_factory([p])
    for g in GRADS[:steps]:
        p.grad = g.copy()
        opt.step()
    return p.data, opt


@pytest.mark.parametrize("momentum", [0.0, 0.9])
@pytest.mark.parametrize("centered", [False, True])
@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
def test_rmsprop_matches_hand_computed_steps(momentum, centered, weight_decay):
    lr, alpha, eps = 0.01, 0.9, 1e-8
    p, v, m, b = np.array(START), np.zeros(3), np.zeros(3), np.zeros(3)
    for g in GRADS:
        g = g + weight_decay * p
        v = alpha * v + (1 - alpha) * g * g
        if centered:
            m = alpha * m + (1 - alpha) * g
            avg = np.sqrt(v - m * m) + eps
        else:
            avg = np.sqrt(v) + eps
        if momentum:
            b = momentum * b + g / avg
            p = p - lr * b
        else:
            p = p - lr * g / avg
    got, opt = run(lambda ps: optim.RMSprop(ps, lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                                            momentum=momentum, centered=centered))
    np.testing.assert_allclose(got, p, rtol=1e-14, atol=1e-15)
    state = opt.state[opt.param_groups[0]["params"][0]]
    assert state["step"] == 3 and set(state) == set(opt._state_keys)


@pytest.mark.parametrize("lr_decay", [0.0, 0.5])
@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
def test_adagrad_matches_hand_computed_steps(lr_decay, weight_decay):
    lr, eps, initial = 0.1, 1e-10, 0.2
    p, s = np.array(START), np.full(3, initial)
    for t, g in enumerate(GRADS, start=1):
        g = g + weight_decay * p
        clr = lr / (1 + (t - 1) * lr_decay)
        s = s + g * g
        p = p - clr * g / (np.sqrt(s) + eps)
    got, opt = run(lambda ps: optim.Adagrad(ps, lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                                            initial_accumulator_value=initial, eps=eps))
    np.testing.assert_allclose(got, p, rtol=1e-14, atol=1e-15)


def test_new_optimizers_state_dict_round_trip_and_float32():
    for make in (lambda ps: optim.RMSprop(ps, lr=0.01, momentum=0.5, centered=True),
                 lambda ps: optim.Adagrad(ps, lr=0.1)):
        _, first = run(make, steps=2)
        fresh_param = parameter(START)
        second = make([fresh_param])
        second.load_state_dict(first.state_dict())
        assert second.state[fresh_param]["step"] == 2
    p32 = nn.Parameter(np.ones(4, np.float32))
    for opt in (optim.RMSprop([p32]), optim.Adagrad([p32])):
        p32.grad = np.full(4, 0.5, np.float32)
        opt.step()
        assert p32.data.dtype == np.float32
    with pytest.raises(ValueError, match=r"RMSprop: invalid alpha 1.5"):
        optim.RMSprop([p32], alpha=1.5)
    with pytest.raises(ValueError, match=r"Adagrad: invalid lr -1"):
        optim.Adagrad([p32], lr=-1)


# ---------------------------------------------------------------- lr_scheduler
def sgd(lr=1.0, momentum=0.0):
    return optim.SGD([parameter([1.0])], lr=lr, momentum=momentum)


def lrs(scheduler, steps):
    seen = [scheduler.get_last_lr()[0]]
    for _ in range(steps):
        scheduler.optimizer.step()
        scheduler.step()
        seen.append(scheduler.get_last_lr()[0])
    return seen


def test_step_lambda_and_cosine_formulas():
    np.testing.assert_allclose(lrs(lr_scheduler.StepLR(sgd(0.1), step_size=2, gamma=0.5), 5),
                               [0.1, 0.1, 0.05, 0.05, 0.025, 0.025])
    np.testing.assert_allclose(lrs(lr_scheduler.LambdaLR(sgd(0.2), lambda epoch: 1 / (epoch + 1)), 3),
                               [0.2, 0.1, 0.2 / 3, 0.05])
    cosine = lr_scheduler.CosineAnnealingLR(sgd(1.0), T_max=4, eta_min=0.1)
    expected = [0.1 + 0.9 * (1 + math.cos(math.pi * t / 4)) / 2 for t in range(5)]
    np.testing.assert_allclose(lrs(cosine, 4), expected)
    assert cosine.optimizer.param_groups[0]["initial_lr"] == 1.0


def test_one_cycle_lr_phases_and_momentum():
    opt = sgd(momentum=0.9)
    sched = lr_scheduler.OneCycleLR(opt, max_lr=1.0, total_steps=10)  # warm-up ends at step 2
    seen = lrs(sched, 9)
    assert seen[0] == pytest.approx(0.04) and seen[2] == pytest.approx(1.0)
    assert seen[1] == pytest.approx(0.52)  # halfway along the cosine from 0.04 to 1
    assert seen[-1] == pytest.approx(0.04 / 1e4)  # the last step reaches min_lr
    decay = [1e-4 * 0.04 + (1.0 - 4e-6) / 2 * (math.cos(math.pi * (t - 2) / 7) + 1) for t in range(2, 10)]
    np.testing.assert_allclose(seen[2:], decay, rtol=1e-12)
    assert opt.param_groups[0]["momentum"] == pytest.approx(0.95)  # back to max_momentum at the end
    adam = optim.Adam([parameter([1.0])], lr=0.1)
    lr_scheduler.OneCycleLR(adam, max_lr=0.1, total_steps=4, anneal_strategy="linear")
    assert adam.param_groups[0]["betas"][0] == 0.95
    with pytest.raises(ValueError, match="tried to step 11 times, total_steps is 10"):
        sched.step()
        sched.step()
    with pytest.raises(ValueError, match="no momentum or betas to cycle"):
        lr_scheduler.OneCycleLR(optim.Adagrad([parameter([1.0])]), max_lr=0.1, total_steps=4)


def test_scheduler_state_dict_resumes():
    first = lr_scheduler.StepLR(sgd(0.1), step_size=2)
    lrs(first, 3)
    state = first.state_dict()
    assert "optimizer" not in state and state["last_epoch"] == 3
    second = lr_scheduler.StepLR(sgd(0.1), step_size=2)
    second.load_state_dict(state)
    second.step()
    assert second.last_epoch == 4 and second.get_last_lr() == pytest.approx([0.001])
    saved = lr_scheduler.LambdaLR(sgd(), lambda e: 1.0).state_dict()
    assert saved["lr_lambdas"] == [None]


# ---------------------------------------------------------------- nn.init
def test_init_fans_and_gains():
    assert nn.init.calculate_gain("relu") == pytest.approx(math.sqrt(2))
    assert nn.init.calculate_gain("leaky_relu", 0.2) == pytest.approx(math.sqrt(2 / 1.04))
    assert nn.init.calculate_gain("selu") == 0.75 and nn.init.calculate_gain("conv2d") == 1.0
    with pytest.raises(ValueError, match="unsupported nonlinearity 'swish'"):
        nn.init.calculate_gain("swish")
    g = np.random.default_rng(0)
    w = np.empty((256, 64, 3, 3))  # fan_in = 576, fan_out = 2304
    nn.init.kaiming_normal_(w, mode="fan_out", nonlinearity="relu", generator=g)
    assert w.std() == pytest.approx(math.sqrt(2 / 2304), rel=0.02)
    nn.init.kaiming_uniform_(w, nonlinearity="relu", generator=g)
    assert np.abs(w).max() <= math.sqrt(2) * math.sqrt(3 / 576)
    nn.init.xavier_normal_(w, generator=g)
    assert w.std() == pytest.approx(math.sqrt(2 / (576 + 2304)), rel=0.02)
    t = np.empty(20000)
    nn.init.trunc_normal_(t, std=1.0, a=-0.5, b=1.0, generator=g)
    assert t.min() >= -0.5 and t.max() <= 1.0 and t.mean() == pytest.approx(0.2066, abs=0.02)  # (phi(-.5) - phi(1)) / (Phi(1) - Phi(-.5))
    for shape in ((3, 5), (5, 3), (4, 2, 3)):
        q = np.empty(shape)
        nn.init.orthogonal_(q, gain=2.0, generator=g)
        flat = q.reshape(shape[0], -1)
        small = flat @ flat.T if flat.shape[0] <= flat.shape[1] else flat.T @ flat
        np.testing.assert_allclose(small, 4 * np.eye(min(flat.shape)), atol=1e-12)
    e = np.empty((2, 3))
    nn.init.eye_(e)
    np.testing.assert_array_equal(e, np.eye(2, 3))
