"""The autograd machinery: grad mode, the `Function` base class, and the backward pass.

Every differentiable operation is a subclass of `Function` with two methods working on plain
NumPy arrays:

    forward(self, *arrays, **options) -> ndarray     # compute the output, save what backward needs
    backward(self, grad_out) -> tuple of ndarrays     # one gradient per input (None where not needed)

`Function.apply(*inputs)` runs the forward and, when any input requires grad and grad mode is
on, records the node on the output tensor (`out._ctx`). `backward()` walks those nodes in
reverse topological order (iteratively, so a chain of 100,000 ops is fine), accumulates
gradients into leaves, and releases each node as soon as it has run, so intermediate buffers
are freed during the pass. A second backward through a released node raises RuntimeError
(pass `retain_graph=True` to the first one to keep the graph).
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
    sum over every axis that was added or stretched. Returns `grad` itself when nothing was
    broadcast, else a new array.

        unbroadcast(np.ones((4, 2, 3)), (2, 1))   # -> shape (2, 1), every value 12
        unbroadcast(np.ones((2, 3)), ())          # -> shape (), value 6
    """
    shape = tuple(shape)
    if grad.shape == shape:
        return grad
    extra = grad.ndim - len(shape)
    if extra > 0:
        grad = grad.sum(axis=tuple(range(extra)))  # (extra..., *shape-like) -> shape-like
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if stretched:
        grad = grad.sum(axis=stretched, keepdims=True)
    return np.asarray(grad).reshape(shape)  # np.asarray: a full sum gives a NumPy scalar


class Function:
    """A node of the graph: one op's forward and its hand-derived backward.

    Attributes set by `apply` before `forward` runs:
      parents:          the input tensors, in order (None once the node was released)
      needs_input_grad: tuple of bools, one per input
      requires_grad:    True when a graph is being recorded (forward may skip saving otherwise)

    Contract for `backward(grad_out)`: never modify `grad_out` in place (it may be shared or a
    read-only broadcast view); return one array (or None) per input, with that input's shape.

    `fresh_grads`: set it to True in a subclass whose backward always returns newly allocated,
    writeable arrays that nothing else references, one distinct array per input (products
    like `g * b`, matmul results, np.zeros + scatter). The engine then adopts them directly as
    `.grad` or as accumulation buffers; otherwise (views of `grad_out`, `np.broadcast_to`,
    `grad_out` itself) it copies before writing. It only saves a copy; False is always safe.
    """

    parents: tuple | None
    needs_input_grad: tuple
    requires_grad: bool
    fresh_grads: bool = False

    def forward(self, *arrays, **options):  # pragma: no cover - abstract
        raise NotImplementedError

    def backward(self, grad_out):  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def name(self) -> str:
        return type(self).__name__.lower()

    def release(self) -> None:
        """Drop the inputs and every buffer saved for backward (done after backward runs).

        The emptied node stays on its output tensor so a second backward can say the graph
        was freed instead of silently treating the tensor as a leaf.
        """
        self.__dict__.clear()
        self.parents = None

    @classmethod
    def apply(cls, *inputs, **options):
        parents = tuple(x if isinstance(x, Tensor) else Tensor(x) for x in inputs)
        ctx = cls()
        ctx.parents = parents
        ctx.needs_input_grad = tuple(p.requires_grad for p in parents)
        ctx.requires_grad = is_grad_enabled() and any(ctx.needs_input_grad)
        out = Tensor._wrap(ctx.forward(*(p.data for p in parents), **options), False)
        # only floating outputs are differentiable (a cast to int, a comparison: no graph)
        if ctx.requires_grad and out.data.dtype.kind == "f":
            out._requires_grad = True
            out._ctx = ctx
        return out


def _freed_graph_error(ctx) -> RuntimeError:
    return RuntimeError(
        f"backward: the graph through a '{ctx.name}' node was already freed by an earlier "
        f"backward(); call the first backward(retain_graph=True) to backpropagate through "
        f"the same graph twice"
    )


def _topological_order(root) -> list:
    """Tensors reachable from `root` through recorded nodes, parents before children.

    Iterative depth-first search with an explicit stack (no recursion limit). Raises
    RuntimeError when it meets a node released by an earlier backward.
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
        ctx = tensor._ctx
        if ctx is not None:
            if ctx.parents is None:
                raise _freed_graph_error(ctx)
            for parent in ctx.parents:
                if parent.requires_grad and id(parent) not in visited:
                    stack.append((parent, False))
    return order


def run_backward(root, grad: np.ndarray, retain_graph: bool = False) -> None:
    """Backpropagate `grad` (same shape as `root`) through the graph that produced `root`.

    One gradient array may reach several tensors (add returns the very array it was given),
    so each pending gradient carries an `owned` flag: True only for buffers allocated during
    this pass (a cast, a sum of two gradients, or the output of a `fresh_grads` Function).
    Only owned buffers are updated in place or adopted as a leaf's `.grad`; others are copied.
    """
    order = _topological_order(root)
    pending = {id(root): (grad, False)}  # id(tensor) -> (gradient so far, owned)

    while order:
        tensor = order.pop()  # children before parents; popping lets memory go early
        entry = pending.pop(id(tensor), None)
        ctx = tensor._ctx
        if ctx is None:  # a leaf: accumulate into .grad
            if entry is not None:
                g, owned = entry
                if tensor.grad is None:
                    tensor.grad = g if owned else g.copy()
                else:
                    tensor.grad += g
            continue
        if entry is not None:
            g = entry[0]
            if tensor._retain_grad:
                tensor.grad = g.copy() if tensor.grad is None else tensor.grad + g
            _send_to_parents(ctx, ctx.backward(g), pending)
        if not retain_graph:
            ctx.release()


def _send_to_parents(ctx, parent_grads, pending) -> None:
    """Check the gradients one node returned and add them to its parents' pending sums."""
    if not isinstance(parent_grads, tuple):
        parent_grads = (parent_grads,)
    if len(parent_grads) != len(ctx.parents):
        raise RuntimeError(
            f"{ctx.name}.backward returned {len(parent_grads)} gradients "
            f"for {len(ctx.parents)} inputs"
        )
    for parent, pg in zip(ctx.parents, parent_grads):
        if pg is None or not parent.requires_grad:
            continue
        pg = np.asarray(pg)
        if pg.shape != parent.shape:
            raise RuntimeError(
                f"{ctx.name}.backward: gradient has shape {pg.shape}, "
                f"input has shape {parent.shape}"
            )
        owned = ctx.fresh_grads
        if pg.dtype != parent.dtype:
            pg, owned = pg.astype(parent.dtype), True
        previous = pending.get(id(parent))
        if previous is None:
            pending[id(parent)] = (pg, owned)
            continue
        total, total_owned = previous
        if total_owned:
            total += pg  # our own buffer: add in place
        elif owned:
            pg += total  # the new one is ours: add into it instead of allocating
            pending[id(parent)] = (pg, True)
        else:
            pending[id(parent)] = (total + pg, True)


from .tensor import Tensor  # noqa: E402  (at the end: tensor.py imports this module)
