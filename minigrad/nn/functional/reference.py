"""The fused kernels written plainly: each one a few primitive minigrad ops, picoGPT-style, with
the shapes on every line. Read these first; the fast kernels next door compute the same values
(in cache-sized blocks, on threads, with hand-derived backwards), and the tests hold the two
equal, values and gradients, in float64.

They are also how the fused kernels are differentiated more than once: when a backward builds
a graph (create_graph=True), a kernel's node recomputes its reference from its inputs and
differentiates that (`Function.differentiate`), so every second derivative comes from the
primitives' own rules.

    softmax(x, axis)            log_softmax(x, axis)          cross_entropy(logits, targets)
    gelu_tanh(x)                layer_norm(x, weight, bias)   linear(x, weight, bias)
    embedding(weight, ids)      dropout(x, multiplier)        mse_loss(a, b)
    scaled_dot_product_attention(q, k, v, bias, causal, scale, groups, dropout_multiplier)
"""
from __future__ import annotations

import math

import numpy as np

from ...tensor import Tensor


def constant(array) -> Tensor:
    """An array outside the graph: a mask, a shift, a multiplier."""
    return Tensor._wrap(np.asarray(array), False)


# ---------------------------------------------------------------- softmax family
def row_max(x: Tensor, axis: int) -> np.ndarray:
    """max of x along `axis`, kept as a size-1 axis; -inf for an empty axis (any shift will do
    for a softmax over nothing: its result is empty)."""
    return x.data.max(axis=axis, keepdims=True, initial=-np.inf)


def softmax(x: Tensor, axis: int = -1) -> Tensor:
    """exp(x) / sum(exp(x)) along `axis`. x: any shape; the result has x's shape."""
    shift = constant(row_max(x, axis))                      # softmax(x - c) = softmax(x): no overflow
    exp_x = (x - shift).exp()                               # x's shape, every entry in (0, 1]
    return exp_x / exp_x.sum(axis=axis, keepdims=True)      # (..., 1) row sums broadcast back


def log_softmax(x: Tensor, axis: int = -1) -> Tensor:
    """x - log(sum(exp(x))) along `axis`, with the same constant shift as softmax."""
    shifted = x - constant(row_max(x, axis))  # x's shape, max entry 0
    return shifted - shifted.exp().sum(axis=axis, keepdims=True).log()


def cross_entropy(logits: Tensor, targets, ignore_index: int = -100, reduction: str = "mean") -> Tensor:
    """-log softmax(logits)[target] for logits (..., C) and integer targets (...).

    Targets equal to ignore_index count 0; "mean" averages over the others (nan if none),
    "sum" adds them, "none" keeps one loss per target (targets' shape).
    """
    targets = np.asarray(targets)
    n_classes = logits.shape[-1]
    logp = log_softmax(logits, axis=-1).reshape(-1, n_classes)  # (N, C)
    flat_targets = targets.reshape(-1)                          # (N,)
    counted = flat_targets != ignore_index                      # (N,) bool
    picked = logp[np.arange(flat_targets.size), np.where(counted, flat_targets, 0)]  # (N,)
    losses = -picked * constant(counted.astype(logits.dtype))  # (N,), 0 where ignored
    if reduction == "none":
        return losses.reshape(targets.shape)
    if reduction == "sum":
        return losses.sum()
    n_counted = int(counted.sum())
    return losses.sum() / n_counted if n_counted else losses.sum() * math.nan


def mse_loss(a: Tensor, b: Tensor, reduction: str = "mean") -> Tensor:
    """(a - b)^2, broadcast, then averaged ("mean"), added ("sum") or kept ("none")."""
    squared = (a - b) ** 2  # broadcast shape
    if reduction == "none":
        return squared
    return squared.mean() if reduction == "mean" else squared.sum()


# ---------------------------------------------------------------- activations
GELU_C = math.sqrt(2.0 / math.pi)
GELU_A = 0.044715


def gelu_tanh(x: Tensor) -> Tensor:
    """GPT-2's GELU: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))). x: any shape."""
    return 0.5 * x * (1 + (GELU_C * (x + GELU_A * x**3)).tanh())


def dropout(x: Tensor, multiplier) -> Tensor:
    """x times the dropout multiplier (keep / (1 - p): 0 or 1/(1-p) per element, x's shape)."""
    return x * constant(multiplier)


# ---------------------------------------------------------------- layers
def layer_norm(x: Tensor, weight: Tensor | None = None, bias: Tensor | None = None,
               eps: float = 1e-5) -> Tensor:
    """Normalize x (..., C) over its last axis (biased variance), then scale and shift by (C,)."""
    mean = x.mean(axis=-1, keepdims=True)                      # (..., 1)
    variance = ((x - mean) ** 2).mean(axis=-1, keepdims=True)  # (..., 1)
    x_hat = (x - mean) / (variance + eps).sqrt()               # (..., C)
    if weight is not None:
        x_hat = x_hat * weight                                 # (..., C) * (C,)
    if bias is not None:
        x_hat = x_hat + bias
    return x_hat


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """x (..., in) @ weight (out, in)^T + bias (out,) -> (..., out)."""
    y = x @ weight.swapaxes(0, 1)  # (..., in) @ (in, out) -> (..., out)
    return y if bias is None else y + bias


def embedding(weight: Tensor, ids) -> Tensor:
    """Rows of weight (V, C) picked by integer ids (...) -> (..., C)."""
    return weight[np.asarray(ids)]


def scaled_dot_product_attention(q: Tensor, k: Tensor, v: Tensor, bias: Tensor | None = None,
                                 causal: bool = False, scale: float | None = None,
                                 groups: int = 1, dropout_multiplier=None) -> Tensor:
    """softmax(q k^T * scale + mask) v for q (..., Tq, D), k (..., Tk, D), v (..., Tk, Dv).

    causal: query i sees keys j <= i (top-left aligned, PyTorch's is_causal). bias: an
    additive mask broadcast to (..., Tq, Tk). groups > 1: each key/value head serves `groups`
    consecutive query heads (axis -3). dropout_multiplier: (..., Tq, Tk), applied to the
    attention weights. Returns (..., Tq, Dv).
    """
    if scale is None:
        scale = 1.0 / math.sqrt(q.shape[-1])
    if groups > 1:  # (..., H, Tk, D) -> (..., H * groups, Tk, D)
        heads = np.repeat(np.arange(k.shape[-3]), groups)
        k, v = k[..., heads, :, :], v[..., heads, :, :]
    scores = (q @ k.swapaxes(-1, -2)) * scale  # (..., Tq, D) @ (..., D, Tk) -> (..., Tq, Tk)
    n_queries, n_keys = scores.shape[-2:]
    if causal:  # -inf above the diagonal: query i never sees a later key
        future = np.triu(np.ones((n_queries, n_keys), dtype=bool), k=1)  # (Tq, Tk)
        scores = scores + constant(np.where(future, -np.inf, 0.0).astype(scores.dtype))
    if bias is not None:
        scores = scores + bias                   # (..., Tq, Tk)
    weights = softmax(scores, axis=-1)           # (..., Tq, Tk), rows sum to 1
    if dropout_multiplier is not None:
        weights = dropout(weights, np.asarray(dropout_multiplier).reshape(weights.shape))
    return weights @ v                           # (..., Tq, Tk) @ (..., Tk, Dv) -> (..., Tq, Dv)
