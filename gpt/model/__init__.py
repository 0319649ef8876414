"""Chapters 3 and 4: the GPT model, from token ids to logits, and generation.

    config.py       model configurations (the book's GPT_CONFIG_124M, GPT-2's sizes), validation
    attention.py    causal multi-head self-attention and the key/value cache
    gpt_model.py    GPTModel: embeddings, transformer blocks, the output head
    generate.py     greedy and sampled decoding with the KV cache
    utils.py        text <-> token id batches, the parameter and memory summary
"""
from .config import GPT_CONFIG_124M, GPT2_CONFIGS, GPT2_MODEL_CONFIGS, count_parameters, validate_config
from .attention import KVCache, MultiHeadAttention
from .gpt_model import FeedForward, GELU, GPTModel, LayerNorm, TransformerBlock
from .generate import generate, sample_next_token, top_k_filter, top_p_filter
from .utils import model_summary, print_model_summary, text_to_token_ids, token_ids_to_text

__all__ = [
    "GPT_CONFIG_124M", "GPT2_CONFIGS", "GPT2_MODEL_CONFIGS", "count_parameters", "validate_config",
    "KVCache", "MultiHeadAttention", "FeedForward", "GELU", "GPTModel", "LayerNorm",
    "TransformerBlock", "generate", "sample_next_token", "top_k_filter", "top_p_filter",
    "model_summary", "print_model_summary", "text_to_token_ids", "token_ids_to_text",
]
