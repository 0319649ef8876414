"""RMSprop (Hinton's lecture 6e; PyTorch's `torch.optim.RMSprop`, same update order):

    g = g + weight_decay * p                          (when weight_decay != 0)
    v = alpha * v + (1 - alpha) * g * g
    centered:  m = alpha * m + (1 - alpha) * g;  avg = sqrt(v - m * m) + eps
    otherwise: avg = sqrt(v) + eps
    momentum > 0:  b = momentum * b + g / avg;  p = p - lr * b
    otherwise:     p = p - lr * g / avg
"""
from __future__ import annotations

import numpy as np

from .optimizer import Optimizer, _check_number, run_chunked


def _rmsprop_kernel(p, g, v, *rest, lr, alpha, eps, weight_decay, momentum, centered):
    """One RMSprop update of one chunk in place; rest = [m (centered)] [b (momentum)] s1 s2."""
    *state, s1, s2 = rest
    m = state.pop(0) if centered else None
    b = state.pop(0) if momentum > 0 else None
    if weight_decay != 0:
        np.multiply(p, weight_decay, out=s2)
        s2 += g                                       # g = g + wd p
        g = s2
    v *= alpha
    np.multiply(g, g, out=s1)
    s1 *= 1.0 - alpha
    v += s1                                           # v = alpha v + (1 - alpha) g^2
    if centered:
        np.subtract(g, m, out=s1)
        s1 *= 1.0 - alpha
        m += s1                                       # m = alpha m + (1 - alpha) g (torch's lerp)
        np.multiply(m, m, out=s1)
        np.subtract(v, s1, out=s1)
        np.sqrt(s1, out=s1)                           # sqrt(v - m^2)
    else:
        np.sqrt(v, out=s1)
    s1 += eps                                         # avg
    np.divide(g, s1, out=s1)                          # g / avg
    if b is not None:
        b *= momentum
        b += s1                                       # b = momentum b + g / avg
        s1 = b
    np.multiply(s1, lr, out=s2)
    p -= s2                                           # p = p - lr (b or g / avg)


class RMSprop(Optimizer):
    """RMSprop(params, lr=0.01, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0, centered=False).

    State per parameter: "step" (int), "square_avg", and "momentum_buffer" / "grad_avg" (arrays
    like the parameter) when some group uses momentum / centered.
    """

    def __init__(self, params, lr: float = 0.01, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0.0, momentum: float = 0.0, centered: bool = False):
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                                      momentum=momentum, centered=centered))
        self._state_keys = {"step": "int", "square_avg": "array"}
        if any(group["momentum"] > 0 for group in self.param_groups):
            self._state_keys["momentum_buffer"] = "array"
        if any(group["centered"] for group in self.param_groups):
            self._state_keys["grad_avg"] = "array"

    def _check_group(self, group: dict) -> None:
        for key in ("lr", "eps", "weight_decay", "momentum"):
            _check_number("RMSprop", key, group[key])
        _check_number("RMSprop", "alpha", group["alpha"], 0.0, 1.0)
        if not isinstance(group["centered"], bool):
            raise TypeError(f"RMSprop: centered must be a bool, got {type(group['centered']).__name__}")

    def _update_group(self, group: dict, grad_factor: float = 1.0) -> None:
        scalars = dict(lr=float(group["lr"]), alpha=float(group["alpha"]), eps=float(group["eps"]),
                       weight_decay=float(group["weight_decay"]), momentum=float(group["momentum"]),
                       centered=bool(group["centered"]))
        items = []
        for param in group["params"]:
            grad = self._gradient(param)
            if grad is None:
                continue
            state = self.state.get(param)
            if state is None:
                state = self.state[param] = {key: 0 if kind == "int" else np.zeros_like(param.data, order="C")
                                             for key, kind in self._state_keys.items()}
            state["step"] += 1
            arrays = [param.data, grad, state["square_avg"]]
            if scalars["centered"]:
                arrays.append(state["grad_avg"])
            if scalars["momentum"] > 0:
                arrays.append(state["momentum_buffer"])
            items.append((arrays, scalars))
        run_chunked(_rmsprop_kernel, items, grad_factor)
