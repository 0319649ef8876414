"""`RemovableHandle`: what every `register_*hook` returns (PyTorch's `torch.utils.hooks`).

    handle = tensor.register_hook(lambda grad: grad * 2)
    ...
    handle.remove()          # the hook stops; removing twice is harmless

Hooks live in an ordered dict `{hook_id: fn}` owned by the tensor or module; the handle keeps
a weak reference to that dict (it does not keep a tensor alive) and deletes its id from it.
Hooks run in the order they were registered.
"""
from __future__ import annotations

import itertools
import weakref

_next_id = itertools.count()


class RemovableHandle:
    """Removes one registered hook from the dict it was added to."""

    __slots__ = ("_hooks_ref", "id")

    def __init__(self, hooks: dict):
        self.id = next(_next_id)
        self._hooks_ref = weakref.ref(hooks)

    def remove(self) -> None:
        hooks = self._hooks_ref()
        if hooks is not None:
            hooks.pop(self.id, None)

    def __enter__(self) -> "RemovableHandle":
        return self

    def __exit__(self, *exc) -> None:
        self.remove()


class HookDict(dict):
    """A plain dict that can be weakly referenced (a handle must not keep its owner alive)."""

    __slots__ = ("__weakref__",)


def add_hook(hooks: HookDict, fn) -> RemovableHandle:
    """Append `fn` to `hooks` and return the handle that removes it."""
    if not callable(fn):
        raise TypeError(f"register hook: expected a callable, got {type(fn).__name__}")
    handle = RemovableHandle(hooks)
    hooks[handle.id] = fn
    return handle
