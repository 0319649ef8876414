"""Model configurations: the book's `GPT_CONFIG_124M` (chapter 4) and the four GPT-2 sizes
(chapter 5, section 5.5), plus validation and a parameter count computed from the shapes alone.

A configuration is a plain dict with exactly the book's seven keys, so code and checkpoints
from the book carry over unchanged:

    cfg = {**GPT_CONFIG_124M, "context_length": 256}   # the chapter-5 training setting
    model = GPTModel(cfg)
"""
from __future__ import annotations

import numbers

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

CONFIG_KEYS = tuple(GPT_CONFIG_124M)


def validate_config(cfg) -> dict:
    """Check a model configuration and return a clean copy (Python ints, float, bool).

    Raises TypeError when `cfg` is not a dict or a value has the wrong type, and ValueError
    for unknown or missing keys, non-positive sizes, a dropout rate outside [0, 1), and an
    `emb_dim` that the heads cannot share evenly.
    """
    if not isinstance(cfg, dict):
        raise TypeError(f"config: expected a dict with keys {list(CONFIG_KEYS)}, got {type(cfg).__name__}")
    unknown = [key for key in cfg if key not in CONFIG_KEYS]
    if unknown:
        raise ValueError(f"config: unknown key(s) {unknown}; the keys are {list(CONFIG_KEYS)}")
    missing = [key for key in CONFIG_KEYS if key not in cfg]
    if missing:
        raise ValueError(f"config: missing key(s) {missing}; the keys are {list(CONFIG_KEYS)}")

    clean = {}
    for key in ("vocab_size", "context_length", "emb_dim", "n_heads", "n_layers"):
        value = cfg[key]
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise TypeError(f"config: {key} must be an int, got {value!r} ({type(value).__name__})")
        if value <= 0:
            raise ValueError(f"config: {key} must be positive, got {value}")
        clean[key] = int(value)
    drop_rate = cfg["drop_rate"]
    if isinstance(drop_rate, bool) or not isinstance(drop_rate, numbers.Real):
        raise TypeError(f"config: drop_rate must be a number, got {drop_rate!r}")
    if not 0.0 <= float(drop_rate) < 1.0:
        raise ValueError(f"config: drop_rate must be in [0, 1), got {drop_rate}")
    clean["drop_rate"] = float(drop_rate)
    qkv_bias = cfg["qkv_bias"]
    if not isinstance(qkv_bias, (bool, numbers.Integral)) or qkv_bias not in (0, 1):
        raise TypeError(f"config: qkv_bias must be True or False, got {qkv_bias!r}")
    clean["qkv_bias"] = bool(qkv_bias)
    if clean["emb_dim"] % clean["n_heads"] != 0:
        raise ValueError(
            f"config: emb_dim {clean['emb_dim']} is not divisible by n_heads {clean['n_heads']} "
            f"(each head gets emb_dim / n_heads features)"
        )
    return {key: clean[key] for key in CONFIG_KEYS}


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
