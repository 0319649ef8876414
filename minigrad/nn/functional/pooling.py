"""Max and average pooling, 1-d and 2-d (PyTorch's arguments: kernel_size, stride defaulting
to kernel_size, padding, dilation (max only), ceil_mode, count_include_pad, divisor_override).

Both loop over the kh * kw kernel offsets only: each offset (i, j) is one strided view
xp[:, :, i dh :: sh, j dw :: sw] of shape (N, C, Ho, Wo) (never a loop over positions).

    max:  y = max over offsets; arg = the first offset reaching it (ties: the first, as
          PyTorch's scan order).     dL/dxp at offset o's positions += g * [arg == o]
    avg:  y = sum over offsets / divisor, divisor = the window's size inside the padded
          input (count_include_pad) or inside the input.   dL/dxp at each offset += g / divisor

Max pooling pads with -inf, so padding never wins. ceil_mode keeps a last partial window if
it starts inside the input (or the left padding); it reads -inf / counts nothing beyond.
"""
from __future__ import annotations

import math

import numpy as np

from ...autograd import Function
from ...tensor import Tensor
from ._conv_util import crop, offset_slices, pad_spatial, pair
from ._util import as_float_tensor


def _pool_geometry(op, shape, kernel, stride, padding, dilation, ceil_mode):
    """Output size and the padding ((top, bottom), (left, right)), bottom/right including the
    extra a ceil_mode window needs."""
    sizes, pads = [], []
    for n, k, s, p, d in zip(shape, kernel, stride, padding, dilation):
        span = d * (k - 1) + 1
        if p > k // 2:
            raise ValueError(f"{op}: padding {padding} must be at most half the kernel size {kernel}")
        if n + 2 * p < span:
            raise ValueError(f"{op}: kernel {kernel} (dilation {dilation}) is larger than the padded "
                             f"input {tuple(a + 2 * b for a, b in zip(shape, padding))} (input {tuple(shape)})")
        steps = (n + 2 * p - span) / s
        out = (math.ceil(steps) if ceil_mode else math.floor(steps)) + 1
        if ceil_mode and (out - 1) * s >= n + p:  # the last window must start inside
            out -= 1
        sizes.append(out)
        pads.append((p, max(p, (out - 1) * s + span - n - p)))
    return tuple(sizes), tuple(pads)


class MaxPool2d(Function):
    # y = xp at the first maximizing offset  =>  dL/dxp[offset o] += g where arg == o

    def forward(self, x, kernel, stride, padding, dilation, out):
        xp = pad_spatial(x, padding, value=-np.inf)
        best = arg = None
        for o, (i, j) in enumerate(np.ndindex(*kernel)):
            view = xp[(slice(None), slice(None)) + offset_slices(i, j, stride, dilation, out)]
            if best is None:
                best, arg = view.copy(), np.zeros(view.shape, dtype=np.int32)
            else:
                better = view > best
                np.copyto(best, view, where=better)
                arg[better] = o
        self.arg, self.geometry = arg, (kernel, stride, padding, dilation, out, xp.shape)
        return best

    def backward(self, g):
        kernel, stride, padding, dilation, out, padded_shape = self.geometry
        dxp = np.zeros(padded_shape, dtype=g.dtype)
        zero = np.zeros((), dtype=g.dtype)
        for o, (i, j) in enumerate(np.ndindex(*kernel)):
            dxp[(slice(None), slice(None)) + offset_slices(i, j, stride, dilation, out)] += np.where(self.arg == o, g, zero)
        return np.ascontiguousarray(crop(dxp, padding, self.parents[0].shape[2:]))

    def backward_graph(self, g):
        return (MaxUnpoolGrad.apply(g, arg=self.arg, geometry=self.geometry,
                                    shape=self.parents[0].shape[2:]),)

    def indices(self, width: int) -> np.ndarray:
        """Flat input index (row * W + column) of each maximum, as return_indices gives."""
        kernel, stride, padding, dilation, out, _ = self.geometry
        ki, kj = np.divmod(self.arg, kernel[1])
        rows = np.arange(out[0])[:, None] * stride[0] + ki * dilation[0] - padding[0][0]
        cols = np.arange(out[1])[None, :] * stride[1] + kj * dilation[1] - padding[1][0]
        return (rows * width + cols).astype(np.int64)


class MaxUnpoolGrad(Function):
    # the backward of max pooling as a node (linear in g): its own backward gathers g back

    def forward(self, g, arg, geometry, shape):
        kernel, stride, padding, dilation, out, padded_shape = geometry
        self.arg, self.geometry = arg, geometry
        dxp = np.zeros(padded_shape, dtype=g.dtype)
        for o, (i, j) in enumerate(np.ndindex(*kernel)):
            dxp[(slice(None), slice(None)) + offset_slices(i, j, stride, dilation, out)] += np.where(arg == o, g, 0)
        return np.ascontiguousarray(crop(dxp, padding, shape))

    def backward(self, gg):
        kernel, stride, padding, dilation, out, padded_shape = self.geometry
        ggp = pad_spatial(gg, padding)
        result = np.zeros(self.arg.shape, dtype=gg.dtype)
        for o, (i, j) in enumerate(np.ndindex(*kernel)):
            view = ggp[(slice(None), slice(None)) + offset_slices(i, j, stride, dilation, out)]
            if view.shape != result.shape:  # ceil_mode's extra rows lie beyond ggp
                continue
            np.copyto(result, view, where=self.arg == o)
        return result


class AvgPool2d(Function):
    # y = sum over offsets of xp / divisor  =>  dL/dxp[offset] += g / divisor

    def forward(self, x, kernel, stride, padding, out, divisor):
        xp = pad_spatial(x, padding)
        total = np.zeros(x.shape[:2] + out, dtype=x.dtype)
        for i, j in np.ndindex(*kernel):
            total += xp[(slice(None), slice(None)) + offset_slices(i, j, stride, (1, 1), out)]
        self.geometry, self.divisor = (kernel, stride, padding, out, xp.shape), divisor
        return total / divisor

    def backward(self, g):
        kernel, stride, padding, out, padded_shape = self.geometry
        share = g / self.divisor
        dxp = np.zeros(padded_shape, dtype=g.dtype)
        for i, j in np.ndindex(*kernel):
            dxp[(slice(None), slice(None)) + offset_slices(i, j, stride, (1, 1), out)] += share
        return np.ascontiguousarray(crop(dxp, padding, self.parents[0].shape[2:]))

    def backward_graph(self, g):
        kernel, stride, padding, out, padded_shape = self.geometry
        return (AvgPoolGrad.apply(g, geometry=self.geometry, divisor=self.divisor,
                                  shape=self.parents[0].shape[2:]),)


class AvgPoolGrad(Function):
    # the (linear) backward of average pooling as a node; its backward is average pooling

    def forward(self, g, geometry, divisor, shape):
        kernel, stride, padding, out, padded_shape = geometry
        self.geometry, self.divisor = geometry, divisor
        dxp = np.zeros(padded_shape, dtype=g.dtype)
        for i, j in np.ndindex(*kernel):
            dxp[(slice(None), slice(None)) + offset_slices(i, j, stride, (1, 1), out)] += g / divisor
        return np.ascontiguousarray(crop(dxp, padding, shape))

    def backward(self, gg):
        kernel, stride, padding, out, _ = self.geometry
        ggp = pad_spatial(gg, padding)
        total = np.zeros(gg.shape[:2] + out, dtype=gg.dtype)
        for i, j in np.ndindex(*kernel):
            view = ggp[(slice(None), slice(None)) + offset_slices(i, j, stride, (1, 1), out)]
            total[..., :view.shape[2], :view.shape[3]] += view
        return total / self.divisor


def _batched(op, x, dims):
    x = as_float_tensor(x, op)
    if x.ndim not in (dims + 1, dims + 2):
        raise ValueError(f"{op}: input must be {dims + 1}-d (unbatched) or {dims + 2}-d (batched), got shape {x.shape}")
    unbatched = x.ndim == dims + 1
    return (x.reshape(1, *x.shape) if unbatched else x), unbatched


def _window_args(op, kernel_size, stride, padding, dilation, dims=2):
    kernel = pair(op, "kernel_size", kernel_size, dims)
    stride = kernel if stride is None or stride == [] else pair(op, "stride", stride, dims)
    return kernel, stride, pair(op, "padding", padding, dims, 0), pair(op, "dilation", dilation, dims)


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode: bool = False,
               return_indices: bool = False):
    """Max over (kh, kw) windows: input (N, C, H, W) or (C, H, W) -> (N, C, Ho, Wo); with
    return_indices also the flat (row * W + column) input index of each maximum (int64)."""
    x, unbatched = _batched("max_pool2d", input, 2)
    kernel, stride, padding, dilation = _window_args("max_pool2d", kernel_size, stride, padding, dilation)
    out, pads = _pool_geometry("max_pool2d", x.shape[2:], kernel, stride, padding, dilation, ceil_mode)
    y = MaxPool2d.apply(x, kernel=kernel, stride=stride, padding=pads, dilation=dilation, out=out)
    result = y.reshape(*y.shape[1:]) if unbatched else y
    if not return_indices:
        return result
    node = y._ctx if y._ctx is not None else None
    if node is None:  # no graph was recorded: recompute the indices
        node = MaxPool2d()
        node.forward(x.data, kernel, stride, pads, dilation, out)
    indices = node.indices(x.shape[3])
    return result, Tensor(indices[0] if unbatched else indices)


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
               count_include_pad: bool = True, divisor_override=None) -> Tensor:
    """Mean over (kh, kw) windows: input (N, C, H, W) or (C, H, W) -> (N, C, Ho, Wo)."""
    x, unbatched = _batched("avg_pool2d", input, 2)
    kernel, stride, padding, _ = _window_args("avg_pool2d", kernel_size, stride, padding, 1)
    out, pads = _pool_geometry("avg_pool2d", x.shape[2:], kernel, stride, padding, (1, 1), ceil_mode)
    if divisor_override is not None:
        if isinstance(divisor_override, bool) or not isinstance(divisor_override, (int, np.integer)) or divisor_override <= 0:
            raise ValueError(f"avg_pool2d: divisor_override must be a positive int, got {divisor_override!r}")
        divisor = np.asarray(float(divisor_override), dtype=x.dtype)
    else:  # count the window entries that lie in the padded input (or in the input)
        h, w = x.shape[2:]
        inside = np.zeros((1, 1) + tuple(n + a + b for n, (a, b) in zip((h, w), pads)), dtype=x.dtype)
        if count_include_pad:
            inside[..., :h + 2 * padding[0], :w + 2 * padding[1]] = 1
        else:
            inside[..., pads[0][0]:pads[0][0] + h, pads[1][0]:pads[1][0] + w] = 1
        divisor = np.zeros((1, 1) + out, dtype=x.dtype)
        for i, j in np.ndindex(*kernel):
            divisor += inside[(slice(None), slice(None)) + offset_slices(i, j, stride, (1, 1), out)]
    y = AvgPool2d.apply(x, kernel=kernel, stride=stride, padding=pads, out=out, divisor=divisor)
    return y.reshape(*y.shape[1:]) if unbatched else y


def _pool_1d(op, input):
    x = as_float_tensor(input, op)
    if x.ndim not in (2, 3):
        raise ValueError(f"{op}: input must be 2-d (C, L) or 3-d (N, C, L), got shape {x.shape}")
    return x.reshape(*x.shape[:-1], 1, x.shape[-1])


def _one(op, name, value, default=None, minimum=1):
    if value is None:
        return default
    return (1 if minimum else 0, pair(op, name, value, 1, minimum)[0])


def max_pool1d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode: bool = False,
               return_indices: bool = False):
    """Max over windows of length k: input (N, C, L) or (C, L) -> (N, C, Lo)."""
    x = _pool_1d("max_pool1d", input)
    kernel = _one("max_pool1d", "kernel_size", kernel_size)
    result = max_pool2d(x, kernel, _one("max_pool1d", "stride", stride, kernel),
                        (0, pair("max_pool1d", "padding", padding, 1, 0)[0]),
                        _one("max_pool1d", "dilation", dilation), ceil_mode, return_indices)
    if return_indices:
        y, idx = result
        return y.reshape(*y.shape[:-2], y.shape[-1]), Tensor(idx.data.reshape(*idx.shape[:-2], idx.shape[-1]))
    return result.reshape(*result.shape[:-2], result.shape[-1])


def avg_pool1d(input, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
               count_include_pad: bool = True) -> Tensor:
    """Mean over windows of length k: input (N, C, L) or (C, L) -> (N, C, Lo)."""
    x = _pool_1d("avg_pool1d", input)
    kernel = _one("avg_pool1d", "kernel_size", kernel_size)
    y = avg_pool2d(x, kernel, _one("avg_pool1d", "stride", stride, kernel),
                   (0, pair("avg_pool1d", "padding", padding, 1, 0)[0]), ceil_mode, count_include_pad)
    return y.reshape(*y.shape[:-2], y.shape[-1])
