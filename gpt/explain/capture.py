"""What the model computes for one prompt, layer by layer: the numbers `gpt explain` draws.

    token ids (T,)
      -> embeddings x_0                                  residual stream (T, C)
      -> block l: a_l = att(norm1(x_l))                  attention weights (H, T, T) per layer
                  m_l = x_l + a_l
                  f_l = ff(norm2(m_l)), GELU inside      MLP activations (T, 4C)
                  x_{l+1} = block(x_l) = m_l + f_l
      -> logit lens: out_head(final_norm(x_l)) at every l (nostalgebraist 2020, "interpreting
         GPT: the logit lens"); at l = n_layers this is the model's own logits.

The residual stream is always the block's own output (`block(x)`, the model's numerics, no
copy of its code); the pieces inside a block are recomputed beside it from the same input
with the block's own modules, and the attention weights from the block's weights in plain
NumPy (the kernel `F.scaled_dot_product_attention` never materialises them):

    weights = softmax(q k^T / sqrt(D) + causal mask)          (H, T, T), rows sum to 1

tests/test_explain.py checks that weights @ v through out_proj reproduces the block's
attention output, and that the last lens equals `model(ids)`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from minigrad import Tensor, no_grad

from .. import generate


@dataclass
class PromptCapture:
    """Everything captured for one prompt of T tokens through a model of L blocks, H heads."""

    token_ids: np.ndarray          # (T,) int64
    attention: np.ndarray          # (L, H, T, T) float32, row q: weights over keys 0..q
    residual_norms: np.ndarray     # (L + 1, T) L2 norm of the residual stream x_l
    attention_norms: np.ndarray    # (L, T) L2 norm of each block's attention output a_l
    mlp_norms: np.ndarray          # (L, T) L2 norm of each block's MLP output f_l
    mlp_activations: list          # L arrays (T, 4C) float32: GELU outputs inside the MLP
    lens_ids: np.ndarray           # (L + 1, T, k) int64: top-k ids of the lens, most likely first
    lens_probs: np.ndarray         # (L + 1, T, k) float64: their probabilities
    lens_next_probs: np.ndarray    # (L + 1, T - 1): probability of the prompt's actual next token
    logits: np.ndarray             # (T, V) float32: the final lens = the model's logits


def softmax(logits: np.ndarray) -> np.ndarray:
    """Softmax over the last axis in float64 (V up to 50,257: no overflow after the shift)."""
    shifted = logits.astype(np.float64) - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


def _linear(layer, x: np.ndarray) -> np.ndarray:
    """x @ W^T + b with a minigrad Linear's arrays (W is (out, in))."""
    out = x @ layer.weight.data.T
    return out if layer.bias is None else out + layer.bias.data


def attention_weights(att, x: np.ndarray) -> np.ndarray:
    """Causal attention weights (H, T, T) of a MultiHeadAttention for its input x (T, d_in).

    The same math as the fused kernel: scores q k^T / sqrt(D), future keys masked, softmax.
    """
    num_tokens = x.shape[0]
    heads, head_dim = att.num_heads, att.head_dim
    queries = _linear(att.W_query, x).reshape(num_tokens, heads, head_dim).transpose(1, 0, 2)  # (H, T, D)
    keys = _linear(att.W_key, x).reshape(num_tokens, heads, head_dim).transpose(1, 0, 2)  # (H, T, D)
    scores = queries @ keys.transpose(0, 2, 1) / np.sqrt(head_dim)  # (H, T, T)
    future = np.triu(np.ones((num_tokens, num_tokens), dtype=bool), k=1)  # (T, T) key after query
    scores = np.where(future, -np.inf, scores.astype(np.float64))
    return softmax(scores).astype(np.float32)  # (H, T, T)


def lens_logits(model, states: np.ndarray) -> np.ndarray:
    """out_head(final_norm(states)) for residual states (T, C): logits (T, V) of the model's dtype."""
    return model.out_head(model.final_norm(Tensor(states[None]))).data[0]  # (T, V)


def capture_prompt(model, token_ids, lens_top: int = 5) -> PromptCapture:
    """Run `model` (a GPTModel) on one prompt (T,) and record its internals (no graph, eval mode).

    token_ids: T <= context_length ids (crop first). lens_top: ids kept per lens cell.
    """
    ids = model.check_token_ids(np.asarray(token_ids, dtype=np.int64).reshape(1, -1))  # (1, T)
    num_tokens = ids.shape[1]
    if num_tokens == 0:
        raise ValueError("explain: the prompt has no tokens")
    was_training = model.training
    model.eval()
    try:
        with no_grad():
            x = model.drop_emb(model.tok_emb(ids) + model.pos_emb(np.arange(num_tokens)))  # (1, T, C)
            states, attention, attention_outs, mlp_outs, activations = [x.data[0]], [], [], [], []
            for block in model.trf_blocks:
                normed = block.norm1(x)  # (1, T, C)
                attention.append(attention_weights(block.att, normed.data[0]))  # (H, T, T)
                attention_out = block.att(normed)  # (1, T, C)
                middle = x + attention_out  # (1, T, C)
                linear_in, gelu, linear_out = block.ff.layers
                activation = gelu(linear_in(block.norm2(middle)))  # (1, T, 4C)
                x = block(x)  # the model's own residual stream x_{l+1} (1, T, C)
                attention_outs.append(attention_out.data[0])
                mlp_outs.append(x.data[0] - middle.data[0])  # f_l = x_{l+1} - m_l
                activations.append(activation.data[0])
                states.append(x.data[0])
            lens_ids, lens_probs, next_probs = [], [], []
            for state in states:
                logits = lens_logits(model, state)  # (T, V)
                probs = softmax(logits)  # (T, V) float64
                top = np.argsort(-probs, axis=-1, kind="stable")[:, :lens_top]  # (T, k)
                lens_ids.append(top)
                lens_probs.append(np.take_along_axis(probs, top, axis=-1))
                next_probs.append(probs[np.arange(num_tokens - 1), ids[0, 1:]])  # (T - 1,)
    finally:
        model.train(was_training)
    return PromptCapture(
        token_ids=ids[0].astype(np.int64),
        attention=np.stack(attention),
        residual_norms=np.linalg.norm(np.stack(states), axis=-1),
        attention_norms=np.linalg.norm(np.stack(attention_outs), axis=-1),
        mlp_norms=np.linalg.norm(np.stack(mlp_outs), axis=-1),
        mlp_activations=activations,
        lens_ids=np.stack(lens_ids).astype(np.int64),
        lens_probs=np.stack(lens_probs),
        lens_next_probs=np.stack(next_probs),
        logits=logits,
    )


@dataclass
class GenerationStep:
    """One step of generation: the logits at the last position and the id that was picked."""

    context_length: int            # tokens the model saw at this step
    logits: np.ndarray             # (V,) float32
    chosen_id: int | None          # None for the step after the last generated token


def generation_steps(model, prompt_ids, max_new_tokens: int, temperature: float = 0.0,
                     top_k: int | None = None, top_p: float | None = None,
                     seed: int | None = None) -> list[GenerationStep]:
    """`gpt.generate`'s ids for `prompt_ids` (T,), with the distribution each was drawn from.

    The ids come from `gpt.generate` itself (same arguments as `gpt generate`: same seed, same
    text). With max_new_tokens 0 the one step is the distribution after the prompt.
    """
    prompt = np.asarray(prompt_ids, dtype=np.int64).reshape(1, -1)  # (1, T)
    context = model.cfg["context_length"]
    token_ids = generate(model, prompt, max_new_tokens, context_size=context, temperature=temperature,
                         top_k=top_k, top_p=top_p, seed=seed)  # (1, T + N)
    steps = []
    for index in range(max(max_new_tokens, 1)):
        length = prompt.shape[1] + index
        window = token_ids[:, max(0, length - context):length]  # what generate's model saw
        logits = model.next_token_logits(window)[0]  # (V,)
        chosen = int(token_ids[0, length]) if index < max_new_tokens else None
        steps.append(GenerationStep(window.shape[1], logits, chosen))
    return steps
