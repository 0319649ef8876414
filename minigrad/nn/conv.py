"""Convolution layers: Conv1d, Conv2d, ConvTranspose1d, ConvTranspose2d (PyTorch's arguments,
weight layouts and default initialization).

    conv = Conv2d(3, 16, kernel_size=3, padding=1)   # weight (16, 3, 3, 3), bias (16,)
    y = conv(x)                                      # x (N, 3, H, W) -> y (N, 16, H, W)

Weights: (out, in / groups, *kernel) for convolutions, (in, out / groups, *kernel) for
transposed ones; weight ~ kaiming_uniform_(a=sqrt(5)) and bias ~ U(-1/sqrt(fan_in),
1/sqrt(fan_in)), fan_in = weight.shape[1] * prod(kernel), as PyTorch.

padding_mode (Conv1d/Conv2d, as PyTorch): "zeros" pads inside the convolution; "reflect",
"replicate" and "circular" pad the input first with F.pad in that mode (the padding given, or
the one "same" computes), then convolve without padding:

    y = conv2d(F.pad(x, (left, right, top, bottom), mode=padding_mode), weight, bias, padding=0)

The transposed layers take only "zeros" (PyTorch raises in their forward).
"""
from __future__ import annotations

import math

import numpy as np

from . import functional as F
from . import init
from .module import Module, Parameter
from .functional._conv_util import conv_padding, pair
from ..tensor import Tensor


PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


class _ConvNd(Module):
    transposed = False
    dims = 2

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 groups=1, bias=True, padding_mode="zeros", output_padding=0, dtype=np.float32,
                 generator=None):
        super().__init__()
        name = type(self).__name__
        for label, value in (("in_channels", in_channels), ("out_channels", out_channels), ("groups", groups)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
                raise ValueError(f"{name}: {label} must be a positive int, got {value!r}")
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"{name}: groups={groups} must divide in_channels={in_channels} and "
                             f"out_channels={out_channels}")
        if padding_mode not in PADDING_MODES:
            raise ValueError(f"{name}: padding_mode must be one of {PADDING_MODES}, but got "
                             f"padding_mode={padding_mode!r}")
        if isinstance(padding, str) and (self.transposed or padding not in ("same", "valid")):
            raise ValueError(f"{name}: padding must be an int, a tuple{'' if self.transposed else ', valid or same'}, got {padding!r}")
        self.in_channels, self.out_channels, self.groups = int(in_channels), int(out_channels), int(groups)
        self.kernel_size = pair(name, "kernel_size", kernel_size, self.dims)
        self.stride = pair(name, "stride", stride, self.dims)
        self.padding = padding if isinstance(padding, str) else pair(name, "padding", padding, self.dims, 0)
        self.dilation = pair(name, "dilation", dilation, self.dims)
        self.output_padding = pair(name, "output_padding", output_padding, self.dims, 0)
        self.padding_mode = padding_mode
        if not self.transposed:  # F.pad's widths, last dim first: (left, right, top, bottom)
            widths = conv_padding(name, self.padding, self.kernel_size, self.stride, self.dilation)
            self._reversed_padding_repeated_twice = tuple(p for lo_hi in widths[::-1] for p in lo_hi)
        if self.transposed:
            shape = (in_channels, out_channels // groups) + self.kernel_size
        else:
            shape = (out_channels, in_channels // groups) + self.kernel_size
        self.weight = Parameter(np.empty(shape, dtype=np.dtype(dtype)))
        if bias:
            self.bias = Parameter(np.empty((out_channels,), dtype=np.dtype(dtype)))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters(generator)

    def reset_parameters(self, generator=None) -> None:
        init.kaiming_uniform_(self.weight, a=math.sqrt(5), generator=generator)
        if self.bias is not None:
            fan_in, _ = init.fan_in_and_fan_out(self.weight.shape)
            bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
            init.uniform_(self.bias, -bound, bound, generator=generator)

    def extra_repr(self) -> str:
        text = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}")
        if self.padding not in (0, (0,) * self.dims):
            text += f", padding={self.padding}"
        if self.dilation != (1,) * self.dims:
            text += f", dilation={self.dilation}"
        if self.transposed and self.output_padding != (0,) * self.dims:
            text += f", output_padding={self.output_padding}"
        if self.groups != 1:
            text += f", groups={self.groups}"
        if self.padding_mode != "zeros":
            text += f", padding_mode={self.padding_mode}"
        return text + ("" if self.bias is not None else ", bias=False")


def _zeros_only(layer: _ConvNd) -> None:
    if layer.padding_mode != "zeros":
        raise ValueError(f"Only `zeros` padding mode is supported for {type(layer).__name__} "
                         f"(got padding_mode={layer.padding_mode!r})")


class Conv2d(_ConvNd):
    """2-d convolution: x (N, C_in, H, W) or (C_in, H, W) -> (N, C_out, Ho, Wo)."""

    def forward(self, x: Tensor) -> Tensor:
        if self.padding_mode != "zeros":
            x = F.pad(x, self._reversed_padding_repeated_twice, mode=self.padding_mode)  # (N, C_in, H + pads, W + pads)
            return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)


class Conv1d(_ConvNd):
    """1-d convolution: x (N, C_in, L) or (C_in, L) -> (N, C_out, Lo)."""

    dims = 1

    def forward(self, x: Tensor) -> Tensor:
        if self.padding_mode != "zeros":
            x = F.pad(x, self._reversed_padding_repeated_twice, mode=self.padding_mode)  # (N, C_in, L + pads)
            return F.conv1d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)
        return F.conv1d(x, self.weight, self.bias, self.stride,
                        self.padding if isinstance(self.padding, str) else self.padding[0],
                        self.dilation, self.groups)


class ConvTranspose2d(_ConvNd):
    """Transposed 2-d convolution (the adjoint of Conv2d; upsampling with stride > 1):
    x (N, C_in, H, W) -> (N, C_out, (H - 1) s - 2 p + d (k - 1) + output_padding + 1, ...)."""

    transposed = True

    def forward(self, x: Tensor) -> Tensor:
        _zeros_only(self)
        return F.conv_transpose2d(x, self.weight, self.bias, self.stride, self.padding,
                                  self.output_padding, self.groups, self.dilation)


class ConvTranspose1d(_ConvNd):
    """Transposed 1-d convolution: x (N, C_in, L) -> (N, C_out, Lo)."""

    transposed, dims = True, 1

    def forward(self, x: Tensor) -> Tensor:
        _zeros_only(self)
        return F.conv_transpose1d(x, self.weight, self.bias, self.stride, self.padding,
                                  self.output_padding, self.groups, self.dilation)
