"""Chapter 3 of the book, "Coding attention mechanisms", with minigrad instead of PyTorch.

    python examples/ch03_attention.py

3.3 self-attention without trainable weights: scores, softmax, context vectors
3.4 self-attention with trainable weights W_query, W_key, W_value, scaled by sqrt(d_k)
3.5 causal attention: hiding future tokens with a mask, dropout on the attention weights
3.6 multi-head attention: a wrapper over single heads, then the efficient version with the
    heads split out of one projection (gpt.MultiHeadAttention), which runs the whole of
    softmax(q k^T / sqrt(d)) v in one fused kernel; we check it against the step-by-step math,
    and show the key/value cache that generation uses.

Every step prints what the book prints (values differ where the book's come from torch's
random generator).
"""
from __future__ import annotations

import math

import numpy as np

import minigrad as mg
from minigrad import Tensor, nn
from gpt import KVCache, MultiHeadAttention

np.set_printoptions(precision=4, suppress=True)


def softmax(x: Tensor, axis: int = -1) -> Tensor:
    """Softmax from core ops (shifting by the max keeps exp from overflowing)."""
    shifted = x - x.max(axis=axis, keepdims=True).detach()
    exp = shifted.exp()
    return exp / exp.sum(axis=axis, keepdims=True)


# ----------------------------------------------------------------------------------------------
print("3.3.1 A simple self-attention mechanism without trainable weights")
inputs = Tensor(
    [[0.43, 0.15, 0.89],  # Your     (x^1)
     [0.55, 0.87, 0.66],  # journey  (x^2)
     [0.57, 0.85, 0.64],  # starts   (x^3)
     [0.22, 0.58, 0.33],  # with     (x^4)
     [0.77, 0.25, 0.10],  # one      (x^5)
     [0.05, 0.80, 0.55]]  # step     (x^6)
)  # (6, 3): six tokens, each a 3-dimensional embedding

query = inputs[1]  # the second token, "journey", is the query
attn_scores_2 = inputs @ query  # (6,): dot product of every token with the query
print("attention scores of x^2:", attn_scores_2.numpy())
attn_weights_2_naive = attn_scores_2 / attn_scores_2.sum()
print("normalized by the sum:  ", attn_weights_2_naive.numpy(), "sum:", attn_weights_2_naive.sum().item())
attn_weights_2 = softmax(attn_scores_2, axis=0)
print("softmax weights:        ", attn_weights_2.numpy(), "sum:", round(attn_weights_2.sum().item(), 6))
context_vec_2 = attn_weights_2 @ inputs  # (3,): the weighted sum of all inputs
print("context vector z^2:     ", context_vec_2.numpy())

print("\n3.3.2 Attention weights for all inputs")
attn_scores = inputs @ inputs.T  # (6, 6): every query against every key
attn_weights = softmax(attn_scores, axis=-1)  # each row sums to 1
print(attn_weights.numpy())
print("row sums:", attn_weights.sum(axis=-1).numpy())
all_context_vecs = attn_weights @ inputs  # (6, 3)
print("all context vectors:\n", all_context_vecs.numpy())
assert np.allclose(all_context_vecs.numpy()[1], context_vec_2.numpy())

# ----------------------------------------------------------------------------------------------
print("\n3.4 Self-attention with trainable weights (scaled dot-product attention)")
mg.manual_seed(123)
d_in, d_out = inputs.shape[1], 2
generator = mg.random.default_generator()
W_query = nn.Parameter(generator.random((d_in, d_out), dtype=np.float32), requires_grad=False)
W_key = nn.Parameter(generator.random((d_in, d_out), dtype=np.float32), requires_grad=False)
W_value = nn.Parameter(generator.random((d_in, d_out), dtype=np.float32), requires_grad=False)
query_2 = inputs[1] @ W_query  # (2,)
keys = inputs @ W_key  # (6, 2)
values = inputs @ W_value  # (6, 2)
attn_scores_2 = keys @ query_2  # (6,)
d_k = keys.shape[-1]
attn_weights_2 = softmax(attn_scores_2 / math.sqrt(d_k), axis=0)  # scaling keeps softmax from saturating
print("query q^2:", query_2.numpy(), " weights:", attn_weights_2.numpy())
print("context vector z^2:", (attn_weights_2 @ values).numpy())


class SelfAttention(nn.Module):
    """Self-attention with Linear projections (the book's SelfAttention_v2)."""

    def __init__(self, d_in, d_out, qkv_bias=False):
        super().__init__()
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)

    def forward(self, x):
        keys, queries, values = self.W_key(x), self.W_query(x), self.W_value(x)  # (T, d_out)
        attn_scores = queries @ keys.T  # (T, T)
        attn_weights = softmax(attn_scores / math.sqrt(keys.shape[-1]), axis=-1)
        return attn_weights @ values  # (T, d_out)


mg.manual_seed(789)
sa = SelfAttention(d_in, d_out)
print("SelfAttention output:\n", sa(inputs).numpy())

# ----------------------------------------------------------------------------------------------
print("\n3.5 Hiding future words with causal attention")
queries, keys = sa.W_query(inputs), sa.W_key(inputs)
attn_scores = queries @ keys.T  # (6, 6)
context_length = attn_scores.shape[0]
mask = np.triu(np.ones((context_length, context_length), dtype=bool), k=1)  # True above the diagonal
masked = attn_scores.masked_fill(mask, -np.inf)  # a future token gets -inf, so weight exp(-inf) = 0
attn_weights = softmax(masked / math.sqrt(keys.shape[-1]), axis=-1)
print("causal attention weights (zero above the diagonal, rows sum to 1):\n", attn_weights.numpy())

mg.manual_seed(123)
dropout = nn.Dropout(0.5)  # in training, drop half the weights and double the rest
print("dropout on the weights (training mode):\n", dropout(attn_weights).numpy())


class CausalAttention(nn.Module):
    """One causal head over a batch (B, T, d_in) -> (B, T, d_out), step by step."""

    def __init__(self, d_in, d_out, context_length, dropout, qkv_bias=False):
        super().__init__()
        self.d_out = d_out
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.dropout = nn.Dropout(dropout)
        self.register_buffer("mask", np.triu(np.ones((context_length, context_length), dtype=bool), k=1))

    def forward(self, x):
        b, num_tokens, d_in = x.shape
        keys, queries, values = self.W_key(x), self.W_query(x), self.W_value(x)  # (B, T, d_out)
        attn_scores = queries @ keys.transpose(1, 2)  # (B, T, T)
        attn_scores = attn_scores.masked_fill(self.mask[:num_tokens, :num_tokens], -np.inf)
        attn_weights = softmax(attn_scores / math.sqrt(keys.shape[-1]), axis=-1)
        attn_weights = self.dropout(attn_weights)
        return attn_weights @ values  # (B, T, d_out)


batch = mg.stack([inputs, inputs], axis=0)  # (2, 6, 3): two inputs of six tokens
mg.manual_seed(123)
ca = CausalAttention(d_in, d_out, batch.shape[1], 0.0)
print("CausalAttention on a batch:", ca(batch).shape)

# ----------------------------------------------------------------------------------------------
print("\n3.6.1 Stacking single-head attention layers")


class MultiHeadAttentionWrapper(nn.Module):
    """num_heads independent CausalAttention heads, outputs concatenated: (B, T, num_heads * d_out)."""

    def __init__(self, d_in, d_out, context_length, dropout, num_heads, qkv_bias=False):
        super().__init__()
        self.heads = nn.ModuleList(
            [CausalAttention(d_in, d_out, context_length, dropout, qkv_bias) for _ in range(num_heads)]
        )

    def forward(self, x):
        return mg.concat([head(x) for head in self.heads], axis=-1)


mg.manual_seed(123)
mha_wrapper = MultiHeadAttentionWrapper(d_in, 2, batch.shape[1], 0.0, num_heads=2)
context_vecs = mha_wrapper(batch)
print(context_vecs.numpy()[0])
print("context_vecs.shape:", context_vecs.shape)

print("\n3.6.2 Multi-head attention with weight splits (gpt.MultiHeadAttention)")
mg.manual_seed(123)
mha = MultiHeadAttention(d_in, d_out=2, context_length=batch.shape[1], dropout=0.0, num_heads=2)
context_vecs = mha(batch)  # one fused attention kernel for every head at once
print(context_vecs.numpy()[0])
print("context_vecs.shape:", context_vecs.shape)

# The same computation step by step: project, split the heads, attend, merge the heads.
b, num_tokens, _ = batch.shape
split = (b, num_tokens, mha.num_heads, mha.head_dim)
queries = mha.W_query(batch).view(split).transpose(1, 2)  # (B, H, T, D)
keys = mha.W_key(batch).view(split).transpose(1, 2)  # (B, H, T, D)
values = mha.W_value(batch).view(split).transpose(1, 2)  # (B, H, T, D)
attn_scores = queries @ keys.transpose(2, 3)  # (B, H, T, T)
attn_scores = attn_scores.masked_fill(np.triu(np.ones((num_tokens, num_tokens), dtype=bool), k=1), -np.inf)
attn_weights = softmax(attn_scores / math.sqrt(mha.head_dim), axis=-1)
context = (attn_weights @ values).transpose(1, 2).reshape(b, num_tokens, mha.d_out)  # (B, T, d_out)
step_by_step = mha.out_proj(context)
difference = np.abs(step_by_step.numpy() - context_vecs.numpy()).max()
print(f"fused kernel vs step by step: max difference {difference:.2e}")
assert difference < 1e-5

# Gradients flow through the fused kernel like through the step-by-step graph.
batch_grad = Tensor(batch.numpy(), requires_grad=True)
mha(batch_grad).sum().backward()
print("d(sum of outputs)/d(inputs) for the first token:", batch_grad.grad[0, 0])

print("\nBonus: the key/value cache used for generation")
# A new token only needs its own query; the keys and values of earlier tokens do not change
# (a token never attends to later ones), so they can be kept and reused.
heads, head_dim = mha.num_heads, mha.head_dim
cache = KVCache(n_layers=1, batch_size=2, n_heads=heads, max_length=6, head_dim=head_dim)
with mg.no_grad():
    first = mha(batch[:, :4], kv_cache=cache.layers[0])  # four tokens at once
    fifth = mha(batch[:, 4:5], kv_cache=cache.layers[0])  # then one at a time
    sixth = mha(batch[:, 5:6], kv_cache=cache.layers[0])
cached = np.concatenate([first.numpy(), fifth.numpy(), sixth.numpy()], axis=1)
print(f"cached positions: {cache.length}; cached vs all at once: max difference "
      f"{np.abs(cached - context_vecs.numpy()).max():.2e}")
assert np.allclose(cached, context_vecs.numpy(), atol=1e-6)
