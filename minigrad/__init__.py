"""minigrad: a NumPy tensor with reverse-mode automatic differentiation.

    import minigrad as mg
    x = mg.Tensor([[1.0, 2.0]], requires_grad=True)
    loss = (x @ x.T).sum()
    loss.backward()          # x.grad == [[2., 4.]]

PyTorch's tensor functions are here too (`minigrad.zeros`, `minigrad.cat`, `minigrad.exp`, ...,
see functions.py), and PyTorch's dtype names (`minigrad.float32`, `minigrad.long`, ...).
"""
from __future__ import annotations

from . import runtime  # threads, BLAS, memory: changed only by runtime.configure()
from .autograd import Function, enable_grad, is_grad_enabled, no_grad, unbroadcast
from .tensor import Tensor
from . import ops as _ops  # binds the operators onto Tensor
from .ops import cat, concat, concatenate, maximum, minimum, stack, where
from .dtypes import (bool, double, float, float16, float32, float64, get_default_dtype, half,  # noqa: A004
                     int, int8, int16, int32, int64, long, short, uint8)
from .functions import *  # noqa: F403 (the function forms of the Tensor methods)
from .functions import __all__ as _function_names
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
    "save", "load", "CheckpointError", "runtime", "cat", "concatenate", "minimum",
    "float32", "float", "float64", "double", "float16", "half", "int64", "long", "int32", "int",
    "int16", "short", "int8", "uint8", "bool", "get_default_dtype", *_function_names,
]
