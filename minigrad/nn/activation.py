"""Module forms of the activations (PyTorch's class names and arguments): each forwards to
the function of the same name in minigrad.nn.functional. GELU, ReLU and Tanh are in
layers.py. `inplace=` is accepted for compatibility; the result is always a new tensor."""
from __future__ import annotations

from . import functional as F
from .module import Module
from ..tensor import Tensor


class _Activation(Module):
    """Subclasses set `function` and list their keyword arguments in `arguments`."""

    arguments: tuple = ()

    def __init__(self, *args, inplace: bool = False, **kwargs):
        super().__init__()
        names = self.arguments
        if len(args) > len(names):
            raise TypeError(f"{type(self).__name__} takes at most {len(names)} positional arguments")
        values = dict(zip(names, args))
        for key, value in kwargs.items():
            if key not in names:
                raise TypeError(f"{type(self).__name__}: unexpected argument {key!r}")
            values[key] = value
        for key, default in zip(names, self.defaults):
            setattr(self, key, values.get(key, default))
        self.inplace = inplace

    defaults: tuple = ()

    def forward(self, x: Tensor) -> Tensor:
        return type(self).function(x, **{k: getattr(self, k) for k in self.arguments})

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={getattr(self, k)}" for k in self.arguments)


def _activation(name: str, function, arguments=(), defaults=(), doc=""):
    return type(name, (_Activation,), {"function": staticmethod(function), "arguments": arguments,
                                       "defaults": defaults, "__doc__": doc or function.__doc__,
                                       "__module__": __name__})


LeakyReLU = _activation("LeakyReLU", F.leaky_relu, ("negative_slope",), (0.01,))
ELU = _activation("ELU", F.elu, ("alpha",), (1.0,))
SELU = _activation("SELU", F.selu)
CELU = _activation("CELU", F.celu, ("alpha",), (1.0,))
SiLU = _activation("SiLU", F.silu)
Mish = _activation("Mish", F.mish)
Softplus = _activation("Softplus", F.softplus, ("beta", "threshold"), (1.0, 20.0))
Softsign = _activation("Softsign", F.softsign)
Hardtanh = _activation("Hardtanh", F.hardtanh, ("min_val", "max_val"), (-1.0, 1.0))
ReLU6 = _activation("ReLU6", F.relu6)
Hardsigmoid = _activation("Hardsigmoid", F.hardsigmoid)
Hardswish = _activation("Hardswish", F.hardswish)
LogSigmoid = _activation("LogSigmoid", F.logsigmoid)
Sigmoid = _activation("Sigmoid", lambda x: x.sigmoid(), doc="1 / (1 + exp(-x)).")
Softmax = _activation("Softmax", F.softmax, ("dim",), (None,))
LogSoftmax = _activation("LogSoftmax", F.log_softmax, ("dim",), (None,))
Softmin = _activation("Softmin", F.softmin, ("dim",), (None,))

__all__ = ["LeakyReLU", "ELU", "SELU", "CELU", "SiLU", "Mish", "Softplus", "Softsign", "Hardtanh",
           "ReLU6", "Hardsigmoid", "Hardswish", "LogSigmoid", "Sigmoid", "Softmax", "LogSoftmax",
           "Softmin"]
