"""Causal multi-head self-attention (the book's chapter 3, section 3.6) and the key/value
cache that makes generation cost one position per new token.

Attention of one head, for queries Q (T, D), keys K and values V (Tk, D):

    context = softmax(Q K^T / sqrt(D) + causal mask) V            (Vaswani et al. 2017, eq. 1)

The book computes the scores, masks them with a registered `mask` buffer, applies softmax and
dropout, and multiplies by the values, one op at a time. Here the same math runs in one fused
kernel, `F.scaled_dot_product_attention`, whose hand-written backward is in
minigrad/nn/functional/attention.py; while W_query, W_key and W_value are the plain nn.Linear
with no hooks, the three projections run with it as one node (`F.qkv_attention`, the same
numbers: one parallel region for the three products each way). `examples/ch03_attention.py`
walks through the unfused version.
There is no `mask` buffer (the kernel knows the causal pattern), so the state dict holds only
the four Linear layers, exactly the keys of the book's checkpoints minus `att.mask`.
"""
from __future__ import annotations

import numpy as np

from minigrad import Tensor, nn
from minigrad.nn import functional as F

from .utils import has_hooks


class MultiHeadAttention(nn.Module):
    """Causal self-attention with `num_heads` heads of `d_out // num_heads` features each.

    Parameters (names as in the book): W_query, W_key, W_value (Linear d_in -> d_out, bias if
    qkv_bias), out_proj (Linear d_out -> d_out, with bias). `dropout` is applied to the
    attention weights in training mode.

    forward(x (B, T, d_in), kv_cache=None) -> (B, T, d_out). With a `LayerKVCache` the keys
    and values of the T new tokens are appended to the cache and the queries attend to every
    cached position (inference only: the cached keys carry no graph).
    """

    def __init__(self, d_in: int, d_out: int, context_length: int, dropout: float, num_heads: int,
                 qkv_bias: bool = False, dtype=np.float32, generator=None):
        super().__init__()
        if d_out % num_heads != 0:
            raise ValueError(f"MultiHeadAttention: d_out {d_out} is not divisible by num_heads {num_heads}")
        self.d_out = d_out
        self.num_heads = num_heads
        self.head_dim = d_out // num_heads  # reduce the projection dim to match the desired output dim
        self.context_length = context_length
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias, dtype=dtype, generator=generator)
        self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias, dtype=dtype, generator=generator)
        self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias, dtype=dtype, generator=generator)
        self.out_proj = nn.Linear(d_out, d_out, dtype=dtype, generator=generator)  # combines head outputs
        self.dropout = nn.Dropout(dropout, generator=generator)  # on the attention weights

    def forward(self, x: Tensor, kv_cache: "LayerKVCache | None" = None) -> Tensor:
        return self.out_proj(self.context(x, kv_cache))  # (B, T, d_out)

    def last_linear(self):
        """out_proj, the last op of forward, while it and this module are the plain ones with
        no hooks (then a caller may run out_proj(context(x)) itself, fused with what follows:
        gpt's TransformerBlock does, with its dropout and shortcut), else None."""
        plain = type(self) is MultiHeadAttention and type(self.out_proj) is nn.Linear
        return self.out_proj if plain and not has_hooks(self) and not has_hooks(self.out_proj) else None

    def _plain_projections(self):
        """(W_query, W_key, W_value) while they are the book's nn.Linear with no hooks (then
        `context` runs them with the attention as one node, F.qkv_attention: the same numbers),
        else None."""
        layers = (self.W_query, self.W_key, self.W_value)
        if all(type(layer) is nn.Linear and not has_hooks(layer) for layer in layers):
            return layers
        return None

    def context(self, x: Tensor, kv_cache: "LayerKVCache | None" = None) -> Tensor:
        """The heads' outputs merged, (B, T, d_out): forward without the final out_proj."""
        batch_size, num_tokens, _ = x.shape
        if kv_cache is None and num_tokens > self.context_length:
            raise ValueError(
                f"MultiHeadAttention: sequence of length {num_tokens} exceeds the context length {self.context_length}"
            )
        dropout_p = self.dropout.p if self.training else 0.0
        projections = self._plain_projections()
        if kv_cache is None and projections is not None:  # all of the below as one node
            weights, biases = [w.weight for w in projections], [w.bias for w in projections]
            return F.qkv_attention(x, *weights, *biases, n_heads=self.num_heads, dropout_p=dropout_p,
                                   generator=self.dropout.generator)  # (B, T, d_out)
        queries = self.W_query(x)  # (B, T, d_out)
        keys = self.W_key(x)  # (B, T, d_out)
        values = self.W_value(x)  # (B, T, d_out)

        # split the last dimension into heads and put the head axis first: (B, H, T, D)
        split = (batch_size, num_tokens, self.num_heads, self.head_dim)
        queries = queries.view(split).transpose(1, 2)  # (B, H, T, D)
        keys = keys.view(split).transpose(1, 2)  # (B, H, T, D)
        values = values.view(split).transpose(1, 2)  # (B, H, T, D)

        if kv_cache is not None:  # attend to every cached position too: keys (B, H, Tk, D)
            keys, values = kv_cache.append(keys.data, values.data)
            keys, values = Tensor(keys), Tensor(values)

        # softmax(q k^T / sqrt(D), causal, aligned so the last query sees the last key) @ v:
        # with a cache the T new queries are the last of Tk positions (bottom-right alignment)
        n_queries, n_keys = queries.shape[-2], keys.shape[-2]
        mask = F.causal_lower_right(n_queries, n_keys) if 1 < n_queries < n_keys else None
        context = F.scaled_dot_product_attention(
            queries, keys, values, attn_mask=mask, is_causal=n_queries == n_keys,
            dropout_p=dropout_p, generator=self.dropout.generator
        )  # (B, H, T, D)
        return context.transpose(1, 2).reshape(batch_size, num_tokens, self.d_out)  # (B, T, d_out)


class LayerKVCache:
    """The keys and values one attention layer has seen, in preallocated arrays.

    keys, values: (B, H, max_length, D) arrays, filled from position 0 to `length`; new
    entries are written in place (no concatenation per step).
    """

    def __init__(self, batch_size: int, n_heads: int, max_length: int, head_dim: int, dtype=np.float32):
        shape = (batch_size, n_heads, max_length, head_dim)
        self.keys = np.empty(shape, dtype=dtype)
        self.values = np.empty(shape, dtype=dtype)
        self.length = 0

    @property
    def max_length(self) -> int:
        return self.keys.shape[2]

    def append(self, keys: np.ndarray, values: np.ndarray):
        """Store keys/values (B, H, T, D) of T new positions; return all (B, H, length, D)."""
        if keys.shape[:2] != self.keys.shape[:2] or keys.shape[3] != self.keys.shape[3]:
            raise ValueError(
                f"KV cache: new keys of shape {keys.shape} do not fit a cache of shape "
                f"{self.keys.shape} (batch, heads, positions, head_dim)"
            )
        end = self.length + keys.shape[2]
        if end > self.max_length:
            raise ValueError(
                f"KV cache: cannot add {keys.shape[2]} positions to {self.length} cached ones, "
                f"the cache holds only {self.max_length} (reset it and re-run the cropped context)"
            )
        self.keys[:, :, self.length:end] = keys
        self.values[:, :, self.length:end] = values
        self.length = end
        return self.keys[:, :, :end], self.values[:, :, :end]  # (B, H, length, D) views


class KVCache:
    """A key/value cache for every layer of a GPTModel, used by `model(idx, cache=...)`.

        cache = KVCache.for_model(model, batch_size=1)
        logits = model(prompt_ids, cache=cache)      # fills positions 0 .. T-1
        logits = model(next_ids, cache=cache)        # (B, 1): position T, attends to all T+1

    The positions are absolute: token i of the cache sits at position `i` of the position
    embedding. When the context is full and the window has to slide, every position changes,
    so the cache cannot be shifted: `reset()` it and run the cropped context again.
    """

    def __init__(self, n_layers: int, batch_size: int, n_heads: int, max_length: int, head_dim: int,
                 dtype=np.float32):
        self.layers = [LayerKVCache(batch_size, n_heads, max_length, head_dim, dtype) for _ in range(n_layers)]

    @classmethod
    def for_model(cls, model, batch_size: int, max_length: int | None = None) -> "KVCache":
        """A cache sized for `model` (a GPTModel): up to its context length positions."""
        cfg = model.cfg
        context_length = cfg["context_length"]
        max_length = context_length if max_length is None else min(int(max_length), context_length)
        return cls(cfg["n_layers"], batch_size, cfg["n_heads"], max_length,
                   cfg["emb_dim"] // cfg["n_heads"], model.dtype)

    @property
    def length(self) -> int:
        """Positions already cached (the absolute position of the next token)."""
        return self.layers[0].length if self.layers else 0

    @property
    def max_length(self) -> int:
        return self.layers[0].max_length

    @property
    def batch_size(self) -> int:
        return self.layers[0].keys.shape[0]

    def reset(self) -> None:
        """Forget every cached position (the arrays are kept and overwritten)."""
        for layer in self.layers:
            layer.length = 0

    def nbytes(self) -> int:
        return sum(layer.keys.nbytes + layer.values.nbytes for layer in self.layers)
