"""LoRA (the book's appendix E): LoRALinear, replace_linear_with_lora, LoRA state dicts, merging."""
from __future__ import annotations

import math

import numpy as np
import pytest

import minigrad
from minigrad import nn
from minigrad.optim import AdamW

from gpt import GPT2_CONFIGS, GPTModel
from gpt.finetune import (LoRALinear, add_classification_head,
                          load_lora_state_dict, lora_layers, lora_state_dict, merge_lora,
                          replace_linear_with_lora)

TINY = {"vocab_size": 40, "context_length": 12, "emb_dim": 16, "n_heads": 2, "n_layers": 2,
        "drop_rate": 0.0, "qkv_bias": True}


def tiny_model(seed=0):
    return GPTModel(TINY, generator=np.random.default_rng(seed))


def token_ids(seed=1, shape=(2, 7)):
    return np.random.default_rng(seed).integers(0, TINY["vocab_size"], size=shape)


def randomize_B(model, seed=3):
    rng = np.random.default_rng(seed)
    for layer in lora_layers(model).values():
        layer.B.data[...] = rng.normal(0, 0.1, size=layer.B.shape).astype(layer.B.dtype)


# ---------------------------------------------------------------------------- LoRALinear
def test_lora_linear_init_and_shapes():
    linear = nn.Linear(20, 6, generator=np.random.default_rng(0))
    layer = LoRALinear(linear, rank=4, alpha=8, generator=np.random.default_rng(1))
    assert layer.A.shape == (20, 4) and layer.B.shape == (4, 6)
    assert np.all(layer.B.data == 0)
    bound = 1 / math.sqrt(4)  # kaiming_uniform(a=sqrt(5)) with torch's fan_in = A.shape[1] = rank
    assert np.abs(layer.A.data).max() <= bound and np.abs(layer.A.data).max() > 0.8 * bound
    assert layer.A.dtype == np.float32 and layer.B.dtype == np.float32
    assert not linear.weight.requires_grad and not linear.bias.requires_grad
    assert layer.A.requires_grad and layer.B.requires_grad
    assert layer.scale == 8.0  # the book multiplies by alpha
    assert LoRALinear(nn.Linear(20, 6), rank=4, alpha=8, scale_by_rank=True).scale == 2.0


def test_lora_linear_at_B_zero_equals_the_linear_exactly():
    linear = nn.Linear(10, 5, generator=np.random.default_rng(0))
    x = minigrad.Tensor(np.random.default_rng(2).normal(size=(3, 4, 10)).astype(np.float32))
    expected = linear(x).data.copy()
    layer = LoRALinear(linear, rank=2, alpha=16)
    np.testing.assert_array_equal(layer(x).data, expected)


@pytest.mark.parametrize("scale_by_rank", [False, True])
def test_lora_linear_forward_formula(scale_by_rank):
    rng = np.random.default_rng(5)
    linear = nn.Linear(6, 3, dtype=np.float64, generator=rng)
    layer = LoRALinear(linear, rank=2, alpha=3.0, scale_by_rank=scale_by_rank, generator=rng)
    layer.B.data[...] = rng.normal(size=(2, 3))
    x = rng.normal(size=(4, 6))
    scale = 3.0 / 2 if scale_by_rank else 3.0
    expected = x @ linear.weight.data.T + linear.bias.data + scale * (x @ layer.A.data @ layer.B.data)
    np.testing.assert_allclose(layer(minigrad.Tensor(x)).data, expected, rtol=1e-12, atol=1e-12)


def test_lora_linear_gradcheck():
    rng = np.random.default_rng(6)
    layer = LoRALinear(nn.Linear(5, 3, dtype=np.float64, generator=rng), rank=2, alpha=1.5, generator=rng)
    layer.B.data[...] = rng.normal(size=(2, 3))
    x = minigrad.Tensor(rng.normal(size=(2, 5)), requires_grad=True)
    assert minigrad.gradcheck(lambda x, a, b: (layer(x) * layer(x)).sum(), x, layer.A, layer.B)


def test_lora_linear_bad_arguments():
    with pytest.raises(ValueError, match="rank"):
        LoRALinear(nn.Linear(4, 4), rank=0, alpha=1)
    with pytest.raises(ValueError, match="rank"):
        LoRALinear(nn.Linear(4, 4), rank=2.5, alpha=1)
    with pytest.raises(TypeError, match="nn.Linear"):
        LoRALinear(nn.LayerNorm(4), rank=2, alpha=1)


# ---------------------------------------------------------------------------- whole model
def test_replace_swaps_every_linear_and_keeps_outputs():
    model = tiny_model()
    ids = token_ids()
    expected = model(ids).data.copy()
    replace_linear_with_lora(model, rank=4, alpha=8)
    layers = lora_layers(model)
    # 4 attention projections + 2 feed-forward layers per block, and the output head
    assert len(layers) == 6 * TINY["n_layers"] + 1
    assert "out_head" in layers and "trf_blocks.1.att.W_query" in layers
    assert not any(type(m) is nn.Linear for name, m in model.named_modules()
                   if not name.endswith(".linear") and name != "linear")
    np.testing.assert_array_equal(model(ids).data, expected)  # B = 0: the base model exactly
    trainable = [name for name, p in model.named_parameters() if p.requires_grad]
    assert trainable and all(name.endswith((".A", ".B")) for name in trainable)
    assert len(trainable) == 2 * len(layers)
    expected_count = sum(4 * (layer.in_features + layer.out_features) for layer in layers.values())
    assert model.num_parameters(trainable_only=True) == expected_count


def test_only_A_and_B_change_in_training():
    model = tiny_model()
    replace_linear_with_lora(model, rank=2, alpha=4)
    before = {name: p.data.copy() for name, p in model.named_parameters()}
    optimizer = AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2, weight_decay=0.1)
    ids = token_ids(shape=(2, 6))
    for _ in range(3):
        optimizer.zero_grad()
        loss = minigrad.nn.functional.cross_entropy(model(ids[:, :-1]).reshape(-1, TINY["vocab_size"]),
                                                    ids[:, 1:].reshape(-1))
        loss.backward()
        optimizer.step()
    for name, p in model.named_parameters():
        if name.endswith(".A") or name.endswith(".B"):
            assert not np.array_equal(p.data, before[name]), f"{name} did not train"
        else:
            np.testing.assert_array_equal(p.data, before[name], err_msg=f"{name} changed")
            assert p.grad is None, f"frozen {name} got a gradient"


def test_merged_equals_unmerged_and_unmerge_restores():
    model = tiny_model()
    replace_linear_with_lora(model, rank=3, alpha=2)
    randomize_B(model)
    ids = token_ids()
    unmerged = model(ids).data.copy()
    weights = {name: p.data.copy() for name, p in model.named_parameters()}
    for layer in lora_layers(model).values():
        layer.merge()
    np.testing.assert_allclose(model(ids).data, unmerged, rtol=1e-4, atol=1e-5)
    for layer in lora_layers(model).values():
        layer.unmerge()
    np.testing.assert_array_equal(model(ids).data, unmerged)
    for name, p in model.named_parameters():
        np.testing.assert_array_equal(p.data, weights[name])
    merged = merge_lora(model)
    assert merged is model and not lora_layers(model)
    assert type(model.out_head) is nn.Linear and type(model.trf_blocks[0].ff.layers[0]) is nn.Linear
    assert not any(p.requires_grad for p in model.parameters())  # frozen, like the layers it replaced
    assert set(model.state_dict()) == set(tiny_model().state_dict())  # back to the plain names
    np.testing.assert_allclose(model(ids).data, unmerged, rtol=1e-4, atol=1e-5)


def test_merge_never_touches_a_tied_embedding():
    model = tiny_model().tie_weights()
    embedding = model.tok_emb.weight.data.copy()
    replace_linear_with_lora(model, rank=2, alpha=1)
    randomize_B(model)
    ids = token_ids()
    unmerged = model(ids).data.copy()
    merge_lora(model)
    np.testing.assert_array_equal(model.tok_emb.weight.data, embedding)
    np.testing.assert_allclose(model(ids).data, unmerged, rtol=1e-4, atol=1e-5)


def test_lora_state_dict_round_trip():
    model = tiny_model()
    replace_linear_with_lora(model, rank=2, alpha=4, generator=np.random.default_rng(1))
    randomize_B(model)
    state = lora_state_dict(model)
    assert len(state) == 2 * (6 * TINY["n_layers"] + 1)
    assert all(key.endswith((".A", ".B")) for key in state)
    assert state["trf_blocks.0.att.W_query.A"].shape == (16, 2)
    assert state["out_head.B"].shape == (2, TINY["vocab_size"])
    ids = token_ids()
    expected = model(ids).data.copy()

    other = tiny_model()  # same base weights, fresh LoRA matrices
    replace_linear_with_lora(other, rank=2, alpha=4, generator=np.random.default_rng(9))
    load_lora_state_dict(other, state)
    np.testing.assert_array_equal(other(ids).data, expected)

    with pytest.raises(KeyError, match="missing"):
        load_lora_state_dict(other, {k: v for k, v in state.items() if k != "out_head.A"})
    wrong_rank = tiny_model()
    replace_linear_with_lora(wrong_rank, rank=3, alpha=4)
    with pytest.raises(ValueError, match="shape"):
        load_lora_state_dict(wrong_rank, state)
    with pytest.raises(ValueError, match="no LoRA layers"):
        lora_state_dict(tiny_model())


def test_lora_classifier_learns_with_only_A_and_B():
    # a frozen random model + LoRA learns to tell two token patterns apart
    rng = np.random.default_rng(0)
    model = tiny_model()
    add_classification_head(model, 2, generator=np.random.default_rng(1))
    replace_linear_with_lora(model, rank=4, alpha=1, generator=np.random.default_rng(2))
    ids = np.concatenate([rng.integers(0, 20, size=(16, 8)), rng.integers(20, 40, size=(16, 8))])
    labels = np.array([0] * 16 + [1] * 16)
    optimizer = AdamW([p for p in model.parameters() if p.requires_grad], lr=0.02, weight_decay=0.0)
    for _ in range(40):
        optimizer.zero_grad()
        loss = minigrad.nn.functional.cross_entropy(model(ids)[:, -1, :], labels)
        loss.backward()
        optimizer.step()
    accuracy = (model(ids)[:, -1, :].data.argmax(-1) == labels).mean()
    assert accuracy == 1.0


class ZeroGenerator:
    """Builds a model fast when only its shapes matter: every "random" draw is zero."""

    def uniform(self, low=0.0, high=1.0, size=None):
        return np.broadcast_to(np.float64(0.0), () if size is None else size)

    normal = uniform


def test_book_appendix_e_parameter_counts():
    # GPT-2 small (qkv bias, untied head) with the 2-class head, rank 16 on every Linear layer:
    # the book prints 124,441,346 total and 2,666,528 trainable LoRA parameters.
    model = GPTModel(GPT2_CONFIGS["gpt2-small (124M)"], generator=ZeroGenerator())  # no 124M draws
    add_classification_head(model, num_classes=2)
    assert model.num_parameters() == 124_441_346
    replace_linear_with_lora(model, rank=16, alpha=16)
    assert model.num_parameters(trainable_only=True) == 2_666_528
    assert model.num_parameters() == 124_441_346 + 2_666_528
