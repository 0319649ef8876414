"""minigrad.nn: modules, layers, initializers and gradient utilities (PyTorch's names);
`functional` (imported as F) holds the fused kernels the layers call."""
from . import functional
from . import init
from . import utils
from .module import IncompatibleKeys, Module, Parameter, StateDictError
from .layers import (GELU, Dropout, Embedding, Identity, LayerNorm, Linear, ModuleList, ReLU,
                     Sequential, Tanh)
from .utils import clip_grad_norm, clip_grad_norm_, grad_norm

__all__ = [
    "functional", "init", "utils", "Module", "Parameter", "StateDictError", "IncompatibleKeys",
    "Linear", "Embedding", "LayerNorm", "Dropout", "GELU", "ReLU", "Tanh", "Identity",
    "Sequential", "ModuleList", "clip_grad_norm", "clip_grad_norm_", "grad_norm",
]
