"""Adagrad (Duchi, Hazan & Singer 2011; PyTorch's `torch.optim.Adagrad`, same update order).
At a parameter's step t = 1, 2, ...:

    g = g + weight_decay * p                          (when weight_decay != 0)
    clr = lr / (1 + (t - 1) * lr_decay)
    s = s + g * g                                     (s starts at initial_accumulator_value)
    p = p - clr * g / (sqrt(s) + eps)
"""
from __future__ import annotations

import numpy as np

from .optimizer import Optimizer, _check_number, run_chunked


def _adagrad_kernel(p, g, s, s1, s2, clr, eps, weight_decay):
    """One Adagrad update of one chunk in place (s1, s2: scratch shaped like p)."""
    if weight_decay != 0:
        np.multiply(p, weight_decay, out=s2)
        s2 += g                                       # g = g + wd p
        g = s2
    np.multiply(g, g, out=s1)
    s += s1                                           # s = s + g^2
    np.sqrt(s, out=s1)
    s1 += eps
    np.divide(g, s1, out=s1)
    s1 *= clr
    p -= s1                                           # p = p - clr g / (sqrt(s) + eps)


class Adagrad(Optimizer):
    """Adagrad(params, lr=0.01, lr_decay=0, weight_decay=0, initial_accumulator_value=0, eps=1e-10).

    State per parameter (created at construction, as PyTorch): "step" (int) and "sum" (array
    like the parameter, filled with initial_accumulator_value).
    """

    _state_keys = {"step": "int", "sum": "array"}

    def __init__(self, params, lr: float = 0.01, lr_decay: float = 0.0, weight_decay: float = 0.0,
                 initial_accumulator_value: float = 0.0, eps: float = 1e-10):
        super().__init__(params, dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                                      initial_accumulator_value=initial_accumulator_value, eps=eps))
        for group in self.param_groups:
            for param in group["params"]:
                self.state[param] = {"step": 0, "sum": np.full(param.shape, group["initial_accumulator_value"],
                                                               dtype=param.dtype)}

    def _check_group(self, group: dict) -> None:
        for key in ("lr", "lr_decay", "weight_decay", "initial_accumulator_value", "eps"):
            _check_number("Adagrad", key, group[key])

    def _update_group(self, group: dict, grad_factor: float = 1.0) -> None:
        items = []
        for param in group["params"]:
            grad = self._gradient(param)
            if grad is None:
                continue
            state = self.state[param]
            state["step"] += 1
            clr = float(group["lr"]) / (1.0 + (state["step"] - 1) * float(group["lr_decay"]))
            items.append(([param.data, grad, state["sum"]],
                          dict(clr=clr, eps=float(group["eps"]), weight_decay=float(group["weight_decay"]))))
        run_chunked(_adagrad_kernel, items, grad_factor)
