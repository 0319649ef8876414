"""The optimizer of a run: AdamW's parameter groups and the learning rate of every step.

    optimizer = optim.AdamW(parameter_groups(model, weight_decay), lr=peak, betas=..., ...)
    for group in optimizer.param_groups: group["lr"] = learning_rate(step, config, max_steps)

The schedules themselves are minigrad.optim's (minigrad/optim/schedules.py); this module picks
one from the run's TrainConfig.
"""
from __future__ import annotations

from minigrad.optim.schedules import constant, cosine_with_warmup

from .config import TrainConfig


def learning_rate(step: int, config: TrainConfig, max_steps: int) -> float:
    """lr of optimizer step `step` (0-based), from minigrad.optim's cosine_with_warmup.

    "cosine" (the default): nanoGPT's schedule, warmup over min(warmup_steps, max_steps // 10)
    steps (so a short run is not all warmup) from lr / warmup to lr, then cosine decay to min_lr.
    "book": the book's appendix D, warmup from initial_lr to lr over warmup_steps (at most the
    run), then cosine decay to min_lr. "constant": lr at every step.
    """
    peak = config.resolved_lr()
    if config.schedule == "constant":
        return constant(step, peak)
    min_lr = peak / 10 if config.min_lr is None else config.min_lr
    if config.schedule == "book":
        return cosine_with_warmup(step, min(config.warmup_steps, max_steps), max_steps, peak, min_lr,
                                  initial_lr=config.resolved_initial_lr(), warmup_form="book")
    return cosine_with_warmup(step, min(config.warmup_steps, max_steps // 10), max_steps, peak, min_lr,
                              warmup_form="nanogpt")


def parameter_groups(model, weight_decay: float) -> list:
    """AdamW groups as in nanoGPT: decay matrices (Linear weights, embeddings), not biases or norms."""
    decay, no_decay = [], []
    for _name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        (decay if param.ndim >= 2 else no_decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0}]
