"""Adam and AdamW (Kingma & Ba 2015; Loshchilov & Hutter 2019), with PyTorch's update order.

For each parameter p with gradient g, at its step t = 1, 2, ...:

    p = p * (1 - lr * weight_decay)              AdamW: decoupled decay, applied first
    g = g + weight_decay * p                     Adam: L2 decay folded into the gradient
    m = m + (1 - beta1) * (g - m)                (= beta1 m + (1 - beta1) g, PyTorch's lerp)
    v = beta2 * v + (1 - beta2) * g * g
    denom = sqrt(v) / sqrt(1 - beta2^t) + eps
    p = p - lr / (1 - beta1^t) * m / denom

Each parameter keeps its own step counter t (a parameter that had no gradient at some step
does not advance), as in PyTorch.

The fast kernel updates p, m and v in place, chunk by chunk (optimizer.run_chunked); with
OpenBLAS loaded (NumPy's wheels) three of its updates are one BLAS axpby pass each
(y = a x + b y), 7 passes per chunk instead of NumPy's 13 (`_adam_kernel_axpby`). Measured
at GPT-2 124M's 162M parameters, one thread, alternated 8 times at load 7: 253 ms of CPU
against 342 ms. Parameters below PACK_MAX_ELEMENTS (biases, layer norms: most of a small
model's tensors) that share a step count are updated packed: copied into one flat item and
back (_pack_small), as each kernel call costs microseconds whatever its size. Measured at
bench-tiny (57 tensors, 30 of them 128-512 elements), AdamW step alone, alternated in one
process (load 0.6-1.0): 1 thread median 2.57 -> 2.22 ms, 2 threads 2.64 -> 2.21.
"""
from __future__ import annotations

import math

import numpy as np

from ..runtime.blas import axpby_function
from .optimizer import Optimizer, _check_number, run_chunked

PACK_MAX_ELEMENTS = 8192  # parameters below this update packed together (_pack_small)


def adam_reference(p, g, m, v, *, lr, beta1, beta2, eps, weight_decay, decoupled, step,
                   grad_factor=1.0):
    """The update of the module docstring written out with temporaries: the readable version
    of `_adam_kernel` (tests compare the two). p, g, m, v: arrays of one shape; returns the new
    (p, m, v); `grad_factor` multiplies the gradient first (clipping's factor)."""
    g = g * grad_factor
    if weight_decay != 0:
        if decoupled:
            p = p * (1 - lr * weight_decay)
        else:
            g = g + weight_decay * p
    m = m + (1 - beta1) * (g - m)
    v = beta2 * v + (1 - beta2) * g * g
    denom = np.sqrt(v) / math.sqrt(1 - beta2 ** step) + eps
    p = p - lr / (1 - beta1 ** step) * m / denom
    return p, m, v


def _adam_kernel(p, g, m, v, s1, s2, lr, beta1, beta2, eps, weight_decay, decoupled,
                 bias_correction1, bias_correction2_sqrt, grad_factor=1.0, addresses=None):
    """One Adam/AdamW update of one chunk, in place (s1, s2: scratch shaped like p); the
    gradient used is g * grad_factor (g is not written). With `addresses` (those of p, g, m,
    v, s1, s2: a contiguous chunk) and OpenBLAS at hand, `_adam_kernel_axpby` does it instead.

    The same update as `adam_reference`, to float32 rounding, in 13 in-place passes where a
    pass per operator of the formula takes 15 (each pass is a NumPy loop over a chunk in the
    cache: on one thread the passes set the time; on two, the 28 bytes a parameter read and
    written in memory weigh as much):
      - the gradient factor c rides on the scalars that multiply g anyway:
        m = b1 m + ((1 - b1) c) g  and  v = b2 v + ((1 - b2) c^2) g^2;
      - both bias corrections fold into two scalars: with k = sqrt(1 - b2^t),
        lr / bc1 * m / (sqrt(v) / k + eps) = (lr k / bc1) * m / (sqrt(v) + eps k).
    The update's semantics are PyTorch's (decay first, eps outside the square root).
    """
    axpby = axpby_function(p.dtype) if addresses is not None else None
    if (axpby is not None and p.dtype == g.dtype == m.dtype == v.dtype  # (raw memory: one dtype,
            and p.flags.writeable and m.flags.writeable and v.flags.writeable):  # writeable)
        return _adam_kernel_axpby(axpby, addresses, p, g, m, v, s1, s2, lr, beta1, beta2, eps,
                                  weight_decay, decoupled, bias_correction1, bias_correction2_sqrt,
                                  grad_factor)
    c = grad_factor
    if weight_decay != 0:
        if decoupled:
            p *= 1.0 - lr * weight_decay              # AdamW: p = p (1 - lr wd)
        else:
            np.multiply(p, weight_decay, out=s2)
            if c != 1.0:
                np.multiply(g, c, out=s1)
                s2 += s1
            else:
                s2 += g                               # Adam: g = c g + wd p
            g, c = s2, 1.0
    m *= beta1
    np.multiply(g, (1.0 - beta1) * c, out=s1)
    m += s1                                           # m = b1 m + (1 - b1) c g
    np.square(g, out=s1)                              # (then scaled in place: these four
                                                      # passes 15% faster than (a g) g)
    s1 *= (1.0 - beta2) * c * c
    v *= beta2
    v += s1                                           # v = b2 v + (1 - b2) (c g)^2
    np.sqrt(v, out=s1)
    s1 += eps * bias_correction2_sqrt                 # k denom = sqrt(v) + eps k
    np.divide(m, s1, out=s1)
    s1 *= lr * bias_correction2_sqrt / bias_correction1
    p -= s1                                           # p = p - lr / bc1 * m / denom


def _adam_kernel_axpby(axpby, addresses, p, g, m, v, s1, s2, lr, beta1, beta2, eps, weight_decay,
                       decoupled, bias_correction1, bias_correction2_sqrt, grad_factor):
    """`_adam_kernel`'s update in 7 passes instead of 13: BLAS's y = a x + b y (`axpby`, on the
    chunks' addresses) does in one pass each of m = b1 m + ((1 - b1) c) g,
    v = b2 v + ((1 - b2) c^2) g^2 and p = (1 - lr wd) p - step, where NumPy takes 2-3 (the
    same formula; BLAS rounds a x + b y its own way, so the two kernels agree to float32
    rounding, not bit for bit)."""
    n = p.size
    at_p, at_g, at_m, at_v, at_s1, at_s2 = addresses
    c = grad_factor
    decay = 1.0
    if weight_decay != 0:
        if decoupled:
            decay = 1.0 - lr * weight_decay           # AdamW: p (1 - lr wd), in the last pass
        else:
            np.copyto(s2, g)
            axpby(n, weight_decay, at_p, c, at_s2)    # Adam: g = c g + wd p
            g, at_g, c = s2, at_s2, 1.0
    axpby(n, (1.0 - beta1) * c, at_g, beta1, at_m)    # m = b1 m + (1 - b1) c g
    np.square(g, out=s1)
    axpby(n, (1.0 - beta2) * c * c, at_s1, beta2, at_v)  # v = b2 v + (1 - b2) (c g)^2
    np.sqrt(v, out=s1)
    s1 += eps * bias_correction2_sqrt                 # k denom = sqrt(v) + eps k
    np.divide(m, s1, out=s1)
    axpby(n, -lr * bias_correction2_sqrt / bias_correction1, at_s1, decay, at_p)
    # p = (1 - lr wd) p - lr / bc1 * m / denom


def _pack_small(items: list) -> tuple:
    """items -> (items, packs): the C-contiguous items below PACK_MAX_ELEMENTS that share one
    scalars dict (the same object) and dtype are joined into one item of concatenated flat
    copies (up to PACK_MAX_ELEMENTS each), so one kernel call covers them all. packs: (packed
    arrays, members' arrays) for `_unpack`, which copies the written arrays back. An update
    is elementwise, so each element sees the same arithmetic packed or not."""
    kept, groups = [], {}
    for item in items:
        arrays, scalars = item
        first = arrays[0]
        if first.size >= PACK_MAX_ELEMENTS or not first.flags.c_contiguous:
            kept.append((False, item))
            continue
        key = (id(scalars), first.dtype)
        group = groups.get(key)
        if group is None or group[0] + first.size > PACK_MAX_ELEMENTS:
            group = groups[key] = [0, [], scalars]
            kept.append((True, group))
        group[0] += first.size
        group[1].append(arrays)
    packs, out = [], []
    for is_group, item in kept:
        if not is_group:
            out.append(item)
            continue
        _, members, scalars = item
        if len(members) == 1:
            out.append((members[0], scalars))
            continue
        packed = [np.concatenate([a[k].reshape(-1) for a in members]) for k in range(len(members[0]))]
        packs.append((packed, members))
        out.append((packed, scalars))
    return out, packs


def _unpack(packs: list, written: tuple) -> None:
    """Copy the `written` arrays of every pack back into its members (see _pack_small)."""
    for packed, members in packs:
        for k in written:
            start = 0
            for arrays in members:
                target = arrays[k]
                stop = start + target.size
                np.copyto(target, packed[k][start:stop].reshape(target.shape))
                start = stop


class Adam(Optimizer):
    """Adam(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0).

    weight_decay here is L2 regularization added to the gradient (PyTorch's Adam); use AdamW
    for decoupled weight decay. State per parameter: "step" (int), "exp_avg" and
    "exp_avg_sq" (arrays like the parameter).
    """

    decoupled_weight_decay = False
    _state_keys = {"step": "int", "exp_avg": "array", "exp_avg_sq": "array"}

    def __init__(self, params, lr: float = 1e-3, betas: tuple = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))

    def _check_group(self, group: dict) -> None:
        name = type(self).__name__
        _check_number(name, "lr", group["lr"])
        _check_number(name, "eps", group["eps"])
        _check_number(name, "weight_decay", group["weight_decay"])
        betas = group["betas"]
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise ValueError(f"{name}: betas must be a pair (beta1, beta2), got {betas!r}")
        _check_number(name, "beta1", betas[0], 0.0, 1.0, high_open=True)
        _check_number(name, "beta2", betas[1], 0.0, 1.0, high_open=True)
        group["betas"] = (float(betas[0]), float(betas[1]))

    def _update_group(self, group: dict, grad_factor: float = 1.0) -> None:
        lr, eps, weight_decay = float(group["lr"]), float(group["eps"]), float(group["weight_decay"])
        beta1, beta2 = (float(b) for b in group["betas"])
        items, by_step = [], {}  # by_step: one scalars dict per step count (_pack_small packs
        for param in group["params"]:  # the small items that share one)
            grad = self._gradient(param)
            if grad is None:
                continue
            state = self.state.get(param)
            if state is None:
                state = self.state[param] = {
                    "step": 0,
                    "exp_avg": np.zeros_like(param.data, order="C"),
                    "exp_avg_sq": np.zeros_like(param.data, order="C"),
                }
            state["step"] += 1
            step = state["step"]
            scalars = by_step.get(step)
            if scalars is None:
                scalars = by_step[step] = dict(
                    lr=lr, beta1=beta1, beta2=beta2, eps=eps, weight_decay=weight_decay,
                    decoupled=self.decoupled_weight_decay, bias_correction1=1.0 - beta1 ** step,
                    bias_correction2_sqrt=math.sqrt(1.0 - beta2 ** step), grad_factor=grad_factor)
            items.append(([param.data, grad, state["exp_avg"], state["exp_avg_sq"]], scalars))
        # the kernel folds grad_factor into its multiplies; addresses for its BLAS passes
        # small parameters (biases, layer norms) in packs: p, m and v are written back
        items, packs = _pack_small(items)
        run_chunked(_adam_kernel, items, addresses=axpby_function(np.float32) is not None)
        _unpack(packs, (0, 2, 3))


class AdamW(Adam):
    """AdamW(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01): Adam with
    decoupled weight decay p = p (1 - lr wd) applied before the Adam step (PyTorch's AdamW)."""

    decoupled_weight_decay = True

    def __init__(self, params, lr: float = 1e-3, betas: tuple = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.01):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
