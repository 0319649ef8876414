"""Small helpers the book uses around the model: text <-> token id batches (chapter 5.1) and
the parameter and memory count printed in chapter 4.6; and `has_hooks`, which the model's
fused paths check (a module with hooks runs as a module).
"""
from __future__ import annotations

import numpy as np

from minigrad import Tensor


def text_to_token_ids(text: str, tokenizer) -> np.ndarray:
    """Encode `text` into a batch of one row: int64 (1, T).

    `tokenizer` is anything with `encode(text, allowed_special=...)` (tiktoken's GPT-2
    encoding, gpt's tokenizers); "<|endoftext|>" in the text is kept as the special id.
    """
    if not isinstance(text, str):
        raise TypeError(f"text_to_token_ids: text must be a str, got {type(text).__name__}")
    try:
        encoded = tokenizer.encode(text, allowed_special={"<|endoftext|>"})
    except TypeError:  # a tokenizer without the allowed_special keyword
        encoded = tokenizer.encode(text)
    return np.asarray(encoded, dtype=np.int64).reshape(1, -1)  # add the batch dimension: (1, T)


def token_ids_to_text(token_ids, tokenizer) -> str:
    """Decode one row of ids, given as (1, T) (the batch dimension is removed) or (T,)."""
    if isinstance(token_ids, Tensor):
        token_ids = token_ids.data
    ids = np.asarray(token_ids)
    if ids.ndim == 2:
        if ids.shape[0] != 1:
            raise ValueError(f"token_ids_to_text: expected one row (1, T) or (T,), got shape {ids.shape}; "
                             "decode each row separately")
        ids = ids[0]  # remove the batch dimension
    if ids.ndim != 1:
        raise ValueError(f"token_ids_to_text: expected shape (1, T) or (T,), got {ids.shape}")
    if ids.size and ids.dtype.kind not in "iu":
        raise TypeError(f"token_ids_to_text: ids must be integers, got dtype {ids.dtype}")
    return tokenizer.decode(ids.tolist())


def model_summary(model, bytes_per_parameter: int | None = None) -> dict:
    """The counts of the book's section 4.6 for a GPTModel, as a dict.

    total_params: every parameter, counting the output head separately even when tied (the
      book's 163,009,536 for GPT_CONFIG_124M); params_tied: with the head counted once with
      the token embedding (124,412,160); in_memory_params: what this model really holds
      (equal to params_tied when `tie_weights()` was called); size_mb: total_params x bytes
      per parameter / 2^20 (the book assumes float32: 621.83 MB).
    """
    params = list(model.parameters())  # deduplicated by identity: a tied weight counts once
    in_memory = sum(p.numel() for p in params)
    tok_emb, out_head = model.tok_emb.weight, model.out_head.weight
    total = in_memory + (out_head.numel() if out_head is tok_emb else 0)
    itemsize = bytes_per_parameter or (params[0].data.itemsize if params else 4)
    return {
        "total_params": int(total),
        "params_tied": int(total - out_head.numel()),
        "in_memory_params": int(in_memory),
        "token_embedding_shape": tuple(tok_emb.shape),
        "output_layer_shape": tuple(out_head.shape),
        "bytes_per_parameter": itemsize,
        "size_mb": total * itemsize / (1024 * 1024),
        "in_memory_mb": in_memory * itemsize / (1024 * 1024),
    }


def print_model_summary(model) -> dict:
    """Print the book's section 4.6 figures (and return them, see `model_summary`)."""
    summary = model_summary(model)
    print(f"Total number of parameters: {summary['total_params']:,}")
    print(f"Token embedding layer shape: {summary['token_embedding_shape']}")
    print(f"Output layer shape: {summary['output_layer_shape']}")
    print(f"Number of trainable parameters considering weight tying: {summary['params_tied']:,}")
    print(f"Total size of the model: {summary['size_mb']:.2f} MB")
    if summary["in_memory_params"] != summary["total_params"]:
        print(f"(output head tied to the token embedding: {summary['in_memory_params']:,} parameters, "
              f"{summary['in_memory_mb']:.2f} MB in memory)")
    return summary


def has_hooks(module) -> bool:
    """True while a forward or backward hook is registered on `module` itself (a minigrad
    nn.Module): the model then calls it as a module instead of fusing its ops with others."""
    return module._hooks is not None and not module._hooks.empty()
