"""Loading and saving GPT-2: both folder layouts onto the book's GPTModel, the
tiny-gpt2 ground truth, round trips, tiny checkpoints written here, and bad input."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

import gpt
from conftest import shared_path
from gpt import GPT2_CONFIGS, GPTModel, count_parameters
from gpt.weights import (SafeTensorsFile, TFCheckpoint, WeightsError, detect_layout, is_gpt2_folder,
                         load_gpt2, read_gpt2_weights, save_file, save_gpt2)
from gpt.weights.mapping import config_from_hf, config_from_hparams, expected_hf_shapes
from weights_helpers import (TINY, gpt2_forward, random_gpt2_tensors, write_hf_folder,
                             write_openai_folder)

LAYOUTS = ["hf", "openai"]
SENTENCE = "Every effort moves you toward the quiet old house, said the painter with a smile"


@pytest.fixture(scope="module")
def expected():
    return dict(np.load(shared_path("tiny-gpt2", "expected.npz")))


@pytest.fixture(scope="module")
def loaded():
    """load_gpt2 of both shared folders, once: layout -> (model, tokenizer)."""
    return {layout: load_gpt2(shared_path("tiny-gpt2", layout)) for layout in LAYOUTS}


# ------------------------------------------------------------------ the tiny-gpt2 ground truth

@pytest.mark.parametrize("layout", LAYOUTS)
def test_mapping_is_bit_exact_against_the_book_state_dict(layout):
    cfg, state, found = read_gpt2_weights(shared_path("tiny-gpt2", layout))
    assert found == layout
    assert cfg == {"vocab_size": 50257, "context_length": 32, "emb_dim": 8, "n_heads": 4, "n_layers": 2,
                   "drop_rate": 0.0, "qkv_bias": True}
    book = np.load(shared_path("tiny-gpt2", "state_dict_book.npz"))
    assert sorted(state) == sorted(book.files)  # 37 arrays
    for name in book.files:
        assert state[name].shape == book[name].shape and state[name].dtype == np.float32, name
        assert np.array_equal(state[name], book[name]), name
    assert state["out_head.weight"] is state["tok_emb.weight"]  # tied, not a copy


@pytest.mark.parametrize("layout", LAYOUTS)
def test_loaded_model_reproduces_transformers_logits(layout, loaded, expected):
    model, _ = loaded[layout]
    assert isinstance(model, GPTModel) and not model.training
    logits = model(expected["input_ids"]).data  # (2, 16, 50257)
    assert logits.dtype == np.float32
    np.testing.assert_allclose(logits, expected["logits"], rtol=0, atol=1e-4)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_loaded_model_greedy_tokens(layout, loaded, expected):
    model, _ = loaded[layout]
    prompt = expected["greedy_prompt_ids"]
    for use_cache in (True, False):
        ids = gpt.generate(model, prompt, max_new_tokens=10, use_cache=use_cache)
        assert np.array_equal(ids, expected["greedy_ids"])
    ids = prompt.copy()  # the manual argmax loop the ground truth was made with
    for _ in range(10):
        next_id = model(ids).data[:, -1].argmax(-1)
        ids = np.concatenate([ids, next_id[:, None]], axis=1)
    assert np.array_equal(ids[:, 8:], expected["greedy_new_ids"])


@pytest.mark.parametrize("layout", LAYOUTS)
def test_tied_head_shares_memory_and_tokenizer_loads(layout, loaded, expected):
    model, tokenizer = loaded[layout]
    assert model.out_head.weight is model.tok_emb.weight
    assert np.shares_memory(model.out_head.weight.data, model.tok_emb.weight.data)
    assert model.num_parameters() == 404_072 == count_parameters(model.cfg, tied=True)
    assert tokenizer.n_vocab == 50257
    assert tokenizer.encode(SENTENCE) == expected["input_ids"][0].tolist()


def test_float64_load(expected):
    model, _ = load_gpt2(shared_path("tiny-gpt2", "hf"), dtype=np.float64, load_tokenizer=False)
    logits = model(expected["input_ids"]).data
    assert logits.dtype == np.float64
    np.testing.assert_allclose(logits, expected["logits"], rtol=0, atol=1e-5)
    with pytest.raises(TypeError, match="float"):
        load_gpt2(shared_path("tiny-gpt2", "hf"), dtype=np.int32)


# ------------------------------------------------------------------ saving and round trips

def test_save_hf_layout_and_round_trip(tmp_path, loaded, expected):
    model, tokenizer = loaded["openai"]
    folder = save_gpt2(model, tmp_path / "out", tokenizer)
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "merges.txt", "model.safetensors", "vocab.json"]
    config = json.loads((folder / "config.json").read_text())
    assert config["architectures"] == ["GPT2LMHeadModel"] and config["model_type"] == "gpt2"
    assert config["activation_function"] == "gelu_new" and config["layer_norm_epsilon"] == 1e-5
    assert (config["n_ctx"], config["n_positions"], config["n_embd"], config["n_head"], config["n_layer"],
            config["vocab_size"], config["tie_word_embeddings"]) == (32, 32, 8, 4, 2, 50257, True)
    weights = SafeTensorsFile(folder / "model.safetensors")
    original = SafeTensorsFile(shared_path("tiny-gpt2", "hf", "model.safetensors"))
    assert sorted(weights.keys()) == sorted(original.keys())  # transformer.*, no lm_head
    assert weights.metadata == {"format": "pt"}
    for key in original:
        assert weights.dtype(key) == "F32" and np.array_equal(weights[key], original[key]), key
    for ours, theirs in (("vocab.json", "encoder.json"), ("merges.txt", "vocab.bpe")):
        assert (folder / ours).read_bytes() == shared_path("gpt2", theirs).read_bytes()
    again, tokenizer_again = load_gpt2(folder)
    assert np.array_equal(again(expected["input_ids"]).data, model(expected["input_ids"]).data)
    assert again.out_head.weight is again.tok_emb.weight
    assert tokenizer_again.encode(SENTENCE) == tokenizer.encode(SENTENCE)


def test_save_openai_layout_and_round_trip(tmp_path, loaded, expected):
    model, tokenizer = loaded["hf"]
    folder = save_gpt2(model, tmp_path / "out", tokenizer, layout="openai")
    assert detect_layout(folder) == "openai"
    shared = shared_path("tiny-gpt2", "openai")
    for name in ("model.ckpt.index", "model.ckpt.data-00000-of-00001", "checkpoint", "encoder.json", "vocab.bpe"):
        assert (folder / name).read_bytes() == (shared / name).read_bytes(), name  # as TensorFlow wrote them
    assert json.loads((folder / "hparams.json").read_text()) == json.loads((shared / "hparams.json").read_text())
    again, _ = load_gpt2(folder)
    assert np.array_equal(again(expected["input_ids"]).data, model(expected["input_ids"]).data)


def test_untied_model_without_qkv_bias_round_trip(tmp_path):
    cfg = {"vocab_size": 257, "context_length": 12, "emb_dim": 8, "n_heads": 2, "n_layers": 1,
           "drop_rate": 0.1, "qkv_bias": False}
    model = GPTModel(cfg, generator=np.random.default_rng(0))  # the book's default: untied head
    tokenizer = gpt.get_tokenizer("bytes")
    folder = save_gpt2(model, tmp_path / "m", tokenizer)
    config = json.loads((folder / "config.json").read_text())
    assert config["tie_word_embeddings"] is False and config["attn_pdrop"] == 0.1
    weights = SafeTensorsFile(folder / "model.safetensors")
    assert "lm_head.weight" in weights
    assert np.array_equal(weights["transformer.h.0.attn.c_attn.bias"], np.zeros(24, np.float32))
    assert (folder / "tokenizer_state.json").is_file() and not (folder / "vocab.json").exists()
    again, tokenizer_again = load_gpt2(folder)
    assert again.out_head.weight is not again.tok_emb.weight and again.cfg["qkv_bias"] is True
    ids = np.random.default_rng(1).integers(0, 257, (2, 12))
    model.eval()
    np.testing.assert_array_equal(again(ids).data, model(ids).data)  # + zero bias is exact
    assert tokenizer_again.decode(tokenizer_again.encode("héllo")) == "héllo"
    with pytest.raises(WeightsError, match="not tied"):
        save_gpt2(model, tmp_path / "o", tokenizer, layout="openai")
    with pytest.raises(ValueError, match="layout"):
        save_gpt2(model, tmp_path / "o", tokenizer, layout="torch")


# ------------------------------------------------------------------ tiny checkpoints written here

@pytest.mark.parametrize("layout", LAYOUTS)
def test_tiny_checkpoints_written_here_load_and_agree(tmp_path, layout):
    tensors = random_gpt2_tensors(seed=7, **TINY)
    if layout == "hf":
        folder = write_hf_folder(tmp_path / layout, tensors)
    else:
        folder = write_openai_folder(tmp_path / layout, tensors, block_size=64)  # multi-block index
    assert sum(f.stat().st_size for f in folder.iterdir()) < 30_000  # a few KB
    model, tokenizer = load_gpt2(folder)
    assert tokenizer.name == "bytes"
    ids = np.random.default_rng(2).integers(0, TINY["n_vocab"], (2, TINY["n_ctx"]))
    reference = gpt2_forward(tensors, ids, TINY["n_head"])
    np.testing.assert_allclose(model(ids).data, reference, rtol=0, atol=1e-4)


def test_hf_bare_keys_legacy_buffers_and_lm_head(tmp_path):
    tensors = random_gpt2_tensors(seed=3, **TINY)
    n_ctx = TINY["n_ctx"]
    extra = {f"h.{i}.attn.bias": np.tril(np.ones((1, 1, n_ctx, n_ctx), np.float32)) for i in range(2)}
    extra["h.0.attn.masked_bias"] = np.array(-1e4, np.float32)
    extra["lm_head.weight"] = tensors["wte.weight"]  # stored tied head: ignored
    folder = write_hf_folder(tmp_path / "bare", tensors, prefix="", extra_tensors=extra)
    model, _ = load_gpt2(folder)
    assert model.out_head.weight is model.tok_emb.weight
    ids = np.arange(16)[None] % 257
    np.testing.assert_allclose(model(ids).data, gpt2_forward(tensors, ids, 2), rtol=0, atol=1e-4)


def test_sharded_and_half_precision_safetensors(tmp_path):
    tensors = random_gpt2_tensors(seed=4, **TINY)
    folder = write_hf_folder(tmp_path / "s", tensors)
    (folder / "model.safetensors").unlink()
    names = sorted(tensors)
    half = {f"transformer.{n}": tensors[n].astype(np.float16) for n in names[:10]}
    bf16 = {f"transformer.{n}": tensors[n] for n in names[10:]}
    save_file(half, folder / "model-00001-of-00002.safetensors")
    save_file(bf16, folder / "model-00002-of-00002.safetensors", bf16=True)
    weight_map = {**{k: "model-00001-of-00002.safetensors" for k in half},
                  **{k: "model-00002-of-00002.safetensors" for k in bf16}}
    (folder / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    assert detect_layout(folder) == "hf"
    model, _ = load_gpt2(folder)
    assert model.tok_emb.weight.dtype == np.float32
    ids = np.arange(10)[None]
    np.testing.assert_allclose(model(ids).data, gpt2_forward(tensors, ids, 2), rtol=0, atol=0.15)


@pytest.mark.parametrize("name", list(GPT2_CONFIGS))
def test_configs_for_all_four_sizes(name):
    cfg = GPT2_CONFIGS[name]
    hparams = {"n_vocab": 50257, "n_ctx": 1024, "n_embd": cfg["emb_dim"], "n_head": cfg["n_heads"],
               "n_layer": cfg["n_layers"]}
    assert config_from_hparams(hparams) == cfg
    hf = {"model_type": "gpt2", "vocab_size": 50257, "n_ctx": 1024, "n_embd": cfg["emb_dim"],
          "n_head": cfg["n_heads"], "n_layer": cfg["n_layers"]}  # legacy n_ctx only, as on the hub
    assert config_from_hf(hf) == cfg
    shapes = expected_hf_shapes(cfg)
    assert len(shapes) == 4 + 12 * cfg["n_layers"]
    assert sum(int(np.prod(s)) for s in shapes.values()) == count_parameters(cfg, tied=True)


# ------------------------------------------------------------------ detection and bad input

def test_detect_layout_and_is_gpt2_folder(tmp_path):
    assert detect_layout(shared_path("tiny-gpt2", "hf")) == "hf"
    assert detect_layout(shared_path("tiny-gpt2", "openai")) == "openai"
    assert detect_layout(shared_path("tiny-gpt2", "openai", "model.ckpt.index")) == "openai"  # file inside
    assert is_gpt2_folder(shared_path("tiny-gpt2", "hf", "config.json"))
    assert not is_gpt2_folder(tmp_path) and not is_gpt2_folder(tmp_path / "missing")
    assert not is_gpt2_folder(shared_path("tiny-gpt2"))


def test_folder_with_neither_layout_lists_expected_files(tmp_path):
    (tmp_path / "pytorch_model.bin").write_bytes(b"\0")
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(WeightsError) as error:
        load_gpt2(tmp_path)
    message = str(error.value)
    for name in ("hparams.json", "model.ckpt.index", "model.ckpt.data-00000-of-00001", "model.safetensors",
                 "config.json", "vocab.json", "merges.txt", "encoder.json", "vocab.bpe", "pytorch_model.bin"):
        assert name in message, name
    with pytest.raises(FileNotFoundError, match="no such GPT-2 checkpoint folder"):
        load_gpt2(tmp_path / "nope")


@pytest.mark.parametrize("layout", LAYOUTS)
def test_missing_tensor_names_file_and_tensor(tmp_path, layout):
    tensors = random_gpt2_tensors(**TINY)
    del tensors["h.1.mlp.c_fc.bias"]
    writer = write_hf_folder if layout == "hf" else write_openai_folder
    folder = writer(tmp_path / layout, tensors)
    with pytest.raises(WeightsError) as error:
        load_gpt2(folder)
    message = str(error.value)
    assert "missing tensor 'h.1.mlp.c_fc.bias'" in message
    assert ("model.safetensors" if layout == "hf" else "model.ckpt.data-00000-of-00001") in message


@pytest.mark.parametrize("layout", LAYOUTS)
def test_wrong_shape_dtype_and_unexpected_tensors(tmp_path, layout):
    tensors = random_gpt2_tensors(**TINY)
    tensors["h.0.attn.c_proj.weight"] = tensors["h.0.attn.c_proj.weight"][:, :4].copy()
    tensors["ln_f.bias"] = np.arange(8, dtype=np.int32)
    tensors["h.2.ln_1.weight"] = np.ones(8, np.float32)  # a third layer the config does not have
    writer = write_hf_folder if layout == "hf" else write_openai_folder
    with pytest.raises(WeightsError) as error:
        load_gpt2(writer(tmp_path / layout, tensors))
    message = str(error.value)
    assert "'h.0.attn.c_proj.weight' has shape [8, 4], expected [8, 8]" in message
    assert "'ln_f.bias' has dtype int32" in message
    assert "unexpected tensor" in message and "3 problems" in message


def test_config_that_does_not_match_the_tensors(tmp_path):
    folder = write_openai_folder(tmp_path / "o", random_gpt2_tensors(**TINY), hparams={**TINY, "n_embd": 16})
    with pytest.raises(WeightsError, match=r"'wte.weight' has shape \[257, 8\], expected \[257, 16\]"):
        load_gpt2(folder)


def test_truncated_data_file_names_file_tensor_and_sizes(tmp_path):
    folder = shutil.copytree(shared_path("tiny-gpt2", "openai"), tmp_path / "o")
    data = folder / "model.ckpt.data-00000-of-00001"
    data.chmod(0o644)
    data.write_bytes(data.read_bytes()[:1_000_000])
    with pytest.raises(WeightsError) as error:
        load_gpt2(folder)
    message = str(error.value)
    assert str(data) in message and "'model/wte'" in message
    assert "1608224 bytes" in message and "file has 1000000 bytes" in message


def test_corrupt_index_is_reported(tmp_path):
    folder = shutil.copytree(shared_path("tiny-gpt2", "openai"), tmp_path / "o")
    index = folder / "model.ckpt.index"
    index.chmod(0o644)
    raw = bytearray(index.read_bytes())
    raw[100] ^= 0xFF
    index.write_bytes(bytes(raw))
    with pytest.raises(WeightsError, match="model.ckpt.index data block 0: CRC-32C mismatch"):
        load_gpt2(folder)
    index.write_bytes(bytes(raw[:-8]) + bytes(8))
    with pytest.raises(WeightsError, match="bad table magic"):
        load_gpt2(folder)


@pytest.mark.parametrize("change, match", [
    ({"model_type": "llama"}, "model_type 'llama' is not GPT-2"),
    ({"activation_function": "gelu"}, "activation_function 'gelu'"),
    ({"n_inner": 64}, "n_inner 64"),
    ({"layer_norm_epsilon": 1e-6}, "layer_norm_epsilon"),
    ({"n_head": 3}, "not divisible by n_head 3"),
    ({"n_layer": "2"}, "'n_layer' must be a positive integer"),
])
def test_bad_hf_config(tmp_path, change, match):
    folder = write_hf_folder(tmp_path / "h", random_gpt2_tensors(**TINY))
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, **change}))
    with pytest.raises(WeightsError, match=match):
        load_gpt2(folder)


def test_bad_hparams(tmp_path):
    folder = write_openai_folder(tmp_path / "o", random_gpt2_tensors(**TINY))
    (folder / "hparams.json").write_text(json.dumps({"n_vocab": 257, "n_ctx": 16, "n_embd": 8, "n_head": 2}))
    with pytest.raises(WeightsError, match=r"hparams.json: 'n_layer' must be a positive integer, got None"):
        load_gpt2(folder)
    (folder / "hparams.json").write_text("{not json")
    with pytest.raises(WeightsError, match="hparams.json: not valid JSON"):
        load_gpt2(folder)


def test_no_tokenizer_files_warns_and_returns_none(tmp_path):
    folder = write_hf_folder(tmp_path / "h", random_gpt2_tensors(**TINY), tokenizer_state=None)
    with pytest.warns(UserWarning, match="no tokenizer files"):
        model, tokenizer = load_gpt2(folder)
    assert tokenizer is None and isinstance(model, GPTModel)


def test_tf_checkpoint_sees_the_conv1d_leading_one():
    checkpoint = TFCheckpoint(shared_path("tiny-gpt2", "openai"))
    assert checkpoint["model/h1/mlp/c_proj/w"].shape == (1, 32, 8)


def test_loaded_model_has_working_dropout_and_no_stand_in_generator():
    model, _ = load_gpt2(shared_path("tiny-gpt2", "hf"), drop_rate=0.2, load_tokenizer=False)
    for module in model.modules():
        assert all(type(value).__name__ != "_NoDrawGenerator" for value in vars(module).values())
    ids = np.arange(12)[None]
    model.train()
    first, second = model(ids).data, model(ids).data
    assert not np.array_equal(first, second)  # dropout draws real masks
    model.eval()
    assert np.array_equal(model(ids).data, model(ids).data)
