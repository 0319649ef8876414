"""`grad(outputs, inputs)`: gradients returned instead of accumulated, as torch.autograd.grad.

    x = Tensor([1.0, 2.0], requires_grad=True)
    y = (x ** 3).sum()
    (dy,) = grad(y, x, create_graph=True)     # 3 x^2 = [3, 12], a Tensor with a graph
    (d2y,) = grad(dy.sum(), x)                # 6 x   = [6, 12]

Bad input gets PyTorch's wording: a non-scalar output without grad_outputs, grad_outputs of
the wrong shape, an input that does not require grad, an input the outputs do not depend on
(unless allow_unused=True, which gives None for it), and a graph already freed.
"""
from __future__ import annotations

import numpy as np

from .engine import run_backward


def _as_tensors(values, what: str) -> tuple:
    values = (values,) if isinstance(values, Tensor) else tuple(values)
    for position, value in enumerate(values):
        if not isinstance(value, Tensor):
            raise TypeError(f"grad: {what}[{position}] must be a Tensor, got {type(value).__name__}")
    return values


def make_grad_outputs(outputs, grad_outputs, create_graph: bool, op: str = "grad") -> list:
    """One seed gradient per output: 1 for a one-element output when none is given, else the
    given array or Tensor with the output's shape (a Tensor keeps its graph under create_graph)."""
    if grad_outputs is None:
        grad_outputs = [None] * len(outputs)
    elif isinstance(grad_outputs, (Tensor, np.ndarray, int, float)):
        grad_outputs = [grad_outputs]
    grad_outputs = list(grad_outputs)
    if len(grad_outputs) != len(outputs):
        raise RuntimeError(f"{op}: grad_outputs has {len(grad_outputs)} entries for "
                           f"{len(outputs)} outputs; give one per output (None for a scalar)")
    seeds = []
    for position, (out, g) in enumerate(zip(outputs, grad_outputs)):
        if not out.requires_grad:
            raise RuntimeError(f"{op}: element {position} of tensors does not require grad and "
                               f"does not have a grad_fn (shape {out.shape})")
        if g is None:
            if out.numel() != 1:
                raise RuntimeError(f"{op}: grad can be implicitly created only for scalar "
                                   f"outputs; output {position} has shape {out.shape}, pass "
                                   f"grad_outputs")
            g = Tensor._wrap(np.ones_like(out.data), False)
        elif not isinstance(g, Tensor):
            g = Tensor._wrap(np.asarray(g, dtype=out.dtype), False)
        if g.shape != out.shape:
            raise RuntimeError(f"{op}: Mismatch in shape: grad_output[{position}] has a shape of "
                               f"{g.shape} and output[{position}] has a shape of {out.shape}")
        if g.dtype != out.dtype:
            g = g.astype(out.dtype) if create_graph else Tensor._wrap(g.data.astype(out.dtype), False)
        seeds.append(g if create_graph else g.data)
    return seeds


def grad(outputs, inputs, grad_outputs=None, retain_graph: bool | None = None,
         create_graph: bool = False, allow_unused: bool = False) -> tuple:
    """The sum of the gradients of `outputs` with respect to each of `inputs` (torch's meaning).

    outputs, inputs: a Tensor or a sequence of Tensors. grad_outputs: one array/Tensor per
    output, the vector of the vector-Jacobian product (None: 1 for a one-element output).
    retain_graph: keep the graph for another backward (default: create_graph).
    create_graph: build a graph of the gradient computation, so the returned Tensors can be
    differentiated again. allow_unused: give None for an input the outputs do not depend on
    (an error otherwise). Returns a tuple of Tensors (or None), one per input; `.grad` of
    every tensor is left alone.
    """
    outputs, inputs = _as_tensors(outputs, "outputs"), _as_tensors(inputs, "inputs")
    for position, x in enumerate(inputs):
        if not x.requires_grad:
            raise RuntimeError(f"grad: One of the differentiated Tensors does not require grad "
                               f"(inputs[{position}], shape {x.shape})")
    seeds = make_grad_outputs(outputs, grad_outputs, create_graph)
    if retain_graph is None:
        retain_graph = create_graph
    captured = run_backward(outputs, seeds, retain_graph, create_graph, inputs=inputs)
    results, handed_out = [], set()
    for position, x in enumerate(inputs):
        entry = captured.get(id(x))
        if entry is None:
            if not allow_unused:
                raise RuntimeError(
                    f"grad: One of the differentiated Tensors appears to not have been used in "
                    f"the graph (inputs[{position}], shape {x.shape}); set allow_unused=True if "
                    f"this is the desired behavior"
                )
            results.append(None)
            continue
        g, private = entry
        if not create_graph:  # hand out an array nobody else holds
            g = Tensor._wrap(g if private and id(x) not in handed_out else g.copy(), False)
        handed_out.add(id(x))
        results.append(g)
    return tuple(results)


def partial_grad(out, inputs, grad_out, create_graph: bool) -> list:
    """d out / d input along `grad_out` for each input, the inputs taken as independent
    variables (the walk stops at them); None for an input `out` does not depend on. Used by
    `Function.differentiate` for a fused kernel's reference."""
    seed = grad_out if create_graph else grad_out.data
    captured = run_backward((out,), (seed,), retain_graph=create_graph,
                            create_graph=create_graph, inputs=inputs, partial=True)
    grads = []
    for x in inputs:
        entry = captured.get(id(x))
        if entry is None or create_graph:
            grads.append(None if entry is None else entry[0])
        else:
            grads.append(Tensor._wrap(entry[0], False))
    return grads


from ..tensor import Tensor  # noqa: E402  (at the end: tensor.py imports this package)
