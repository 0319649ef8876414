"""Settings that would silently wreck a run, refused in the Python API with the name of the
setting: NaN or infinite hyperparameters of the optimizers, schedules, LoRA and TrainConfig,
and seeds outside NumPy's range."""
from __future__ import annotations

import math

import numpy as np
import pytest

import minigrad as mg
from gpt import GPTModel
from gpt.finetune.lora import LoRALinear, replace_linear_with_lora
from gpt.training.config import TrainConfig
from minigrad import nn
from minigrad.optim import SGD, Adam, AdamW, LRScheduler, cosine_with_warmup

BAD = [math.nan, math.inf, -math.inf]


def params():
    return [mg.Tensor(np.ones(3, np.float32), requires_grad=True)]


@pytest.mark.parametrize("value", BAD)
@pytest.mark.parametrize("optimizer, name", [
    (AdamW, "lr"), (AdamW, "weight_decay"), (AdamW, "eps"), (Adam, "lr"), (SGD, "lr"), (SGD, "momentum"),
    (SGD, "weight_decay")])
def test_non_finite_optimizer_settings_are_refused(optimizer, name, value):
    kwargs = {"lr": 0.1, name: value}
    with pytest.raises(ValueError, match=f"{optimizer.__name__}: invalid {name} .*finite"):
        optimizer(params(), **kwargs)


@pytest.mark.parametrize("value", BAD)
def test_non_finite_betas_and_param_group_settings_are_refused(value):
    with pytest.raises(ValueError, match="beta1"):
        AdamW(params(), betas=(value, 0.999))
    with pytest.raises(ValueError, match="invalid lr"):
        AdamW([{"params": params(), "lr": value}])


@pytest.mark.parametrize("value", BAD)
def test_non_finite_schedules_are_refused(value):
    optimizer = AdamW(params())
    with pytest.raises(ValueError, match="finite"):
        LRScheduler(optimizer, lambda step: value)
    with pytest.raises(ValueError, match="finite"):
        cosine_with_warmup(0, peak_lr=value, total_steps=10, warmup_steps=2)


@pytest.mark.parametrize("value", BAD)
def test_non_finite_lora_alpha_is_refused(value):
    with pytest.raises(ValueError, match="alpha must be a finite number"):
        LoRALinear(nn.Linear(4, 4), rank=2, alpha=value)
    model = GPTModel({"vocab_size": 17, "context_length": 8, "emb_dim": 8, "n_heads": 2, "n_layers": 1,
                      "drop_rate": 0.0, "qkv_bias": False})
    with pytest.raises(ValueError, match="alpha"):
        replace_linear_with_lora(model, 2, value)


@pytest.mark.parametrize("field", ["lr", "weight_decay", "grad_clip", "beta1", "beta2", "sample_temperature",
                                   "min_lr", "dropout"])
@pytest.mark.parametrize("value", BAD)
def test_non_finite_training_settings_are_refused(field, value):
    with pytest.raises(ValueError, match=field):
        TrainConfig(**{field: value}).validate()


@pytest.mark.parametrize("seed", [-1, 2 ** 32, True])
def test_seeds_outside_numpys_range_are_refused(seed):
    with pytest.raises(ValueError, match="seed must be an integer between 0 and 2\\*\\*32 - 1"):
        TrainConfig(seed=seed).validate()
