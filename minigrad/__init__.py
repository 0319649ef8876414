"""minigrad: a NumPy tensor with reverse-mode automatic differentiation.

    import minigrad as mg
    x = mg.Tensor([[1.0, 2.0]], requires_grad=True)
    loss = (x @ x.T).sum()
    loss.backward()          # x.grad == [[2., 4.]]
"""
from . import blas  # first: OpenBLAS settings read when NumPy loads (see blas.py)
from . import memory  # keeps freed memory for reuse (no page faults every step); see memory.py
from .memory import set_memory_reuse
from .autograd import Function, enable_grad, is_grad_enabled, no_grad, unbroadcast
from .tensor import Tensor
from . import ops as _ops  # binds the operators onto Tensor
from .ops import concat, maximum, stack, where
from .gradcheck import GradcheckError, gradcheck, gradgradcheck
from . import autograd
from . import nn, optim, random, viz
from .random import manual_seed
from .serialization import CheckpointError, load, save


def tensor(data, requires_grad: bool = False, dtype=None) -> Tensor:
    """Shorthand for `Tensor(data, requires_grad, dtype)`."""
    return Tensor(data, requires_grad=requires_grad, dtype=dtype)


__all__ = [
    "Tensor", "tensor", "Function", "no_grad", "enable_grad", "is_grad_enabled",
    "unbroadcast", "where", "concat", "stack", "maximum", "gradcheck", "gradgradcheck", "GradcheckError", "autograd", "nn", "optim", "random", "viz", "manual_seed",
    "save", "load", "CheckpointError", "set_memory_reuse",
]
