"""What the model computes for one prompt, layer by layer: the numbers `gpt explain` draws.

    token ids (T,)
      -> embeddings x_0                                  residual stream (T, C)
      -> block l: a_l = att(norm1(x_l))                  attention weights (H, T, T) per layer
                  f_l = ff(norm2(x_l + a_l)), GELU inside  MLP activations (T, 4C)
                  x_{l+1} = x_l + a_l + f_l
      -> logit lens: out_head(final_norm(x_l)) at every l (nostalgebraist 2020, "interpreting
         GPT: the logit lens"); at l = n_layers this is the model's own logits.

Everything is read from ONE ordinary forward pass of the model (`model(ids)`, its own code and
numerics) through forward hooks (minigrad.nn.Module.register_forward_hook) on the embedding
dropout, each block, its attention, its MLP and the MLP's GELU; the hooks are removed after.
The attention weights are recomputed from the attention module's input and weights in plain
NumPy (the fused kernel `F.scaled_dot_product_attention` never materialises them):

    weights = softmax(q k^T / sqrt(D) + causal mask)          (H, T, T), rows sum to 1

tests/test_explain.py checks that weights @ v through out_proj reproduces the block's
attention output, and that the last lens equals `model(ids)`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from minigrad import Tensor, no_grad

from ..model.generate import generate


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


def top_ids(probs: np.ndarray, k: int) -> np.ndarray:
    """The k largest entries of each row of probs (T, V), most likely first (ties: lowest id)."""
    k = min(k, probs.shape[-1])
    candidates = np.argpartition(-probs, k - 1, axis=-1)[:, :k]  # (T, k), unordered
    order = np.lexsort((candidates, -np.take_along_axis(probs, candidates, axis=-1)), axis=-1)
    return np.take_along_axis(candidates, order, axis=-1)  # (T, k)


def capture_prompt(model, token_ids, lens_top: int = 5) -> PromptCapture:
    """Run `model` (a GPTModel) on one prompt (T,) and record its internals (no graph, eval mode).

    token_ids: T <= context_length ids (crop first). lens_top: ids kept per lens cell.
    """
    ids = model.check_token_ids(np.asarray(token_ids, dtype=np.int64).reshape(1, -1))  # (1, T)
    num_tokens = ids.shape[1]
    if num_tokens == 0:
        raise ValueError("explain: the prompt has no tokens")
    seen = {"states": [], "attention": [], "attention_outs": [], "mlp_outs": [], "activations": []}

    def keep(name, transform=lambda module, args, output: output.data[0]):
        return lambda module, args, output: seen[name].append(transform(module, args, output))

    handles = [model.drop_emb.register_forward_hook(keep("states"))]  # x_0 (T, C)
    for block in model.trf_blocks:
        handles += [
            block.att.register_forward_hook(keep(
                "attention", lambda module, args, output: attention_weights(module, args[0].data[0]))),
            block.att.register_forward_hook(keep("attention_outs")),  # a_l (T, C)
            block.ff.layers[1].register_forward_hook(keep("activations")),  # GELU outputs (T, 4C)
            block.ff.register_forward_hook(keep("mlp_outs")),  # f_l (T, C)
            block.register_forward_hook(keep("states")),  # x_{l+1} (T, C)
        ]
    was_training = model.training
    model.eval()
    try:
        with no_grad():
            logits = model(ids).data[0]  # (T, V): the model's own forward, once
            lens_ids, lens_probs, next_probs = [], [], []
            for index, state in enumerate(seen["states"]):
                last = index == len(seen["states"]) - 1
                probs = softmax(logits if last else lens_logits(model, state))  # (T, V) float64
                top = top_ids(probs, lens_top)  # (T, k)
                lens_ids.append(top)
                lens_probs.append(np.take_along_axis(probs, top, axis=-1))
                next_probs.append(probs[np.arange(num_tokens - 1), ids[0, 1:]])  # (T - 1,)
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return PromptCapture(
        token_ids=ids[0].astype(np.int64),
        attention=np.stack(seen["attention"]),
        residual_norms=np.linalg.norm(np.stack(seen["states"]), axis=-1),
        attention_norms=np.linalg.norm(np.stack(seen["attention_outs"]), axis=-1),
        mlp_norms=np.linalg.norm(np.stack(seen["mlp_outs"]), axis=-1),
        mlp_activations=seen["activations"],
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
    prompt_length, total = prompt.shape[1], prompt.shape[1] + max(max_new_tokens, 1) - 1
    model_was_training = model.training
    model.eval()
    try:
        with no_grad():
            # while the sequence fits the context, one pass gives every step's last-position logits
            # (causal: position t sees what generate's model saw at that step)
            one_pass = None
            if prompt_length <= context:
                hidden = model.hidden_states(token_ids[:, :min(total, context)])  # (1, n, C)
                one_pass = model.out_head(hidden[:, prompt_length - 1:]).data[0]  # (steps in it, V)
    finally:
        model.train(model_was_training)
    steps = []
    for index in range(max(max_new_tokens, 1)):
        length = prompt_length + index
        if length <= context:
            logits, seen = one_pass[index], length
        else:  # the window slid: run what generate ran
            window = token_ids[:, length - context:length]  # (1, context)
            logits, seen = model.next_token_logits(window)[0], context
        chosen = int(token_ids[0, length]) if index < max_new_tokens else None
        steps.append(GenerationStep(seen, logits, chosen))
    return steps
