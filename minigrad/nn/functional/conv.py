"""Convolutions: conv1d, conv2d, conv_transpose1d, conv_transpose2d (PyTorch's layouts and
arguments), each one node whose forward is ONE (batched over groups) GEMM on im2col windows.

conv2d, x (N, C, H, W), weight (O, C/g, kh, kw), g groups, padded input xp:

    cols[c i j, n ho wo] = xp[n, c, ho sh + i dh, wo sw + j dw]     (_conv_util.im2col)
    y[n, o, ho, wo]      = sum_{c i j} W[o, c i j] cols[c i j, n ho wo] + b[o]

so with G = g reshaped to (O, N Ho Wo): y = W2 cols (one GEMM per group, run as one batched
matmul), and the backward is two more GEMMs and the adjoint of im2col:

    dW2 = G cols^T,   dcols = W2^T G,   dxp = col2im(dcols),   db = sum of G over positions

conv_transpose2d is the adjoint of conv2d in its input: its forward is conv2d's dx
(W2^T x, then col2im) and its backward is conv2d's forward (im2col of g, then W2 g_cols) and
weight gradient. The 1-d versions are the 2-d ones with a height of 1.
"""
from __future__ import annotations

import math

import numpy as np

from ...autograd import Function
from ...runtime.blas import single_blas_thread
from ...tensor import Tensor
from ._conv_util import col2im, conv_padding, crop, im2col, output_size, pad_spatial, pair
from ._util import as_float_tensor


SMALL_GEMM = 1 << 25  # multiply-adds below which a product runs on one BLAS thread


def _matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """np.matmul of (g, m, k) @ (g, k, n); small products on one BLAS thread, which on a busy
    machine is >10x faster than OpenBLAS splitting them (see minigrad/runtime/blas.py)."""
    if a.shape[0] * a.shape[1] * a.shape[2] * b.shape[2] < SMALL_GEMM:
        with single_blas_thread():
            return np.matmul(a, b)
    return np.matmul(a, b)


def _grouped(matrix: np.ndarray, groups: int) -> np.ndarray:
    """(rows, cols) -> (groups, rows / groups, cols), a view."""
    return matrix.reshape(groups, matrix.shape[0] // groups, matrix.shape[1])


class Conv2d(Function):
    # y = W2 cols + b  =>  dW2 = G cols^T, dcols = W2^T G (then col2im), db = rowsum(G)

    def forward(self, x, weight, *bias, stride, padding, dilation, groups):
        n = x.shape[0]
        out_channels, _, kh, kw = weight.shape
        out = output_size("conv2d", x.shape[2:], (kh, kw), stride, padding, dilation, x.shape)
        xp = pad_spatial(x, padding)
        cols = im2col(xp, (kh, kw), stride, dilation, out)  # (C kh kw, N Ho Wo)
        w2 = weight.reshape(groups, out_channels // groups, math.prod(weight.shape[1:]))  # (g, O/g, C/g kh kw)
        y = _matmul(w2, _grouped(cols, groups)).reshape(out_channels, n, *out)  # (O, N, Ho, Wo)
        if bias:
            y += bias[0].reshape(-1, 1, 1, 1)
        if self.requires_grad:
            self.cols, self.padded_shape, self.out = cols, xp.shape, out
        self.options = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
        return np.ascontiguousarray(y.transpose(1, 0, 2, 3), dtype=np.result_type(x, weight))  # (N, O, Ho, Wo)

    def backward(self, g):
        x, weight = self.parents[0], self.parents[1]
        stride, padding, dilation, groups = (self.options[k] for k in ("stride", "padding", "dilation", "groups"))
        out_channels, kh, kw = weight.shape[0], weight.shape[2], weight.shape[3]
        g2 = np.ascontiguousarray(g.transpose(1, 0, 2, 3)).reshape(groups, out_channels // groups, g.shape[0] * g.shape[2] * g.shape[3])  # (g, O/g, N Ho Wo)
        grads = [None, None] + [None] * (len(self.parents) - 2)
        if self.needs_input_grad[1]:
            cols = _grouped(self.cols, groups)  # (g, C/g kh kw, N Ho Wo)
            # dW2^T = cols G^T: OpenBLAS runs this long-k product ~10x faster than G cols^T
            grads[1] = np.ascontiguousarray(_matmul(cols, g2.transpose(0, 2, 1)).transpose(0, 2, 1)).reshape(weight.shape)
        if self.needs_input_grad[0]:
            w2 = weight.data.reshape(groups, out_channels // groups, math.prod(weight.shape[1:]))
            dcols = _matmul(w2.transpose(0, 2, 1), g2).reshape(groups * w2.shape[2], g2.shape[-1])  # (C kh kw, N Ho Wo)
            dxp = col2im(dcols, self.padded_shape, (kh, kw), stride, dilation, self.out)
            grads[0] = np.ascontiguousarray(crop(dxp, padding, x.shape[2:]))
        if len(grads) == 3 and self.needs_input_grad[2]:
            grads[2] = g2.sum(axis=2).reshape(-1)
        return tuple(grads)

    def backward_graph(self, g):
        # the same rule with differentiable nodes: dx = conv_transpose(g, W) (with the rows
        # conv2d dropped given back), dW = ConvWeightGrad(x, g), db = sum of g
        x, weight = self.parents[0], self.parents[1]
        geometry = _geometry(self.options)
        extra = _lost_rows(x.shape[2:], g.shape[2:], weight.shape[2:], self.options)
        gx = ConvTranspose2d.apply(g, weight, output_padding=extra, **geometry) if self.needs_input_grad[0] else None
        gw = ConvWeightGrad.apply(x, g, kernel=weight.shape[2:], **geometry) if self.needs_input_grad[1] else None
        if len(self.parents) == 2:
            return gx, gw
        return gx, gw, (g.sum(axis=(0, 2, 3)) if self.needs_input_grad[2] else None)


class ConvTranspose2d(Function):
    # y = col2im(W2^T x2) (cropped), x2 = x as (C_in, N H W)  =>  dx = W2 im2col(gp),
    # dW2 = x2 im2col(gp)^T, db = sum of g over N, H, W  (gp: g padded back to the col2im grid)

    def forward(self, x, weight, *bias, stride, padding, dilation, groups, output_padding):
        n, in_channels, h, w = x.shape
        _, out_per_group, kh, kw = weight.shape
        out_channels = out_per_group * groups
        full = tuple((size - 1) * s + d * (k - 1) + 1 + op
                     for size, s, d, k, op in zip((h, w), stride, dilation, (kh, kw), output_padding))
        x2 = np.ascontiguousarray(x.transpose(1, 0, 2, 3)).reshape(groups, in_channels // groups, n * h * w)
        w2 = weight.reshape(groups, in_channels // groups, math.prod(weight.shape[1:]))  # (g, C_in/g, O/g kh kw)
        cols = _matmul(w2.transpose(0, 2, 1), x2).reshape(groups * w2.shape[2], n * h * w)  # (O kh kw, N H W)
        yp = col2im(cols, (n, out_channels) + full, (kh, kw), stride, dilation, (h, w))
        size = tuple(f - p0 - p1 for f, (p0, p1) in zip(full, padding))
        y = np.ascontiguousarray(crop(yp, padding, size))
        if bias:
            y += bias[0].reshape(1, -1, 1, 1)
        self.options = dict(stride=stride, padding=padding, dilation=dilation, groups=groups,
                            output_padding=output_padding)
        if self.requires_grad:
            self.x2, self.full = x2, full
        return y

    def backward(self, g):
        x, weight = self.parents[0], self.parents[1]
        stride, padding, dilation, groups = (self.options[k] for k in ("stride", "padding", "dilation", "groups"))
        n, in_channels, h, w = x.shape
        kh, kw = weight.shape[2:]
        gp = np.zeros(g.shape[:2] + self.full, dtype=g.dtype)  # g back on the uncropped grid
        gp[:, :, padding[0][0]:padding[0][0] + g.shape[2], padding[1][0]:padding[1][0] + g.shape[3]] = g
        cols = _grouped(im2col(gp, (kh, kw), stride, dilation, (h, w)), groups)  # (g, O/g kh kw, N H W)
        grads = [None, None] + [None] * (len(self.parents) - 2)
        if self.needs_input_grad[0]:
            w2 = weight.data.reshape(groups, in_channels // groups, math.prod(weight.shape[1:]))
            dx = _matmul(w2, cols).reshape(in_channels, n, h, w)
            grads[0] = np.ascontiguousarray(dx.transpose(1, 0, 2, 3))
        if self.needs_input_grad[1]:
            grads[1] = np.ascontiguousarray(_matmul(cols, self.x2.transpose(0, 2, 1)).transpose(0, 2, 1)).reshape(weight.shape)
        if len(grads) == 3 and self.needs_input_grad[2]:
            grads[2] = g.sum(axis=(0, 2, 3))
        return tuple(grads)

    def backward_graph(self, g):
        # y = A^T x for the convolution A of this geometry: dx = A g = conv2d(g, W),
        # dW = ConvWeightGrad(g, x) (x plays the upstream gradient of A), db = sum of g
        x, weight = self.parents[0], self.parents[1]
        geometry = _geometry(self.options)
        gx = Conv2d.apply(g, weight, **geometry) if self.needs_input_grad[0] else None
        gw = ConvWeightGrad.apply(g, x, kernel=weight.shape[2:], **geometry) if self.needs_input_grad[1] else None
        if len(self.parents) == 2:
            return gx, gw
        return gx, gw, (g.sum(axis=(0, 2, 3)) if self.needs_input_grad[2] else None)


class ConvWeightGrad(Function):
    # dW = G cols(x)^T (conv2d's weight gradient, bilinear in x and g). With H = dL/d(dW):
    #   <dW(x, g), H> = <g, conv2d(x, H)> = <x, conv_transpose2d(g, H)>, so
    #   dL/dx = conv_transpose2d(g, H), dL/dg = conv2d(x, H)
    def forward(self, x, g, kernel, stride, padding, dilation, groups):
        self.options = dict(kernel=kernel, stride=stride, padding=padding, dilation=dilation, groups=groups)
        out_channels = g.shape[1]
        xp = pad_spatial(x, padding)
        cols = _grouped(im2col(xp, tuple(kernel), stride, dilation, g.shape[2:]), groups)
        g2 = np.ascontiguousarray(g.transpose(1, 0, 2, 3)).reshape(groups, out_channels // groups, g.shape[0] * g.shape[2] * g.shape[3])
        dw = _matmul(cols, g2.transpose(0, 2, 1)).transpose(0, 2, 1)  # (g, O/g, C/g kh kw)
        return np.ascontiguousarray(dw).reshape(out_channels, x.shape[1] // groups, *kernel)

    def backward_graph(self, h):
        x, g = self.parents
        geometry = _geometry(self.options)
        extra = _lost_rows(x.shape[2:], g.shape[2:], h.shape[2:], self.options)
        gx = ConvTranspose2d.apply(g, h, output_padding=extra, **geometry) if self.needs_input_grad[0] else None
        gg = Conv2d.apply(x, h, **geometry) if self.needs_input_grad[1] else None
        return gx, gg


def _geometry(options: dict) -> dict:
    return {key: options[key] for key in ("stride", "padding", "dilation", "groups")}


def _lost_rows(in_size, out_size, kernel, options) -> tuple:
    """Input rows (columns) after the last window, which conv2d never reads: the
    output_padding that makes conv_transpose2d return the input's full size."""
    return tuple(n + p0 + p1 - ((o - 1) * s + d * (k - 1) + 1)
                 for n, o, k, s, d, (p0, p1) in zip(in_size, out_size, kernel, options["stride"],
                                                     options["dilation"], options["padding"]))


# ---------------------------------------------------------------- argument checks
def _check_conv(op, x, weight, bias, groups, transposed, dims):
    x = as_float_tensor(x, op)
    weight = as_float_tensor(weight, op, "weight")
    if isinstance(groups, bool) or not isinstance(groups, (int, np.integer)) or groups < 1:
        raise ValueError(f"{op}: groups must be a positive int, got {groups!r}")
    if weight.ndim != dims + 2:
        raise ValueError(f"{op}: weight must be {dims + 2}-d, got shape {weight.shape}")
    unbatched = x.ndim == dims + 1
    if x.ndim not in (dims + 1, dims + 2):
        raise ValueError(f"{op}: input must be {dims + 1}-d (unbatched) or {dims + 2}-d (batched), got shape {x.shape}")
    if unbatched:
        x = x.reshape(1, *x.shape)
    in_channels = x.shape[1]
    if transposed:
        if weight.shape[0] != in_channels or in_channels % groups:
            raise ValueError(f"{op}: input {x.shape} has {in_channels} channels; weight {weight.shape} "
                             f"(in_channels, out_channels/groups, k...) needs {weight.shape[0]}, "
                             f"divisible by groups={groups}")
        out_channels = weight.shape[1] * groups
    else:
        if in_channels % groups or weight.shape[0] % groups:
            raise ValueError(f"{op}: groups={groups} must divide the input channels ({in_channels}, "
                             f"input {x.shape}) and the output channels ({weight.shape[0]}, weight {weight.shape})")
        if weight.shape[1] * groups != in_channels:
            raise ValueError(f"{op}: input {x.shape} has {in_channels} channels, but weight {weight.shape} "
                             f"expects {weight.shape[1] * groups} (weight.shape[1] * groups={groups})")
        out_channels = weight.shape[0]
    params = [x, weight]
    if bias is not None:
        bias = as_float_tensor(bias, op, "bias")
        if bias.shape != (out_channels,):
            raise ValueError(f"{op}: bias has shape {bias.shape}, expected ({out_channels},)")
        params.append(bias)
    return params, unbatched


def _finish(y: Tensor, unbatched: bool) -> Tensor:
    return y.reshape(*y.shape[1:]) if unbatched else y


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups: int = 1) -> Tensor:
    """2-d convolution (cross-correlation, as PyTorch): input (N, C, H, W) or (C, H, W), weight
    (O, C/groups, kh, kw), bias (O,) -> (N, O, Ho, Wo). padding: int, pair, 'valid' or 'same'."""
    params, unbatched = _check_conv("conv2d", input, weight, bias, groups, False, 2)
    kernel = params[1].shape[2:]
    stride, dilation = pair("conv2d", "stride", stride), pair("conv2d", "dilation", dilation)
    pads = conv_padding("conv2d", padding, kernel, stride, dilation)
    return _finish(Conv2d.apply(*params, stride=stride, padding=pads, dilation=dilation,
                                groups=int(groups)), unbatched)


def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0,
                     groups: int = 1, dilation=1) -> Tensor:
    """Transposed 2-d convolution (the gradient of conv2d in its input): input (N, C_in, H, W),
    weight (C_in, O/groups, kh, kw) -> (N, O, (H-1) s - 2 p + d (k-1) + output_padding + 1, ...)."""
    params, unbatched = _check_conv("conv_transpose2d", input, weight, bias, groups, True, 2)
    stride, dilation = pair("conv_transpose2d", "stride", stride), pair("conv_transpose2d", "dilation", dilation)
    pads = tuple((p, p) for p in pair("conv_transpose2d", "padding", padding, minimum=0))
    extra = pair("conv_transpose2d", "output_padding", output_padding, minimum=0)
    if any(e >= max(s, d) for e, s, d in zip(extra, stride, dilation)):
        raise ValueError(f"conv_transpose2d: output_padding {extra} must be smaller than stride {stride} "
                         f"or dilation {dilation}")
    x, weight = params[0], params[1]
    full = [(n - 1) * s + d * (k - 1) + 1 + e for n, s, d, k, e in zip(x.shape[2:], stride, dilation, weight.shape[2:], extra)]
    if any(f - 2 * p[0] < 1 for f, p in zip(full, pads)):
        raise ValueError(f"conv_transpose2d: padding {pads} leaves no output for input {x.shape} and weight {weight.shape}")
    return _finish(ConvTranspose2d.apply(*params, stride=stride, padding=pads, dilation=dilation,
                                         groups=int(groups), output_padding=extra), unbatched)


def _as_2d(op, input, weight, stride, padding, dilation, output_padding=None):
    """The 1-d arguments as 2-d ones with a height of 1."""
    x = as_float_tensor(input, op)
    w = as_float_tensor(weight, op, "weight")
    if x.ndim not in (2, 3) or w.ndim != 3:
        raise ValueError(f"{op}: input must be 2-d (C, L) or 3-d (N, C, L) and weight 3-d, got "
                         f"input {x.shape}, weight {w.shape}")
    x2 = x.reshape(*x.shape[:-1], 1, x.shape[-1])  # (N, C, 1, L)
    w2 = w.reshape(*w.shape[:-1], 1, w.shape[-1])  # (O, C/g, 1, k)
    args = dict(stride=(1, pair(op, "stride", stride, 1)[0]),
                dilation=(1, pair(op, "dilation", dilation, 1)[0]))
    args["padding"] = padding if isinstance(padding, str) else (0, pair(op, "padding", padding, 1, 0)[0])
    if output_padding is not None:
        args["output_padding"] = (0, pair(op, "output_padding", output_padding, 1, 0)[0])
    return x2, w2, args


def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups: int = 1) -> Tensor:
    """1-d convolution: input (N, C, L) or (C, L), weight (O, C/groups, k) -> (N, O, Lo)."""
    x2, w2, args = _as_2d("conv1d", input, weight, stride, padding, dilation)
    y = conv2d(x2, w2, bias, groups=groups, **args)
    return y.reshape(*y.shape[:-2], y.shape[-1])


def conv_transpose1d(input, weight, bias=None, stride=1, padding=0, output_padding=0,
                     groups: int = 1, dilation=1) -> Tensor:
    """Transposed 1-d convolution: input (N, C_in, L), weight (C_in, O/groups, k)."""
    x2, w2, args = _as_2d("conv_transpose1d", input, weight, stride, padding, dilation, output_padding)
    y = conv_transpose2d(x2, w2, bias, groups=groups, **args)
    return y.reshape(*y.shape[:-2], y.shape[-1])
