"""The masks of scaled dot-product attention (attention.py) as additive biases: 0 where a
query may see a key, -inf where it may not (the book's ch. 3: the causal mask).

causal_lower_right(Tq, Tk) is the boolean attn_mask a KV cache needs; causal_bias the cached
(Tq, Tk) bias of either alignment; causal_block_biases the same cut into the short kernel's
row blocks, one C-order (rows, keys) array each (causal_block_keeps: as 1/0 multipliers);
attention_mask turns a user's attn_mask into a bias Tensor.
"""
from __future__ import annotations

import functools

import numpy as np

from ...tensor import Tensor


def causal_lower_right(n_queries: int, n_keys: int) -> np.ndarray:
    """(Tq, Tk) boolean attn_mask, True where query i may see key j <= i + Tk - Tq: causal
    attention for the last Tq of Tk positions (a KV cache; PyTorch's causal_lower_right)."""
    return np.arange(n_keys)[None, :] <= np.arange(n_queries)[:, None] + (n_keys - n_queries)


@functools.lru_cache(maxsize=64)
def causal_bias(n_queries: int, n_keys: int, dtype_name: str, lower_right: bool = False) -> np.ndarray:
    """(Tq, Tk) array: 0 where query i may see key j (j <= i, or j <= i + Tk - Tq with
    lower_right), -inf elsewhere. Cached per shape; read-only because it is shared.
    """
    offset = n_keys - n_queries if lower_right else 0
    blocked = np.arange(n_keys)[None, :] > np.arange(n_queries)[:, None] + offset  # (Tq, Tk)
    bias = np.where(blocked, -np.inf, 0.0).astype(dtype_name)
    bias.flags.writeable = False
    return bias


@functools.lru_cache(maxsize=64)
def causal_block_biases(n_queries: int, n_keys: int, dtype_name: str, blocks: tuple) -> tuple:
    """Per row block (r0, r1, keys): its (rows, keys) part of causal_bias in C order (one pass
    over a whole block costs less than over its diagonal part alone, a strided slice), or None
    where the block has no -inf."""
    parts = [np.ascontiguousarray(causal_bias(n_queries, n_keys, dtype_name)[r0:r1, :keys])
             if keys > r0 + 1 else None for r0, r1, keys in blocks]
    for part in parts:
        if part is not None:
            part.flags.writeable = False  # shared by every call
    return tuple(parts)


def attention_mask(attn_mask, dtype) -> Tensor:
    """A boolean mask (True = attend) as a constant 0/-inf bias; a float mask as a Tensor."""
    data = attn_mask.data if isinstance(attn_mask, Tensor) else np.asarray(attn_mask)
    if data.dtype == np.bool_:
        return Tensor._wrap(np.where(data, 0.0, -np.inf).astype(dtype), False)
    if data.dtype.kind != "f":
        raise TypeError(f"scaled_dot_product_attention: attn_mask must be bool or float, got dtype {data.dtype}")
    return attn_mask if isinstance(attn_mask, Tensor) else Tensor(data)


@functools.lru_cache(maxsize=64)
def causal_block_keeps(n_queries: int, n_keys: int, dtype_name: str, blocks: tuple) -> tuple:
    """causal_block_biases as multipliers: 1.0 where a query may see a key, 0.0 where not (a
    product after the exponential instead of -inf before it); None where the bias is."""
    parts = [None if bias is None else np.equal(bias, 0.0).astype(dtype_name)
             for bias in causal_block_biases(n_queries, n_keys, dtype_name, blocks)]
    for part in parts:
        if part is not None:
            part.flags.writeable = False  # shared by every call
    return tuple(parts)
