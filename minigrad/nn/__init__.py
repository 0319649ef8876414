"""minigrad.nn: modules, layers, initializers and gradient utilities (PyTorch's names);
`functional` (imported as F) holds the fused kernels the layers call."""
from . import functional
from . import init
from . import utils
from .module import IncompatibleKeys, Module, Parameter, StateDictError
from .layers import (GELU, Dropout, Embedding, Identity, LayerNorm, Linear, ModuleList, ReLU,
                     Sequential, Tanh)
from .activation import (CELU, ELU, SELU, Hardsigmoid, Hardswish, Hardtanh, LeakyReLU, LogSigmoid,
                         LogSoftmax, Mish, ReLU6, Sigmoid, SiLU, Softmax, Softmin, Softplus, Softsign)
from .containers import Flatten, ModuleDict, ParameterList, Unflatten
from .conv import Conv1d, Conv2d, ConvTranspose1d, ConvTranspose2d
from .normalization import BatchNorm1d, BatchNorm2d, GroupNorm
from .pooling import (AdaptiveAvgPool1d, AdaptiveAvgPool2d, AvgPool1d, AvgPool2d, MaxPool1d, MaxPool2d,
                      Upsample)
from .utils import clip_factor, clip_grad_norm, clip_grad_norm_, grad_norm

__all__ = [
    "functional", "init", "utils", "Module", "Parameter", "StateDictError", "IncompatibleKeys",
    "Linear", "Embedding", "LayerNorm", "Dropout", "GELU", "ReLU", "Tanh", "Identity",
    "Sequential", "ModuleList", "clip_factor", "clip_grad_norm", "clip_grad_norm_", "grad_norm",
    "LeakyReLU", "ELU", "SELU", "CELU", "SiLU", "Mish", "Softplus", "Softsign", "Hardtanh", "ReLU6",
    "Hardsigmoid", "Hardswish", "LogSigmoid", "Sigmoid", "Softmax", "LogSoftmax", "Softmin",
    "ModuleDict", "ParameterList", "Flatten", "Unflatten",
    "Conv1d", "Conv2d", "ConvTranspose1d", "ConvTranspose2d", "BatchNorm1d", "BatchNorm2d",
    "GroupNorm", "MaxPool1d", "MaxPool2d", "AvgPool1d", "AvgPool2d", "AdaptiveAvgPool1d",
    "AdaptiveAvgPool2d", "Upsample",
]
