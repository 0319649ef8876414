"""State dicts: `Module.state_dict()` and `Module.load_state_dict()` (PyTorch's semantics).

`state_dict()` lists every parameter and persistent buffer under its dotted name, walking
every path, so a tied weight appears under each of its names (the same live array, no copy).
`load_state_dict` checks everything first and changes nothing on any problem; it then copies
values into the existing arrays, so tied weights stay tied and an optimizer built before the
load keeps working on the same arrays.

`StateDictMixin` is one of `Module`'s bases; it only reads the registries `_parameters`,
`_buffers`, `_non_persistent_buffers` and `_modules` that `Module.__init__` creates.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import NamedTuple

import numpy as np

from ..tensor import Tensor


class StateDictError(ValueError):
    """`load_state_dict` found keys, shapes or dtypes that do not match (all are listed)."""


class IncompatibleKeys(NamedTuple):
    """What `load_state_dict` returns: the keys it could not fill and the keys it did not use."""

    missing_keys: list
    unexpected_keys: list


def _array_of(value) -> np.ndarray:
    return value.data if isinstance(value, Tensor) else value


class StateDictMixin:
    """`state_dict`, `load_state_dict` and the walk they share (mixed into `Module`)."""

    def _state_entries(self, prefix: str = "") -> "OrderedDict[str, tuple]":
        """name -> (module, kind, attribute) for every parameter and persistent buffer,
        walking every path (no deduplication: a tied weight appears under each name)."""
        entries = OrderedDict()
        stack = [(prefix, self)]
        while stack:
            module_prefix, module = stack.pop()
            for name, param in module._parameters.items():
                if param is not None:
                    entries[module_prefix + name] = (module, "param", name)
            for name, buffer in module._buffers.items():
                if buffer is not None and name not in module._non_persistent_buffers:
                    entries[module_prefix + name] = (module, "buffer", name)
            children = [(f"{module_prefix}{child_name}.", child)
                        for child_name, child in module._modules.items() if child is not None]
            stack.extend(reversed(children))
        return entries

    def state_dict(self, prefix: str = "") -> "OrderedDict[str, np.ndarray]":
        """name -> ndarray for every parameter and persistent buffer.

        The arrays are the LIVE arrays (no copy, as in PyTorch): they change when training
        continues. `minigrad.save(model.state_dict(), path)` writes them at once, so no copy
        is needed there; copy them yourself (`{k: v.copy() ...}`) to keep an in-memory snapshot.
        A tied weight appears under each of its names (the same array).
        """
        state = OrderedDict()
        for name, (module, kind, attribute) in self._state_entries(prefix).items():
            registry = module._parameters if kind == "param" else module._buffers
            state[name] = _array_of(registry[attribute])
        return state

    def load_state_dict(self, state_dict, strict: bool = True) -> IncompatibleKeys:
        """Copy the arrays of `state_dict` into this module's parameters and buffers, in place.

        Everything is checked first; on any problem nothing is changed and one `StateDictError`
        lists every missing key, unexpected key (both only when `strict`), shape mismatch and
        dtype mismatch. Values are copied into the existing arrays (`param.data[...] = value`),
        so tied weights stay tied and optimizers keep their references.
        Returns `IncompatibleKeys(missing_keys, unexpected_keys)`.
        """
        if not hasattr(state_dict, "keys") or not hasattr(state_dict, "__getitem__"):
            raise TypeError(f"load_state_dict: expected a dict of name -> array, got "
                            f"{type(state_dict).__name__}")
        entries = self._state_entries()
        missing = [name for name in entries if name not in state_dict]
        unexpected = [name for name in state_dict.keys() if name not in entries]
        problems, copies = [], []
        written = {}  # id(target array) -> (name, value): tied weights must get one value
        for name, (module, kind, attribute) in entries.items():
            if name not in state_dict:
                continue
            registry = module._parameters if kind == "param" else module._buffers
            target = _array_of(registry[attribute])
            value = _array_of(state_dict[name])
            if not isinstance(value, (np.ndarray, np.generic)):
                problems.append(f"  {name}: expected an ndarray, got {type(value).__name__}")
                continue
            value = np.asarray(value)
            if value.shape != target.shape:
                problems.append(f"  {name}: shape {value.shape} in the state dict, "
                                f"{target.shape} in the model")
            elif value.dtype != target.dtype:
                problems.append(f"  {name}: dtype {value.dtype} in the state dict, "
                                f"{target.dtype} in the model")
            else:
                earlier = written.get(id(target))
                if earlier is not None and earlier[1] is not value and not np.array_equal(
                        earlier[1], value, equal_nan=value.dtype.kind == "f"):
                    problems.append(f"  {name}: shares its array with '{earlier[0]}' (tied), but "
                                    f"the state dict gives the two names different values")
                written.setdefault(id(target), (name, value))
                copies.append((target, value))
        if strict:
            problems = ([f"  missing key: {name}" for name in missing]
                        + [f"  unexpected key: {name}" for name in unexpected] + problems)
        if problems:
            raise StateDictError(
                f"load_state_dict into {type(self).__name__} failed, nothing was changed "
                f"({len(problems)} problem{'s' if len(problems) > 1 else ''}):\n" + "\n".join(problems))
        for target, value in copies:
            if target is not value:
                np.copyto(target, value)
        return IncompatibleKeys(missing, unexpected)
