"""The autograd machinery: grad mode, the `Function` base class, and the backward pass.

Every differentiable operation is a subclass of `Function` with two methods working on plain
NumPy arrays:

    forward(self, *arrays, **options) -> ndarray     # compute the output, save what backward needs
    backward(self, grad_out) -> tuple of ndarrays     # one gradient per input (None where not needed)

`Function.apply(*inputs)` runs the forward and, when any input requires grad and grad mode is
on, records the node on the output tensor (`out._ctx`). `backward()` walks those nodes in
reverse topological order (iteratively, so a chain of 100,000 ops is fine), accumulates
gradients into leaves with `+=`, and then releases the graph so intermediate buffers are freed.
"""
from __future__ import annotations

import contextlib
import threading

import numpy as np

_state = threading.local()


def is_grad_enabled() -> bool:
    """True unless inside `no_grad()`."""
    return getattr(_state, "grad_enabled", True)


@contextlib.contextmanager
def no_grad():
    """Context manager (also usable as a decorator) under which no graph is built."""
    previous = is_grad_enabled()
    _state.grad_enabled = False
    try:
        yield
    finally:
        _state.grad_enabled = previous


@contextlib.contextmanager
def enable_grad():
    """Re-enable graph building inside a `no_grad()` block."""
    previous = is_grad_enabled()
    _state.grad_enabled = True
    try:
        yield
    finally:
        _state.grad_enabled = previous


def unbroadcast(grad: np.ndarray, shape: tuple) -> np.ndarray:
    """Sum `grad` back to `shape`, undoing NumPy broadcasting (the one place this is done).

    Broadcasting prepends axes and stretches size-1 axes; the gradient of a broadcast is the
    sum over every axis that was added or stretched.
    """
    if grad.shape == shape:
        return grad
    extra = grad.ndim - len(shape)
    if extra > 0:
        grad = grad.sum(axis=tuple(range(extra)))
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if stretched:
        grad = grad.sum(axis=stretched, keepdims=True)
    return grad.reshape(shape)


class Function:
    """A node of the graph: one op's forward and its hand-derived backward.

    Attributes set by `apply` before `forward` runs:
      parents:          the input tensors, in order
      needs_input_grad: tuple of bools, one per input
      requires_grad:    True when a graph is being recorded (forward may skip saving otherwise)
    """

    parents: tuple
    needs_input_grad: tuple
    requires_grad: bool

    def forward(self, *arrays, **options):  # pragma: no cover - abstract
        raise NotImplementedError

    def backward(self, grad_out):  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def name(self) -> str:
        return type(self).__name__.lower()

    @classmethod
    def apply(cls, *inputs, **options):
        from .tensor import Tensor

        parents = tuple(x if isinstance(x, Tensor) else Tensor(x) for x in inputs)
        ctx = cls()
        ctx.parents = parents
        ctx.needs_input_grad = tuple(p.requires_grad for p in parents)
        ctx.requires_grad = is_grad_enabled() and any(ctx.needs_input_grad)
        out_data = ctx.forward(*(p.data for p in parents), **options)
        out = Tensor._wrap(out_data, ctx.requires_grad)
        if ctx.requires_grad:
            out._ctx = ctx
        return out


def _topological_order(root) -> list:
    """Tensors reachable from `root` through recorded nodes, parents before children.

    Iterative depth-first search with an explicit stack (no recursion limit).
    """
    order, visited = [], set()
    stack = [(root, False)]
    while stack:
        tensor, expanded = stack.pop()
        if expanded:
            order.append(tensor)
            continue
        if id(tensor) in visited:
            continue
        visited.add(id(tensor))
        stack.append((tensor, True))
        if tensor._ctx is not None:
            for parent in tensor._ctx.parents:
                if parent.requires_grad and id(parent) not in visited:
                    stack.append((parent, False))
    return order


def run_backward(root, grad: np.ndarray, retain_graph: bool = False) -> None:
    """Backpropagate `grad` (same shape as `root`) through the graph that produced `root`.

    A backward may return the very array it was given (add does), so one array can reach
    several tensors: we only ever add in place into buffers this function allocated itself
    (`owned`), and copy before handing a borrowed array to a leaf's `.grad`.
    """
    order = _topological_order(root)
    grads = {id(root): grad}
    owned = set()  # ids of buffers in `grads` that were allocated here: safe to update in place

    def accumulate(key, g, fresh):
        previous = grads.get(key)
        if previous is None:
            grads[key] = g
            if fresh:
                owned.add(id(g))
        elif id(previous) in owned:
            previous += g
        else:
            total = previous + g
            owned.add(id(total))
            grads[key] = total

    for tensor in reversed(order):
        g = grads.pop(id(tensor), None)
        g_owned = g is not None and id(g) in owned
        if g_owned:
            owned.discard(id(g))
        ctx = tensor._ctx
        if ctx is None:  # a leaf: accumulate into .grad
            if g is not None:
                if tensor.grad is None:
                    tensor.grad = g if g_owned else np.array(g, copy=True)
                else:
                    tensor.grad += g
            continue
        if g is None:
            continue
        if tensor._retain_grad:
            tensor.grad = np.array(g, copy=True) if tensor.grad is None else tensor.grad + g
        parent_grads = ctx.backward(g)
        if not isinstance(parent_grads, tuple):
            parent_grads = (parent_grads,)
        for parent, pg in zip(ctx.parents, parent_grads):
            if pg is None or not parent.requires_grad:
                continue
            pg = np.asarray(pg)
            if pg.shape != parent.shape:
                raise RuntimeError(
                    f"{ctx.name}.backward: gradient has shape {pg.shape}, "
                    f"input has shape {parent.shape}"
                )
            fresh = pg.dtype != parent.dtype
            if fresh:
                pg = pg.astype(parent.dtype)
            accumulate(id(parent), pg, fresh)
        if not retain_graph:
            tensor._ctx = None  # release the node and everything it saved
