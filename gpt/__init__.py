"""gpt: a GPT built on minigrad, following 'Build a Large Language Model (From Scratch)'."""

# model (issue 5): configs, the GPT model, KV cache, generation, helpers
from .config import GPT_CONFIG_124M, GPT2_CONFIGS, GPT2_MODEL_CONFIGS, count_parameters, validate_config
from .attention import KVCache, MultiHeadAttention
from .model import FeedForward, GELU, GPTModel, LayerNorm, TransformerBlock
from .generate import generate, sample_next_token, top_k_filter, top_p_filter
from .utils import model_summary, print_model_summary, text_to_token_ids, token_ids_to_text
