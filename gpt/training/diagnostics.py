"""Training diagnostics (`gpt train --diagnostics N`): every N steps, per layer, the activation
and gradient statistics that Karpathy's makemore lectures (part 3, "Activations & Gradients,
BatchNorm") teach to watch, written as one record into metrics.jsonl; `gpt plot` draws them.

How: on a diagnosed step, forward hooks on the model's modules look at the first micro-batch
(then remove themselves); after the gradients are averaged (before clipping) the gradients
are measured and the parameters copied; after the optimizer step the update is measured.
On every other step nothing runs (off, `--diagnostics 0`, the default: one call to `start`
that returns None).

Record format (one JSON line, beside the loss records; "explain" and `gpt plot` read it):

    {"step": 10,                                   # the optimizer step just done (1-based)
     "diagnostics": {
       "layers": {                                 # one entry per transformer block, in order
         "trf_blocks.0": {
           "mean": -0.01, "std": 0.98,             # the block's output (the residual stream)
           "gelu_input_mean": 0.02, "gelu_input_std": 0.7,
           "gelu_saturation": 0.004,               # share of GELU inputs with |x| > 3
           "attention_max": 0.41}},                # mean over (sequence, head, query) of the
                                                   # largest attention weight (1.0: one key each),
                                                   # on the first ATTENTION_SEQUENCES sequences
       "params": {                                 # every trainable parameter, by name
         "trf_blocks.0.att.W_query.weight": {
           "grad_norm": 0.05,                      # ||g|| (after averaging, before clipping)
           "grad_to_data": 0.002,                  # ||g|| / ||w||
           "log10_update_to_data": -3.1}},         # log10(||w_after - w_before|| / ||w_before||)
       "histograms": {                             # at this step; `gpt plot` draws the last one
         "gelu_input": {"trf_blocks.0": {"range": [-4.2, 5.0], "counts": [0, 3, ...]}},
         "grad": {"trf_blocks.0.att.W_query.weight": {"range": [lo, hi], "counts": [...]}}}}}

Norm ratios are RMS ratios (Karpathy plots std ratios; for zero-mean weights they agree, and
they stay defined for LayerNorm scales of ones and shifts of zeros). A ratio is null when
the weights are all zero (the first step of a zero-initialised shift). Histograms have
`HISTOGRAM_BINS` equal bins over `range`; "grad" holds the 2-D weights only.

A good run (Karpathy): log10 update-to-data near -3 for the weight matrices, GELU saturation
of a few percent at most, activation std near 1, attention_max well below 1 early in training.
"""
from __future__ import annotations

import math

import numpy as np

from minigrad import nn

from ..model.attention import MultiHeadAttention
from ..model.gpt_model import GELU, TransformerBlock

HISTOGRAM_BINS = 40
ATTENTION_SEQUENCES = 4  # attention_max is estimated on this many sequences of the batch
SATURATION = 3.0  # |x| beyond this: GELU is in its flat (x < -3) or identity-like (x > 3) part


def _finite(value) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def _rms(array: np.ndarray) -> float:
    flat = array.reshape(-1)
    return math.sqrt(float(np.dot(flat, flat)) / max(flat.size, 1))


def _histogram(array: np.ndarray) -> dict:
    flat = array.reshape(-1)
    lo, hi = float(flat.min()), float(flat.max())
    if not (math.isfinite(lo) and math.isfinite(hi)):
        flat = flat[np.isfinite(flat)]
        lo, hi = (float(flat.min()), float(flat.max())) if flat.size else (0.0, 0.0)
    if hi <= lo:
        hi = lo + 1e-12
    counts, _ = np.histogram(flat, bins=HISTOGRAM_BINS, range=(lo, hi))
    return {"range": [lo, hi], "counts": counts.tolist()}


def _attention_max(queries: np.ndarray, keys: np.ndarray, num_heads: int) -> float:
    """Mean over (sequence, head, query) of the largest causal softmax weight, over the first
    `ATTENTION_SEQUENCES` sequences of the batch (an estimate that costs a fixed amount).

    queries, keys: (B, T, C) outputs of W_query and W_key -> (b, H, T, D) per head, as in
    MultiHeadAttention's split. One 2-D matmul per (sequence, head): NumPy's stacked 4-D
    matmul is far slower here."""
    batch, tokens, width = queries.shape
    batch = min(batch, ATTENTION_SEQUENCES)
    head_dim = width // num_heads
    split = (batch, tokens, num_heads, head_dim)
    q = np.ascontiguousarray(queries[:batch].reshape(split).transpose(0, 2, 1, 3))  # (b, H, T, D)
    k = np.ascontiguousarray(keys[:batch].reshape(split).transpose(0, 2, 1, 3))  # (b, H, T, D)
    causal = np.triu(np.full((tokens, tokens), -np.inf, dtype=q.dtype), k=1)  # (T, T)
    total = 0.0
    for b in range(batch):
        for h in range(num_heads):
            scores = q[b, h] @ k[b, h].T  # (T, T)
            scores *= 1.0 / math.sqrt(head_dim)
            scores += causal
            scores -= scores.max(axis=-1, keepdims=True)
            np.exp(scores, out=scores)
            # the largest weight of a row is exp(0) / (sum of the row's exps)
            total += float(np.sum(1.0 / scores.sum(axis=-1)))
    return total / (batch * num_heads * tokens)


class StepDiagnostics:
    """What one diagnosed step measures: hooks for its first forward, then gradients, updates."""

    def __init__(self, model):
        self.layers, self.histograms = {}, {"gelu_input": {}, "grad": {}}
        self.params, self.before = {}, {}
        self.handles = []
        blocks = [(name, module) for name, module in model.named_modules()
                  if isinstance(module, TransformerBlock)]
        for name, block in blocks:
            self.layers[name] = {}
            self._watch_block(name, block)
        self.handles.append(model.register_forward_hook(lambda module, args, output: self.remove()))

    def _watch_block(self, name: str, block) -> None:
        stats = self.layers[name]

        def block_output(module, args, output):
            stats["mean"], stats["std"] = float(output.data.mean()), float(output.data.std())

        def gelu_input(module, args):
            x = args[0].data
            stats["gelu_input_mean"], stats["gelu_input_std"] = float(x.mean()), float(x.std())
            stats["gelu_saturation"] = float(np.count_nonzero(np.abs(x) > SATURATION)) / max(x.size, 1)
            self.histograms["gelu_input"][name] = _histogram(x)

        self.handles.append(block.register_forward_hook(block_output))
        for module in block.modules():
            if isinstance(module, (GELU, nn.GELU)):
                self.handles.append(module.register_forward_pre_hook(gelu_input))
            if isinstance(module, MultiHeadAttention):
                self._watch_attention(stats, module)

    def _watch_attention(self, stats: dict, attention) -> None:
        captured = {}

        def query(module, args, output):
            captured["q"] = output.data

        def key(module, args, output):
            if "q" in captured and output.data.ndim == 3:
                stats["attention_max"] = _attention_max(captured.pop("q"), output.data,
                                                        attention.num_heads)

        self.handles.append(attention.W_query.register_forward_hook(query))
        self.handles.append(attention.W_key.register_forward_hook(key))

    def remove(self) -> None:
        """Stop watching (after the first micro-batch's forward)."""
        for handle in self.handles:
            handle.remove()
        self.handles = []

    def gradients(self, named_parameters) -> None:
        """Measure each gradient (call after averaging, before clipping); keep the weights."""
        for name, param in named_parameters:
            if param.grad is None:
                continue
            grad_rms, data_rms = _rms(param.grad), _rms(param.data)
            self.params[name] = {
                "grad_norm": _finite(grad_rms * math.sqrt(param.numel())),
                "grad_to_data": _finite(grad_rms / data_rms) if data_rms > 0 else None}
            self.before[name] = (param, param.data.copy())
            if param.ndim == 2:
                self.histograms["grad"][name] = _histogram(param.grad)

    def finish(self) -> dict:
        """After the optimizer step: the update ratios; returns the record's "diagnostics"."""
        self.remove()
        for name, (param, before) in self.before.items():
            update_rms, data_rms = _rms(param.data - before), _rms(before)
            ratio = update_rms / data_rms if data_rms > 0 else 0.0
            self.params[name]["log10_update_to_data"] = _finite(math.log10(ratio)) if ratio > 0 else None
        self.before = {}
        layers = {name: {key: _finite(value) for key, value in stats.items()}
                  for name, stats in self.layers.items()}
        return {"layers": layers, "params": self.params, "histograms": self.histograms}


def start(model, step: int, every: int) -> StepDiagnostics | None:
    """The diagnostics of optimizer step `step` (1-based, about to run) when `every` > 0 divides
    it, else None (`every` 0: off)."""
    if isinstance(every, bool) or not isinstance(every, int) or every < 0:
        raise ValueError(f"diagnostics: every must be a number of steps >= 0 (0: off), got {every!r}")
    return StepDiagnostics(model) if every and step % every == 0 else None


def diagnostics_records(records: list) -> list:
    """The diagnostics records of a metrics.jsonl, in order."""
    return [r for r in records if isinstance(r.get("diagnostics"), dict) and "step" in r]
