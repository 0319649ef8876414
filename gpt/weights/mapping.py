"""GPT-2 checkpoint names and layouts <-> the book's GPTModel state dict (chapter 5.5).

Three namings of the same weights (tiny-gpt2/README.md, section (c), has the full table):

    OpenAI TF            Hugging Face (bare)        book GPTModel
    model/wte            wte.weight                 tok_emb.weight   (and out_head.weight, tied)
    model/wpe            wpe.weight                 pos_emb.weight
    model/h{i}/ln_1/g    h.{i}.ln_1.weight          trf_blocks.{i}.norm1.scale
    model/h{i}/attn/c_attn/w  h.{i}.attn.c_attn.weight  trf_blocks.{i}.att.W_query/W_key/W_value.weight
    ...

GPT-2's Conv1D layers compute `x @ W + b` with W stored (in, out); OpenAI's files add a
leading 1, (1, in, out). The book's Linear layers store (out, in), so every matrix is
transposed, and the fused `c_attn` (in, 3 * emb) is cut into query, key and value columns.
Hugging Face bare names are the common currency here: OpenAI names are first renamed to them
(`openai_to_hf_names`), then mapped to the book (`hf_to_book`). All results are views of the
inputs (transposes and slices), so memory-mapped files are not read until copied.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Mapping

import numpy as np

from minigrad.untrusted import short_repr

from ..model.config import SIZE_LIMITS as MODEL_LIMITS
from .errors import WeightsError

# Per-block Hugging Face names (after "h.{i}.") and the shape each has, given emb_dim D.
HF_BLOCK_SHAPES = {
    "ln_1.weight": lambda d: (d,), "ln_1.bias": lambda d: (d,),
    "attn.c_attn.weight": lambda d: (d, 3 * d), "attn.c_attn.bias": lambda d: (3 * d,),
    "attn.c_proj.weight": lambda d: (d, d), "attn.c_proj.bias": lambda d: (d,),
    "ln_2.weight": lambda d: (d,), "ln_2.bias": lambda d: (d,),
    "mlp.c_fc.weight": lambda d: (d, 4 * d), "mlp.c_fc.bias": lambda d: (4 * d,),
    "mlp.c_proj.weight": lambda d: (4 * d, d), "mlp.c_proj.bias": lambda d: (d,),
}
# Buffers some Hugging Face files carry (a 4-D causal mask per layer): not weights, skipped.
HF_SKIPPED = re.compile(r"^h\.\d+\.attn\.(bias|masked_bias)$")
MAX_PROBLEMS_SHOWN = 20  # problems listed in one error message


def expected_hf_shapes(cfg: dict) -> dict[str, tuple[int, ...]]:
    """Every tensor a GPT-2 checkpoint of this size holds, by bare Hugging Face name."""
    width = cfg["emb_dim"]
    shapes = {"wte.weight": (cfg["vocab_size"], width), "wpe.weight": (cfg["context_length"], width)}
    for i in range(cfg["n_layers"]):
        for suffix, shape in HF_BLOCK_SHAPES.items():
            shapes[f"h.{i}.{suffix}"] = shape(width)
    shapes["ln_f.weight"] = (width,)
    shapes["ln_f.bias"] = (width,)
    return shapes


# ------------------------------------------------------------------ OpenAI <-> Hugging Face names

_OPENAI_BLOCK = re.compile(r"^model/h(\d+)/(.+)/([wbg])$")


def openai_name_to_hf(name: str) -> str | None:
    """`model/h3/attn/c_attn/w` -> `h.3.attn.c_attn.weight`; None for a name GPT-2 does not use."""
    top = {"model/wte": "wte.weight", "model/wpe": "wpe.weight",
           "model/ln_f/g": "ln_f.weight", "model/ln_f/b": "ln_f.bias"}
    if name in top:
        return top[name]
    match = _OPENAI_BLOCK.match(name)
    if not match:
        return None
    layer, module, param = match.groups()
    return f"h.{int(layer)}.{module.replace('/', '.')}.{'bias' if param == 'b' else 'weight'}"


def hf_name_to_openai(name: str) -> str:
    """Inverse of `openai_name_to_hf` (`ln_*.weight` -> `/g`, Conv1D `.weight` -> `/w`)."""
    top = {"wte.weight": "model/wte", "wpe.weight": "model/wpe",
           "ln_f.weight": "model/ln_f/g", "ln_f.bias": "model/ln_f/b"}
    if name in top:
        return top[name]
    _, layer, rest = name.split(".", 2)
    module, param = rest.rsplit(".", 1)
    letter = "b" if param == "bias" else ("g" if module.startswith("ln_") else "w")
    return f"model/h{layer}/{module.replace('.', '/')}/{letter}"


# ------------------------------------------------------------------ checks

def check_tensors(tensors: Mapping[str, tuple[str, np.ndarray]], cfg: dict, strict: bool = True) -> None:
    """Check a GPT-2 checkpoint against `cfg` before anything is copied.

    tensors: bare HF name -> (file it came from, array). Raises one WeightsError listing
    every missing tensor, wrong shape, non-float dtype and (with strict) unexpected tensor,
    each with its file.
    """
    expected = expected_hf_shapes(cfg)
    problems = []
    files = sorted({source for source, _ in tensors.values()}) or ["(no tensors)"]
    for name, shape in expected.items():
        if name not in tensors:
            problems.append(f"  missing tensor {name!r} in {', '.join(files)}")
            continue
        source, array = tensors[name]
        if tuple(array.shape) != shape:
            problems.append(f"  {source}: tensor {name!r} has shape {list(array.shape)}, expected {list(shape)}")
        elif array.dtype.kind != "f":
            problems.append(f"  {source}: tensor {name!r} has dtype {array.dtype}, expected a float dtype "
                            "(float32, float16, bfloat16 or float64)")
    if strict:
        for name, (source, _) in tensors.items():
            if name not in expected and name != "lm_head.weight":
                problems.append(f"  {source}: unexpected tensor {name!r} (not part of a GPT-2 with "
                                f"{cfg['n_layers']} layers)")
    if problems:
        total = len(problems)
        if total > MAX_PROBLEMS_SHOWN:
            problems[MAX_PROBLEMS_SHOWN:] = [f"  ... and {total - MAX_PROBLEMS_SHOWN:,} more"]
        size = (f"vocab_size {cfg['vocab_size']}, context_length {cfg['context_length']}, "
                f"emb_dim {cfg['emb_dim']}, n_layers {cfg['n_layers']}")
        raise WeightsError(f"the checkpoint does not fit GPT-2 ({size}), {total:,} problem"
                           f"{'s' if total > 1 else ''}:\n" + "\n".join(problems))


# ------------------------------------------------------------------ HF <-> book

def hf_to_book(tensors: Mapping[str, np.ndarray], cfg: dict) -> dict[str, np.ndarray]:
    """Bare Hugging Face names -> the book's state dict (views; out_head.weight IS tok_emb.weight).

    With an `lm_head.weight` in `tensors` the head is that array (an untied model).
    """
    width = cfg["emb_dim"]
    state = {"tok_emb.weight": tensors["wte.weight"], "pos_emb.weight": tensors["wpe.weight"]}
    for i in range(cfg["n_layers"]):
        h, b = f"h.{i}.", f"trf_blocks.{i}."
        qkv_weight = tensors[h + "attn.c_attn.weight"]  # (D, 3D): columns [q | k | v]
        qkv_bias = tensors[h + "attn.c_attn.bias"]  # (3D,)
        for j, part in enumerate(("W_query", "W_key", "W_value")):
            state[f"{b}att.{part}.weight"] = qkv_weight[:, j * width:(j + 1) * width].T  # (D, D) as (out, in)
            state[f"{b}att.{part}.bias"] = qkv_bias[j * width:(j + 1) * width]
        state[b + "att.out_proj.weight"] = tensors[h + "attn.c_proj.weight"].T  # (D, D)
        state[b + "att.out_proj.bias"] = tensors[h + "attn.c_proj.bias"]
        state[b + "ff.layers.0.weight"] = tensors[h + "mlp.c_fc.weight"].T  # (4D, D)
        state[b + "ff.layers.0.bias"] = tensors[h + "mlp.c_fc.bias"]
        state[b + "ff.layers.2.weight"] = tensors[h + "mlp.c_proj.weight"].T  # (D, 4D)
        state[b + "ff.layers.2.bias"] = tensors[h + "mlp.c_proj.bias"]
        state[b + "norm1.scale"] = tensors[h + "ln_1.weight"]
        state[b + "norm1.shift"] = tensors[h + "ln_1.bias"]
        state[b + "norm2.scale"] = tensors[h + "ln_2.weight"]
        state[b + "norm2.shift"] = tensors[h + "ln_2.bias"]
    state["final_norm.scale"] = tensors["ln_f.weight"]
    state["final_norm.shift"] = tensors["ln_f.bias"]
    state["out_head.weight"] = tensors.get("lm_head.weight", tensors["wte.weight"])
    return state


def book_to_hf(state: Mapping[str, np.ndarray], cfg: dict) -> dict[str, np.ndarray]:
    """The book's state dict -> bare Hugging Face names, (in, out) Conv1D layout.

    A model without query/key/value biases (cfg qkv_bias False) gets zero `c_attn.bias`
    (GPT-2 always has one; adding zero changes nothing). `lm_head.weight` is included only
    when the output head is not the token embedding (an untied model).
    """
    width = cfg["emb_dim"]
    dtype = state["tok_emb.weight"].dtype
    tensors = {"wte.weight": state["tok_emb.weight"], "wpe.weight": state["pos_emb.weight"]}
    for i in range(cfg["n_layers"]):
        h, b = f"h.{i}.", f"trf_blocks.{i}."
        parts = ("W_query", "W_key", "W_value")
        tensors[h + "ln_1.weight"] = state[b + "norm1.scale"]
        tensors[h + "ln_1.bias"] = state[b + "norm1.shift"]
        tensors[h + "attn.c_attn.weight"] = np.concatenate(
            [state[f"{b}att.{part}.weight"].T for part in parts], axis=1)  # (D, 3D)
        tensors[h + "attn.c_attn.bias"] = np.concatenate(
            [state.get(f"{b}att.{part}.bias", np.zeros(width, dtype)) for part in parts])  # (3D,)
        tensors[h + "attn.c_proj.weight"] = state[b + "att.out_proj.weight"].T  # (D, D) as (in, out)
        tensors[h + "attn.c_proj.bias"] = state[b + "att.out_proj.bias"]
        tensors[h + "ln_2.weight"] = state[b + "norm2.scale"]
        tensors[h + "ln_2.bias"] = state[b + "norm2.shift"]
        tensors[h + "mlp.c_fc.weight"] = state[b + "ff.layers.0.weight"].T  # (D, 4D)
        tensors[h + "mlp.c_fc.bias"] = state[b + "ff.layers.0.bias"]
        tensors[h + "mlp.c_proj.weight"] = state[b + "ff.layers.2.weight"].T  # (4D, D)
        tensors[h + "mlp.c_proj.bias"] = state[b + "ff.layers.2.bias"]
    tensors["ln_f.weight"] = state["final_norm.scale"]
    tensors["ln_f.bias"] = state["final_norm.shift"]
    head = state.get("out_head.weight")
    if head is not None and not np.shares_memory(head, state["tok_emb.weight"]):
        tensors["lm_head.weight"] = head
    return tensors


# ------------------------------------------------------------------ configurations

def book_config(n_vocab: int, n_ctx: int, n_embd: int, n_head: int, n_layer: int,
                drop_rate: float = 0.0) -> dict:
    """The book's config dict for a GPT-2 of these sizes (qkv_bias on, as GPT-2 has)."""
    return {"vocab_size": n_vocab, "context_length": n_ctx, "emb_dim": n_embd, "n_heads": n_head,
            "n_layers": n_layer, "drop_rate": drop_rate, "qkv_bias": True}


# Upper limits on the sizes a config file may give, checked before anything is allocated.
SIZE_LIMITS = {"n_vocab": MODEL_LIMITS["vocab_size"], "vocab_size": MODEL_LIMITS["vocab_size"],
               "n_ctx": MODEL_LIMITS["context_length"], "n_positions": MODEL_LIMITS["context_length"],
               "n_embd": MODEL_LIMITS["emb_dim"], "n_head": MODEL_LIMITS["n_heads"],
               "n_layer": MODEL_LIMITS["n_layers"]}  # the model's limits, under GPT-2's names


def _require_ints(values: dict, keys: list[str], source: str) -> list[int]:
    out = []
    for key in keys:
        value = values.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise WeightsError(f"{source}: {key!r} must be a positive integer, got {short_repr(value)}")
        limit = SIZE_LIMITS[key]
        if value > limit:
            raise WeightsError(f"{source}: {key!r} is {value:,}, more than the limit of {limit:,}")
        out.append(value)
    return out


def parameter_count(cfg: dict) -> int:
    """Parameters of a GPT-2 of this config (tied head), from the sizes alone: embeddings
    (V + T) x D, per block 12 D^2 + 13 D (attention, MLP, two norms), final norm 2 D."""
    width = cfg["emb_dim"]
    return ((cfg["vocab_size"] + cfg["context_length"]) * width
            + cfg["n_layers"] * (12 * width * width + 13 * width) + 2 * width)


def check_config_fits_files(cfg: dict, source: str, files: list) -> None:
    """A config whose tensors cannot fit in the weight files is refused before the model is
    built: a few bytes of JSON must not make the loader allocate gigabytes. The bound is one
    byte per parameter (float16 takes two), loose on purpose: a config that is only somewhat
    off gets the precise per-tensor report of `check_tensors` instead."""
    stored = sum(Path(file).stat().st_size for file in files if Path(file).is_file())
    needed = parameter_count(cfg)
    if needed > stored:
        raise WeightsError(f"{source}: a GPT-2 with {cfg['n_layers']:,} layers, width {cfg['emb_dim']:,}, "
                           f"vocabulary {cfg['vocab_size']:,} and context {cfg['context_length']:,} has "
                           f"{parameter_count(cfg):,} parameters, at least {needed:,} bytes, but the "
                           f"weight files hold {stored:,} bytes ({', '.join(str(f) for f in files[:3])})")


def config_from_hparams(hparams: dict, source: str = "hparams.json", drop_rate: float = 0.0) -> dict:
    """OpenAI's hparams.json ({n_vocab, n_ctx, n_embd, n_head, n_layer}) -> the book's config."""
    if not isinstance(hparams, dict):
        raise WeightsError(f"{source}: expected a JSON object, got {type(hparams).__name__}")
    n_vocab, n_ctx, n_embd, n_head, n_layer = _require_ints(
        hparams, ["n_vocab", "n_ctx", "n_embd", "n_head", "n_layer"], source)
    if n_embd % n_head:
        raise WeightsError(f"{source}: n_embd {n_embd} is not divisible by n_head {n_head}")
    return book_config(n_vocab, n_ctx, n_embd, n_head, n_layer, drop_rate)


def config_from_hf(config: dict, source: str = "config.json", drop_rate: float = 0.0) -> dict:
    """Hugging Face's GPT2Config JSON -> the book's config (n_positions, or legacy n_ctx)."""
    if not isinstance(config, dict):
        raise WeightsError(f"{source}: expected a JSON object, got {type(config).__name__}")
    model_type = config.get("model_type", "gpt2")
    if model_type != "gpt2":
        raise WeightsError(f"{source}: model_type {model_type!r} is not GPT-2; only 'gpt2' folders load here")
    values = dict(config)
    if "n_positions" not in values and "n_ctx" in values:
        values["n_positions"] = values["n_ctx"]
    n_vocab, n_ctx, n_embd, n_head, n_layer = _require_ints(
        values, ["vocab_size", "n_positions", "n_embd", "n_head", "n_layer"], source)
    if n_embd % n_head:
        raise WeightsError(f"{source}: n_embd {n_embd} is not divisible by n_head {n_head}")
    n_inner = config.get("n_inner")
    if n_inner not in (None, 4 * n_embd):
        raise WeightsError(f"{source}: n_inner {n_inner} is not supported; the book's FeedForward is "
                           f"4 x emb_dim = {4 * n_embd} wide")
    activation = config.get("activation_function", "gelu_new")
    if activation not in ("gelu_new", "gelu_pytorch_tanh", "gelu_fast"):
        raise WeightsError(f"{source}: activation_function {activation!r} is not supported; the book's "
                           "GELU is the tanh approximation ('gelu_new')")
    eps = config.get("layer_norm_epsilon", 1e-5)
    if not isinstance(eps, (int, float)) or abs(eps - 1e-5) > 1e-12:
        raise WeightsError(f"{source}: layer_norm_epsilon {eps!r} is not supported; the book's LayerNorm uses 1e-5")
    for key, supported in (("scale_attn_weights", True), ("scale_attn_by_inverse_layer_idx", False),
                           ("reorder_and_upcast_attn", False), ("add_cross_attention", False)):
        if key in config and bool(config[key]) != supported:
            raise WeightsError(f"{source}: {key}={config[key]!r} is not supported (the book's attention "
                               f"needs {supported})")
    return book_config(n_vocab, n_ctx, n_embd, n_head, n_layer, drop_rate)


def hparams_from_config(cfg: dict) -> dict:
    """The book's config -> OpenAI's hparams.json (key order as OpenAI wrote it)."""
    return {"n_vocab": cfg["vocab_size"], "n_ctx": cfg["context_length"], "n_embd": cfg["emb_dim"],
            "n_head": cfg["n_heads"], "n_layer": cfg["n_layers"]}


def hf_config_from_config(cfg: dict, tied: bool = True, eot_id: int = 50256) -> dict:
    """The book's config -> a config.json like transformers' GPT2Config.save_pretrained writes."""
    drop = float(cfg.get("drop_rate", 0.0))
    return {
        "activation_function": "gelu_new",
        "architectures": ["GPT2LMHeadModel"],
        "attn_pdrop": drop,
        "bos_token_id": eot_id,
        "embd_pdrop": drop,
        "eos_token_id": eot_id,
        "initializer_range": 0.02,
        "layer_norm_epsilon": 1e-05,
        "model_type": "gpt2",
        "n_ctx": cfg["context_length"],
        "n_embd": cfg["emb_dim"],
        "n_head": cfg["n_heads"],
        "n_inner": None,
        "n_layer": cfg["n_layers"],
        "n_positions": cfg["context_length"],
        "reorder_and_upcast_attn": False,
        "resid_pdrop": drop,
        "scale_attn_by_inverse_layer_idx": False,
        "scale_attn_weights": True,
        "summary_activation": None,
        "summary_first_dropout": 0.1,
        "summary_proj_to_labels": True,
        "summary_type": "cls_index",
        "summary_use_proj": True,
        "tie_word_embeddings": bool(tied),
        "torch_dtype": "float32",
        "use_cache": True,
        "vocab_size": cfg["vocab_size"],
    }
