"""Containers and shape layers: ModuleDict, ParameterList, Flatten, Unflatten (PyTorch's
names and behaviour). Sequential and ModuleList are in layers.py."""
from __future__ import annotations

import math
from typing import Iterable, Mapping

import numpy as np

from .module import Module, Parameter
from ..tensor import Tensor


class ModuleDict(Module):
    """An ordered dict of name -> Module whose modules are registered (their parameters found).

    Supports d[name], d[name] = module, del d[name], in, len, iteration over keys, keys(),
    values(), items(), update(), pop(), clear().
    """

    def __init__(self, modules: Mapping | Iterable | None = None):
        super().__init__()
        if modules is not None:
            self.update(modules)

    def __getitem__(self, key: str) -> Module:
        if key not in self._modules:
            raise KeyError(f"ModuleDict: no module named {key!r} (have {list(self._modules)})")
        return self._modules[key]

    def __setitem__(self, key: str, module: Module) -> None:
        if not isinstance(module, Module):
            raise TypeError(f"ModuleDict: value for {key!r} must be a Module, got {type(module).__name__}")
        self.add_module(key, module)

    def __delitem__(self, key: str) -> None:
        del self._modules[key]

    def __contains__(self, key) -> bool:
        return key in self._modules

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules)

    def keys(self):
        return self._modules.keys()

    def values(self):
        return self._modules.values()

    def items(self):
        return self._modules.items()

    def update(self, modules) -> None:
        pairs = modules.items() if isinstance(modules, Mapping) else modules
        for key, module in pairs:
            self[key] = module

    def pop(self, key: str) -> Module:
        module = self[key]
        del self[key]
        return module

    def clear(self) -> None:
        self._modules.clear()

    def forward(self, *args, **kwargs):
        raise NotImplementedError("ModuleDict has no forward(): index it by name instead")


class ParameterList(Module):
    """A list of Parameters registered as "0", "1", ... (found by parameters(), saved in the
    state dict). Arrays and Tensors appended are wrapped in a Parameter."""

    def __init__(self, values: Iterable | None = None):
        super().__init__()
        if values is not None:
            self.extend(values)

    def _as_parameter(self, value) -> Parameter:
        if isinstance(value, Parameter):
            return value
        if isinstance(value, (Tensor, np.ndarray)):
            return Parameter(value.data if isinstance(value, Tensor) else value)
        raise TypeError(f"ParameterList: expected a Parameter, Tensor or ndarray, got {type(value).__name__}")

    def __len__(self) -> int:
        return len(self._parameters)

    def __iter__(self):
        return iter(self._parameters.values())

    def __getitem__(self, index: int) -> Parameter:
        if isinstance(index, slice):
            return ParameterList(list(self._parameters.values())[index])
        if not -len(self) <= index < len(self):
            raise IndexError(f"ParameterList: index {index} out of range for {len(self)} parameters")
        return self._parameters[str(index % len(self))]

    def __setitem__(self, index: int, value) -> None:
        if not -len(self) <= index < len(self):
            raise IndexError(f"ParameterList: index {index} out of range for {len(self)} parameters")
        self._parameters[str(index % len(self))] = self._as_parameter(value)

    def append(self, value) -> "ParameterList":
        self.register_parameter(str(len(self)), self._as_parameter(value))
        return self

    def extend(self, values: Iterable) -> "ParameterList":
        for value in values:
            self.append(value)
        return self

    def forward(self, *args, **kwargs):
        raise NotImplementedError("ParameterList has no forward(): iterate over it instead")

    def extra_repr(self) -> str:
        return "\n".join(f"({i}): Parameter of shape {p.shape}, dtype {p.dtype}" for i, p in enumerate(self))


class Flatten(Module):
    """Merge dims start_dim..end_dim into one: (N, C, H, W) -> (N, C*H*W) by default."""

    def __init__(self, start_dim: int = 1, end_dim: int = -1):
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, x: Tensor) -> Tensor:
        ndim = max(x.ndim, 1)
        start, end = self.start_dim % ndim, self.end_dim % ndim
        if x.ndim == 0:
            return x.reshape(1)
        if start > end:
            raise ValueError(f"Flatten: start_dim {self.start_dim} comes after end_dim {self.end_dim} "
                             f"for input {x.shape}")
        shape = x.shape[:start] + (math.prod(x.shape[start:end + 1]),) + x.shape[end + 1:]
        return x.reshape(shape)

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class Unflatten(Module):
    """Split dim into unflattened_size: Unflatten(1, (C, H, W)) maps (N, C*H*W) -> (N, C, H, W)."""

    def __init__(self, dim: int, unflattened_size):
        super().__init__()
        self.dim, self.unflattened_size = dim, tuple(unflattened_size)

    def forward(self, x: Tensor) -> Tensor:
        dim = self.dim % x.ndim
        if math.prod(self.unflattened_size) != x.shape[dim] and -1 not in self.unflattened_size:
            raise ValueError(f"Unflatten: size {self.unflattened_size} does not match dim {self.dim} "
                             f"of length {x.shape[dim]} (input {x.shape})")
        return x.reshape(x.shape[:dim] + self.unflattened_size + x.shape[dim + 1:])

    def extra_repr(self) -> str:
        return f"dim={self.dim}, unflattened_size={self.unflattened_size}"
