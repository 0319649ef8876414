"""The benchmarked model configurations and nanoGPT's FLOP count.

Each entry: the book's seven config keys, plus the batch size of the training step. All use
the book's chapter-5 dropout rate of 0.1 (training runs dropout; generation and forward-only
runs are in eval mode) unless `--drop-rate` says otherwise.

    bench-tiny  vocab 256,    context 128, width 128, 4 heads,  4 layers, batch 16
    small  vocab 50,257, context 256, width 256, 4 heads,  4 layers, batch 8
    124m   GPT_CONFIG_124M with context 256 (the book's chapter 5 setting), batch 2
"""
from __future__ import annotations

DROP_RATE = 0.1  # the book's chapter 5 setting

CONFIGS = {
    "bench-tiny": dict(vocab_size=256, context_length=128, emb_dim=128, n_heads=4, n_layers=4, batch=16),
    "small": dict(vocab_size=50257, context_length=256, emb_dim=256, n_heads=4, n_layers=4, batch=8),
    "124m": dict(vocab_size=50257, context_length=256, emb_dim=768, n_heads=12, n_layers=12, batch=2),
}

GENERATION_TOKENS = 200  # new tokens per generation run (batch 1)
PROMPT_TOKENS = 4        # "Every effort moves you" is 4 GPT-2 tokens


def model_config(name: str, drop_rate: float = DROP_RATE) -> dict:
    """The book-style config dict of a benchmark config (without the batch size)."""
    spec = CONFIGS[name]
    return {
        "vocab_size": spec["vocab_size"],
        "context_length": spec["context_length"],
        "emb_dim": spec["emb_dim"],
        "n_heads": spec["n_heads"],
        "n_layers": spec["n_layers"],
        "drop_rate": float(drop_rate),
        "qkv_bias": False,
    }


def matmul_params(cfg: dict) -> int:
    """Weights that take part in matrix multiplies: per block W_query, W_key, W_value and
    out_proj (4 d^2) and the feed-forward (8 d^2); plus the output head (d * vocab).
    Embedding tables are lookups, not matmuls, and biases are not counted (nanoGPT)."""
    d = cfg["emb_dim"]
    return cfg["n_layers"] * 12 * d * d + d * cfg["vocab_size"]


def flops_per_step(cfg: dict, batch: int) -> float:
    """nanoGPT's training FLOPs of one step of `batch` full-context sequences:
    (6 N + 12 L T d) per token, with T = the context length."""
    tokens = batch * cfg["context_length"]
    per_token = 6.0 * matmul_params(cfg) + 12.0 * cfg["n_layers"] * cfg["context_length"] * cfg["emb_dim"]
    return per_token * tokens
