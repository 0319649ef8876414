"""`Parameter` and `Module`: the containers every layer and model is built from (PyTorch's
`torch.nn.Module` semantics).

    class MLP(Module):
        def __init__(self):
            super().__init__()
            self.hidden = Linear(2, 8)        # submodules register on assignment
            self.out = Linear(8, 1)
        def forward(self, x):
            return self.out(self.hidden(x).relu())

    model = MLP()
    [name for name, _ in model.named_parameters()]
    # ['hidden.weight', 'hidden.bias', 'out.weight', 'out.bias']

Registration happens in `__setattr__`: a `Parameter` goes to `_parameters`, a `Module` to
`_modules`, an array given to `register_buffer` to `_buffers`. Everything else is a plain
attribute.

Parameter listing (`parameters()`, `named_parameters()`, `num_parameters()`) is deduplicated
by identity, so a weight shared by two modules (weight tying:
`model.out_head.weight = model.tok_emb.weight`) is listed, counted and optimized once.
`state_dict()` instead lists every name, so a tied weight appears under both names (as in
PyTorch); `load_state_dict` copies values into the existing arrays, so tied weights stay tied
and an optimizer built before the load keeps working on the same arrays.

Beside this file: `state_dict.py` (saving and loading weights) and `module_hooks.py`
(forward and backward hooks); both are mixed into `Module`.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Callable, Iterator

import numpy as np

from ..tensor import Tensor
from .module_hooks import HooksMixin
from .state_dict import IncompatibleKeys, StateDictError, StateDictMixin, _array_of

__all__ = ["Parameter", "Module", "StateDictError", "IncompatibleKeys"]


class Parameter(Tensor):
    """A Tensor that a `Module` registers as a learnable weight.

    `requires_grad` is True by default; set it to False (or call `module.requires_grad_(False)`)
    to freeze the weight. The array is shared with `data` when `data` is already an ndarray of
    the wanted dtype (like `torch.nn.Parameter`, no copy).
    """

    __slots__ = ()

    def __init__(self, data, requires_grad: bool = True, dtype=None):
        if isinstance(data, Tensor):
            data = data.data
        super().__init__(data, requires_grad=requires_grad, dtype=dtype)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()



def _add_indent(text: str, spaces: int) -> str:
    lines = text.split("\n")
    return "\n".join([lines[0]] + [" " * spaces + line for line in lines[1:]])


class Module(HooksMixin, StateDictMixin):
    """Base class of every layer and model: holds parameters, buffers and submodules.

    Subclasses call `super().__init__()` first, assign their parameters and submodules as
    attributes, and define `forward`. Calling the module runs `forward`.

    Attributes:
      training: True in training mode (dropout active), False after `eval()`.
    """

    training: bool

    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_non_persistent_buffers", set())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} has no forward() method")

    def __call__(self, *args, **kwargs):
        if self._hooks is None:  # the usual case: no hook was ever registered on this module
            return self.forward(*args, **kwargs)
        return self._call_with_hooks(args, kwargs)

    # ------------------------------------------------------------ registration
    def _check_initialized(self, name: str) -> None:
        if "_parameters" not in self.__dict__:
            raise AttributeError(
                f"cannot assign '{name}' before Module.__init__() runs: call super().__init__() "
                f"first in {type(self).__name__}.__init__"
            )

    def _discard(self, name: str) -> None:
        """Forget `name` wherever it was registered (before it is re-registered elsewhere)."""
        self.__dict__.pop(name, None)
        self._parameters.pop(name, None)
        self._modules.pop(name, None)
        self._buffers.pop(name, None)
        self._non_persistent_buffers.discard(name)

    def __setattr__(self, name: str, value) -> None:
        # replacing a registered parameter/submodule keeps its position (as PyTorch does), so
        # swapping a layer inside a Sequential does not move it to the end
        if isinstance(value, Parameter):
            self._check_initialized(name)
            if name not in self._parameters:
                self._discard(name)
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._check_initialized(name)
            if name not in self._modules:
                self._discard(name)
            self._modules[name] = value
        elif "_parameters" in self.__dict__ and name in self._parameters:
            if value is not None:
                raise TypeError(
                    f"cannot assign {type(value).__name__} to parameter '{name}' of "
                    f"{type(self).__name__} (expected a Parameter or None)"
                )
            self._parameters[name] = None
        elif "_modules" in self.__dict__ and name in self._modules:
            if value is not None:
                raise TypeError(
                    f"cannot assign {type(value).__name__} to submodule '{name}' of "
                    f"{type(self).__name__} (expected a Module or None)"
                )
            self._modules[name] = None
        elif "_buffers" in self.__dict__ and name in self._buffers:
            if value is not None and not isinstance(value, (np.ndarray, Tensor)):
                raise TypeError(
                    f"cannot assign {type(value).__name__} to buffer '{name}' of "
                    f"{type(self).__name__} (expected an ndarray, a Tensor or None)"
                )
            self._buffers[name] = value
        else:
            object.__setattr__(self, name, value)

    def __getattr__(self, name: str):
        # only called when normal lookup fails: look in the registries (a name is in at most
        # one; each model forward comes here for every submodule and parameter it reads)
        registries = self.__dict__
        for registry in ("_parameters", "_buffers", "_modules"):
            entries = registries.get(registry)
            if entries is not None and name in entries:
                return entries[name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name: str) -> None:
        for registry in (self._parameters, self._buffers, self._modules):
            if name in registry:
                del registry[name]
                self._non_persistent_buffers.discard(name)
                return
        object.__delattr__(self, name)

    def __dir__(self):
        return sorted(set(super().__dir__()) | set(self._parameters) | set(self._buffers)
                      | set(self._modules))

    def _check_name(self, kind: str, name) -> None:
        self._check_initialized(str(name))
        if not isinstance(name, str):
            raise TypeError(f"{kind} name must be a str, got {type(name).__name__}")
        if name == "" or "." in name:
            raise KeyError(f"{kind} name must be non-empty and contain no '.', got {name!r}")
        if name in self.__dict__ and not (name in self._parameters or name in self._buffers
                                          or name in self._modules):
            raise KeyError(f"attribute '{name}' already exists on {type(self).__name__}")

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        """Add a parameter (or a None placeholder) under `name`."""
        self._check_name("parameter", name)
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"register_parameter: '{name}' must be a Parameter or None, got "
                            f"{type(param).__name__}")
        self._discard(name)
        self._parameters[name] = param

    def register_buffer(self, name: str, array, persistent: bool = True) -> None:
        """Add a non-learnable array (e.g. a causal mask) under `name`.

        Persistent buffers are part of `state_dict()`; non-persistent ones are not.
        """
        self._check_name("buffer", name)
        if array is not None and not isinstance(array, (np.ndarray, Tensor)):
            raise TypeError(f"register_buffer: '{name}' must be an ndarray, a Tensor or None, "
                            f"got {type(array).__name__}")
        self._discard(name)
        self._buffers[name] = array
        if not persistent:
            self._non_persistent_buffers.add(name)

    def add_module(self, name: str, module: "Module | None") -> None:
        """Add a submodule under `name` (what attribute assignment does)."""
        self._check_name("module", name)
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"add_module: '{name}' must be a Module or None, got "
                            f"{type(module).__name__}")
        self._discard(name)
        self._modules[name] = module

    register_module = add_module

    # ------------------------------------------------------------ traversal
    def named_modules(self, prefix: str = "", memo: set | None = None) -> Iterator[tuple[str, "Module"]]:
        """(dotted name, module) for this module and every submodule, each module once."""
        memo = set() if memo is None else memo
        stack = [(prefix, self)]
        while stack:  # iterative pre-order walk (children in registration order)
            name, module = stack.pop()
            if id(module) in memo:
                continue
            memo.add(id(module))
            yield name, module
            children = [(f"{name}.{child_name}" if name else child_name, child)
                        for child_name, child in module._modules.items() if child is not None]
            stack.extend(reversed(children))

    def modules(self) -> Iterator["Module"]:
        for _, module in self.named_modules():
            yield module

    def named_children(self) -> Iterator[tuple[str, "Module"]]:
        """(name, module) for the direct submodules, each once."""
        seen = set()
        for name, module in self._modules.items():
            if module is not None and id(module) not in seen:
                seen.add(id(module))
                yield name, module

    def children(self) -> Iterator["Module"]:
        for _, module in self.named_children():
            yield module

    def named_parameters(self, prefix: str = "", recurse: bool = True) -> Iterator[tuple[str, Parameter]]:
        """(dotted name, Parameter) pairs, each parameter once (a tied weight under its first name)."""
        seen = set()
        modules = self.named_modules(prefix) if recurse else [(prefix, self)]
        for module_name, module in modules:
            for name, param in module._parameters.items():
                if param is None or id(param) in seen:
                    continue
                seen.add(id(param))
                yield (f"{module_name}.{name}" if module_name else name), param

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        for _, param in self.named_parameters(recurse=recurse):
            yield param

    def named_buffers(self, prefix: str = "", recurse: bool = True) -> Iterator[tuple[str, object]]:
        """(dotted name, buffer) pairs, persistent or not, each buffer once."""
        seen = set()
        modules = self.named_modules(prefix) if recurse else [(prefix, self)]
        for module_name, module in modules:
            for name, buffer in module._buffers.items():
                if buffer is None or id(buffer) in seen:
                    continue
                seen.add(id(buffer))
                yield (f"{module_name}.{name}" if module_name else name), buffer

    def buffers(self, recurse: bool = True) -> Iterator[object]:
        for _, buffer in self.named_buffers(recurse=recurse):
            yield buffer

    def get_submodule(self, target: str) -> "Module":
        """The submodule at dotted path `target` ("" is this module)."""
        module = self
        if target == "":
            return module
        for part in target.split("."):
            child = module._modules.get(part)
            if child is None:
                raise AttributeError(f"{type(module).__name__} has no submodule '{part}' "
                                     f"(looking up '{target}')")
            module = child
        return module

    def num_parameters(self, trainable_only: bool = False) -> int:
        """Number of scalar weights, each shared parameter counted once."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    # ------------------------------------------------------------ modes and gradients
    def train(self, mode: bool = True) -> "Module":
        """Set training mode on this module and every submodule (returns self)."""
        if not isinstance(mode, bool):
            raise TypeError(f"train(mode): mode must be a bool, got {type(mode).__name__}")
        for module in self.modules():
            object.__setattr__(module, "training", mode)
        return self

    def eval(self) -> "Module":
        """Evaluation mode (dropout off): same as `train(False)`."""
        return self.train(False)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Drop every parameter's gradient (or fill it with zeros when set_to_none=False)."""
        for param in self.parameters():
            if set_to_none:
                param.grad = None
            elif param.grad is not None:
                param.grad.fill(0)

    def requires_grad_(self, requires_grad: bool = True) -> "Module":
        """Freeze (False) or unfreeze (True) every parameter (returns self)."""
        for param in self.parameters():
            param.requires_grad = requires_grad
        return self

    def apply(self, fn: Callable[["Module"], None]) -> "Module":
        """Call `fn` on every submodule (children first) and then on self, like PyTorch."""
        for child in self.children():
            child.apply(fn)
        fn(self)
        return self

    def to(self, dtype) -> "Module":
        """Convert every floating parameter and buffer to `dtype` (e.g. np.float64 for a
        gradient check). Replaces the arrays: build optimizers after this, not before."""
        dtype = np.dtype(dtype)
        if dtype.kind != "f":
            raise TypeError(f"to(dtype): only floating dtypes are supported, got {dtype}")
        for param in self.parameters():
            if param.dtype != dtype:
                param.data = param.data.astype(dtype)
                param.grad = None
        for module in self.modules():
            for name, buffer in module._buffers.items():
                array = _array_of(buffer)
                if array is not None and array.dtype.kind == "f" and array.dtype != dtype:
                    if isinstance(buffer, Tensor):
                        buffer.data = array.astype(dtype)
                    else:
                        module._buffers[name] = array.astype(dtype)
        return self

    def float(self) -> "Module":
        return self.to(np.float32)

    def double(self) -> "Module":
        return self.to(np.float64)

    # ------------------------------------------------------------ repr
    def extra_repr(self) -> str:
        """One line of settings shown inside this module's repr (override in layers)."""
        return ""

    def __repr__(self) -> str:
        extra = self.extra_repr()
        lines = extra.split("\n") if extra else []
        for name, module in self._modules.items():
            lines.append(f"({name}): " + _add_indent(repr(module), 2))
        if not self._modules:
            return f"{type(self).__name__}({extra})"
        return f"{type(self).__name__}(\n  " + "\n  ".join(lines) + "\n)"
