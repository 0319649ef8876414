"""`Function`, the base class of every op, and `unbroadcast`, the one place broadcasting is undone.

An op implements up to three methods (the op contract):

    forward(self, *arrays, **options) -> ndarray          # on plain ndarrays
    backward(self, grad_out: ndarray) -> tuple            # the fast first-order rule, on ndarrays
    backward_graph(self, grad_out: Tensor) -> tuple       # the same rule in Tensor ops, used when
                                                          # a backward builds a graph (create_graph)

`backward_graph` reads the inputs as Tensors from `self.parents` and writes every quantity that
depends on them as Tensor ops (recompute tanh(x) from the parent instead of using the saved
array), so its result can be differentiated again. Saved arrays that do not depend on a
differentiable input (masks, indices, shapes) are constants. Options are in `self.options`.

Defaults, so an op writes only what it needs:
  - only `backward_graph`: `backward` runs it under no_grad on the wrapped array (cold ops);
  - a fused kernel may define `reference(*parents, **options) -> Tensor` instead: a composition
    of primitive ops computing the same forward; `backward_graph` then recomputes it from the
    parents and differentiates it (see `differentiate`).
"""
from __future__ import annotations

import numpy as np

from . import gradients
from .anomaly import node_annotators
from .grad_mode import enable_grad, grad_state, is_grad_enabled, no_grad
from .saved import SavedArrays


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
      options:          the keyword options given to `apply` (a dict)

    Contract for `backward(grad_out)`: never modify `grad_out` in place (it may be shared or a
    read-only broadcast view); return one array (or None) per input, with that input's shape.
    Return whatever is cheapest (a view of grad_out, a saved array, a new buffer): the engine
    itself decides, from memory ownership, which returned arrays it may adopt as `.grad` or add
    into in place (see engine.py), so an op never declares that its buffers are private.
    """

    parents: tuple | None
    needs_input_grad: tuple
    requires_grad: bool
    options: dict

    def forward(self, *arrays, **options):  # pragma: no cover - abstract
        raise NotImplementedError

    def backward(self, grad_out):
        """Default for ops that define only `backward_graph` (or a `reference`): run the graph
        rule under no_grad on the wrapped array, and unwrap what it returns."""
        if not self._has_graph_rule():
            raise NotImplementedError(f"{self.name}: defines neither backward, backward_graph nor reference")
        with no_grad():
            grads = self.backward_graph(Tensor._wrap(grad_out, False))
        grads = grads if isinstance(grads, tuple) else (grads,)
        return tuple(None if g is None else g.data for g in grads)

    def backward_graph(self, grad_out):
        """Default for fused kernels with a `reference`: differentiate the reference at the
        parents. An op with neither cannot be differentiated twice (create_graph=True)."""
        reference = getattr(type(self), "reference", None)
        if reference is None:
            raise NotImplementedError(
                f"{self.name}: has no backward_graph (nor a reference), so it cannot be "
                f"differentiated when a backward builds a graph (create_graph=True)"
            )
        return self.differentiate(lambda *parents: reference(*parents, **self.options), grad_out)

    def differentiate(self, fn, grad_out):
        """The partial derivatives of `fn(*self.parents)` along `grad_out`, one per parent.

        `fn` must compute this op's forward from the parent Tensors with differentiable ops
        (the op's reference). The result is itself a graph when grad mode is on (as inside a
        create_graph backward), plain values otherwise. A parent given twice (`x * x` as one
        node) is split into aliases, so each position gets its own partial derivative.
        """
        create_graph = is_grad_enabled()
        variables, seen = [], set()
        with enable_grad():
            for parent in self.parents:
                variables.append(Alias.apply(parent) if id(parent) in seen else parent)
                seen.add(id(parent))
            out = fn(*variables)
        wanted = [v for v, need in zip(variables, self.needs_input_grad) if need]
        if not getattr(out, "requires_grad", False) or not wanted:
            return tuple(None for _ in variables)
        grads = iter(gradients.partial_grad(out, wanted, grad_out, create_graph))
        return tuple(next(grads) if need else None for need in self.needs_input_grad)

    def _has_graph_rule(self) -> bool:
        return (type(self).backward_graph is not Function.backward_graph
                or getattr(type(self), "reference", None) is not None)

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
        # (the hot path of every op: plain loops and slot reads, no generators or properties)
        parents = inputs
        for x in inputs:
            if not isinstance(x, Tensor):
                parents = tuple([x if isinstance(x, Tensor) else Tensor(x) for x in inputs])
                break
        ctx = cls()
        ctx.parents = parents
        ctx.options = options
        ctx.needs_input_grad = needs = tuple([p._requires_grad for p in parents])
        ctx.requires_grad = requires_grad = grad_state.grad_enabled and True in needs
        arrays = [p.data for p in parents]
        out = Tensor._wrap(ctx.forward(*arrays, **options), False)
        # only floating outputs are differentiable (a cast to int, a comparison: no graph)
        if requires_grad and out.data.dtype.kind == "f":
            out._requires_grad = True
            out._ctx = ctx
            # what backward reads must not change before it runs: read-only while ctx lives
            arrays.append(out.data)
            ctx.saved_arrays = SavedArrays(arrays, cls)
            if node_annotators:  # only under detect_anomaly() or viz.record_modules()
                for annotate in node_annotators:
                    annotate(ctx)
        return out


class Alias(Function):
    # the identity, as a node of its own: the gradient passes through unchanged
    def forward(self, a):
        return a

    def backward(self, g):
        return g

    def backward_graph(self, g):
        return g


from ..tensor import Tensor  # noqa: E402  (at the end: tensor.py imports this package)
