"""`gradcheck`: compare analytic gradients with central finite differences, in float64.

For a function f of tensors returning a tensor y, we draw a fixed random direction r with
y's shape and check the gradient of the scalar L = sum(y * r). For every element x_i of every
input that requires grad:

    numeric_i  = (L(x_i + eps) - L(x_i - eps)) / (2 eps)      # error O(eps^2)
    analytic_i = dL/dx_i from one backward pass

and they must agree within atol + rtol * |numeric_i|.
"""
from __future__ import annotations

import numpy as np

from .autograd import enable_grad, no_grad
from .tensor import Tensor


class GradcheckError(AssertionError):
    """Raised when an analytic gradient disagrees with the finite-difference one."""


def _scalar_loss(fn, inputs, direction):
    out = fn(*inputs)
    if not isinstance(out, Tensor):
        raise TypeError(f"gradcheck: fn must return a Tensor, got {type(out).__name__}")
    if direction is None:
        return out, None
    return (out * Tensor(direction)).sum(), out


def gradcheck(fn, *inputs, eps: float = 1e-6, atol: float = 1e-5, rtol: float = 1e-4,
              seed: int = 0) -> bool:
    """Check `fn(*inputs)`'s gradients w.r.t. every input Tensor with requires_grad=True.

    Inputs that require grad must be float64 (finite differences in float32 are too coarse
    to tell a right gradient from a wrong one). Returns True, or raises GradcheckError naming
    the input, the worst element, and both values.
    """
    tensors = [x for x in inputs if isinstance(x, Tensor) and x.requires_grad]
    if not tensors:
        raise ValueError("gradcheck: no input requires grad")
    for position, x in enumerate(inputs):
        if isinstance(x, Tensor) and x.requires_grad and x.dtype != np.float64:
            raise TypeError(f"gradcheck: input {position} has dtype {x.dtype}; use float64")

    with enable_grad():
        probe = fn(*inputs)
    if not isinstance(probe, Tensor):
        raise TypeError(f"gradcheck: fn must return a Tensor, got {type(probe).__name__}")
    direction = np.random.default_rng(seed).standard_normal(probe.shape)
    direction = np.asarray(direction, dtype=np.float64)

    for x in tensors:
        x.grad = None
    with enable_grad():
        loss, _ = _scalar_loss(fn, inputs, direction)
        if loss.requires_grad:
            loss.backward()
    analytic = [np.zeros_like(x.data) if x.grad is None else x.grad.copy() for x in tensors]

    for position, x in enumerate(inputs):
        if not (isinstance(x, Tensor) and x.requires_grad):
            continue
        grad = analytic[tensors.index(x)]
        numeric = np.zeros_like(x.data)
        flat, flat_numeric = x.data.reshape(-1), numeric.reshape(-1)
        if not flat.flags.writeable or flat.base is not None and not np.shares_memory(flat, x.data):
            raise ValueError(f"gradcheck: input {position} must be a writeable contiguous array")
        with no_grad():
            for i in range(flat.size):
                original = flat[i]
                flat[i] = original + eps
                plus = _scalar_loss(fn, inputs, direction)[0].item()
                flat[i] = original - eps
                minus = _scalar_loss(fn, inputs, direction)[0].item()
                flat[i] = original
                flat_numeric[i] = (plus - minus) / (2 * eps)
        error = np.abs(grad - numeric) - (atol + rtol * np.abs(numeric))
        if error.size and (np.max(error) > 0 or not np.all(np.isfinite(grad))):
            worst = np.unravel_index(int(np.nanargmax(np.where(np.isfinite(error), error, np.inf))), x.shape)
            raise GradcheckError(
                f"gradcheck: input {position} (shape {x.shape}), element {tuple(int(i) for i in worst)}: "
                f"analytic {grad[worst]:.10g} vs numeric {numeric[worst]:.10g} "
                f"(atol={atol}, rtol={rtol})"
            )
    return True
