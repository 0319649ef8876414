"""Derivatives of whole functions, with torch.autograd.functional's signatures.

    vjp(f, x, v)     v^T J_f(x)                      (one backward)
    jvp(f, x, v)     J_f(x) v                        (two backwards: the double-vjp trick)
    hvp(f, x, v)     H_f(x) v  for a scalar f        (the backward of a backward)
    vhp(f, x, v)     v^T H_f(x) (= H v: H is symmetric)
    jacobian(f, x)   J_f(x), shape out.shape + x.shape (one backward per output element)
    hessian(f, x)    H_f(x), shape x.shape + x.shape   (for small inputs)

`inputs` is a Tensor or a tuple of Tensors, and the results follow the same structure (a
Tensor for a Tensor, a tuple for a tuple). f is called on copies of the inputs that require
grad (cut from any graph unless create_graph=True). vjp/jvp/hvp return (f's output, product).
The double-vjp trick: for u a dummy vector of f's output shape, g(u) = u^T J is linear in u,
so the vjp of g with v is (J^T)^T v = J v.
"""
from __future__ import annotations

import numpy as np

from .function import Alias
from .grad_mode import enable_grad
from .gradients import grad


def _as_tuple(values, what: str, op: str) -> tuple[tuple, bool]:
    is_tuple = isinstance(values, (tuple, list))
    values = tuple(values) if is_tuple else (values,)
    for i, value in enumerate(values):
        if not isinstance(value, Tensor):
            raise TypeError(f"{op}: {what}[{i}] must be a Tensor, got {type(value).__name__}")
    return values, is_tuple


def _variables(inputs, create_graph: bool) -> tuple:
    """The inputs as fresh tensors requiring grad; under create_graph an input that is part
    of a graph stays connected to it (so the result can be differentiated further)."""
    with enable_grad():
        return tuple(Alias.apply(x) if create_graph and x.requires_grad
                     else Tensor(x.data, requires_grad=True) for x in inputs)


def _vectors(v, like, what: str, op: str) -> tuple:
    """`v` (None, an array/Tensor, or a tuple of them) as Tensors shaped like `like`."""
    if v is None:
        if len(like) != 1 or like[0].data.size != 1:
            raise RuntimeError(f"{op}: the vector v can only be None if the user-provided function "
                               f"returns a single Tensor with a single element (got {what} of "
                               f"shapes {[t.shape for t in like]})")
        return (Tensor._wrap(np.ones_like(like[0].data), False),)
    vs = tuple(v) if isinstance(v, (tuple, list)) else (v,)
    if len(vs) != len(like):
        raise RuntimeError(f"{op}: v has {len(vs)} entries, {what} has {len(like)}")
    out = []
    for i, (vec, ref) in enumerate(zip(vs, like)):
        vec = vec if isinstance(vec, Tensor) else Tensor._wrap(np.asarray(vec, dtype=ref.dtype), False)
        if vec.shape != ref.shape:
            raise RuntimeError(f"{op}: Mismatch in shape: v[{i}] has a shape of {vec.shape} and "
                               f"{what}[{i}] has a shape of {ref.shape}")
        out.append(vec)
    return tuple(out)


def _fill(grads, like, strict: bool, op: str, what: str = "input") -> tuple:
    """Replace None (an input the output does not depend on) with zeros; an error if strict."""
    out = []
    for i, (g, x) in enumerate(zip(grads, like)):
        if g is None:
            if strict:
                raise RuntimeError(f"{op}: the output of the user-provided function is independent "
                                   f"of {what} {i}. This is not allowed in strict mode.")
            g = Tensor._wrap(np.zeros_like(x.data), False)
        out.append(g)
    return tuple(out)


def _detach(values, create_graph: bool) -> tuple:
    return tuple(v if create_graph or v is None else Tensor._wrap(v.data, False) for v in values)


def _call(func, xs, op: str) -> tuple[tuple, bool]:
    with enable_grad():
        outputs = func(*xs)
    return _as_tuple(outputs, "outputs", op)


def _differentiable(outputs, xs, grad_outputs, create_graph, strict, op):
    """grad(outputs, xs, grad_outputs) that tolerates outputs without a graph (zeros)."""
    pairs = [(o, g) for o, g in zip(outputs, grad_outputs) if o.requires_grad]
    if not pairs:
        return _fill([None] * len(xs), xs, strict, op)
    grads = grad([o for o, _ in pairs], xs, [g for _, g in pairs], retain_graph=True,
                 create_graph=create_graph, allow_unused=True)
    return _fill(grads, xs, strict, op)


def vjp(func, inputs, v=None, create_graph: bool = False, strict: bool = False):
    """(func(inputs), v^T J): the vector-Jacobian product at `inputs` along `v` (shaped like
    func's output; may be None for a one-element output)."""
    inputs, is_tuple = _as_tuple(inputs, "inputs", "vjp")
    xs = _variables(inputs, create_graph)
    outputs, out_tuple = _call(func, xs, "vjp")
    vs = _vectors(v, outputs, "outputs", "vjp")
    grads = _differentiable(outputs, xs, vs, create_graph, strict, "vjp")
    outputs = _detach(outputs, create_graph)
    return (outputs if out_tuple else outputs[0]), (grads if is_tuple else grads[0])


def jvp(func, inputs, v=None, create_graph: bool = False, strict: bool = False):
    """(func(inputs), J v): the Jacobian-vector product along `v` (shaped like the inputs;
    may be None for a single one-element input), by the double-vjp trick."""
    inputs, is_tuple = _as_tuple(inputs, "inputs", "jvp")
    xs = _variables(inputs, create_graph)
    outputs, out_tuple = _call(func, xs, "jvp")
    vs = _vectors(v, xs, "inputs", "jvp")
    with enable_grad():
        dummies = tuple(Tensor(np.zeros_like(o.data), requires_grad=True) for o in outputs)
        g = _differentiable(outputs, xs, dummies, True, strict, "jvp")  # u^T J, linear in u
    pairs = [(gi, vi) for gi, vi in zip(g, vs) if gi.requires_grad]
    if pairs:
        products = grad([gi for gi, _ in pairs], dummies, [vi for _, vi in pairs],
                        create_graph=create_graph, allow_unused=True)
    else:
        products = [None] * len(dummies)
    products = _fill(products, outputs, strict, "jvp", what="output")
    outputs = _detach(outputs, create_graph)
    return (outputs if out_tuple else outputs[0]), (products if out_tuple else products[0])


def _scalar_output(func, xs, op: str):
    outputs, out_tuple = _call(func, xs, op)
    if out_tuple or outputs[0].data.size != 1:
        raise RuntimeError(f"{op}: the function given to {op} should return a single Tensor with "
                           f"a single element, got shapes {[o.shape for o in outputs]}")
    return outputs[0]


def hvp(func, inputs, v=None, create_graph: bool = False, strict: bool = False):
    """(func(inputs), H v) for a scalar func: the Hessian at `inputs` times `v` (shaped like
    the inputs), as the gradient of <grad f, v>: two backward passes, no Hessian formed."""
    inputs, is_tuple = _as_tuple(inputs, "inputs", "hvp")
    xs = _variables(inputs, create_graph)
    output = _scalar_output(func, xs, "hvp")
    vs = _vectors(v, xs, "inputs", "hvp")
    with enable_grad():
        gradients = _differentiable((output,), xs, (None,), True, strict, "hvp")
    products = _differentiable(gradients, xs, vs, create_graph, strict, "hvp")
    output = _detach((output,), create_graph)[0]
    return output, (products if is_tuple else products[0])


def vhp(func, inputs, v=None, create_graph: bool = False, strict: bool = False):
    """(func(inputs), v^T H): the same as hvp, since a Hessian is symmetric."""
    return hvp(func, inputs, v, create_graph, strict)


def jacobian(func, inputs, create_graph: bool = False, strict: bool = False):
    """The Jacobian of func at `inputs`: for output o and input x, a Tensor of shape
    o.shape + x.shape (one backward per element of o). Nested like torch: a Tensor for one
    output and one input, a tuple over inputs, a tuple over outputs of those."""
    inputs, is_tuple = _as_tuple(inputs, "inputs", "jacobian")
    xs = _variables(inputs, create_graph)
    outputs, out_tuple = _call(func, xs, "jacobian")
    per_output = []
    for o in outputs:
        rows = [[] for _ in xs]
        for index in np.ndindex(o.shape):
            seed = np.zeros_like(o.data)
            seed[index] = 1.0
            grads = _differentiable((o,), xs, (Tensor._wrap(seed, False),), create_graph, strict, "jacobian")
            for row, g in zip(rows, grads):
                row.append(g)
        blocks = tuple(_stack_rows(row, o.shape, x.shape, x.dtype) for row, x in zip(rows, xs))
        per_output.append(blocks if is_tuple else blocks[0])
    return tuple(per_output) if out_tuple else per_output[0]


def _stack_rows(rows, out_shape, in_shape, dtype):
    """Gradients of each output element (len prod(out_shape), each in_shape) as one Tensor
    of shape out_shape + in_shape (a differentiable stack when they carry a graph)."""
    if not rows:
        return Tensor._wrap(np.zeros(out_shape + in_shape, dtype=dtype), False)
    if any(r.requires_grad for r in rows):
        return stack(rows, axis=0).reshape(out_shape + in_shape)
    return Tensor._wrap(np.stack([r.data for r in rows]).reshape(out_shape + in_shape), False)


def hessian(func, inputs, create_graph: bool = False, strict: bool = False):
    """The Hessian of a scalar func: x.shape + x.shape for one input; a tuple of tuples
    (block [i][j] of shape x_i.shape + x_j.shape) for several. Small inputs only: it runs one
    backward of the gradient per input element."""
    inputs, is_tuple = _as_tuple(inputs, "inputs", "hessian")

    def gradient(*xs):
        output = _scalar_output(func, xs, "hessian")
        return _differentiable((output,), xs, (None,), True, strict, "hessian")

    blocks = jacobian(gradient, inputs, create_graph=create_graph, strict=strict)
    return blocks if is_tuple else blocks[0][0]


from ..ops import stack  # noqa: E402  (at the end: ops import this package)
from ..tensor import Tensor  # noqa: E402
