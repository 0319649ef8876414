"""The page's data: a capture trimmed and quantized into one JSON-ready dict.

What is embedded, and how (a 32-token prompt on GPT-2 124M stays far under 10 MB):
- attention weights: uint8, round(255 w), base64 of the (L, H, T, T) array, plus the head
  mean (L, T, T) the same way; per-head maps are dropped past ATTENTION_BUDGET bytes, and the
  means too past it (the page says so);
- logit lens: the top LENS_TOP ids per layer and position with probabilities to 4 digits;
- next-token distributions: per step the DISTRIBUTION_HEAD largest logits minus the maximum,
  sorted, as float16 base64, and the rest as a histogram of HISTOGRAM_BINS bins (count per
  bin), enough for the page to recompute temperature / top-k / top-p; ids of the top BARS;
- norms and MLP statistics rounded to 4 significant digits (training metrics: metrics.py).
"""
from __future__ import annotations

import base64
import math

import numpy as np

from ..model.generate import top_k_filter, top_p_filter
from .capture import PromptCapture, softmax, top_ids

ATTENTION_BUDGET = 8_000_000  # bytes of uint8 attention weights at most (before base64)
LENS_TOP = 5
DISTRIBUTION_HEAD = 1024
HISTOGRAM_BINS = 64
BARS = 20
MLP_BINS = 48


def b64(array: np.ndarray) -> str:
    """Base64 of an array's little-endian bytes (C order)."""
    array = np.ascontiguousarray(array)
    if array.dtype.byteorder == ">":
        array = array.astype(array.dtype.newbyteorder("<"))
    return base64.b64encode(array.tobytes()).decode("ascii")


def rounded(array, digits: int = 4):
    """Nested lists of floats with `digits` significant digits (non-finite values to None)."""
    array = np.asarray(array, dtype=np.float64)
    flat = [None if not math.isfinite(v) else float(f"{v:.{digits}g}") for v in array.ravel().tolist()]
    return np.array(flat, dtype=object).reshape(array.shape).tolist()


def quantize_unit(weights: np.ndarray) -> np.ndarray:
    """Values in [0, 1] as uint8 0..255 (the page divides by 255)."""
    return np.clip(np.rint(weights * 255.0), 0, 255).astype(np.uint8)


# ------------------------------------------------------------------------------ tokens
def token_bytes(tokenizer, token_id: int) -> bytes | None:
    """The bytes of one token (None for the special <|endoftext|>)."""
    if token_id == tokenizer.eot_id:
        return None
    encoding = getattr(tokenizer, "encoding", None)
    if encoding is not None:
        return encoding.decode_single_token_bytes(int(token_id))
    if tokenizer.name == "bytes":
        return bytes([int(token_id)])
    return tokenizer.decode([int(token_id)]).encode("utf-8")


def vocab_entry(tokenizer, token_id: int) -> list:
    """[piece, bytes as hex or None, special]: the text of a token, and its bytes when they are
    not valid UTF-8 on their own (half of a multi-byte character)."""
    raw = token_bytes(tokenizer, token_id)
    if raw is None:
        return ["<|endoftext|>", None, True]
    try:
        return [raw.decode("utf-8"), None, False]
    except UnicodeDecodeError:
        return [raw.decode("utf-8", errors="replace"), raw.hex(" "), False]


# ------------------------------------------------------------------------------ the prompt
def attention_data(capture: PromptCapture, budget: int = ATTENTION_BUDGET) -> dict:
    layers, heads, tokens, _ = capture.attention.shape
    mean = capture.attention.mean(axis=1)  # (L, T, T)
    data = {"layers": layers, "heads": heads, "tokens": tokens, "encoding": "uint8 0-255",
            "per_head": None, "mean": None, "note": None}
    if layers * heads * tokens * tokens <= budget:
        data["per_head"] = b64(quantize_unit(capture.attention))
    else:
        data["note"] = f"per-head maps left out: {tokens} tokens make them too large for the page"
    if layers * tokens * tokens <= budget:
        data["mean"] = b64(quantize_unit(mean))
    else:
        data["note"] = f"attention left out: {tokens} tokens make the maps too large for the page"
    return data


def mlp_data(capture: PromptCapture) -> dict:
    activations = capture.mlp_activations
    everything = np.concatenate([a.ravel() for a in activations])
    low, high = np.percentile(everything, [0.1, 99.9]) if everything.size else (0.0, 1.0)
    if not high > low:
        low, high = low - 0.5, high + 0.5
    edges = np.linspace(low, high, MLP_BINS + 1)  # one scale for every layer
    layers = []
    for activation in activations:  # (T, 4C)
        clipped = np.clip(activation.ravel(), low, high)
        counts, _ = np.histogram(clipped, bins=edges)
        peak = np.unravel_index(np.argsort(-activation, axis=None, kind="stable")[:8], activation.shape)
        layers.append({
            "mean": activation.mean(), "std": activation.std(), "min": activation.min(),
            "max": activation.max(), "frac_positive": (activation > 0).mean(),
            "rms_by_position": np.sqrt((activation.astype(np.float64) ** 2).mean(axis=1)),
            "histogram": counts.tolist(),
            "top_neurons": [{"neuron": int(n), "position": int(p), "value": float(f"{activation[p, n]:.4g}")}
                            for p, n in zip(*peak)],
        })
    for layer in layers:
        for key in ("mean", "std", "min", "max", "frac_positive", "rms_by_position"):
            layer[key] = rounded(layer[key])
    return {"hidden": int(activations[0].shape[1]), "edges": rounded(edges), "layers": layers}


def lens_data(capture: PromptCapture) -> dict:
    return {"top": int(capture.lens_ids.shape[2]), "ids": capture.lens_ids.tolist(),
            "probs": rounded(capture.lens_probs), "next_probs": rounded(capture.lens_next_probs)}


# ------------------------------------------------------------------------------ generation
def distribution_data(logits: np.ndarray, chosen_id: int | None, settings: dict) -> dict:
    """One step's logits (V,) as the page needs them (see the module docstring)."""
    logits = logits.astype(np.float64)
    order = top_ids(logits[None], DISTRIBUTION_HEAD)[0]  # (M,) most likely first, ties to the lowest id
    maximum = logits[order[0]]
    head = logits[order] - maximum  # (M,) <= 0, descending
    rest = np.ones(logits.shape[0], dtype=bool)
    rest[order] = False
    tail = logits[rest] - maximum  # (V - M,) unordered: only its histogram is kept
    step = {"top_ids": order[:BARS].tolist(), "head": b64(np.maximum(head, -65000).astype("<f2")),
            "tail": None, "chosen": chosen_id, "chosen_rank": None, "chosen_logit": None,
            "reference_probs": reference_probs(logits, order[:BARS], settings)}
    if tail.size:
        low, high = float(tail.min()), float(tail.max())
        counts, edges = np.histogram(tail, bins=HISTOGRAM_BINS, range=(low, high if high > low else low + 1e-6))
        centers = (edges[:-1] + edges[1:]) / 2
        step["tail"] = {"centers": rounded(centers[::-1], 6), "counts": counts[::-1].tolist()}  # descending
    if chosen_id is not None:  # its rank: the ids above it, and the lower ids tied with it
        value = logits[chosen_id]
        rank = int((logits > value).sum() + (logits[:chosen_id] == value).sum())
        step["chosen_rank"] = rank
        step["chosen_logit"] = float(f"{value - maximum:.6g}")
    return step


def reference_probs(logits: np.ndarray, ids: np.ndarray, settings: dict) -> list:
    """Exact probabilities of `ids` under the command's settings, as gpt.generate's sampler
    computes them (the browser test checks the page's own recomputation against these)."""
    temperature = settings["temperature"]
    if temperature == 0:
        probs = np.zeros_like(logits)
        probs[int(np.argmax(logits))] = 1.0
    else:
        scaled = logits[None] / temperature
        if settings.get("top_k") is not None:
            scaled = top_k_filter(scaled, settings["top_k"])
        if settings.get("top_p") is not None:
            scaled = top_p_filter(scaled, settings["top_p"])
        probs = softmax(scaled)[0]
    return rounded(probs[ids], 6)
