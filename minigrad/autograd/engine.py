"""The backward pass: `run_backward` (behind `Tensor.backward`) and `grad`.

The graph is walked in reverse topological order (iteratively, so a chain of 100,000 ops is
fine). Each node turns the gradient of its output into gradients of its inputs, which are
summed per tensor and handed on; a node is released as soon as it has run (unless
`retain_graph`), so intermediate buffers are freed during the pass.

Two modes:
  - create_graph=False (the default): gradients are plain ndarrays and each node runs its fast
    `backward`. Grad mode is off, nothing is recorded.
  - create_graph=True: gradients are Tensors and each node runs `backward_graph`, written in
    Tensor ops, with grad mode on, so the gradients carry a graph and can be differentiated
    again (a Hessian-vector product is `grad` of a `grad`).

Memory ownership (ndarray mode): one gradient array may reach several tensors (add returns
the very array it was given, a reshape returns a view of it), so the engine adopts a returned
array as a leaf's `.grad`, or adds into it in place, only when it is private: writeable, and
its memory (followed through `.base` to the array that owns it) is not the incoming gradient's,
not a parent's data, not an array saved on the node, and not shared with another gradient the
same node returned. Everything else is copied before it is written. Ops declare nothing. The
check runs only where a buffer could be written: a gradient for a leaf, or a second gradient
for the same tensor (the first is then treated as shared, so the sum goes into a new buffer
or into the second one).

Gradient buffers (`set_grad_buffer(leaf, buffer)`): a leaf may name the array its gradient
lives in, e.g. its slot of a flat buffer that data-parallel training exchanges (as PyTorch's
DDP with gradient_as_bucket_view). When its .grad is None, the first gradient of a backward
is then written into that buffer (np.copyto: one pass, while the gradient is fresh in cache)
and the buffer becomes .grad; later gradients add into it in place, as into any existing
.grad. Nothing is registered unless someone asks: the default path does one dict check.
"""
from __future__ import annotations

import weakref

import numpy as np

from .anomaly import check_gradients, is_anomaly_enabled
from .grad_mode import set_grad_enabled
from .saved import changed, check_unchanged


_grad_buffers = {}  # id(leaf) -> (weak reference to the leaf, the ndarray its gradient is written into)


def set_grad_buffer(tensor, buffer) -> None:
    """From the next backward on, write leaf `tensor`'s gradient into `buffer` (an ndarray of
    its shape and dtype, writeable) whenever its .grad is None, and make `buffer` its .grad;
    with a .grad already there, gradients add into it in place as always. None removes it.
    The buffer is held as long as the tensor lives (the registry keeps a weak reference to it)."""
    key = id(tensor)
    if buffer is None:
        _grad_buffers.pop(key, None)
        return
    if tensor._ctx is not None:
        raise RuntimeError(f"set_grad_buffer: only a leaf tensor accumulates a .grad; this one is "
                           f"the output of a '{tensor._ctx.name}' node")
    if not isinstance(buffer, np.ndarray) or buffer.shape != tensor.shape or buffer.dtype != tensor.dtype:
        got = (f"{buffer.dtype} array of shape {buffer.shape}" if isinstance(buffer, np.ndarray)
               else type(buffer).__name__)
        raise ValueError(f"set_grad_buffer: the buffer must be a {tensor.dtype} array of the "
                         f"tensor's shape {tensor.shape}, got a {got}")
    if not buffer.flags.writeable:
        raise ValueError("set_grad_buffer: the buffer must be writeable")
    _grad_buffers[key] = (weakref.ref(tensor, lambda ref, key=key: _forget_grad_buffer(key, ref)), buffer)


def _forget_grad_buffer(key: int, ref) -> None:
    """The tensor is gone: drop its entry (unless its id already names a newer tensor's)."""
    entry = _grad_buffers.get(key)
    if entry is not None and entry[0] is ref:
        del _grad_buffers[key]


def _grad_buffer(tensor):
    entry = _grad_buffers.get(id(tensor))
    return entry[1] if entry is not None and entry[0]() is tensor else None


def _freed_graph_error(ctx) -> RuntimeError:
    return RuntimeError(
        f"backward: trying to backward through the graph a second time: the graph through a "
        f"'{ctx.name}' node was already freed by an earlier backward() or grad(); call the "
        f"first one with retain_graph=True to backpropagate through the same graph twice"
    )


def _topological_order(roots, stop=frozenset()) -> list:
    """Tensors reachable from `roots` through recorded nodes, parents before children.

    Iterative depth-first search with an explicit stack (no recursion limit); tensors whose id
    is in `stop` are not expanded. Raises RuntimeError when it meets a node released by an
    earlier backward.
    """
    order, visited = [], set()
    stack = [(root, False) for root in reversed(roots)]
    while stack:
        tensor, expanded = stack.pop()
        if expanded:
            order.append(tensor)
            continue
        key = id(tensor)
        if key in visited:
            continue
        visited.add(key)
        ctx = tensor._ctx
        if ctx is None or (stop and key in stop):
            order.append(tensor)  # nothing to expand: it can go in at once
            continue
        if ctx.parents is None:
            raise _freed_graph_error(ctx)
        stack.append((tensor, True))
        for parent in ctx.parents:
            if parent._requires_grad and id(parent) not in visited:
                stack.append((parent, False))
    return order


def _nodes_leading_to(order, input_ids, stop) -> set:
    """Ids of the tensors in `order` whose node must run for a gradient to reach an input."""
    reaches, run = set(input_ids), set()
    for tensor in order:  # parents first
        ctx = tensor._ctx
        if ctx is not None and id(tensor) not in stop and any(id(p) in reaches for p in ctx.parents):
            run.add(id(tensor))
            reaches.add(id(tensor))
    return run


def run_backward(roots, grads, retain_graph: bool = False, create_graph: bool = False,
                 inputs=None, partial: bool = False):
    """Backpropagate `grads` (one per root, same shapes) through the graph behind `roots`.

    inputs=None: accumulate into `.grad` of every leaf (and of non-leaves that retain_grad);
    returns None. With `inputs` (a sequence of tensors): leave every `.grad` alone, run only
    the nodes through which a gradient reaches an input, and return {id(input): (gradient,
    private)}. partial=True also stops at the inputs (derivatives with respect to the inputs
    as independent variables, which a fused kernel's reference backward needs).
    Gradients are ndarrays, or Tensors with their own graph when `create_graph`.
    """
    if not isinstance(roots, (tuple, list)):
        roots, grads = (roots,), (grads,)
    input_ids = None if inputs is None else {id(x) for x in inputs}
    stop = input_ids if partial else frozenset()
    order = _topological_order(roots, stop)
    run = None if inputs is None else _nodes_leading_to(order, input_ids, stop)
    pending = {}  # id(tensor) -> (gradient so far, private)
    for root, g in zip(roots, grads):
        _add_pending(pending, id(root), g, False, create_graph)
    captured = {}
    anomaly = is_anomaly_enabled()
    previous_mode = set_grad_enabled(create_graph)
    try:
        while order:
            tensor = order.pop()  # children before parents; popping lets memory go early
            entry = pending.pop(id(tensor), None)
            if entry is not None and tensor._backward_hooks:  # Tensor.register_hook
                entry = _run_tensor_hooks(tensor, entry, create_graph)
            ctx = tensor._ctx
            if input_ids is not None:  # grad(): capture the inputs, skip what leads to none
                if id(tensor) in input_ids and entry is not None:
                    captured[id(tensor)] = entry
                if id(tensor) not in run:
                    continue
            elif entry is not None and (ctx is None or tensor._retain_grad):
                _accumulate_grad(tensor, entry[0], entry[1] and ctx is None, create_graph)
            if ctx is None:
                continue
            if entry is not None:
                g = entry[0]
                if changed:  # an optimizer updated arrays that live graphs hold (saved.py)
                    check_unchanged(ctx)
                parent_grads = ctx.backward_graph(g) if create_graph else ctx.backward(g)
                if anomaly:  # detect_anomaly(): name the op and line of the first NaN/inf
                    check_gradients(ctx, tensor, parent_grads)
                _send_to_parents(ctx, parent_grads, pending, g, create_graph)
            if not retain_graph:
                ctx.release()
    finally:
        set_grad_enabled(previous_mode)
    return None if inputs is None else captured


def _run_tensor_hooks(tensor, entry, create_graph: bool):
    """Call the tensor's hooks in order on its whole gradient; a returned value replaces it
    (for the tensor's .grad and for everything upstream), as PyTorch's tensor hooks."""
    g, private = entry
    for hook in tuple(tensor._backward_hooks.values()):
        if create_graph:
            given = g
        else:
            given = g.view()
            given.flags.writeable = False  # a hook must not modify its argument
            given = Tensor._wrap(given, False)
        result = hook(given)
        if result is None:
            continue
        value = result if create_graph else (result.data if isinstance(result, Tensor) else result)
        if not create_graph:
            value = np.asarray(value)
        elif not isinstance(value, Tensor):
            value = Tensor._wrap(np.asarray(value), False)
        if value.shape != tensor.shape:
            raise RuntimeError(f"register_hook: a hook returned a gradient of shape {value.shape} "
                               f"for a tensor of shape {tensor.shape}")
        g = value if value.dtype == tensor.dtype else value.astype(tensor.dtype)
        private = False
    return g, private


def _accumulate_grad(tensor, g, private: bool, create_graph: bool) -> None:
    """Add `g` into `tensor.grad`: a Tensor with a graph under create_graph, else an ndarray."""
    if create_graph:
        if tensor.grad is None:
            tensor.grad = g
        else:
            previous = tensor.grad if isinstance(tensor.grad, Tensor) else Tensor._wrap(tensor.grad, False)
            tensor.grad = previous + g
    elif tensor.grad is None:
        buffer = _grad_buffer(tensor) if _grad_buffers else None
        if buffer is None:
            tensor.grad = g if private else g.copy()
        else:  # (set_grad_buffer) written where the leaf's gradient lives
            np.copyto(buffer, g)
            tensor.grad = buffer
    elif isinstance(tensor.grad, Tensor):  # the last backward built a graph; this one does not
        tensor.grad = tensor.grad.data + g
    else:
        tensor.grad += g


def _add_pending(pending, key, g, private: bool, create_graph: bool) -> None:
    """Add gradient `g` to the pending sum under `key`, in place only into a private buffer."""
    previous = pending.get(key)
    if previous is None:
        pending[key] = (g, private)
        return
    total, total_private = previous
    if create_graph:
        pending[key] = (total + g, False)  # Tensor ops: out of place, recorded
    elif total_private:
        total += g  # our own buffer: add in place
    elif private:
        g += total  # the new one is ours: add into it instead of allocating
        pending[key] = (g, True)
    else:
        pending[key] = (total + g, True)


def _send_to_parents(ctx, parent_grads, pending, grad_out, create_graph: bool) -> None:
    """Check the gradients one node returned and add them to its parents' pending sums."""
    if not isinstance(parent_grads, tuple):
        parent_grads = (parent_grads,)
    if len(parent_grads) != len(ctx.parents):
        raise RuntimeError(
            f"{ctx.name}.backward returned {len(parent_grads)} gradients "
            f"for {len(ctx.parents)} inputs"
        )
    if create_graph:
        for parent, pg in zip(ctx.parents, parent_grads):
            if pg is not None and parent.requires_grad:
                _add_pending(pending, id(parent), _checked_graph_grad(ctx, parent, pg), False, True)
        return
    in_use = None  # memory the returned arrays must not be written through (found when needed)
    for parent, pg in zip(ctx.parents, parent_grads):
        if pg is None or not parent._requires_grad:
            continue
        if type(pg) is not np.ndarray:
            pg = np.asarray(pg)
        data = parent.data
        if pg.shape != data.shape:
            _check_shape(ctx, pg.shape, data.shape)  # raises
        if pg.dtype is not data.dtype and pg.dtype != data.dtype:  # (same dtypes: one object)
            pg, private = pg.astype(data.dtype), True  # a new array
        elif parent._ctx is None or id(parent) in pending:  # to become .grad, or to be added to
            if in_use is None:
                in_use = _memory_in_use(ctx, grad_out, parent_grads)
            owner = id(_owner(pg))
            private = pg.flags.writeable and owner not in in_use[0] and in_use[1].get(owner, 1) == 1
        else:  # handed on to the parent's own backward, which never writes into it
            private = False
        _add_pending(pending, id(parent), pg, private, False)


def _owner(array: np.ndarray) -> np.ndarray:
    """The array that owns `array`'s memory (itself unless it is a view)."""
    base = array.base
    while isinstance(base, np.ndarray):
        array, base = base, base.base
    return array


_NOT_SAVED = frozenset(("parents", "needs_input_grad", "requires_grad", "options"))


def _memory_in_use(ctx, grad_out, parent_grads) -> tuple[set, dict]:
    """The arrays owning memory that a node's returned gradient must not be written through:
    (ids of the owners of the incoming gradient, the parents' data and every array saved on
    the node, {owner id: how many of the returned gradients use it})."""
    ndarray = np.ndarray
    owners = {id(_owner(grad_out))}
    for parent in ctx.parents:
        owners.add(id(_owner(parent.data)))
    for key, value in ctx.__dict__.items():
        if isinstance(value, ndarray):
            owners.add(id(_owner(value)))
        elif isinstance(value, (tuple, list)) and key not in _NOT_SAVED:
            for item in value:
                if isinstance(item, ndarray):
                    owners.add(id(_owner(item)))
    shared = {}
    for g in parent_grads:
        if isinstance(g, ndarray):  # (a NumPy scalar becomes a new array of its own)
            key = id(_owner(g))
            shared[key] = shared.get(key, 0) + 1
    return owners, shared


def _check_shape(ctx, grad_shape, input_shape) -> None:
    if grad_shape != input_shape:
        raise RuntimeError(
            f"{ctx.name}.backward: gradient has shape {grad_shape}, input has shape {input_shape}"
        )


def _checked_graph_grad(ctx, parent, pg):
    """A gradient from backward_graph as a Tensor of the parent's shape and dtype."""
    if not isinstance(pg, Tensor):
        pg = Tensor._wrap(np.asarray(pg), False)  # a constant
    _check_shape(ctx, pg.shape, parent.shape)
    return pg if pg.dtype == parent.dtype else pg.astype(parent.dtype)


from ..tensor import Tensor  # noqa: E402  (at the end: tensor.py imports this package)
