"""Indexed writes, `tensor[index] = value` (PyTorch's `__setitem__`, `index_put_`), and the
slice-step rule both indexing directions share.

Outside a graph (under no_grad, or when neither side requires grad) the write goes into the
tensor's own array, as in NumPy and PyTorch (a tensor that views another's memory writes
through to it). Inside a graph the tensor becomes the output of an IndexPut node:

    out = a, with out[index] = v (v broadcast to the shape of a[index], cast to a's dtype)
    d/da = g with zeros at the written positions (those values were overwritten)
    d/dv = g[index], summed over the axes v was broadcast along (PyTorch's rule: with a
           repeated integer index every copy of a position gets its gradient)

Refused as in PyTorch: a write into a leaf that requires grad outside no_grad, a value that
does not broadcast, negative slice steps. Refused where PyTorch would raise only later, at
backward ("modified by an inplace operation"): a write into a tensor that a live graph already
used or that views memory a live graph holds (minigrad's live graphs keep their arrays
read-only, see autograd/saved.py); write into a `clone()` instead.
"""
from __future__ import annotations

import numpy as np

from ..autograd import Function, is_grad_enabled, unbroadcast
from ..autograd.saved import _locked, saved_by
from ..tensor import Tensor
from .broadcast import sum_to
from .shape import GetItem, _check_index, _index_parts, normalize_index


def check_slice_steps(op: str, index, shape: tuple) -> None:
    """PyTorch's rule: every slice step must be positive (use flip(dim) to reverse)."""
    for part in _index_parts(index):
        if isinstance(part, slice) and part.step is not None and part.step <= 0:
            reason = "cannot be zero" if part.step == 0 else "must be greater than zero"
            raise ValueError(f"{op}: step {reason} (slice {part.start}:{part.stop}:{part.step} of a "
                             f"tensor of shape {shape}; PyTorch refuses negative steps, use flip(dim))")


def _stripped(value_shape: tuple, ndim: int) -> tuple:
    """value_shape without the leading size-1 axes beyond `ndim` (NumPy and PyTorch drop them)."""
    shape = tuple(value_shape)
    while len(shape) > ndim and shape[0] == 1:
        shape = shape[1:]
    return shape


class IndexPut(Function):
    # out = a with out[index] = v: g reaches a where nothing was written, and v through the
    # positions it was written to (summed over its broadcast)
    def forward(self, a, v, index, target_ndim):
        self.index, self.value_shape = index, v.shape
        out = a.copy()
        out[index] = v.reshape(_stripped(v.shape, target_ndim))  # (NumPy's boolean writes need it)
        return out

    def backward(self, g):
        grad_a = None
        if self.needs_input_grad[0]:
            grad_a = g.copy()
            grad_a[self.index] = 0
        grad_v = None
        if self.needs_input_grad[1]:
            picked = g[self.index]
            grad_v = unbroadcast(picked, _stripped(self.value_shape, picked.ndim)).reshape(self.value_shape)
        return grad_a, grad_v

    def backward_graph(self, g):
        zero = Tensor._wrap(np.zeros((), g.dtype), False)
        grad_a = IndexPut.apply(g, zero, index=self.index, target_ndim=0)
        picked = GetItem.apply(g, index=self.index)
        grad_v = sum_to(picked, _stripped(self.value_shape, picked.ndim)).reshape(self.value_shape)
        return grad_a, grad_v


def _held_elsewhere(tensor: Tensor) -> bool:
    """Whether a live node other than the tensor's own producer reads its array (or whether
    that cannot be known: a read-only view of memory a live graph holds)."""
    entry = _locked.get(id(tensor.data))
    own = 1 if tensor._ctx is not None and tensor._ctx.parents is not None else 0
    if entry is None:
        return not tensor.data.flags.writeable
    return entry[1] > own


class IndexPutMethods:
    """`tensor[index] = value` (installed onto Tensor by minigrad.ops)."""

    def __setitem__(self, index, value):
        """Write `value` (a number, array or tensor broadcast to self[index], cast to self's
        dtype) at `index` (any index getitem takes). Outside a graph: in place, into self's
        array. In a graph (grad mode on and self or value requiring grad): self becomes the
        output of an IndexPut node. Backward: g to self except at the written positions;
        g[index] summed over the broadcast to value."""
        check_slice_steps("setitem", index, self.shape)
        index = normalize_index(index)
        _check_index(index, self.shape)
        value = value if isinstance(value, Tensor) else Tensor(np.asarray(value, dtype=self.dtype))
        if value.dtype != self.dtype:
            value = value.to(self.dtype)
        try:
            target = np.empty(self.shape, dtype=bool)[index].shape  # the shape of self[index]
        except IndexError as error:
            raise IndexError(f"setitem: {error} (tensor shape {self.shape})") from None
        stripped = _stripped(value.shape, len(target))
        if len(stripped) > len(target) or any(v not in (1, t) for v, t in zip(stripped[::-1], target[::-1])):
            raise ValueError(f"setitem: shape mismatch: value tensor of shape {value.shape} cannot be "
                             f"broadcast to indexing result of shape {target} (tensor shape {self.shape})")
        recording = is_grad_enabled() and (self.requires_grad or value.requires_grad)
        if recording and self.requires_grad and self._ctx is None:
            raise RuntimeError("setitem: a leaf Variable that requires grad is being used in an in-place "
                               f"operation (tensor shape {self.shape}); write under no_grad(), or into a clone()")
        if _held_elsewhere(self):
            holder = saved_by(self)
            raise RuntimeError(
                f"setitem: this tensor (shape {self.shape}) is read by a live graph"
                f"{f' (op {holder})' if holder else ' (its array is read-only: a view of memory a live graph holds, or a broadcast)'}, whose "
                f"backward needs its current values (PyTorch raises at that backward: 'modified by an "
                f"inplace operation'); write into a clone(), or backward first")
        if not recording:
            self.data[index] = value.data.reshape(stripped)
            return
        previous = Tensor._wrap(self.data, self._requires_grad)  # the old value, as its own tensor
        previous._ctx = self._ctx
        out = IndexPut.apply(previous, value, index=index, target_ndim=len(target))
        self.data, self._ctx, self._requires_grad = out.data, out._ctx, out._requires_grad
