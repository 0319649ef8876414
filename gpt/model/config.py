"""Model configurations: the book's `GPT_CONFIG_124M` (chapter 4) and the four GPT-2 sizes
(chapter 5, section 5.5), plus validation and a parameter count computed from the shapes alone.

A configuration is a plain dict with the book's seven keys, so code and checkpoints from the
book carry over unchanged:

    cfg = {**GPT_CONFIG_124M, "context_length": 256}   # the chapter-5 training setting
    model = GPTModel(cfg)

The five sizes are required; the other keys are optional, with defaults (OPTIONAL_KEYS). A
model variant (rotary positions, grouped-query attention, RMSNorm, SwiGLU, ...) is one entry
there (its default keeps the book's model, so every config and checkpoint stays valid) and
the layer that reads `cfg[key]`.
"""
from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Callable

from minigrad.untrusted import short_repr

GPT_CONFIG_124M = {
    "vocab_size": 50257,     # Vocabulary size: GPT-2's byte-pair encoding (50,256 merges + <|endoftext|>)
    "context_length": 1024,  # Context length: the most tokens the model sees at once (positions)
    "emb_dim": 768,          # Embedding dimension: the width of every token's vector
    "n_heads": 12,           # Number of attention heads (emb_dim must divide evenly among them)
    "n_layers": 12,          # Number of transformer blocks
    "drop_rate": 0.1,        # Dropout rate (embeddings, attention weights, shortcut branches)
    "qkv_bias": False,       # Query-Key-Value bias: Linear layers of W_query/W_key/W_value have a bias
}

# The book's `model_configs` (chapter 5): what differs between the four GPT-2 sizes.
GPT2_MODEL_CONFIGS = {
    "gpt2-small (124M)": {"emb_dim": 768, "n_layers": 12, "n_heads": 12},
    "gpt2-medium (355M)": {"emb_dim": 1024, "n_layers": 24, "n_heads": 16},
    "gpt2-large (774M)": {"emb_dim": 1280, "n_layers": 36, "n_heads": 20},
    "gpt2-xl (1558M)": {"emb_dim": 1600, "n_layers": 48, "n_heads": 25},
}

# The book's `BASE_CONFIG` of chapters 6 and 7 (what OpenAI's weights need: 1,024 positions
# and biases on the query/key/value projections), without dropout.
GPT2_BASE_CONFIG = {
    "vocab_size": 50257,     # Vocabulary size
    "context_length": 1024,  # Context length
    "drop_rate": 0.0,        # Dropout rate
    "qkv_bias": True,        # Query-key-value bias
}

# Complete configurations for OpenAI's four GPT-2 models: BASE_CONFIG updated with the size.
GPT2_CONFIGS = {
    name: {
        "vocab_size": GPT2_BASE_CONFIG["vocab_size"],
        "context_length": GPT2_BASE_CONFIG["context_length"],
        **sizes,
        "drop_rate": GPT2_BASE_CONFIG["drop_rate"],
        "qkv_bias": GPT2_BASE_CONFIG["qkv_bias"],
    }
    for name, sizes in GPT2_MODEL_CONFIGS.items()
}

# ------------------------------------------------------------------------------ the keys
def _size(key: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"config: {key} must be an int, got {short_repr(value)} ({type(value).__name__})")
    if value <= 0:
        raise ValueError(f"config: {key} must be positive, got {value}")
    if value > SIZE_LIMITS[key]:  # a config read from a file must not allocate without bound
        raise ValueError(f"config: {key} is {value:,}, more than the limit of {SIZE_LIMITS[key]:,}")
    return int(value)


def _rate(key: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"config: {key} must be a number, got {short_repr(value)}")
    if not 0.0 <= float(value) < 1.0:
        raise ValueError(f"config: {key} must be in [0, 1), got {value}")
    return float(value)


def _flag(key: str, value) -> bool:
    if not isinstance(value, (bool, numbers.Integral)) or value not in (0, 1):
        raise TypeError(f"config: {key} must be True or False, got {short_repr(value)}")
    return bool(value)


@dataclass(frozen=True)
class OptionalKey:
    """An optional config key: its value when absent, and the check that cleans a given one."""

    default: object
    check: Callable  # (key, value) -> the clean value; TypeError/ValueError naming the key


# Keys every config must give: the sizes of the model.
REQUIRED_KEYS = ("vocab_size", "context_length", "emb_dim", "n_heads", "n_layers")

# Optional keys, with the default that gives the book's model. A variant adds its key here.
OPTIONAL_KEYS = {
    "drop_rate": OptionalKey(0.0, _rate),   # dropout (embeddings, attention weights, shortcuts)
    "qkv_bias": OptionalKey(False, _flag),  # biases on W_query/W_key/W_value (GPT-2 has them)
}

CONFIG_KEYS = REQUIRED_KEYS + tuple(OPTIONAL_KEYS)  # the order of a clean config

# Upper limits on each size (GPT-2 XL: vocabulary 50,257, context 1,024, width 1,600, 25 heads,
# 48 layers): a config read from a file cannot make the model allocate without bound.
SIZE_LIMITS = {"vocab_size": 1 << 22, "context_length": 1 << 20, "emb_dim": 1 << 16,
               "n_heads": 1 << 10, "n_layers": 1 << 10}


def validate_config(cfg) -> dict:
    """Check a model configuration and return a clean copy (Python ints, float, bool) with
    every key, the optional ones at their defaults when absent.

    Raises TypeError when `cfg` is not a dict or a value has the wrong type, and ValueError
    for unknown or missing required keys, non-positive sizes, a dropout rate outside [0, 1),
    and an `emb_dim` that the heads cannot share evenly.
    """
    if not isinstance(cfg, dict):
        raise TypeError(f"config: expected a dict with keys {list(REQUIRED_KEYS)} (and optionally "
                        f"{list(OPTIONAL_KEYS)}), got {type(cfg).__name__}")
    unknown = [key for key in cfg if key not in CONFIG_KEYS]
    if unknown:
        raise ValueError(f"config: unknown key(s) {short_repr(unknown)}; the keys are {list(CONFIG_KEYS)}")
    missing = [key for key in REQUIRED_KEYS if key not in cfg]
    if missing:
        raise ValueError(f"config: missing key(s) {missing}; the required keys are {list(REQUIRED_KEYS)}")

    clean = {key: _size(key, cfg[key]) for key in REQUIRED_KEYS}
    for key, option in OPTIONAL_KEYS.items():
        clean[key] = option.check(key, cfg[key]) if key in cfg else option.default
    if clean["emb_dim"] % clean["n_heads"] != 0:
        raise ValueError(
            f"config: emb_dim {clean['emb_dim']} is not divisible by n_heads {clean['n_heads']} "
            f"(each head gets emb_dim / n_heads features)"
        )
    return clean


def count_parameters(cfg, tied: bool = False) -> int:
    """The number of parameters of `GPTModel(cfg)`, from the shapes alone (nothing allocated).

    tied=True counts the output head once with the token embedding (GPT-2's weight tying).
    GPT_CONFIG_124M: 163,009,536 untied, 124,412,160 tied (the book's figures).
    """
    cfg = validate_config(cfg)
    vocab, context, width = cfg["vocab_size"], cfg["context_length"], cfg["emb_dim"]
    hidden = 4 * width  # FeedForward expansion
    attention = 3 * width * width + (3 * width if cfg["qkv_bias"] else 0) + width * width + width
    feed_forward = width * hidden + hidden + hidden * width + width
    norms = 2 * 2 * width  # norm1, norm2: scale and shift
    per_block = attention + feed_forward + norms
    embeddings = vocab * width + context * width
    head = 0 if tied else vocab * width  # out_head has no bias
    return embeddings + cfg["n_layers"] * per_block + 2 * width + head
