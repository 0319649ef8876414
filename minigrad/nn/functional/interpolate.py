"""`interpolate` (PyTorch's F.interpolate): nearest, nearest-exact, linear and bilinear resizing,
and `adaptive_avg_pool1d/2d` (the mean over PyTorch's adaptive bins), all as resize matrices.

Resizing one axis from n to m samples is a linear map, an (m, n) matrix A whose row k holds
the weights output k takes from the inputs (one 1 for nearest; 1 - t and t on two
neighbours for linear). A separable resize of x (N, C, H, W) is then

    y = A_h x A_w^T        (two matmuls broadcast over N and C)
    dL/dx = A_h^T g A_w    (the adjoint: the same matrices, transposed)

Source coordinates follow PyTorch: scale = n / m (or 1 / scale_factor when it is given);
nearest takes floor(k scale), nearest-exact floor((k + 0.5) scale); linear takes
(k + 0.5) scale - 0.5 clamped at 0 (align_corners=False) or k (n - 1) / (m - 1)
(align_corners=True).
"""
from __future__ import annotations

import math

import numpy as np

from ...autograd import Function
from ...tensor import Tensor
from ._util import as_float_tensor

MODES = {"nearest": 1, "nearest-exact": 1, "linear": 1, "bilinear": 2}


def resize_matrix(n_in: int, n_out: int, mode: str, align_corners: bool, scale: float | None) -> np.ndarray:
    """(n_out, n_in) float64 interpolation weights along one axis."""
    step = (1.0 / scale) if scale else n_in / n_out
    k = np.arange(n_out, dtype=np.float64)
    weights = np.zeros((n_out, n_in))
    if mode in ("nearest", "nearest-exact"):
        source = np.floor((k + (0.5 if mode == "nearest-exact" else 0.0)) * step).astype(np.int64)
        weights[np.arange(n_out), np.minimum(source, n_in - 1)] = 1.0
        return weights
    if align_corners:
        source = k * ((n_in - 1) / (n_out - 1)) if n_out > 1 else np.zeros(n_out)
    else:
        source = np.maximum((k + 0.5) * step - 0.5, 0.0)
    low = np.minimum(np.floor(source).astype(np.int64), n_in - 1)
    high = np.minimum(low + 1, n_in - 1)
    t = source - low
    np.add.at(weights, (np.arange(n_out), low), 1.0 - t)
    np.add.at(weights, (np.arange(n_out), high), t)
    return weights


class Resize(Function):
    # y = A_h x A_w^T (or x A^T in 1-d)  =>  dL/dx = A_h^T g A_w

    def forward(self, x, matrices):
        self.matrices = [m.astype(x.dtype) for m in matrices]
        return self.apply_maps(x, self.matrices, transpose=False)

    @staticmethod
    def apply_maps(x, matrices, transpose):
        if len(matrices) == 1:
            (a,) = matrices
            return x @ (a if transpose else a.T)  # (..., L) @ (L, Lo)
        a_h, a_w = matrices
        if transpose:
            return np.ascontiguousarray(a_h.T @ (x @ a_w))  # (n, H) @ ((..., Ho, Wo) @ (Wo, W))
        return np.ascontiguousarray(a_h @ (x @ a_w.T))

    def backward(self, g):
        return self.apply_maps(g, self.matrices, transpose=True)

    def backward_graph(self, g):
        return (ResizeAdjoint.apply(g, matrices=self.matrices),)


class ResizeAdjoint(Function):
    # g -> A_h^T g A_w (linear); its backward is the resize itself

    def forward(self, g, matrices):
        self.matrices = matrices
        return Resize.apply_maps(g, matrices, transpose=True)

    def backward(self, gg):
        return Resize.apply_maps(gg, self.matrices, transpose=False)


def _sizes(op, spatial, size, scale_factor, dims):
    if (size is None) == (scale_factor is None):
        raise ValueError(f"{op}: give exactly one of size and scale_factor")
    if size is not None:
        sizes = (size,) * dims if isinstance(size, (int, np.integer)) else tuple(size)
        if len(sizes) != dims or any(int(s) < 1 for s in sizes):
            raise ValueError(f"{op}: size must be {dims} positive int(s) for input spatial shape {spatial}, got {size!r}")
        return tuple(int(s) for s in sizes), (None,) * dims
    scales = (scale_factor,) * dims if isinstance(scale_factor, (int, float)) else tuple(scale_factor)
    if len(scales) != dims or any(s <= 0 for s in scales):
        raise ValueError(f"{op}: scale_factor must be {dims} positive number(s), got {scale_factor!r}")
    return tuple(int(math.floor(n * s)) for n, s in zip(spatial, scales)), tuple(float(s) for s in scales)


def interpolate(input, size=None, scale_factor=None, mode: str = "nearest", align_corners=None,
                recompute_scale_factor=None) -> Tensor:
    """Resize input (N, C, L) ("nearest", "nearest-exact", "linear") or (N, C, H, W)
    ("nearest", "nearest-exact", "bilinear") to `size` or by `scale_factor`."""
    op = "interpolate"
    x = as_float_tensor(input, op)
    if mode not in MODES:
        raise ValueError(f"{op}: mode must be one of {sorted(MODES)}, got {mode!r}")
    dims = x.ndim - 2
    if dims not in (1, 2) or (mode in ("linear", "bilinear") and MODES[mode] != dims):
        raise ValueError(f"{op}: mode {mode!r} does not take a {x.ndim}-d input {x.shape} "
                         f"(linear: 3-d (N, C, L), bilinear: 4-d (N, C, H, W), nearest: either)")
    if align_corners is not None and mode.startswith("nearest"):
        raise ValueError(f"{op}: align_corners only applies to linear modes, not {mode!r}")
    sizes, scales = _sizes(op, x.shape[2:], size, scale_factor, dims)
    if recompute_scale_factor:
        scales = (None,) * dims
    matrices = [resize_matrix(n, m, mode, bool(align_corners), s)
                for n, m, s in zip(x.shape[2:], sizes, scales)]
    return Resize.apply(x, matrices=matrices)


def adaptive_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) averaging weights: output k is the mean of inputs floor(k n / m) ..
    ceil((k + 1) n / m) - 1 (PyTorch's adaptive pooling bins)."""
    weights = np.zeros((n_out, n_in))
    for k in range(n_out):  # one row per output size (a handful), not per pixel
        start, stop = (k * n_in) // n_out, -((-(k + 1) * n_in) // n_out)
        weights[k, start:stop] = 1.0 / (stop - start)
    return weights


def _adaptive(op, input, output_size, dims):
    x = as_float_tensor(input, op)
    if x.ndim not in (dims + 1, dims + 2):
        raise ValueError(f"{op}: input must be {dims + 1}-d (unbatched) or {dims + 2}-d, got shape {x.shape}")
    sizes = (output_size,) * dims if isinstance(output_size, (int, np.integer)) or output_size is None else tuple(output_size)
    if len(sizes) != dims:
        raise ValueError(f"{op}: output_size must be an int or {dims} ints, got {output_size!r}")
    spatial = x.shape[-dims:]
    sizes = tuple(n if s is None else int(s) for s, n in zip(sizes, spatial))
    if any(s < 1 for s in sizes):
        raise ValueError(f"{op}: output_size must be positive, got {output_size!r}")
    return Resize.apply(x, matrices=[adaptive_matrix(n, m) for n, m in zip(spatial, sizes)])


def adaptive_avg_pool2d(input, output_size) -> Tensor:
    """Mean over adaptive bins: (N, C, H, W) -> (N, C, *output_size); 1 gives global pooling."""
    return _adaptive("adaptive_avg_pool2d", input, output_size, 2)


def adaptive_avg_pool1d(input, output_size) -> Tensor:
    """Mean over adaptive bins: (N, C, L) -> (N, C, output_size)."""
    return _adaptive("adaptive_avg_pool1d", input, output_size, 1)
