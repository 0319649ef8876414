"""einsum, diag, diagonal and pad (constant, reflect, replicate, circular).

einsum's forward is np.einsum; the gradient of operand k is the einsum of g with the other
operands, written to k's subscripts ("ij,jk->ik": dA = "ik,jk->ij"(g, B)). An index that
appears only in operand k (summed away) is restored by broadcasting; a repeated index in one
operand (a diagonal, "ii->") is handled by writing g onto that diagonal.

pad's constant mode is a slice-copy whose gradient is the matching slice of g; reflect,
replicate and circular pick source positions with index_select along each padded axis (their
gradient adds the copies back with index_add).
"""
from __future__ import annotations

import string

import numpy as np

from ..autograd import Function
from ..tensor import Tensor
from .index import IndexSelect
from .promote import check_dim, promote_types

LETTERS = string.ascii_letters


def parse_einsum(equation: str, shapes: list) -> tuple:
    """(input subscripts, output subscripts) with '...' expanded, or a ValueError naming the
    equation and the operand shapes."""
    equation = equation.replace(" ", "")
    inputs, arrow, output = equation.partition("->")
    parts = inputs.split(",")
    if len(parts) != len(shapes):
        raise ValueError(f"einsum: equation {equation!r} has {len(parts)} operands, got {len(shapes)} "
                         f"tensors of shapes {[tuple(s) for s in shapes]}")
    free = [c for c in LETTERS if c not in equation]
    ellipsis_dims = max([len(s) - len(p.replace("...", "")) for p, s in zip(parts, shapes) if "..." in p] or [0])
    batch = "".join(free[:ellipsis_dims])
    expanded = []
    for part, shape in zip(parts, shapes):
        if "..." in part:
            n = len(shape) - len(part.replace("...", ""))
            part = part.replace("...", batch[ellipsis_dims - n:] if n else "")
        if len(part) != len(shape) or not all(c in LETTERS for c in part):
            raise ValueError(f"einsum: subscripts {part!r} do not match an operand of shape {tuple(shape)} "
                             f"(equation {equation!r})")
        expanded.append(part)
    sizes = {}
    for part, shape in zip(expanded, shapes):
        for c, n in zip(part, shape):
            if sizes.setdefault(c, n) != n and n != 1 and sizes[c] != 1:
                raise ValueError(f"einsum: index {c!r} has sizes {sizes[c]} and {n} in equation "
                                 f"{equation!r} (shapes {[tuple(s) for s in shapes]})")
            sizes[c] = max(sizes[c], n)
    if arrow:
        out = output.replace("...", batch)
    else:  # implicit output: the indices that appear once, in alphabetical order
        counts = "".join(expanded)
        out = batch + "".join(sorted(c for c in set(counts) if counts.count(c) == 1 and c not in batch))
    return expanded, out, sizes


class Einsum(Function):
    # out = einsum(spec, *ops): d/d op_k = einsum(g and the other operands -> op_k's subscripts)
    def forward(self, *arrays, equation):
        self.inputs, self.output, self.sizes = parse_einsum(equation, [a.shape for a in arrays])
        spec = ",".join(self.inputs) + "->" + self.output
        return np.asarray(np.einsum(spec, *arrays, optimize=len(arrays) > 2))

    def backward_graph(self, g):
        grads = []
        for k, (parent, target) in enumerate(zip(self.parents, self.inputs)):
            if not self.needs_input_grad[k]:
                grads.append(None)
                continue
            others = [p for i, p in enumerate(self.parents) if i != k]
            subscripts = [s for i, s in enumerate(self.inputs) if i != k]
            grads.append(_operand_gradient(g, self.output, others, subscripts, target, parent.shape, self.sizes))
        return tuple(grads)


def _operand_gradient(g, output, others, subscripts, target, shape, sizes):
    unique = "".join(dict.fromkeys(target))  # a repeated index (a diagonal) appears once here
    known = set(output).union(*subscripts) if subscripts else set(output)
    reachable = "".join(c for c in unique if c in known)
    spec = ",".join([output] + subscripts) + "->" + reachable
    grad = Einsum.apply(g, *others, equation=spec)
    missing = [c for c in unique if c not in known]  # summed in the forward by this operand only
    if missing:
        full = reachable + "".join(missing)
        grad = grad.reshape(grad.shape + (1,) * len(missing)).expand(tuple(sizes[c] for c in full))
        grad = Einsum.apply(grad, equation=f"{full}->{unique}")
    if unique != target:  # repeated indices: g lands on the diagonal, zeros elsewhere
        first = [target.index(c) == i for i, c in enumerate(target)]
        view = tuple(n if keep else 1 for n, keep in zip(shape, first))
        eye = Tensor._wrap(_diagonal_mask(target, shape).astype(grad.dtype), False)
        grad = grad.reshape(view) * eye  # (unique axes at their first positions) * diagonal mask
    if grad.shape != tuple(shape):  # an operand broadcast along a size-1 axis
        grad = grad.sum_to_size(shape)
    return grad


def _diagonal_mask(target: str, shape) -> np.ndarray:
    mask = np.ones(shape, dtype=np.float64)
    for c in set(target):
        axes = [i for i, t in enumerate(target) if t == c]
        for other in axes[1:]:
            n = shape[axes[0]]
            view = [1] * len(shape)
            view[axes[0]], view[other] = n, n
            mask = mask * np.eye(n).reshape(view)
    return mask


def einsum(equation: str, *operands) -> Tensor:
    """Einstein summation as np.einsum ("ij,jk->ik", "bij,bjk->bik", "ii->i", "...ij->...ji");
    operands may also be given as one list. Dtypes promote as PyTorch. Backward: the einsum
    of g with the other operands, onto each operand's subscripts."""
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    tensors = [t if isinstance(t, Tensor) else Tensor(t) for t in operands]
    if len({t.dtype for t in tensors}) > 1:
        dtype = tensors[0].dtype
        for t in tensors[1:]:
            dtype = promote_types(dtype, t.dtype)
        tensors = [t.to(dtype) for t in tensors]
    return Einsum.apply(*tensors, equation=equation)


class ConstantPad(Function):
    # out = a copied into the middle of a block of `value` (negative pads crop): d/da = g's
    # middle block (zeros where a was cropped)
    def forward(self, a, widths, value):
        self.widths = widths
        cropped = a[tuple(slice(max(-lo, 0), n - max(-hi, 0)) for (lo, hi), n in zip(widths, a.shape))]
        grown = [(max(lo, 0), max(hi, 0)) for lo, hi in widths]
        self.inner = tuple(slice(lo, lo + n) for (lo, _), n in zip(grown, cropped.shape))
        self.crop = tuple(slice(max(-lo, 0), n - max(-hi, 0)) for (lo, hi), n in zip(widths, a.shape))
        return np.pad(cropped, grown, mode="constant", constant_values=value)

    def backward_graph(self, g):
        inner = g[self.inner]
        if inner.shape == self.parents[0].shape:
            return inner
        zeros = Tensor._wrap(np.zeros(self.parents[0].shape, g.dtype), False)
        return _write(zeros, self.crop, inner)


def _write(base: Tensor, where: tuple, values: Tensor) -> Tensor:
    """zeros of base's shape with `values` written at `where` (differentiable in values)."""
    return _PadInto.apply(values, shape=base.shape, where=where)


class _PadInto(Function):
    # out = zeros(shape) with a written at `where`: d/da = g[where]
    def forward(self, a, shape, where):
        out = np.zeros(shape, dtype=a.dtype)
        out[where] = a
        return out

    def backward_graph(self, g):
        return g[self.options["where"]]


def _source_index(n: int, lo: int, hi: int, mode: str, op: str, shape) -> np.ndarray:
    if n == 0:  # nothing to reflect, repeat or wrap (PyTorch refuses it too)
        raise ValueError(f"{op}: {mode} padding ({lo}, {hi}) of an empty dim (input shape {tuple(shape)}): "
                         f"only mode 'constant' pads an empty dim")
    positions = np.arange(-lo, n + hi)
    if mode == "reflect":
        if lo >= n or hi >= n:
            raise ValueError(f"{op}: reflect padding ({lo}, {hi}) must be smaller than the size {n} "
                             f"of the padded dim (input shape {tuple(shape)})")
        period = 2 * (n - 1) if n > 1 else 1
        positions = np.abs(positions) % period
        return np.where(positions >= n, period - positions, positions)
    if mode == "replicate":
        return np.clip(positions, 0, n - 1)
    if lo > n or hi > n:  # PyTorch: "Padding value causes wrapping around more than once"
        raise ValueError(f"{op}: circular padding ({lo}, {hi}) would wrap around more than once: at most "
                         f"the size {n} of the padded dim (input shape {tuple(shape)})")
    return positions % n  # circular


def pad(input, pad, mode: str = "constant", value: float = 0.0) -> Tensor:
    """Pad the last len(pad) // 2 dims: pad = (left, right) for the last dim, then (top,
    bottom) for the one before, ... as torch.nn.functional.pad. mode: "constant" (fill with
    value; negative pads crop), "reflect" (mirror without the edge), "replicate" (repeat
    the edge), "circular" (wrap around). Backward: g's copies added back to their sources."""
    if len(pad) % 2 or len(pad) // 2 > input.ndim:
        raise ValueError(f"pad: pad {tuple(pad)} must have an even length of at most 2 x {input.ndim} "
                         f"(input shape {input.shape})")
    pairs = [(int(pad[2 * i]), int(pad[2 * i + 1])) for i in range(len(pad) // 2)]
    widths = [(0, 0)] * (input.ndim - len(pairs)) + pairs[::-1]  # (lo, hi) per dim, in dim order
    if mode == "constant":
        return ConstantPad.apply(input, widths=tuple(widths), value=value)
    if mode not in ("reflect", "replicate", "circular"):
        raise ValueError(f"pad: mode must be 'constant', 'reflect', 'replicate' or 'circular', got {mode!r}")
    out = input
    for dim, (lo, hi) in enumerate(widths):
        if lo or hi:
            if lo < 0 or hi < 0:
                raise ValueError(f"pad: negative padding needs mode 'constant', got {mode!r}")
            index = _source_index(input.shape[dim], lo, hi, mode, "pad", input.shape)
            out = IndexSelect.apply(out, Tensor._wrap(index, False), dim=dim)
    return out


_pad = pad  # the function, for the method below whose argument is also called pad


class EinsumMethods:
    """diag, diagonal, pad as methods (installed onto Tensor by minigrad.ops)."""

    def diagonal(self, offset: int = 0, dim1: int = 0, dim2: int = 1):
        """The diagonal of the (dim1, dim2) planes as a new last dim (offset > 0: above the
        main diagonal). Backward: g written back onto the diagonal."""
        d1 = check_dim("diagonal", dim1, self.ndim, self.shape)
        d2 = check_dim("diagonal", dim2, self.ndim, self.shape)
        if d1 == d2:
            raise ValueError(f"diagonal: dim1 and dim2 are both {d1} (shape {self.shape})")
        moved = self.movedim((d1, d2), (-2, -1))  # (..., n, m)
        n, m = moved.shape[-2:]
        rows = np.arange(max(0, -offset), min(n, m - offset)) if -n < offset < m else np.arange(0)
        return moved[(Ellipsis, rows, rows + offset)]

    def diag(self, diagonal: int = 0):
        """1-d input: the square matrix with it on the `diagonal`-th diagonal; 2-d input: that
        diagonal as a 1-d tensor. Backward: the matching entries of g."""
        if self.ndim == 2:
            return self.diagonal(diagonal)
        if self.ndim != 1:
            raise ValueError(f"diag: input must be 1-d or 2-d, got shape {self.shape}")
        n = self.shape[0] + abs(diagonal)
        rows = np.arange(self.shape[0]) + max(0, -diagonal)
        where = (rows, rows + diagonal)
        return _PadInto.apply(self, shape=(n, n), where=where)

    def diag_embed(self, offset: int = 0):
        """Each last-dim vector on the diagonal of a new matrix (the last two dims)."""
        n = self.shape[-1] + abs(offset)
        rows = np.arange(self.shape[-1]) + max(0, -offset)
        return _PadInto.apply(self, shape=self.shape[:-1] + (n, n), where=(Ellipsis, rows, rows + offset))

    def trace(self):
        """Sum of the main diagonal of a 2-d tensor."""
        return self.diagonal().sum()

    def pad(self, pad, mode: str = "constant", value: float = 0.0):
        """`minigrad.nn.functional.pad(self, pad, mode, value)`."""
        return _pad(self, pad, mode, value)
