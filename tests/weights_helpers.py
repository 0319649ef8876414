"""Helpers for tests/test_weights*.py: tiny random GPT-2 checkpoints in both real layouts,
and a plain-NumPy GPT-2 forward pass (picoGPT style) to check loaded models against."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from gpt.weights.mapping import hf_name_to_openai
from gpt.weights.safetensors import save_file
from gpt.weights.tf_checkpoint import write_tf_checkpoint

TINY = {"n_vocab": 257, "n_ctx": 16, "n_embd": 8, "n_head": 2, "n_layer": 2}
BYTES_TOKENIZER_STATE = {"name": "bytes", "kind": "bytes", "version": 1, "n_vocab": 257, "eot_id": 256}


def random_gpt2_tensors(seed: int = 0, n_vocab=257, n_ctx=16, n_embd=8, n_layer=2, **_) -> dict[str, np.ndarray]:
    """Bare Hugging Face names -> random float32 arrays in GPT-2's (in, out) Conv1D layout."""
    rng = np.random.default_rng(seed)
    d = n_embd

    def normal(*shape, scale=0.5):
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    tensors = {"wte.weight": normal(n_vocab, d), "wpe.weight": normal(n_ctx, d)}
    for i in range(n_layer):
        tensors.update({
            f"h.{i}.ln_1.weight": 1 + normal(d, scale=0.1), f"h.{i}.ln_1.bias": normal(d, scale=0.1),
            f"h.{i}.attn.c_attn.weight": normal(d, 3 * d), f"h.{i}.attn.c_attn.bias": normal(3 * d, scale=0.1),
            f"h.{i}.attn.c_proj.weight": normal(d, d), f"h.{i}.attn.c_proj.bias": normal(d, scale=0.1),
            f"h.{i}.ln_2.weight": 1 + normal(d, scale=0.1), f"h.{i}.ln_2.bias": normal(d, scale=0.1),
            f"h.{i}.mlp.c_fc.weight": normal(d, 4 * d), f"h.{i}.mlp.c_fc.bias": normal(4 * d, scale=0.1),
            f"h.{i}.mlp.c_proj.weight": normal(4 * d, d), f"h.{i}.mlp.c_proj.bias": normal(d, scale=0.1),
        })
    tensors["ln_f.weight"] = 1 + normal(d, scale=0.1)
    tensors["ln_f.bias"] = normal(d, scale=0.1)
    return tensors


def write_hf_folder(folder: Path, tensors: dict, hparams: dict = TINY, prefix: str = "transformer.",
                    extra_tensors: dict | None = None, tokenizer_state: dict | None = BYTES_TOKENIZER_STATE) -> Path:
    """A Hugging Face GPT-2 folder: config.json + model.safetensors (+ tokenizer state)."""
    folder.mkdir(parents=True, exist_ok=True)
    stored = {prefix + name: array for name, array in tensors.items()}
    stored.update(extra_tensors or {})
    save_file(stored, folder / "model.safetensors", metadata={"format": "pt"})
    config = {"model_type": "gpt2", "activation_function": "gelu_new", "layer_norm_epsilon": 1e-5,
              "vocab_size": hparams["n_vocab"], "n_positions": hparams["n_ctx"], "n_ctx": hparams["n_ctx"],
              "n_embd": hparams["n_embd"], "n_head": hparams["n_head"], "n_layer": hparams["n_layer"],
              "tie_word_embeddings": True}
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    if tokenizer_state is not None:
        (folder / "tokenizer_state.json").write_text(json.dumps(tokenizer_state))
    return folder


def write_openai_folder(folder: Path, tensors: dict, hparams: dict = TINY, block_size: int = 4096,
                        tokenizer_state: dict | None = BYTES_TOKENIZER_STATE) -> Path:
    """OpenAI's layout: hparams.json, checkpoint, model.ckpt.index/.data (Conv1D weights (1, in, out))."""
    folder.mkdir(parents=True, exist_ok=True)
    openai = {}
    for name, array in tensors.items():
        key = hf_name_to_openai(name)
        openai[key] = array[None] if key.endswith("/w") else array
    write_tf_checkpoint(folder / "model.ckpt", openai, block_size=block_size)
    (folder / "hparams.json").write_text(json.dumps(hparams, indent=2))
    (folder / "checkpoint").write_text('model_checkpoint_path: "model.ckpt"\n'
                                       'all_model_checkpoint_paths: "model.ckpt"\n')
    if tokenizer_state is not None:
        (folder / "tokenizer_state.json").write_text(json.dumps(tokenizer_state))
    return folder


def gpt2_forward(tensors: dict, ids: np.ndarray, n_head: int) -> np.ndarray:
    """GPT-2 logits (B, T, V) in float64 from bare Hugging Face tensors (the reference)."""
    t = {name: np.asarray(array, dtype=np.float64) for name, array in tensors.items()}

    def layer_norm(x, g, b):
        mean = x.mean(-1, keepdims=True)
        var = x.var(-1, keepdims=True)
        return (x - mean) / np.sqrt(var + 1e-5) * g + b

    def gelu(x):
        return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))

    batch, seq = ids.shape
    x = t["wte.weight"][ids] + t["wpe.weight"][np.arange(seq)]  # (B, T, D)
    d = x.shape[-1]
    n_layer = sum(1 for name in t if name.endswith(".attn.c_attn.weight"))
    mask = np.triu(np.full((seq, seq), -np.inf), 1)
    for i in range(n_layer):
        h = f"h.{i}."
        a = layer_norm(x, t[h + "ln_1.weight"], t[h + "ln_1.bias"])
        qkv = a @ t[h + "attn.c_attn.weight"] + t[h + "attn.c_attn.bias"]  # (B, T, 3D)
        q, k, v = (m.reshape(batch, seq, n_head, d // n_head).transpose(0, 2, 1, 3) for m in np.split(qkv, 3, -1))
        scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(d // n_head) + mask  # (B, H, T, T)
        weights = np.exp(scores - scores.max(-1, keepdims=True))
        weights /= weights.sum(-1, keepdims=True)
        context = (weights @ v).transpose(0, 2, 1, 3).reshape(batch, seq, d)
        x = x + context @ t[h + "attn.c_proj.weight"] + t[h + "attn.c_proj.bias"]
        m = layer_norm(x, t[h + "ln_2.weight"], t[h + "ln_2.bias"])
        x = x + gelu(m @ t[h + "mlp.c_fc.weight"] + t[h + "mlp.c_fc.bias"]) @ t[h + "mlp.c_proj.weight"] \
            + t[h + "mlp.c_proj.bias"]
    x = layer_norm(x, t["ln_f.weight"], t["ln_f.bias"])
    return x @ t.get("lm_head.weight", t["wte.weight"]).T
