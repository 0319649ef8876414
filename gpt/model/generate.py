"""Text generation (the book's chapters 4.7 and 5.3): greedy decoding, temperature, top-k and
nucleus (top-p) sampling, stopping at an end-of-text id, with a key/value cache.

One step: run the model on the (cropped) context, take the logits of the last position,
pick the next id, append it. With `use_cache=True` the keys and values of earlier positions
are kept (gpt.model.attention.KVCache), so a step runs the model on one new token instead of the
whole context; the result is the same ids as without the cache.

Sampling follows the usual order (as Hugging Face's `generate` does): logits / temperature,
then keep the `top_k` largest logits (ties with the k-th are kept, as in the book), then keep
the smallest set of most likely ids whose probability adds up to `top_p` (Holtzman et al.
2019), softmax, draw.
"""
from __future__ import annotations

import numbers

import numpy as np

from minigrad import Tensor

from .attention import KVCache


def top_k_filter(logits: np.ndarray, top_k: int) -> np.ndarray:
    """Set every logit below the k-th largest of its row to -inf (ties with it survive).

    logits: (B, V). Returns a new array; top_k >= V keeps everything.
    """
    vocab_size = logits.shape[-1]
    if top_k >= vocab_size:
        return logits.copy()
    kth_largest = np.partition(logits, vocab_size - top_k, axis=-1)[:, vocab_size - top_k]  # (B,)
    return np.where(logits < kth_largest[:, None], -np.inf, logits)  # (B, V)


def top_p_filter(logits: np.ndarray, top_p: float) -> np.ndarray:
    """Keep, per row, the most likely ids until their probabilities add up to `top_p`.

    An id survives when the probability mass of the ids ranked above it is below top_p,
    so the most likely id always survives and top_p=1 keeps every id. logits: (B, V).
    """
    if top_p >= 1.0:
        return logits.copy()
    probs = softmax(logits)  # (B, V) float64
    order = np.argsort(-probs, axis=-1, kind="stable")  # (B, V) most likely first
    sorted_probs = np.take_along_axis(probs, order, axis=-1)  # (B, V)
    mass_before = np.cumsum(sorted_probs, axis=-1) - sorted_probs  # (B, V) mass ranked above
    remove_sorted = mass_before >= top_p  # (B, V)
    remove = np.empty_like(remove_sorted)
    np.put_along_axis(remove, order, remove_sorted, axis=-1)  # back to vocabulary order
    return np.where(remove, -np.inf, logits)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row softmax in float64 (only ever used on the (B, V) logits of the last position)."""
    logits = logits.astype(np.float64)
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


def sample_next_token(logits: np.ndarray, temperature: float = 0.0, top_k: int | None = None,
                      top_p: float | None = None, rng: np.random.Generator | None = None) -> np.ndarray:
    """Pick one id per row from logits (B, V): argmax at temperature 0, else a draw.

    Greedy ties go to the lowest id. A filtered id has probability exactly 0 and is never
    drawn: the draw inverts the cumulative distribution, and a zero-probability id owns an
    empty interval of it. Returns int64 (B,).
    """
    if not np.isfinite(logits).all():  # NaN weights would make every token "the most likely"
        raise ValueError(f"generate: the model's logits hold NaN or infinity "
                         f"({int(np.isnan(logits).sum())} NaN of {logits.size}); its weights are not "
                         f"finite (a diverged run?), so there is nothing meaningful to sample")
    if temperature == 0.0:
        return np.argmax(logits, axis=-1).astype(np.int64)  # first maximum: lowest id
    rng = np.random.default_rng() if rng is None else rng
    logits = logits.astype(np.float64) / temperature  # (B, V)
    if top_k is not None:
        logits = top_k_filter(logits, top_k)
    if top_p is not None:
        logits = top_p_filter(logits, top_p)
    probs = softmax(logits)  # (B, V)
    cumulative = np.cumsum(probs, axis=-1)  # (B, V)
    draws = rng.random(len(probs)) * cumulative[:, -1]  # (B,) uniform in [0, total)
    next_ids = np.empty(len(probs), dtype=np.int64)
    for row in range(len(probs)):
        index = int(np.searchsorted(cumulative[row], draws[row], side="right"))
        last_allowed = int(np.flatnonzero(probs[row] > 0)[-1])
        next_ids[row] = min(index, last_allowed)  # guards the draw rounding up to the total
    return next_ids


def _check_arguments(model, idx, max_new_tokens, context_size, temperature, top_k, top_p, eos_id):
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, numbers.Integral) or max_new_tokens < 0:
        raise ValueError(f"generate: max_new_tokens must be an int >= 0, got {max_new_tokens!r}")
    context_length = model.cfg["context_length"]
    if context_size is None:
        context_size = context_length
    elif isinstance(context_size, bool) or not isinstance(context_size, numbers.Integral) or context_size <= 0:
        raise ValueError(f"generate: context_size must be a positive int, got {context_size!r}")
    context_size = min(int(context_size), context_length)  # crop to what the model can see
    if not isinstance(temperature, numbers.Real) or not temperature >= 0.0:
        raise ValueError(f"generate: temperature must be a number >= 0, got {temperature!r}")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, numbers.Integral) or top_k <= 0):
        raise ValueError(f"generate: top_k must be a positive int or None, got {top_k!r}")
    if top_p is not None and (not isinstance(top_p, numbers.Real) or not 0.0 < top_p <= 1.0):
        raise ValueError(f"generate: top_p must be in (0, 1] or None, got {top_p!r}")
    vocab_size = model.cfg["vocab_size"]
    if eos_id is not None and (isinstance(eos_id, bool) or not isinstance(eos_id, numbers.Integral)
                               or not 0 <= eos_id < vocab_size):
        raise ValueError(f"generate: eos_id must be an id in [0, {vocab_size}) or None, got {eos_id!r}")
    if isinstance(idx, list):
        idx = np.asarray(idx)
    if not isinstance(idx, np.ndarray):
        raise TypeError(f"generate: idx must be an integer array (batch, tokens), got {type(idx).__name__}")
    if idx.ndim != 2 or idx.shape[1] == 0:
        raise ValueError(f"generate: idx must have shape (batch, tokens) with at least one token, got {idx.shape}")
    model.check_token_ids(idx[:, -context_size:])  # dtype and vocabulary range of what the model sees
    return idx.astype(np.int64), int(max_new_tokens), context_size, float(temperature)


def generate(model, idx, max_new_tokens: int, context_size: int | None = None, temperature: float = 0.0,
             top_k: int | None = None, top_p: float | None = None, eos_id: int | None = None,
             seed: int | None = None, use_cache: bool = True) -> np.ndarray:
    """Continue each row of `idx` (B, T) by up to `max_new_tokens` ids; returns (B, T + new) int64.

    context_size: how many of the last ids the model sees (default and maximum: its context
      length); longer sequences are cropped from the left, as in the book.
    temperature: 0 picks the most likely id (greedy; ties to the lowest id); > 0 samples from
      softmax(logits / temperature), after the optional top_k and top_p filters.
    eos_id: a row stops when it produces this id; the id is kept, and the row is padded with
      it while other rows continue (the book stops the whole batch and drops the id instead).
      Generation ends early once every row has stopped.
    seed: seeds the sampling generator (np.random.default_rng(seed)); the same seed gives the
      same ids.
    use_cache: keep per-layer keys and values so each new id costs one position. The ids are
      those of use_cache=False; once the context is full the window slides, every absolute
      position changes, and the cache is rebuilt from the cropped context.

    The model runs in eval mode (its mode is restored afterwards) and builds no graph.
    """
    if isinstance(idx, Tensor):
        idx = idx.data
    idx, max_new_tokens, context_size, temperature = _check_arguments(
        model, idx, max_new_tokens, context_size, temperature, top_k, top_p, eos_id
    )
    batch_size, prompt_length = idx.shape
    rng = np.random.default_rng(seed)
    token_ids = np.empty((batch_size, prompt_length + max_new_tokens), dtype=np.int64)
    token_ids[:, :prompt_length] = idx
    length = prompt_length
    finished = np.zeros(batch_size, dtype=bool)
    cache = KVCache.for_model(model, batch_size, max_length=context_size) if use_cache else None
    cache_start = 0  # the absolute position 0 of the cache is token_ids[:, cache_start]

    was_training = model.training
    model.eval()
    try:
        for _ in range(max_new_tokens):
            window_start = max(0, length - context_size)
            if cache is None:
                logits = model.next_token_logits(token_ids[:, window_start:length])  # (B, V)
            else:
                if window_start != cache_start:  # the window slid: positions changed, rebuild
                    cache.reset()
                    cache_start = window_start
                new_tokens = token_ids[:, cache_start + cache.length:length]  # (B, T_new)
                logits = model.next_token_logits(new_tokens, cache=cache)  # (B, V)
            next_ids = sample_next_token(logits, temperature, top_k, top_p, rng)  # (B,)
            if eos_id is not None:
                next_ids[finished] = eos_id  # pad rows that already stopped
                finished |= next_ids == eos_id
            token_ids[:, length] = next_ids
            length += 1
            if eos_id is not None and finished.all():
                break
    finally:
        model.train(was_training)
    return token_ids[:, :length]
