"""Shared pieces of the convolution and pooling kernels: argument checks, padding, and the
strided window views (im2col) with their adjoint (col2im).

For an input x (N, C, H, W) zero-padded to xp (N, C, Hp, Wp), a kernel of (kh, kw) with
stride (sh, sw) and dilation (dh, dw) has output positions

    Ho = (Hp - dh (kh - 1) - 1) // sh + 1,   Wo likewise,

and the window of output (ho, wo) at kernel offset (i, j) reads xp[:, :, ho sh + i dh,
wo sw + j dw]. `windows(xp, ...)` is that (C, kh, kw, N, Ho, Wo) array as a strided view of
xp (no copy); im2col copies it once into the (C kh kw, N Ho Wo) matrix that one GEMM
multiplies by the weights. col2im is the adjoint: a loop over the kh * kw kernel offsets
(never over positions) adding each offset's (C, N, Ho, Wo) slab into a strided view of the
padded gradient.
"""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided


def pair(op: str, name: str, value, dims: int = 2, minimum: int = 1) -> tuple:
    """An int or a tuple of `dims` ints (each >= minimum) as a tuple."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        value = (int(value),) * dims
    if (not isinstance(value, (tuple, list)) or len(value) != dims
            or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in value)):
        raise TypeError(f"{op}: {name} must be an int or a tuple of {dims} ints, got {value!r}")
    value = tuple(int(v) for v in value)
    if any(v < minimum for v in value):
        raise ValueError(f"{op}: {name} must be >= {minimum}, got {value}")
    return value


def conv_padding(op: str, padding, kernel: tuple, stride: tuple, dilation: tuple) -> tuple:
    """((top, bottom), (left, right)) from an int, a tuple, "valid" or "same".

    "same" (stride 1 only, as PyTorch) pads d (k - 1) in total, the odd extra one at the end.
    """
    if isinstance(padding, str):
        if padding == "valid":
            return tuple((0, 0) for _ in kernel)
        if padding == "same":
            if any(s != 1 for s in stride):
                raise ValueError(f"{op}: padding='same' needs stride 1, got stride {stride}")
            total = [d * (k - 1) for k, d in zip(kernel, dilation)]
            return tuple((t // 2, t - t // 2) for t in total)
        raise ValueError(f"{op}: padding must be an int, a tuple, 'valid' or 'same', got {padding!r}")
    return tuple((p, p) for p in pair(op, "padding", padding, len(kernel), minimum=0))


def output_size(op: str, in_shape: tuple, kernel: tuple, stride: tuple, padding: tuple,
                dilation: tuple, input_shape: tuple) -> tuple:
    """(Ho, Wo), or a ValueError when the (dilated) kernel is larger than the padded input."""
    sizes = []
    for n, k, s, (p0, p1), d in zip(in_shape, kernel, stride, padding, dilation):
        span = d * (k - 1) + 1
        if n + p0 + p1 < span:
            raise ValueError(
                f"{op}: kernel {kernel} (dilation {dilation}: spans {span}) is larger than the "
                f"padded input {tuple(a + b0 + b1 for a, (b0, b1) in zip(in_shape, padding))} "
                f"(input {tuple(input_shape)}, padding {padding})")
        sizes.append((n + p0 + p1 - span) // s + 1)
    return tuple(sizes)


def pad_spatial(x: np.ndarray, padding: tuple, value: float = 0.0) -> np.ndarray:
    """x (N, C, H, W) padded by ((top, bottom), (left, right)) with `value` (x itself if none)."""
    if not any(p for pads in padding for p in pads):
        return x
    out = np.full(x.shape[:2] + tuple(n + a + b for n, (a, b) in zip(x.shape[2:], padding)),
                  value, dtype=x.dtype)
    out[(slice(None), slice(None)) + tuple(slice(a, a + n) for n, (a, _) in zip(x.shape[2:], padding))] = x
    return out


def windows(xp: np.ndarray, kernel: tuple, stride: tuple, dilation: tuple, out: tuple) -> np.ndarray:
    """Read-only (C, kh, kw, N, Ho, Wo) strided view of xp (N, C, Hp, Wp): the window entries."""
    sn, sc, sh, sw = xp.strides
    (kh, kw), (st_h, st_w), (dh, dw), (ho, wo) = kernel, stride, dilation, out
    return as_strided(xp, shape=(xp.shape[1], kh, kw, xp.shape[0], ho, wo),
                      strides=(sc, sh * dh, sw * dw, sn, sh * st_h, sw * st_w), writeable=False)


def im2col(xp: np.ndarray, kernel: tuple, stride: tuple, dilation: tuple, out: tuple) -> np.ndarray:
    """(C kh kw, N Ho Wo) contiguous copy of the windows of xp (N, C, Hp, Wp)."""
    view = windows(xp, kernel, stride, dilation, out)  # (C, kh, kw, N, Ho, Wo)
    cols = np.empty(view.shape, dtype=xp.dtype)
    np.copyto(cols, view)
    return cols.reshape(view.shape[0] * kernel[0] * kernel[1], view.shape[3] * view.shape[4] * view.shape[5])  # explicit: N may be 0


def offset_slices(i: int, j: int, stride: tuple, dilation: tuple, out: tuple) -> tuple:
    """The (rows, columns) slices of the padded input read at kernel offset (i, j)."""
    (st_h, st_w), (dh, dw), (ho, wo) = stride, dilation, out
    return (slice(i * dh, i * dh + st_h * (ho - 1) + 1, st_h),
            slice(j * dw, j * dw + st_w * (wo - 1) + 1, st_w))


def col2im(cols: np.ndarray, padded_shape: tuple, kernel: tuple, stride: tuple, dilation: tuple,
           out: tuple) -> np.ndarray:
    """Adjoint of im2col: cols (C kh kw, N Ho Wo) -> (N, C, Hp, Wp), adding overlaps.

    Accumulates in a (C, N, Hp, Wp) buffer, one strided slab per kernel offset, then returns
    a transposed view of it (call np.ascontiguousarray when a C-order array is needed).
    """
    n, c, hp, wp = padded_shape
    kh, kw = kernel
    slabs = cols.reshape(c, kh, kw, n, out[0], out[1])
    grad = np.zeros((c, n, hp, wp), dtype=cols.dtype)
    for i in range(kh):
        for j in range(kw):
            rows, columns = offset_slices(i, j, stride, dilation, out)
            grad[:, :, rows, columns] += slabs[:, i, j]
    return grad.transpose(1, 0, 2, 3)


def crop(xp: np.ndarray, padding: tuple, shape: tuple) -> np.ndarray:
    """The unpadded (H, W) part of xp (N, C, Hp, Wp): undoes pad_spatial (a view)."""
    (top, _), (left, _) = padding
    return xp[:, :, top:top + shape[0], left:left + shape[1]]
