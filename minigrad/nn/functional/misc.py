"""`normalize` (x / max(||x||_p, eps) along a dim) and `one_hot` (integer classes -> 0/1 rows)."""
from __future__ import annotations

import numpy as np

from ...autograd import Function
from ...tensor import Tensor
from ._util import as_float_tensor, as_index_array, check_axis


class Normalize(Function):
    # y = x / n, n = max(||x||_p, eps) along `axis`.  Where the norm exceeds eps,
    #   dn/dx = sign(x) |x|^(p-1) / ||x||^(p-1)  =>  dL/dx = g / n - sum(g x) / n^2 * dn/dx;
    # where it is clamped, n is a constant: dL/dx = g / eps
    def forward(self, x, p, axis, eps):
        abs_x = np.abs(x)
        norm = np.sum(abs_x ** p, axis=axis, keepdims=True) ** (1.0 / p) if p != 2 else \
            np.sqrt(np.sum(x * x, axis=axis, keepdims=True))
        n = np.maximum(norm, eps).astype(x.dtype, copy=False)
        if self.requires_grad:
            self.saved = (x, norm, n, p, axis, eps)
        return x / n

    def backward(self, g):
        x, norm, n, p, axis, eps = self.saved
        unclamped = norm >= eps  # (the norm reaching eps exactly: PyTorch's clamp_min passes it)
        safe_norm = np.where(unclamped, norm, 1.0)
        dn_dx = x / safe_norm if p == 2 else np.sign(x) * (np.abs(x) / safe_norm) ** (p - 1)
        dot = np.sum(g * x, axis=axis, keepdims=True)
        return g / n - np.where(unclamped, dot / (n * n), 0.0) * dn_dx

    def backward_graph(self, g):
        x = self.parents[0]
        _, norm, _, p, axis, eps = self.saved
        unclamped = Tensor._wrap((norm >= eps).astype(x.dtype), False)
        n_raw = (x * x).sum(axis=axis, keepdims=True).sqrt() if p == 2 else \
            ((x.abs() ** p).sum(axis=axis, keepdims=True)) ** (1.0 / p)
        n = n_raw * unclamped + (1.0 - unclamped) * eps
        y = x / n
        # d(x/n) = g/n - (sum g x)/n^2 dn/dx, dn/dx = x^(p-1)-ish / n^(p-1) (unclamped rows)
        dot = (g * x).sum(axis=axis, keepdims=True)
        if p == 2:
            dn_dx = y
        else:
            dn_dx = Tensor._wrap(np.sign(x.data), False) * (x.abs() / n) ** (p - 1)
        return g / n - dot / (n * n) * dn_dx * unclamped


def normalize(input, p: float = 2.0, dim: int = 1, eps: float = 1e-12, out=None) -> Tensor:
    """input / max(||input||_p, eps) along `dim` (default 1, as PyTorch); p > 0 finite."""
    if out is not None:
        raise TypeError("normalize: out= is not supported (minigrad returns a new tensor)")
    x = as_float_tensor(input, "normalize")
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 < p < float("inf"):
        raise ValueError(f"normalize: p must be a positive finite number, got {p!r}")
    if x.ndim == 0:
        raise ValueError("normalize: input needs at least 1 dimension, got a 0-d tensor")
    axis = check_axis(dim, x.ndim, "normalize", x.shape)
    return Normalize.apply(x, p=float(p), axis=axis, eps=float(eps))


def one_hot(tensor, num_classes: int = -1) -> Tensor:
    """Integer classes (...) -> int64 one-hot rows (..., num_classes); num_classes=-1 uses
    max + 1. Not differentiable (an integer tensor)."""
    classes = as_index_array(tensor, "one_hot", "tensor")
    if num_classes == -1:
        num_classes = int(classes.max()) + 1 if classes.size else 0
    if classes.size and (classes.min() < 0 or classes.max() >= num_classes):
        raise ValueError(f"one_hot: class values must be in [0, {num_classes}), got "
                         f"min {int(classes.min())}, max {int(classes.max())}")
    out = np.zeros(classes.shape + (int(num_classes),), dtype=np.int64)
    np.put_along_axis(out, classes[..., None].astype(np.int64), 1, axis=-1)
    return Tensor(out)
