"""Low-rank adaptation, LoRA (the book's appendix E; Hu et al. 2021, arXiv:2106.09685).

A frozen Linear layer W (out, in) gets a trainable low-rank update: two small matrices
A (in, rank) and B (rank, out), so

    y = x W^T + b + scale * (x A B)             x (..., in) -> y (..., out)

A starts Kaiming-uniform (as torch.nn.init.kaiming_uniform_(A, a=sqrt(5)), which for an
(in, rank) tensor draws from U(-1/sqrt(rank), 1/sqrt(rank))) and B starts at zero, so the
wrapped layer first computes exactly what the original did. Only A and B are trained:
rank * (in + out) numbers instead of in * out.

The scale: the book's printed LoRALayer multiplies by `alpha` alone
(`x = self.alpha * (x @ self.A @ self.B)`); the LoRA paper (and later versions of the
book's repository) use alpha / rank. We follow the book by default (`scale_by_rank=False`,
scale = alpha); pass `scale_by_rank=True` for alpha / rank.

For inference the update folds into the weight, W' = W + scale * (A B)^T (shape (out, in)),
after which the layer costs what the original did (`merge_lora`).
"""
from __future__ import annotations

import math

import numpy as np

import minigrad
from minigrad import nn


class LoRALinear(nn.Module):
    """A Linear layer with a trainable low-rank update (the book's LinearWithLoRA).

    linear:  the wrapped `nn.Linear` (weight (out, in), optional bias); its parameters are
             frozen here (requires_grad False).
    rank:    r, the inner dimension of A (in, r) and B (r, out).
    alpha:   the update's scale (see `scale_by_rank`).
    scale_by_rank: scale by alpha / rank (LoRA paper) instead of alpha (the book).
    generator: numpy Generator for A's initialization (default: minigrad.random's).
    """

    def __init__(self, linear, rank: int, alpha: float, scale_by_rank: bool = False, generator=None):
        super().__init__()
        if not isinstance(linear, nn.Linear):
            raise TypeError(f"LoRALinear wraps an nn.Linear, got {type(linear).__name__}")
        if not isinstance(rank, (int, np.integer)) or isinstance(rank, bool) or rank < 1:
            raise ValueError(f"LoRALinear: rank must be a positive integer, got {rank!r}")
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float, np.integer, np.floating)) \
                or not np.isfinite(alpha):
            raise ValueError(f"LoRALinear: alpha must be a finite number, got {alpha!r}")
        out_features, in_features = linear.weight.shape
        self.linear = linear
        self.linear.requires_grad_(False)
        self.rank = int(rank)
        self.alpha = float(alpha)
        self.scale_by_rank = bool(scale_by_rank)
        self.scale = self.alpha / self.rank if scale_by_rank else self.alpha
        dtype = linear.weight.dtype
        generator = generator if generator is not None else minigrad.random.default_generator()
        # kaiming_uniform_(A, a=sqrt(5)) with torch's fan_in = A.shape[1] = rank:
        # gain = sqrt(2 / (1 + 5)), bound = gain * sqrt(3 / rank) = 1 / sqrt(rank)
        bound = math.sqrt(2.0 / (1.0 + 5.0)) * math.sqrt(3.0 / self.rank)
        self.A = nn.Parameter(generator.uniform(-bound, bound, size=(in_features, self.rank)).astype(dtype))
        self.B = nn.Parameter(np.zeros((self.rank, out_features), dtype=dtype))
        self.merged = False
        self._saved = {}  # the original weight while merged (a plain dict: not registered)

    @property
    def in_features(self) -> int:
        return self.A.shape[0]

    @property
    def out_features(self) -> int:
        return self.B.shape[1]

    def delta_weight(self) -> np.ndarray:
        """The update in the Linear's layout: scale * (A B)^T, shape (out, in)."""
        return (np.float32(self.scale) if self.A.dtype == np.float32 else self.scale) * (self.A.data @ self.B.data).T

    def forward(self, x):
        y = self.linear(x)  # (..., out)
        if self.merged:
            return y
        update = (x @ self.A) @ self.B  # (..., in) @ (in, r) @ (r, out) -> (..., out)
        return y + update * self.scale

    def merge(self) -> None:
        """Fold the update into the weight (W' = W + scale (A B)^T) for inference; the LoRA
        path is then skipped. The original weight is kept (not modified in place, so a weight
        shared with another layer, like GPT-2's tied head, is untouched) for `unmerge`."""
        if self.merged:
            return
        self._saved["weight"] = self.linear.weight
        merged = (self.linear.weight.data + self.delta_weight()).astype(self.linear.weight.dtype)
        self.linear.weight = nn.Parameter(merged, requires_grad=False)
        self.merged = True

    def unmerge(self) -> None:
        """Undo `merge`: restore the original weight exactly."""
        if not self.merged:
            return
        self.linear.weight = self._saved.pop("weight")
        self.merged = False

    def to_linear(self):
        """A plain nn.Linear holding W + scale (A B)^T (and the bias): the merged layer."""
        out_features, in_features = self.linear.weight.shape
        has_bias = getattr(self.linear, "bias", None) is not None
        weight = self.linear.weight.data if self.merged else self.linear.weight.data + self.delta_weight()
        linear = nn.Linear(in_features, out_features, bias=has_bias, dtype=self.linear.weight.dtype)
        frozen = not self.linear.weight.requires_grad  # keep the wrapped layer's frozen state
        linear.weight = nn.Parameter(np.array(weight, dtype=self.linear.weight.dtype), requires_grad=not frozen)
        if has_bias:
            linear.bias = nn.Parameter(self.linear.bias.data.copy(), requires_grad=not frozen)
        return linear

    def extra_repr(self) -> str:
        return f"rank={self.rank}, alpha={self.alpha}, scale={self.scale:g}"


def replace_linear_with_lora(model, rank: int, alpha: float, scale_by_rank: bool = False,
                             generator=None):
    """Freeze every parameter of `model`, then replace EVERY nn.Linear in it (recursively,
    the output head included) by a LoRALinear wrapping it, as the book's appendix E does.
    Afterwards only the A and B matrices are trainable. Returns the model (changed in place)."""
    model.requires_grad_(False)
    _replace(model, rank, alpha, scale_by_rank, generator)
    return model


def _replace(module, rank, alpha, scale_by_rank, generator) -> None:
    for name, child in list(module.named_children()):
        if isinstance(child, LoRALinear):
            continue
        if isinstance(child, nn.Linear):
            setattr(module, name, LoRALinear(child, rank, alpha, scale_by_rank, generator))
        else:
            _replace(child, rank, alpha, scale_by_rank, generator)


def lora_layers(model) -> dict:
    """{qualified name: LoRALinear} for every LoRA layer in the model."""
    return {name: module for name, module in model.named_modules() if isinstance(module, LoRALinear)}


def lora_state_dict(model) -> dict:
    """Only the LoRA parameters: {'<layer>.A': (in, r) array, '<layer>.B': (r, out) array}.
    A few MB for GPT-2 small at rank 16, instead of the 500 MB of the whole model."""
    state = {}
    for name, layer in lora_layers(model).items():
        prefix = f"{name}." if name else ""
        state[prefix + "A"] = layer.A.data.copy()
        state[prefix + "B"] = layer.B.data.copy()
    if not state:
        raise ValueError("lora_state_dict: the model has no LoRA layers (call replace_linear_with_lora first)")
    return state


def load_lora_state_dict(model, state: dict, strict: bool = True) -> None:
    """Copy LoRA matrices saved by `lora_state_dict` into a model that has the same LoRA
    layers (same names, ranks and shapes). With `strict`, missing or unexpected keys are an
    error listing them."""
    layers = lora_layers(model)
    expected = {}
    for name, layer in layers.items():
        prefix = f"{name}." if name else ""
        expected[prefix + "A"] = layer.A
        expected[prefix + "B"] = layer.B
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if strict and (missing or unexpected):
        raise KeyError(f"load_lora_state_dict: missing keys {missing[:8]}{'...' if len(missing) > 8 else ''}, "
                       f"unexpected keys {unexpected[:8]}{'...' if len(unexpected) > 8 else ''}")
    for key, parameter in expected.items():
        if key not in state:
            continue
        value = np.asarray(state[key])
        if value.shape != parameter.shape:
            raise ValueError(f"load_lora_state_dict: {key} has shape {value.shape}, the model's is "
                             f"{parameter.shape} (a different rank or layer size?)")
        parameter.data[...] = value.astype(parameter.dtype)
    for layer in layers.values():
        if layer.merged:  # re-merge with the new A and B
            layer.unmerge()
            layer.merge()


def merge_lora(model):
    """Replace every LoRALinear by a plain nn.Linear with the update folded into its weight
    (for inference: same outputs, no extra cost). Returns the model (changed in place);
    a model that IS a LoRALinear returns its merged Linear."""
    if isinstance(model, LoRALinear):
        return model.to_linear()
    for name, child in list(model.named_children()):
        if isinstance(child, LoRALinear):
            setattr(model, name, child.to_linear())
        else:
            merge_lora(child)
    return model
