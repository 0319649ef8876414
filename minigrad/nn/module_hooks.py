"""Module hooks: look at (or change) what flows into and out of a module, forward and backward
(PyTorch's `register_forward_pre_hook`, `register_forward_hook`, `register_full_backward_hook`).

    def show(module, args, output):
        print(type(module).__name__, output.shape)
    handle = model.blocks[0].register_forward_hook(show)
    model(ids)          # prints TransformerBlock (B, T, D)
    handle.remove()

Signatures (as PyTorch's):
  forward pre-hook   hook(module, args) -> None or new args (a single value becomes (value,))
  forward hook       hook(module, args, output) -> None or a new output
  backward hook      hook(module, grad_input, grad_output) -> None or a new grad_input tuple
`args` holds the positional arguments only (keyword arguments go to `forward` alone).
`grad_output` is a tuple with the gradient of the module's output; `grad_input` one entry per
positional argument: its gradient as a Tensor, or None for a non-Tensor argument or one that
does not require grad. A tuple returned by a backward hook replaces grad_input for the rest of
the backward. Hooks must not modify their arguments in place.

Cost: `Module.__call__` checks one attribute (`_hooks is None`) and calls `forward`; nothing
else runs until a hook is registered on that module.

How the backward hook works: the module runs on fresh leaf tensors that share the inputs'
arrays, so its graph stops there; its output is then wrapped in one node, `ModuleBackward`,
whose parents are the real inputs. That node's backward backpropagates the output gradient
through the module's own graph (accumulating into the module's parameters as usual), reads
grad_input from the fresh leaves, calls the hooks and passes the (possibly replaced) gradients
on to the inputs. So the hook sees all of grad_input at once, like PyTorch's. A module with a
backward hook must return a single Tensor, and cannot be differentiated twice
(create_graph=True raises NotImplementedError naming the module).
"""
from __future__ import annotations

import numpy as np

from ..autograd import Function, is_grad_enabled, run_backward
from ..hooks import HookDict, RemovableHandle, add_hook
from ..tensor import Tensor


class ModuleHooks:
    """The three hook dicts of one module (created when its first hook is registered)."""

    __slots__ = ("forward_pre", "forward", "backward")

    def __init__(self):
        self.forward_pre, self.forward, self.backward = HookDict(), HookDict(), HookDict()

    def empty(self) -> bool:
        return not (self.forward_pre or self.forward or self.backward)


class ModuleBackward(Function):
    """One node standing for a whole module call, so backward hooks see grad_input at once.

    parents: the Tensor positional arguments; `inner_output` the module's output computed on
    the fresh leaves `inner_inputs`; `module`, `args_positions` to build grad_input.
    """

    @property
    def name(self) -> str:
        module = self.__dict__.get("module")  # gone once the node was released
        return "module" if module is None else f"{type(module).__name__.lower()} (hooked module)"

    def backward(self, grad_out):
        # the module's own graph first: d(output)/d(params) accumulate, d(output)/d(leaves) kept
        for leaf in self.inner_inputs:
            leaf.grad = None
        if self.inner_output.requires_grad:
            run_backward(self.inner_output, grad_out, retain_graph=True)  # freed with this node
        grads = [leaf.grad if leaf.requires_grad else None for leaf in self.inner_inputs]
        grad_input = [None] * self.num_args
        for position, grad in zip(self.args_positions, grads):
            grad_input[position] = None if grad is None else Tensor._wrap(grad, False)
        grad_input = tuple(grad_input)
        grad_output = (Tensor._wrap(grad_out, False),)
        for hook in tuple(self.hooks.values()):
            result = hook(self.module, grad_input, grad_output)
            if result is not None:
                grad_input = _checked_grad_input(self.module, result, grad_input)
        return tuple(None if grad_input[p] is None else np.asarray(grad_input[p].data if
                     isinstance(grad_input[p], Tensor) else grad_input[p])
                     for p in self.args_positions)


def _checked_grad_input(module, result, previous: tuple) -> tuple:
    if not isinstance(result, (tuple, list)) or len(result) != len(previous):
        raise RuntimeError(
            f"backward hook of {type(module).__name__}: must return None or a tuple of "
            f"{len(previous)} gradients (one per positional argument), got {result!r:.80}")
    for old, new in zip(previous, result):
        if new is not None and old is not None and np.shape(new) != old.shape:
            raise RuntimeError(
                f"backward hook of {type(module).__name__}: returned a gradient of shape "
                f"{np.shape(new)} for an input of shape {old.shape}")
    return tuple(result)


class HooksMixin:
    """The `register_*hook` methods and the hooked call path of `Module`."""

    _hooks = None  # a ModuleHooks once a hook was registered (class default: no hooks)

    def _hook_dicts(self) -> ModuleHooks:
        if self._hooks is None:
            object.__setattr__(self, "_hooks", ModuleHooks())
        return self._hooks

    def register_forward_pre_hook(self, hook) -> RemovableHandle:
        """hook(module, args) -> None or new args; runs before every `forward`."""
        return add_hook(self._hook_dicts().forward_pre, hook)

    def register_forward_hook(self, hook) -> RemovableHandle:
        """hook(module, args, output) -> None or a new output; runs after every `forward`."""
        return add_hook(self._hook_dicts().forward, hook)

    def register_full_backward_hook(self, hook) -> RemovableHandle:
        """hook(module, grad_input, grad_output) -> None or new grad_input; runs when the
        gradients with respect to the module's inputs have been computed."""
        return add_hook(self._hook_dicts().backward, hook)

    def _call_with_hooks(self, args: tuple, kwargs: dict):
        hooks = self._hooks
        if hooks.empty():
            return self.forward(*args, **kwargs)
        for hook in tuple(hooks.forward_pre.values()):
            result = hook(self, args)
            if result is not None:
                args = result if isinstance(result, tuple) else (result,)
        backward_hooks = hooks.backward and is_grad_enabled()
        if backward_hooks:
            inner_args, positions = _fresh_leaves(args)
            output = self.forward(*inner_args, **kwargs)
        else:
            output = self.forward(*args, **kwargs)
        for hook in tuple(hooks.forward.values()):
            result = hook(self, args, output)
            if result is not None:
                output = result
        if backward_hooks:
            output = _wrap_output(self, args, inner_args, positions, output)
        return output


def _fresh_leaves(args: tuple):
    """args with every Tensor replaced by a new leaf sharing its array; their positions."""
    inner, positions = list(args), []
    for position, value in enumerate(args):
        if isinstance(value, Tensor):
            inner[position] = Tensor._wrap(value.data, value.requires_grad)
            positions.append(position)
    return tuple(inner), tuple(positions)


def _wrap_output(module, args, inner_args, positions, output):
    if not isinstance(output, Tensor):
        raise TypeError(
            f"register_full_backward_hook: {type(module).__name__}.forward returned a "
            f"{type(output).__name__}; a module with a backward hook must return one Tensor")
    if not output.requires_grad:
        return output  # nothing will flow back: torch calls no backward hook either
    node = ModuleBackward()
    node.parents = tuple(args[p] for p in positions)
    node.needs_input_grad = tuple(p.requires_grad for p in node.parents)
    node.requires_grad, node.options = True, {}
    node.inner_inputs = tuple(inner_args[p] for p in positions)
    node.inner_output, node.module, node.hooks = output, module, module._hooks.backward
    node.args_positions, node.num_args = positions, len(args)
    wrapped = Tensor._wrap(output.data, True)
    wrapped._ctx = node
    return wrapped
