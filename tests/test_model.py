"""GPTModel: configs, parameter counts, state dict names, causality, gradients,
dropout modes, bad inputs, and agreement with the tiny GPT-2 ground truth."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import minigrad as mg
from minigrad.nn import functional as F
from conftest import shared_path
from gpt import (GPT2_CONFIGS, GPT_CONFIG_124M, GPTModel, KVCache, count_parameters,
                 model_summary, validate_config)

TINY = {"vocab_size": 50, "context_length": 16, "emb_dim": 8, "n_heads": 2, "n_layers": 2,
        "drop_rate": 0.0, "qkv_bias": False}
TINY_GPT2 = {"vocab_size": 50257, "context_length": 32, "emb_dim": 8, "n_heads": 4, "n_layers": 2,
             "drop_rate": 0.0, "qkv_bias": True}


def book_state_dict_shapes(cfg) -> dict:
    """The keys and shapes of the book's PyTorch GPTModel state dict (without the `mask` buffers)."""
    V, L, C, n = cfg["vocab_size"], cfg["context_length"], cfg["emb_dim"], cfg["n_layers"]
    shapes = {"tok_emb.weight": (V, C), "pos_emb.weight": (L, C)}
    for i in range(n):
        block = f"trf_blocks.{i}"
        for name in ("W_query", "W_key", "W_value"):
            shapes[f"{block}.att.{name}.weight"] = (C, C)
            if cfg["qkv_bias"]:
                shapes[f"{block}.att.{name}.bias"] = (C,)
        shapes[f"{block}.att.out_proj.weight"] = (C, C)
        shapes[f"{block}.att.out_proj.bias"] = (C,)
        shapes[f"{block}.ff.layers.0.weight"] = (4 * C, C)
        shapes[f"{block}.ff.layers.0.bias"] = (4 * C,)
        shapes[f"{block}.ff.layers.2.weight"] = (C, 4 * C)
        shapes[f"{block}.ff.layers.2.bias"] = (C,)
        for norm in ("norm1", "norm2"):
            shapes[f"{block}.{norm}.scale"] = (C,)
            shapes[f"{block}.{norm}.shift"] = (C,)
    shapes["final_norm.scale"] = (C,)
    shapes["final_norm.shift"] = (C,)
    shapes["out_head.weight"] = (V, C)
    return shapes


def tiny_model(dtype=np.float32, seed=0, **overrides) -> GPTModel:
    return GPTModel({**TINY, **overrides}, dtype=dtype, generator=np.random.default_rng(seed))


def random_ids(shape, vocab_size=TINY["vocab_size"], seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, vocab_size, size=shape)


# ---------------------------------------------------------------------- configuration
def test_gpt_config_124m_is_the_books():
    assert GPT_CONFIG_124M == {"vocab_size": 50257, "context_length": 1024, "emb_dim": 768, "n_heads": 12,
                               "n_layers": 12, "drop_rate": 0.1, "qkv_bias": False}


def test_gpt2_configs_are_the_books():
    sizes = {"gpt2-small (124M)": (768, 12, 12), "gpt2-medium (355M)": (1024, 24, 16),
             "gpt2-large (774M)": (1280, 36, 20), "gpt2-xl (1558M)": (1600, 48, 25)}
    assert list(GPT2_CONFIGS) == list(sizes)
    for name, (emb_dim, n_layers, n_heads) in sizes.items():
        assert GPT2_CONFIGS[name] == {"vocab_size": 50257, "context_length": 1024, "emb_dim": emb_dim,
                                      "n_layers": n_layers, "n_heads": n_heads, "drop_rate": 0.0,
                                      "qkv_bias": True}
        assert validate_config(GPT2_CONFIGS[name]) == GPT2_CONFIGS[name]
    # Hugging Face's counts for the four released models (head tied, one copy)
    expected = [124_439_808, 354_823_168, 774_030_080, 1_557_611_200]
    assert [count_parameters(cfg, tied=True) for cfg in GPT2_CONFIGS.values()] == expected


@pytest.mark.parametrize("change, error, words", [
    ({"emb_dim": 10, "n_heads": 4}, ValueError, ["emb_dim 10", "n_heads 4"]),
    ({"n_head": 4}, ValueError, ["unknown", "n_head"]),
    ({"vocab_size": 0}, ValueError, ["vocab_size", "0"]),
    ({"context_length": 2.5}, TypeError, ["context_length"]),
    ({"drop_rate": 1.0}, ValueError, ["drop_rate"]),
    ({"qkv_bias": "yes"}, TypeError, ["qkv_bias"]),
])
def test_bad_config_is_named(change, error, words):
    with pytest.raises(error) as info:
        GPTModel({**TINY, **change})
    assert all(word in str(info.value) for word in words)


def test_missing_config_key_is_named():
    cfg = dict(TINY)
    del cfg["n_layers"]
    with pytest.raises(ValueError, match="missing.*n_layers"):
        GPTModel(cfg)
    with pytest.raises(TypeError, match="dict"):
        GPTModel([("vocab_size", 5)])


# ---------------------------------------------------------------------- parameters
def test_parameter_counts_of_gpt_config_124m():
    assert count_parameters(GPT_CONFIG_124M) == 163_009_536
    assert count_parameters(GPT_CONFIG_124M, tied=True) == 124_412_160
    model = GPTModel(GPT_CONFIG_124M, init_weights=False)  # one real instance (no random draws: fast)
    assert model.num_parameters() == 163_009_536
    shapes = {key: value.shape for key, value in model.state_dict().items()}
    assert shapes == book_state_dict_shapes(GPT_CONFIG_124M)
    assert model.out_head.weight.dtype == np.float32
    summary = model_summary(model)
    assert summary["total_params"] == 163_009_536 and summary["params_tied"] == 124_412_160
    assert f"{summary['size_mb']:.2f}" == "621.83"  # the book's figure
    model.tie_weights()
    assert model.num_parameters() == 124_412_160
    assert model_summary(model)["in_memory_params"] == 124_412_160


@pytest.mark.parametrize("qkv_bias", [False, True])
def test_state_dict_names_and_shapes_are_the_books(qkv_bias):
    cfg = {**TINY, "qkv_bias": qkv_bias}
    model = GPTModel(cfg)
    state = model.state_dict()
    expected = book_state_dict_shapes(cfg)
    assert list(state) == list(expected)  # the book's order too
    assert {key: value.shape for key, value in state.items()} == expected
    assert not any(key.endswith("mask") for key in state)
    assert model.num_parameters() == count_parameters(cfg)


def test_tied_head_shares_the_embedding():
    model = tiny_model().tie_weights()
    assert model.weights_tied
    assert model.out_head.weight is model.tok_emb.weight
    assert model.num_parameters() == count_parameters(TINY, tied=True)
    assert "out_head.weight" in model.state_dict()
    # the gradient of the shared weight collects both uses (embedding rows and head)
    ids = random_ids((2, 5))
    loss = F.cross_entropy(model(ids), random_ids((2, 5), seed=1))
    loss.backward()
    grad = model.tok_emb.weight.grad
    assert grad is not None and grad.shape == (TINY["vocab_size"], TINY["emb_dim"])
    unused = np.setdiff1d(np.arange(TINY["vocab_size"]), ids)
    assert np.abs(grad[unused]).sum() > 0  # the head's share reaches rows never embedded


def test_init_follows_pytorch_defaults_and_the_generator():
    a, b = tiny_model(seed=3), tiny_model(seed=3)
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
        assert np.array_equal(x, y), name
    assert not np.array_equal(tiny_model(seed=4).tok_emb.weight.data, a.tok_emb.weight.data)
    bound = 1 / np.sqrt(TINY["emb_dim"])
    weight = a.trf_blocks[0].att.W_query.weight.data
    assert np.abs(weight).max() <= bound and np.abs(weight).max() > 0.5 * bound
    assert np.array_equal(a.final_norm.scale.data, np.ones(TINY["emb_dim"], np.float32))
    assert np.array_equal(a.final_norm.shift.data, np.zeros(TINY["emb_dim"], np.float32))
    assert a.out_head.bias is None


def test_init_weights_false_draws_nothing_and_keeps_dropout_random():
    generator = np.random.default_rng(0)
    state = generator.bit_generator.state
    model = GPTModel({**TINY, "drop_rate": 0.5}, generator=generator, init_weights=False)
    assert generator.bit_generator.state == state  # no draws
    assert all(not np.any(model.state_dict()[key]) for key in ("tok_emb.weight", "out_head.weight"))
    assert np.array_equal(model.final_norm.scale.data, np.ones(TINY["emb_dim"], np.float32))
    dropouts = [m for m in model.modules() if isinstance(m, mg.nn.Dropout)]
    assert len(dropouts) == 1 + 2 * TINY["n_layers"] and all(d.generator is generator for d in dropouts)
    model.load_state_dict(tiny_model(seed=2).state_dict())
    with mg.no_grad():
        np.testing.assert_array_equal(model.eval()(random_ids((1, 4))).data,
                                      tiny_model(seed=2).eval()(random_ids((1, 4))).data)


# ---------------------------------------------------------------------- forward
def test_logits_shape_and_dtype():
    for dtype in (np.float32, np.float64):
        model = tiny_model(dtype=dtype)
        logits = model(random_ids((3, 7)))
        assert isinstance(logits, mg.Tensor)
        assert logits.shape == (3, 7, TINY["vocab_size"]) and logits.dtype == dtype
    assert model(mg.Tensor(random_ids((1, 4)))).shape == (1, 4, TINY["vocab_size"])  # Tensor of ints
    assert model(random_ids((2, 16)).astype(np.int32)).shape == (2, 16, TINY["vocab_size"])


@settings(max_examples=15)
@given(position=st.integers(0, 15), new_id=st.integers(0, TINY["vocab_size"] - 1))
def test_changing_a_later_token_never_changes_earlier_logits(position, new_id):
    model = tiny_model().eval()
    ids = random_ids((2, 16), seed=5)
    changed = ids.copy()
    changed[:, position] = new_id
    with mg.no_grad():
        before, after = model(ids).data, model(changed).data
    np.testing.assert_allclose(after[:, :position], before[:, :position], rtol=0, atol=1e-6)
    if new_id != ids[0, position]:
        assert not np.allclose(after[0, position], before[0, position])  # the changed position does see it


def test_rows_of_a_batch_are_independent():
    model = tiny_model().eval()
    ids = random_ids((3, 9))
    with mg.no_grad():
        batch = model(ids).data
        for row in range(3):
            np.testing.assert_allclose(model(ids[row:row + 1]).data[0], batch[row], atol=1e-5)


def test_dropout_only_in_train_mode():
    model = tiny_model(drop_rate=0.5, seed=1)
    ids = random_ids((2, 10))
    assert model.training
    with mg.no_grad():
        first, second = model(ids).data, model(ids).data
        assert not np.allclose(first, second)  # a fresh mask each call
        model.eval()
        assert not any(module.training for module in model.modules())
        third, fourth = model(ids).data, model(ids).data
    np.testing.assert_array_equal(third, fourth)
    reference = tiny_model(drop_rate=0.0, seed=1)  # same weights, no dropout at all
    with mg.no_grad():
        np.testing.assert_allclose(third, reference(ids).data, rtol=0, atol=1e-6)
    model.train()
    assert all(module.training for module in model.modules())


def test_dropout_generator_makes_training_reproducible():
    outputs = []
    for _ in range(2):
        model = tiny_model(drop_rate=0.3, seed=7)
        outputs.append(model(random_ids((2, 6))).data)
    np.testing.assert_array_equal(outputs[0], outputs[1])


def test_one_layer_float64_model_passes_gradcheck_for_every_parameter():
    cfg = {"vocab_size": 11, "context_length": 6, "emb_dim": 4, "n_heads": 2, "n_layers": 1,
           "drop_rate": 0.0, "qkv_bias": True}
    model = GPTModel(cfg, dtype=np.float64, generator=np.random.default_rng(0))
    ids, targets = random_ids((2, 5), 11, seed=1), random_ids((2, 5), 11, seed=2)
    params = list(model.parameters())
    assert len(params) == len(model.state_dict())  # untied: every named weight is checked

    def loss(*_):
        return F.cross_entropy(model(ids), targets)

    assert mg.gradcheck(loss, *params, atol=1e-6, rtol=1e-5)


def test_backward_reaches_every_parameter_in_float32():
    model = tiny_model(drop_rate=0.1)
    loss = F.cross_entropy(model(random_ids((2, 8))), random_ids((2, 8), seed=1))
    assert loss.dtype == np.float32
    loss.backward()
    for name, param in model.named_parameters():
        assert param.grad is not None and param.grad.shape == param.shape, name
        assert param.grad.dtype == np.float32, name
        assert np.all(np.isfinite(param.grad)), name


# ---------------------------------------------------------------------- bad input
def test_bad_token_ids_get_clear_errors():
    model = tiny_model()
    with pytest.raises(ValueError, match="Cannot forward sequence of length 17, context length is only 16"):
        model(random_ids((1, 17)))
    with pytest.raises(TypeError, match="integers.*float"):
        model(np.zeros((1, 3), dtype=np.float32))
    with pytest.raises(TypeError, match="integers"):
        model(np.zeros((1, 3), dtype=bool))
    with pytest.raises(IndexError, match=r"token id 50 is outside the vocabulary \[0, 50\)"):
        model(np.array([[1, 50, 2]]))
    with pytest.raises(IndexError, match="token id -1"):
        model(np.array([[1, -1, 2]]))
    with pytest.raises(ValueError, match="shape"):
        model(np.array([1, 2, 3]))
    with pytest.raises(TypeError, match="dtype"):
        GPTModel(TINY, dtype=np.int32)


# ---------------------------------------------------------------------- KV cache
def test_cached_forward_equals_full_forward():
    model = tiny_model(dtype=np.float64).eval()
    ids = random_ids((2, 16), seed=3)
    with mg.no_grad():
        full = model(ids).data
    cache = KVCache.for_model(model, batch_size=2)
    pieces = [model(ids[:, :5], cache=cache).data]  # prefill, then one token at a time, then 3
    for position in range(5, 13):
        pieces.append(model(ids[:, position:position + 1], cache=cache).data)
    pieces.append(model(ids[:, 13:], cache=cache).data)
    assert cache.length == 16
    np.testing.assert_allclose(np.concatenate(pieces, axis=1), full, rtol=0, atol=1e-10)
    np.testing.assert_allclose(model.next_token_logits(ids), full[:, -1], rtol=0, atol=1e-10)
    with pytest.raises(ValueError, match="context length is only 16"):
        model(ids[:, :1], cache=cache)  # the cache is full
    cache.reset()
    assert cache.length == 0
    with pytest.raises(ValueError, match="batch of 1 rows, the KV cache holds 2"):
        model(ids[:1, :3], cache=cache)


def test_cache_arrays_are_preallocated_and_written_in_place():
    model = tiny_model().eval()
    cache = KVCache.for_model(model, batch_size=1)
    keys = cache.layers[0].keys
    assert keys.shape == (1, TINY["n_heads"], TINY["context_length"], TINY["emb_dim"] // TINY["n_heads"])
    model(random_ids((1, 4)), cache=cache)
    model(random_ids((1, 1)), cache=cache)
    assert cache.layers[0].keys is keys and cache.length == 5
    assert cache.nbytes() == 2 * TINY["n_layers"] * keys.nbytes
    assert not model(random_ids((1, 1)), cache=cache).requires_grad  # inference only


# ---------------------------------------------------------------------- tiny GPT-2 ground truth
def test_tiny_gpt2_book_state_dict_reproduces_transformers_logits():
    state = dict(np.load(shared_path("tiny-gpt2", "state_dict_book.npz")))
    expected = np.load(shared_path("tiny-gpt2", "expected.npz"))
    model = GPTModel(TINY_GPT2)
    assert sorted(state) == sorted(model.state_dict())
    assert all(state[key].shape == value.shape for key, value in model.state_dict().items())
    model.tie_weights()
    model.load_state_dict(state)
    model.eval()
    with mg.no_grad():
        logits = model(expected["input_ids"]).data
    assert logits.dtype == np.float32
    np.testing.assert_allclose(logits, expected["logits"], rtol=0, atol=1e-4)


def test_output_head_can_be_swapped_for_classification():
    # the book's chapter 6: freeze the model, replace out_head by a small classifier head
    model = tiny_model().tie_weights()
    model.requires_grad_(False)
    model.out_head = mg.nn.Linear(TINY["emb_dim"], 2, generator=np.random.default_rng(1))
    for param in list(model.trf_blocks[-1].parameters()) + list(model.final_norm.parameters()):
        param.requires_grad = True
    assert not model.weights_tied
    assert list(model.state_dict())[-2:] == ["out_head.weight", "out_head.bias"]
    logits = model(random_ids((3, 5)))
    assert logits.shape == (3, 5, 2)
    F.cross_entropy(logits[:, -1, :], np.array([0, 1, 1])).backward()  # last token classifies
    assert model.out_head.weight.grad.shape == (2, TINY["emb_dim"])
    assert model.trf_blocks[-1].att.W_query.weight.grad is not None
    assert model.trf_blocks[0].att.W_query.weight.grad is None and model.tok_emb.weight.grad is None


def test_optional_config_keys_take_their_defaults():
    sizes = {key: TINY[key] for key in ("vocab_size", "context_length", "emb_dim", "n_heads", "n_layers")}
    cfg = validate_config(sizes)
    assert cfg == {**sizes, "drop_rate": 0.0, "qkv_bias": False}
    assert list(cfg) == list(GPT_CONFIG_124M)  # the book's key order
    model = GPTModel(sizes)
    assert model.cfg == cfg and model.trf_blocks[0].att.W_query.bias is None


def test_a_variant_key_is_one_entry_of_optional_keys(monkeypatch):
    from gpt.model import config as model_config

    def check_norm(key, value):
        if value not in ("layernorm", "rmsnorm"):
            raise ValueError(f"config: {key} must be 'layernorm' or 'rmsnorm', got {value!r}")
        return value

    monkeypatch.setitem(model_config.OPTIONAL_KEYS, "norm", model_config.OptionalKey("layernorm", check_norm))
    monkeypatch.setattr(model_config, "CONFIG_KEYS", model_config.REQUIRED_KEYS + tuple(model_config.OPTIONAL_KEYS))
    assert model_config.validate_config(GPT_CONFIG_124M)["norm"] == "layernorm"   # old configs stay valid
    assert model_config.validate_config({**GPT_CONFIG_124M, "norm": "rmsnorm"})["norm"] == "rmsnorm"
    with pytest.raises(ValueError, match="norm must be"):
        model_config.validate_config({**GPT_CONFIG_124M, "norm": "batchnorm"})
