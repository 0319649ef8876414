"""Optimizer and scheduler state dicts: round trips through minigrad.save/load, exact resume
of training, and errors for the state of another model or optimizer."""
from __future__ import annotations

import numpy as np
import pytest

import minigrad as mg
from minigrad import nn, optim


def make_model(seed):
    generator = np.random.default_rng(seed)
    model = nn.Sequential(nn.Linear(4, 16, generator=generator), nn.GELU(), nn.Dropout(0.1),
                          nn.LayerNorm(16), nn.Linear(16, 3, generator=generator))
    return model


def make_optimizer(model):
    decay = [p for p in model.parameters() if p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.ndim < 2]
    opt = optim.AdamW([{"params": decay, "weight_decay": 0.1},
                       {"params": no_decay, "weight_decay": 0.0}], lr=1e-3)
    scheduler = optim.LRScheduler(
        opt, lambda step: optim.cosine_with_warmup(step, 3, 12, peak_lr=0.01, min_lr=0.001))
    return opt, scheduler


def train(model, opt, scheduler, steps, data_rng):
    for _ in range(steps):
        x = data_rng.standard_normal((8, 4)).astype(np.float32)
        y = data_rng.standard_normal((8, 3)).astype(np.float32)
        error = model(mg.Tensor(x)) - y
        loss = (error * error).mean()
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm(model.parameters(), 1.0)
        opt.step()
        scheduler.step()


def test_resumed_training_equals_uninterrupted_training_bit_for_bit(tmp_path):
    # straight: 10 steps
    mg.manual_seed(123)
    model = make_model(0)
    opt, scheduler = make_optimizer(model)
    train(model, opt, scheduler, 10, np.random.default_rng(7))
    straight = {k: v.copy() for k, v in model.state_dict().items()}

    # 5 steps, checkpoint, then a fresh process-like rebuild and 5 more steps
    mg.manual_seed(123)
    model = make_model(0)
    opt, scheduler = make_optimizer(model)
    data_rng = np.random.default_rng(7)
    train(model, opt, scheduler, 5, data_rng)
    path = tmp_path / "checkpoint.npz"
    mg.save({"model": model.state_dict(), "optimizer": opt.state_dict(),
             "scheduler": scheduler.state_dict(), "rng": mg.random.get_state(),
             "data_rng": data_rng.bit_generator.state, "step": 5}, path)

    mg.manual_seed(999)            # everything different before loading
    model = make_model(42)
    opt, scheduler = make_optimizer(model)
    checkpoint = mg.load(path)
    model.load_state_dict(checkpoint["model"])
    opt.load_state_dict(checkpoint["optimizer"])
    scheduler.load_state_dict(checkpoint["scheduler"])
    mg.random.set_state(checkpoint["rng"])
    data_rng = np.random.default_rng()
    data_rng.bit_generator.state = checkpoint["data_rng"]
    assert checkpoint["step"] == 5 and scheduler.last_step == 5
    assert opt.param_groups[0]["lr"] == optim.cosine_with_warmup(5, 3, 12, 0.01, 0.001)
    train(model, opt, scheduler, 5, data_rng)

    resumed = model.state_dict()
    assert list(resumed) == list(straight)
    for name in straight:
        np.testing.assert_array_equal(resumed[name], straight[name], err_msg=name)


def test_optimizer_state_dict_layout_and_copy_on_load():
    model = make_model(0)
    opt, _ = make_optimizer(model)
    for p in model.parameters():
        p.grad = np.ones_like(p.data)
    opt.step()
    state = opt.state_dict()
    assert [g["params"] for g in state["param_groups"]] == [[0, 1], [2, 3, 4, 5]]
    assert state["param_groups"][0]["weight_decay"] == 0.1
    assert set(state["state"][0]) == {"step", "exp_avg", "exp_avg_sq"} and state["state"][0]["step"] == 1
    other_model = make_model(1)
    other, _ = make_optimizer(other_model)
    other.load_state_dict(state)
    first = next(other_model.parameters())
    assert other.state[first]["exp_avg"] is not state["state"][0]["exp_avg"]
    np.testing.assert_array_equal(other.state[first]["exp_avg"], state["state"][0]["exp_avg"])


def test_sgd_state_round_trip(tmp_path):
    params = [nn.Parameter(np.ones(3)), nn.Parameter(np.ones((2, 2)))]
    opt = optim.SGD(params, lr=0.1, momentum=0.9)
    for p in params:
        p.grad = np.full(p.shape, 0.5)
    opt.step()
    mg.save(opt.state_dict(), tmp_path / "sgd.npz")
    fresh_params = [nn.Parameter(np.ones(3)), nn.Parameter(np.ones((2, 2)))]
    fresh = optim.SGD(fresh_params, lr=0.5, momentum=0.9)
    fresh.load_state_dict(mg.load(tmp_path / "sgd.npz"))
    assert fresh.param_groups[0]["lr"] == 0.1
    np.testing.assert_array_equal(fresh.state[fresh_params[1]]["momentum_buffer"], np.full((2, 2), 0.5))


def test_loading_the_state_of_another_model_names_the_mismatch():
    model = make_model(0)
    opt, _ = make_optimizer(model)
    for p in model.parameters():
        p.grad = np.ones_like(p.data)
    opt.step()
    state = opt.state_dict()

    wider = nn.Sequential(nn.Linear(4, 32), nn.LayerNorm(32), nn.Linear(32, 3))
    wider_opt, _ = make_optimizer(wider)
    with pytest.raises(ValueError) as info:
        wider_opt.load_state_dict(state)
    message = str(info.value)
    assert "parameter 0 (group 0, shape (32, 4))" in message and "exp_avg has shape (16, 4)" in message
    assert "nothing was changed" in message
    assert len(wider_opt.state) == 0

    single_group = optim.AdamW(make_model(0).parameters())
    with pytest.raises(ValueError, match="1 parameter groups, the state dict has 2"):
        single_group.load_state_dict(state)

    fewer = make_model(0)
    fewer_opt = optim.AdamW([{"params": list(fewer.parameters())[:2]},
                             {"params": list(fewer.parameters())[2:4]}])
    with pytest.raises(ValueError, match="group 1: the optimizer has 2 parameters, the state dict has 4"):
        fewer_opt.load_state_dict(state)

    sgd = optim.SGD([{"params": [p for p in model.parameters() if p.ndim >= 2]},
                     {"params": [p for p in model.parameters() if p.ndim < 2]}], lr=0.1, momentum=0.9)
    with pytest.raises(ValueError, match="another optimizer type"):
        sgd.load_state_dict(state)
    with pytest.raises(ValueError, match="'state' and 'param_groups'"):
        opt.load_state_dict({"model": {}})


def test_scheduler_state_dict():
    opt = optim.SGD([nn.Parameter(np.zeros(1))], lr=1.0)
    scheduler = optim.LRScheduler(opt, lambda step: 0.1 * (step + 1))
    assert scheduler.get_last_lr() == [pytest.approx(0.1)]
    scheduler.step()
    scheduler.step()
    assert scheduler.state_dict() == {"last_step": 2}
    other = optim.LRScheduler(opt, lambda step: 0.1 * (step + 1))
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1)
    other.load_state_dict({"last_step": 2})
    assert opt.param_groups[0]["lr"] == pytest.approx(0.3)
    with pytest.raises(ValueError, match="last_step"):
        other.load_state_dict({})
    with pytest.raises(ValueError, match="lr=-1"):
        optim.LRScheduler(opt, lambda step: -1)
    with pytest.raises(TypeError, match="callable"):
        optim.LRScheduler(opt, 0.1)


def test_invalid_saved_hyperparameters_are_refused():
    params = [nn.Parameter(np.ones(2))]
    opt = optim.AdamW(params)
    state = opt.state_dict()
    state["param_groups"][0]["betas"] = (0.9, 1.5)
    with pytest.raises(ValueError, match="beta2"):
        opt.load_state_dict(state)
    assert opt.param_groups[0]["betas"] == (0.9, 0.999)
    state["param_groups"][0]["betas"] = [0.8, 0.99]  # a list is fine, stored as a tuple
    opt.load_state_dict(state)
    assert opt.param_groups[0]["betas"] == (0.8, 0.99)
