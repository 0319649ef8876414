"""Stochastic gradient descent with momentum, dampening, Nesterov and L2 weight decay
(PyTorch's `torch.optim.SGD`, same update order):

    d = g + weight_decay * p                      (when weight_decay != 0)
    b = d  at the first step, else  b = momentum * b + (1 - dampening) * d
    d = d + momentum * b  (nesterov)  or  d = b   (when momentum != 0)
    p = p - lr * d
"""
from __future__ import annotations

import numpy as np

from .optimizer import Optimizer, _check_number, run_chunked


def _sgd_kernel(p, g, buf, s1, s2, lr, momentum, dampening, nesterov, weight_decay, first):
    """One SGD update of one chunk, in place; `buf` is the momentum buffer (None without
    momentum); s1, s2 are scratch arrays shaped like p."""
    d = g
    if weight_decay != 0:
        np.multiply(p, weight_decay, out=s1)
        s1 += g                                   # d = g + wd * p
        d = s1
    if momentum != 0:
        if first:
            np.copyto(buf, d)                     # b = d
        else:
            buf *= momentum
            if dampening != 0:
                np.multiply(d, 1.0 - dampening, out=s2)
                buf += s2                         # b = momentum b + (1 - dampening) d
            else:
                buf += d
        if nesterov:
            np.multiply(buf, momentum, out=s2)
            s2 += d                               # d = d + momentum b
            d = s2
        else:
            d = buf
    np.multiply(d, lr, out=s2)
    p -= s2                                       # p = p - lr d


class SGD(Optimizer):
    """SGD(params, lr, momentum=0, dampening=0, nesterov=False, weight_decay=0).

    State per parameter (only with momentum): "momentum_buffer" (array like the parameter).
    """

    _state_keys = {"momentum_buffer": "array"}

    def __init__(self, params, lr: float, momentum: float = 0.0, dampening: float = 0.0,
                 nesterov: bool = False, weight_decay: float = 0.0):
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening, nesterov=nesterov,
                        weight_decay=weight_decay)
        super().__init__(params, defaults)

    def _check_group(self, group: dict) -> None:
        _check_number("SGD", "lr", group["lr"])
        _check_number("SGD", "momentum", group["momentum"])
        _check_number("SGD", "dampening", group["dampening"])
        _check_number("SGD", "weight_decay", group["weight_decay"])
        if not isinstance(group["nesterov"], bool):
            raise TypeError(f"SGD: nesterov must be a bool, got {type(group['nesterov']).__name__}")
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError("SGD: Nesterov momentum requires momentum > 0 and dampening = 0")

    def _update_group(self, group: dict, grad_factor: float = 1.0) -> None:
        lr, momentum = float(group["lr"]), float(group["momentum"])
        scalars = dict(lr=lr, momentum=momentum, dampening=float(group["dampening"]),
                       nesterov=bool(group["nesterov"]), weight_decay=float(group["weight_decay"]))
        items = []
        for param in group["params"]:
            grad = self._gradient(param)
            if grad is None:
                continue
            buf, first = None, False
            if momentum != 0:
                state = self.state.get(param)
                if state is None:
                    state = self.state[param] = {"momentum_buffer": np.zeros_like(param.data, order="C")}
                    first = True
                buf = state["momentum_buffer"]
            items.append(([param.data, grad, buf], dict(scalars, first=first)))
        if momentum == 0:
            # no buffer: drop it from the argument list
            items = [([p, g], sc) for (p, g, _), sc in items]
            run_chunked(lambda p, g, s1, s2, **sc: _sgd_kernel(p, g, None, s1, s2, **sc), items, grad_factor)
        else:
            run_chunked(_sgd_kernel, items, grad_factor)
