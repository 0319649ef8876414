"""Loss and perplexity of a model on batches of windows (the book's `calc_loss_loader`, 5.1.3).

    loss = mean over batches of cross_entropy(model(inputs), targets)   (eval mode, no graph)
    perplexity = exp(loss): the effective number of tokens the model hesitates between.
"""
from __future__ import annotations

import math

import numpy as np

from minigrad import no_grad
from minigrad.nn import functional as F

from ..data.loader import SlidingWindowDataset
from .data import evenly_spaced_batches


def batch_loss(model, inputs: np.ndarray, targets: np.ndarray) -> float:
    """Mean cross-entropy of one batch: inputs, targets (B, T) int. No graph is built."""
    with no_grad():
        logits = model(inputs)  # (B, T, V)
        return float(F.cross_entropy(logits.reshape(-1, logits.shape[-1]), np.reshape(targets, -1)).item())


def mean_loss(model, batches) -> float:
    """Token-weighted mean loss over an iterable of (inputs, targets) batches (NaN when empty).

    Batches may differ in size (a last partial batch), so each counts by its number of tokens.
    """
    total, count = 0.0, 0
    for inputs, targets in batches:
        tokens = targets.size
        total += batch_loss(model, inputs, targets) * tokens
        count += tokens
    return total / count if count else float("nan")


def perplexity(loss: float) -> float:
    """exp(loss), inf beyond what a float holds."""
    return math.exp(loss) if loss < 700 else float("inf")


def evaluate_tokens(model, token_ids: np.ndarray, batch_size: int = 8, max_batches: int | None = None,
                    context_length: int | None = None):
    """(loss, number of windows) of `model` on a token array cut into windows of its context.

    max_batches: evaluate evenly spaced windows only (None: all of them).
    """
    context = context_length or model.cfg["context_length"]
    if len(token_ids) < context + 1:
        if len(token_ids) < 2:
            raise ValueError(f"the data has {len(token_ids)} tokens; at least 2 are needed for one "
                             f"prediction")
        context = len(token_ids) - 1  # a short text: one window of all of it
    dataset = SlidingWindowDataset(token_ids, context, context)
    n_batches = max_batches if max_batches is not None else -(-len(dataset) // batch_size)
    was_training = model.training
    model.eval()
    try:
        loss = mean_loss(model, evenly_spaced_batches(dataset, batch_size, n_batches))
    finally:
        model.train(was_training)
    return loss, min(len(dataset), batch_size * n_batches)
