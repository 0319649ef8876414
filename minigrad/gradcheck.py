"""`gradcheck`: compare analytic gradients with central finite differences, in float64.

For a function f of tensors returning a tensor y, we draw a fixed random direction r with
y's shape and check the gradient of the scalar L = sum(y * r) (a vector-Jacobian product,
as HIPS/autograd does). For every element x_i of every input that requires grad:

    numeric_i  = (L(x_i + eps) - L(x_i - eps)) / (2 eps)      # error O(eps^2)
    analytic_i = dL/dx_i from one backward pass

and they must agree within atol + rtol * |numeric_i| (a NaN on either side fails).
"""
from __future__ import annotations

import numpy as np

from .autograd import enable_grad, no_grad
from .tensor import Tensor


class GradcheckError(AssertionError):
    """Raised when an analytic gradient disagrees with the finite-difference one."""


def _output(fn, inputs) -> Tensor:
    out = fn(*inputs)
    if not isinstance(out, Tensor):
        raise TypeError(f"gradcheck: fn must return a Tensor, got {type(out).__name__}")
    return out


def gradcheck(fn, *inputs, eps: float = 1e-6, atol: float = 1e-5, rtol: float = 1e-4,
              seed: int = 0) -> bool:
    """Check `fn(*inputs)`'s gradients w.r.t. every input Tensor with requires_grad=True.

    `fn` returns a Tensor of any shape; other inputs (arrays, ints, tensors without grad) are
    passed through unchanged. Inputs that require grad must be float64 (finite differences in
    float32 are too coarse to tell a right gradient from a wrong one); their `.grad` is
    overwritten. Returns True, or raises GradcheckError naming the input (its position in
    `inputs`), the worst element, and both values.
    """
    tensors = [x for x in inputs if isinstance(x, Tensor) and x.requires_grad]
    if not tensors:
        raise ValueError("gradcheck: no input requires grad")
    for position, x in enumerate(inputs):
        if isinstance(x, Tensor) and x.requires_grad and x.dtype != np.float64:
            raise TypeError(f"gradcheck: input {position} has dtype {x.dtype}; use float64")

    with no_grad():
        out_shape = _output(fn, inputs).shape
    direction = Tensor(np.random.default_rng(seed).standard_normal(out_shape))  # float64

    def loss_value() -> float:
        return (_output(fn, inputs) * direction).sum().item()

    for x in tensors:
        x.grad = None
    with enable_grad():
        loss = (_output(fn, inputs) * direction).sum()
        if loss.requires_grad:
            loss.backward()
    analytic = [np.zeros_like(x.data) if x.grad is None else x.grad.copy() for x in tensors]

    for position, x in enumerate(inputs):
        if not (isinstance(x, Tensor) and x.requires_grad):
            continue
        grad = analytic[tensors.index(x)]
        numeric = _numeric_gradient(loss_value, x, eps)
        excess = np.abs(grad - numeric) - (atol + rtol * np.abs(numeric))
        excess = np.where(np.isnan(excess), np.inf, excess)  # NaN on either side fails
        if np.any(excess > 0):
            worst = np.unravel_index(int(np.argmax(excess)), x.shape)
            raise GradcheckError(
                f"gradcheck: input {position} (shape {x.shape}), element "
                f"{tuple(int(i) for i in worst)}: analytic {grad[worst]:.10g} vs numeric "
                f"{numeric[worst]:.10g} (atol={atol}, rtol={rtol})"
            )
    return True


def _numeric_gradient(loss_value, x: Tensor, eps: float) -> np.ndarray:
    """dL/dx by central differences, nudging one element of `x.data` at a time in place."""
    if not x.data.flags.writeable:
        raise ValueError(f"gradcheck: an input of shape {x.shape} has read-only data; pass a copy")
    numeric = np.zeros_like(x.data)
    with no_grad():
        for index in np.ndindex(x.shape):
            original = x.data[index]
            x.data[index] = original + eps
            plus = loss_value()
            x.data[index] = original - eps
            minus = loss_value()
            x.data[index] = original
            numeric[index] = (plus - minus) / (2 * eps)
    return numeric
