"""`gradcheck` and `gradgradcheck`: analytic derivatives against central finite differences,
in float64.

gradcheck: for a function f of tensors returning a tensor y (or a tuple of them), we draw a
fixed random direction r with y's shape and check the gradient of the scalar L = sum(y * r)
(a vector-Jacobian product, as HIPS/autograd does). For every element x_i of every input that
requires grad:

    numeric_i  = (L(x_i + eps) - L(x_i - eps)) / (2 eps)      # error O(eps^2)
    analytic_i = dL/dx_i from one backward pass

and they must agree within atol + rtol * |numeric_i| (a NaN on either side fails).

gradgradcheck (torch.autograd.gradgradcheck): the second derivatives. With v a random
grad_output (or the one given), the first derivative is itself a function of the inputs and v,

    G(x..., v) = grad(f(x...), x..., grad_outputs=v, create_graph=True)

and gradcheck of G checks every second derivative (the Hessian-vector products in x, and the
Jacobian again through v), the analytic side running the backward of a backward.

Empty inputs (a size-0 axis): their first derivative is empty, so its Jacobian has no entries
and nothing is compared for it, as torch.autograd.gradgradcheck builds no row for it. Its
backward still runs once (it must give each input's shape), but its values are not used: it
multiplies by zero constants such as the 1/0 of a mean over an empty batch, so it can be nan
(0 * inf), which is also what PyTorch's formulas compute there.
"""
from __future__ import annotations

import numpy as np

from .autograd import enable_grad, grad, no_grad
from .autograd.saved import updating
from .tensor import Tensor


class GradcheckError(AssertionError):
    """Raised when an analytic gradient disagrees with the finite-difference one."""


def _outputs(fn, inputs, name: str) -> tuple:
    out = fn(*inputs)
    outs = out if isinstance(out, tuple) else (out,)
    for value in outs:
        if value is not None and not isinstance(value, Tensor):
            raise TypeError(f"{name}: fn must return a Tensor, got {type(value).__name__} (a tuple of Tensors is fine too)")
    return outs


def _differentiable(inputs, name: str) -> list:
    tensors = [x for x in inputs if isinstance(x, Tensor) and x.requires_grad]
    if not tensors:
        raise ValueError(f"{name}: no input requires grad")
    for position, x in enumerate(inputs):
        if isinstance(x, Tensor) and x.requires_grad and x.dtype != np.float64:
            raise TypeError(f"{name}: input {position} has dtype {x.dtype}; use float64")
    return tensors


def gradcheck(fn, *inputs, eps: float = 1e-6, atol: float = 1e-5, rtol: float = 1e-4,
              seed: int = 0, raise_exception: bool = True, labels=None, name: str = "gradcheck") -> bool:
    """Check `fn(*inputs)`'s gradients w.r.t. every input Tensor with requires_grad=True.

    `fn` returns a Tensor of any shape, or a tuple of Tensors (None entries count as zeros);
    other inputs (arrays, ints, tensors without grad) are passed through unchanged. Inputs
    that require grad must be float64 (finite differences in float32 are too coarse to tell a
    right gradient from a wrong one); their `.grad` is overwritten with the analytic gradient. Returns True, or raises
    GradcheckError naming the input (its position in `inputs`), the worst element, and both
    values (returns False instead when raise_exception=False).
    """
    tensors = _differentiable(inputs, name)
    with no_grad():
        out_shapes = [None if y is None else y.shape for y in _outputs(fn, inputs, name)]
    rng = np.random.default_rng(seed)
    directions = [None if s is None else Tensor(rng.standard_normal(s)) for s in out_shapes]  # float64

    def loss(outs):
        terms = [(y * r).sum() for y, r in zip(outs, directions) if y is not None]
        total = terms[0] if terms else None
        for term in terms[1:]:
            total = total + term
        return total

    def loss_value() -> float:
        total = loss(_outputs(fn, inputs, name))
        return 0.0 if total is None else total.item()

    with enable_grad():
        total = loss(_outputs(fn, inputs, name))
        if total is not None and total.requires_grad:
            analytic = grad(total, tensors, allow_unused=True)
        else:
            analytic = [None] * len(tensors)
    analytic = [np.zeros_like(x.data) if g is None else g.data for x, g in zip(tensors, analytic)]
    for x, g in zip(tensors, analytic):
        x.grad = g.copy()  # left in .grad for a look afterwards

    for position, x in enumerate(inputs):
        if not (isinstance(x, Tensor) and x.requires_grad):
            continue
        g = analytic[[t is x for t in tensors].index(True)]  # by identity: == is elementwise
        numeric = _numeric_gradient(loss_value, x, eps, name)
        excess = np.abs(g - numeric) - (atol + rtol * np.abs(numeric))
        excess = np.where(np.isnan(excess), np.inf, excess)  # NaN on either side fails
        if np.any(excess > 0):
            if not raise_exception:
                return False
            worst = np.unravel_index(int(np.argmax(excess)), x.shape)
            label = f"input {position}" if labels is None else labels[position]
            raise GradcheckError(
                f"{name}: {label} (shape {x.shape}), element "
                f"{tuple(int(i) for i in worst)}: analytic {g[worst]:.10g} vs numeric "
                f"{numeric[worst]:.10g} (atol={atol}, rtol={rtol})"
            )
    return True


def gradgradcheck(fn, *inputs, grad_outputs=None, eps: float = 1e-6, atol: float = 1e-5,
                  rtol: float = 1e-3, seed: int = 0, raise_exception: bool = True) -> bool:
    """Check the second derivatives of `fn(*inputs)` (float64 inputs, as gradcheck).

    grad_outputs: the vector v of the first vector-Jacobian product (one array/Tensor per
    output of fn, or one for a single output); random when None. The check differentiates
    G = grad(fn(x...), x..., v, create_graph=True) by finite differences in the inputs and in
    v, and fails naming the input ("input 1", or "grad_outputs[0]"), the worst element of the
    first derivative's derivative, and both values.
    """
    tensors = _differentiable(inputs, "gradgradcheck")
    with no_grad():
        outs = _outputs(fn, inputs, "gradgradcheck")
    if grad_outputs is None:
        rng = np.random.default_rng(seed + 1)
        grad_outputs = [rng.standard_normal(y.shape) for y in outs]
    elif isinstance(grad_outputs, (Tensor, np.ndarray)):
        grad_outputs = [grad_outputs]
    if len(grad_outputs) != len(outs):
        raise ValueError(f"gradgradcheck: {len(grad_outputs)} grad_outputs for {len(outs)} outputs")
    vs = [Tensor(np.array(v.data if isinstance(v, Tensor) else v, dtype=np.float64), requires_grad=True)
          for v in grad_outputs]
    n = len(inputs)

    def first_derivative(*args):
        xs, v = args[:n], list(args[n:])
        with enable_grad():
            ys = _outputs(fn, xs, "gradgradcheck")
            pairs = [(y, g) for y, g in zip(ys, v) if y is not None and y.requires_grad]
            wrt = [x for x in xs if isinstance(x, Tensor) and x.requires_grad]
            if not pairs:
                return tuple(None for _ in wrt)
            grads = grad([y for y, _ in pairs], wrt, [g for _, g in pairs],
                          create_graph=True, allow_unused=True)
        return tuple(None if g is not None and g.numel() == 0 else g for g in grads)  # empty: no rows

    def run_empty_rows(*args):
        """The backward of the empty first derivatives, once: it must run and give the shapes."""
        with enable_grad():
            ys = _outputs(fn, args[:n], "gradgradcheck")
            pairs = [(y, g) for y, g in zip(ys, args[n:]) if y is not None and y.requires_grad]
            wrt = [x for x in args[:n] if isinstance(x, Tensor) and x.requires_grad]
            if not pairs:
                return
            firsts = grad([y for y, _ in pairs], wrt, [g for _, g in pairs], create_graph=True, allow_unused=True)
            empty = [g for g in firsts if g is not None and g.numel() == 0 and g.requires_grad]
            if not empty:
                return
            sources = wrt + [v for v in args[n:] if v.requires_grad]
            seconds = grad(empty, sources, [np.zeros(g.shape) for g in empty], allow_unused=True)
        for source, second in zip(sources, seconds):
            if second is not None and second.shape != source.shape:
                raise GradcheckError(f"gradgradcheck: the second derivative of an empty first derivative has "
                                     f"shape {second.shape}, its input {source.shape}")

    labels = [f"input {i}" for i in range(n)] + [f"grad_outputs[{k}]" for k in range(len(vs))]
    run_empty_rows(*inputs, *vs)
    return gradcheck(first_derivative, *inputs, *vs, eps=eps, atol=atol, rtol=rtol, seed=seed,
                     raise_exception=raise_exception, labels=labels, name="gradgradcheck")


def _numeric_gradient(loss_value, x: Tensor, eps: float, name: str = "gradcheck") -> np.ndarray:
    """dL/dx by central differences, nudging one element of `x.data` at a time in place."""
    numeric = np.zeros_like(x.data)
    # a graph the caller keeps alive may hold x's array read-only: each nudge is undone
    with no_grad(), updating([x], name, restores=True):
        if not x.data.flags.writeable:
            raise ValueError(f"{name}: an input of shape {x.shape} has read-only data; pass a copy")
        for index in np.ndindex(x.shape):
            original = x.data[index]
            x.data[index] = original + eps
            plus = loss_value()
            x.data[index] = original - eps
            minus = loss_value()
            x.data[index] = original
            numeric[index] = (plus - minus) / (2 * eps)
    return numeric
