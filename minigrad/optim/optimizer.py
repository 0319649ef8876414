"""`Optimizer`: the base class of SGD, Adam and AdamW (PyTorch's `torch.optim.Optimizer`).

    optimizer = AdamW([{"params": decay, "weight_decay": 0.1},
                       {"params": no_decay, "weight_decay": 0.0}], lr=4e-4)
    loss.backward(); optimizer.step(); optimizer.zero_grad()

Parameter groups are dicts with "params" (a list of Parameters) and any hyperparameters that
override the optimizer's defaults. Per-parameter state (momentum, Adam's moments, the step
counter) lives in `optimizer.state[param]`. `state_dict()` refers to parameters by their index
in the order of the groups (as PyTorch), so it can be saved with `minigrad.save` and loaded
into a fresh optimizer over a freshly built model of the same shapes.

How updates run: every update is in place and vectorized, with no temporary arrays. Each
parameter (and its gradient and state) is viewed as one flat vector and cut into chunks of
`CHUNK_SIZE` elements; the update kernel runs chunk by chunk using two small scratch buffers
that stay in the CPU cache (Adam's also calls BLAS's one-pass y = a x + b y on the chunks'
addresses, adam.py), and the chunks are shared between minigrad's threads
(minigrad/runtime/threads.py; NumPy and BLAS release the GIL inside their loops). Every
element sees exactly the same arithmetic, so the result is bit for bit the same for any chunk
size or thread count. (Parameters that are views into one flat array, as the sharded
optimizer of gpt.training.zero makes them, are one item: the update is then a handful of
whole-buffer passes; Adam also packs its small parameters into one item, adam.py.)

`step(grad_factor=c)` updates with every gradient multiplied by c, leaving `.grad` unchanged:
the numbers of `clip_grad_norm` followed by `step()`, without clipping's separate pass over all
gradients (read and write: 8 bytes a parameter). Adam and AdamW fold c into the scalars that
multiply the gradient anyway (no pass of its own; equal to clipping first to float32
rounding); the other optimizers get c g in a third scratch chunk (the same bits):

    norm = nn.utils.grad_norm(params); optimizer.step(grad_factor=nn.utils.clip_factor(norm, 1.0))
"""
from __future__ import annotations

import math
from numbers import Real
from typing import Callable, Iterable

import numpy as np

from ..autograd import enable_grad
from ..autograd.saved import updating
from ..runtime.threads import parallel_for_sizes
from ..tensor import Tensor

# elements per chunk. Measured (AdamW over the 124M model's 163M float32 parameters, 1 thread,
# Zen 4 with 1 MB of L2 a core): 128K-256K fastest, 64K ~5% and 16K-32K 20-40% slower (each
# NumPy call's fixed cost); a chunk's slices then sit in L2 and L3 between the passes. With
# Adam's BLAS passes (7 per chunk), 256K against 128K, alternated, load 4-5: 212-228 against
# 230-241 ms of CPU on 1 thread, 222-223 against 233-238 on 2 (512K: 214 and 234).
CHUNK_SIZE = 262144
PARALLEL_MIN_ELEMENTS = 1 << 20  # below this a step is too short to be worth a thread pool


def run_chunked(kernel: Callable, items: list, grad_factor: float = 1.0,
                addresses: bool = False) -> None:
    """Run `kernel(*arrays, scratch1, scratch2, **scalars)` over every item, in chunks.

    items: list of (arrays, scalars). The arrays of one item have one shape and dtype; they
    are flattened (views when C-contiguous) and cut into chunks. An item whose first array
    (the one written to, e.g. the parameter) is not C-contiguous runs whole, with fresh
    scratch arrays of its shape, so the update still lands in the parameter itself.
    grad_factor != 1: the second array of every item (the gradient) is multiplied by it into a
    third scratch buffer, which the kernel gets in its place (the gradient is not written). A
    kernel that applies the factor itself (Adam's) gets it among its scalars instead.
    addresses=True: the kernel also gets `addresses=`, the memory addresses of its arrays and
    scratch chunks in that order (for a BLAS call through ctypes; found once per array, not
    per chunk, where NumPy's lookup costs microseconds), or None for an item run whole.
    """
    jobs = []
    for arrays, scalars in items:
        if not arrays[0].flags.c_contiguous:
            jobs.append((None, arrays, scalars, None))
            continue
        flat = [a.reshape(-1) for a in arrays]  # views, except a non-contiguous grad (copied)
        size, itemsize = flat[0].size, flat[0].itemsize
        bases = [a.ctypes.data for a in flat] if addresses else None
        for start in range(0, size, CHUNK_SIZE):
            stop = min(size, start + CHUNK_SIZE)
            where = [base + start * itemsize for base in bases] if addresses else None
            jobs.append((stop - start, [a[start:stop] for a in flat], scalars, where))

    scaled = grad_factor != 1.0

    def work(job_slice):
        scratch = {}
        for length, arrays, scalars, where in job_slice:
            dtype = arrays[0].dtype
            if length is None:  # non-contiguous parameter: whole-array update
                s1, s2, s3 = (np.empty(arrays[0].shape, dtype) for _ in range(3))
            else:
                if dtype not in scratch:
                    buffers = tuple(np.empty(CHUNK_SIZE, dtype) for _ in range(3))
                    scratch[dtype] = buffers, [b.ctypes.data for b in buffers[:2]] if addresses else None
                buffers, scratch_where = scratch[dtype]
                s1, s2, s3 = (buffer[:length] for buffer in buffers)
            if scaled:  # g * c in float32 (a Python float is cast to the array's dtype, NEP 50)
                arrays = [arrays[0], np.multiply(arrays[1], grad_factor, out=s3), *arrays[2:]]
                where = None  # (the gradient now lives in s3)
            if addresses:
                kernel(*arrays, s1, s2, addresses=None if where is None else where + scratch_where,
                       **scalars)
            else:
                kernel(*arrays, s1, s2, **scalars)

    # contiguous runs of jobs with about the same number of elements per thread
    parallel_for_sizes([arrays[0].size for _, arrays, _, _ in jobs], lambda lo, hi: work(jobs[lo:hi]),
                       PARALLEL_MIN_ELEMENTS)


class _ParamState(dict):
    """optimizer.state: per-parameter dicts, looked up by the parameter object's identity
    (Tensors are not compared by value here). Keys are id(param); use state[param]."""

    @staticmethod
    def _key(param):
        return id(param) if isinstance(param, Tensor) else param

    def __getitem__(self, param):
        return super().__getitem__(self._key(param))

    def __setitem__(self, param, value):
        super().__setitem__(self._key(param), value)

    def __contains__(self, param):
        return super().__contains__(self._key(param))

    def __delitem__(self, param):
        super().__delitem__(self._key(param))

    def get(self, param, default=None):
        return super().get(self._key(param), default)


def _check_number(optimizer: str, name: str, value, low=0.0, high=None, high_open=False):
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{optimizer}: {name} must be a number, got {type(value).__name__}")
    if not math.isfinite(value):  # NaN passes every comparison below; inf would wreck the weights
        raise ValueError(f"{optimizer}: invalid {name} {value} (must be a finite number)")
    if value < low or (high is not None and (value >= high if high_open else value > high)):
        interval = f"[{low}, {high})" if high_open else f">= {low}"
        raise ValueError(f"{optimizer}: invalid {name} {value} (must be {interval})")


class Optimizer:
    """Holds parameter groups and per-parameter state; subclasses implement `_update_group`.

    Attributes:
      param_groups: list of dicts {"params": [Parameter, ...], hyperparameter: value, ...}
      state:        per-parameter state dicts, `optimizer.state[param]`
      defaults:     the hyperparameters a group gets when it does not set them
    """

    # per-parameter state entries, name -> "array" (shaped like the parameter) or "int";
    # every state dict entry must hold exactly these (checked by load_state_dict)
    _state_keys: dict = {}

    def __init__(self, params, defaults: dict):
        self.defaults = dict(defaults)
        self.state = _ParamState()
        self.param_groups: list[dict] = []
        if isinstance(params, Tensor):
            raise TypeError(f"{type(self).__name__}: params must be an iterable of Parameters "
                            f"or of dicts, got a single {type(params).__name__}; wrap it in a list")
        if isinstance(params, dict) or not isinstance(params, Iterable):
            raise TypeError(f"{type(self).__name__}: params must be an iterable of Parameters "
                            f"or of dicts, got {type(params).__name__}")
        groups = list(params)
        if not groups:
            raise ValueError(f"{type(self).__name__} got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    # ------------------------------------------------------------ groups
    def _check_group(self, group: dict) -> None:
        """Validate a group's hyperparameters (subclasses check theirs)."""

    def add_param_group(self, param_group: dict) -> None:
        """Add a group of parameters with its own hyperparameters (others from defaults)."""
        name = type(self).__name__
        if not isinstance(param_group, dict):
            raise TypeError(f"{name}: a parameter group must be a dict, got "
                            f"{type(param_group).__name__}")
        if "params" not in param_group:
            raise ValueError(f"{name}: a parameter group needs a 'params' entry")
        params = param_group["params"]
        if isinstance(params, Tensor):
            params = [params]
        elif isinstance(params, (set, frozenset)):
            raise TypeError(f"{name}: the parameters of a group must be an ordered sequence, "
                            f"got a set (its order changes between runs)")
        params = list(params)
        group_index = len(self.param_groups)
        if not params:
            raise ValueError(f"{name}: parameter group {group_index} is empty")
        seen = {id(p) for group in self.param_groups for p in group["params"]}
        for index, param in enumerate(params):
            where = f"parameter {index} of group {group_index}"
            if not isinstance(param, Tensor):
                raise TypeError(f"{name}: {where} is a {type(param).__name__}, not a "
                                f"Parameter/Tensor")
            if param.dtype.kind != "f":
                raise TypeError(f"{name}: {where} has dtype {param.dtype}; only floating "
                                f"tensors can be optimized")
            if not param.is_leaf:
                raise ValueError(f"{name}: {where} (shape {param.shape}) is not a leaf tensor "
                                 f"(it was computed by an op), so it cannot be optimized")
            if id(param) in seen:
                raise ValueError(f"{name}: {where} (shape {param.shape}) is given more than "
                                 f"once; each parameter may appear in one group only, once")
            seen.add(id(param))
        group = dict(param_group)
        group["params"] = params
        for key, value in self.defaults.items():
            group.setdefault(key, value)
        self._check_group(group)
        self.param_groups.append(group)

    # ------------------------------------------------------------ steps
    def zero_grad(self, set_to_none: bool = True) -> None:
        """Drop every parameter's gradient (or zero it in place when set_to_none=False)."""
        for group in self.param_groups:
            for param in group["params"]:
                if set_to_none:
                    param.grad = None
                elif isinstance(param.grad, Tensor):  # from backward(create_graph=True)
                    param.grad = np.zeros_like(param.grad.data)
                elif param.grad is not None:
                    param.grad.fill(0)

    def step(self, closure: Callable | None = None, grad_factor: float = 1.0):
        """Update every parameter that has a gradient (the others are skipped, their state
        untouched). `closure`, when given, recomputes and returns the loss first.
        grad_factor: the update uses every gradient times this number (clipping's factor,
        `nn.utils.clip_factor`), as if `.grad` had been scaled first; `.grad` is not changed."""
        _check_number(type(self).__name__, "grad_factor", grad_factor)
        grad_factor = float(grad_factor)
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        # a graph still alive may hold the parameters read-only: open them for this update
        with updating((p for g in self.param_groups for p in g["params"]), f"{type(self).__name__}.step"):
            for group in self.param_groups:
                self._update_group(group, grad_factor)
        return loss

    def _update_group(self, group: dict, grad_factor: float) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    @staticmethod
    def _gradient(param: Tensor) -> np.ndarray | None:
        grad = param.grad
        if grad is None:
            return None
        if isinstance(grad, Tensor):  # from backward(create_graph=True): its values
            grad = grad.data
        if grad.shape != param.shape:
            raise ValueError(f"optimizer: a gradient has shape {grad.shape}, its parameter has "
                             f"shape {param.shape}")
        return grad

    # ------------------------------------------------------------ state dict
    def state_dict(self) -> dict:
        """{"state": {index: {name: value}}, "param_groups": [{..., "params": [index, ...]}]}.

        Indices count parameters across groups in order. The arrays are the live state
        arrays (as in PyTorch); `minigrad.save` writes them at once.
        """
        state, groups, index = {}, [], 0
        for group in self.param_groups:
            indices = []
            for param in group["params"]:
                if param in self.state:
                    state[index] = dict(self.state[param])
                indices.append(index)
                index += 1
            saved = {key: value for key, value in group.items() if key != "params"}
            saved["params"] = indices
            groups.append(saved)
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore state and hyperparameters saved by `state_dict()` (copied, not shared).

        The state must come from an optimizer of the same kind over parameters of the same
        number, order and shapes; otherwise one ValueError lists every mismatch and nothing
        is changed.
        """
        name = type(self).__name__
        if not isinstance(state_dict, dict) or set(state_dict) != {"state", "param_groups"}:
            raise ValueError(f"{name}.load_state_dict: expected a dict with keys 'state' and "
                             f"'param_groups' (from optimizer.state_dict()), got "
                             f"{type(state_dict).__name__}"
                             + (f" with keys {sorted(map(str, state_dict))}"
                                if isinstance(state_dict, dict) else ""))
        saved_groups, saved_state = state_dict["param_groups"], state_dict["state"]
        problems = []
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(f"{name}.load_state_dict: the optimizer has "
                             f"{len(self.param_groups)} parameter groups, the state dict has "
                             f"{len(saved_groups)} (was it saved for another model or setup?)")
        params_by_index, merged_groups = {}, []
        for group_index, (group, saved) in enumerate(zip(self.param_groups, saved_groups)):
            count, saved_count = len(group["params"]), len(saved.get("params", ()))
            if count != saved_count:
                problems.append(f"  group {group_index}: the optimizer has {count} parameters, "
                                f"the state dict has {saved_count}")
                continue
            absent = sorted(set(self.defaults) - set(saved))
            if absent:
                problems.append(f"  group {group_index}: the state dict lacks the "
                                f"hyperparameters {absent} (saved by another optimizer type?)")
            merged = dict(group)
            merged.update((key, value) for key, value in saved.items() if key != "params")
            try:
                self._check_group(merged)
            except (TypeError, ValueError) as error:
                problems.append(f"  group {group_index}: {error}")
            merged_groups.append(merged)
            for param, index in zip(group["params"], saved["params"]):
                params_by_index[index] = (group_index, param)
        for index, entry in saved_state.items():
            if index not in params_by_index:
                problems.append(f"  state for parameter {index}, which the optimizer does not have")
                continue
            group_index, param = params_by_index[index]
            where = f"parameter {index} (group {group_index}, shape {param.shape})"
            if not isinstance(entry, dict):
                problems.append(f"  {where}: state is a {type(entry).__name__}, not a dict")
                continue
            unknown = sorted(map(str, set(entry) - set(self._state_keys)))
            absent = [key for key in self._state_keys if key not in entry]
            if unknown or absent:
                problems.append(f"  {where}: state has {sorted(map(str, entry))}, this optimizer "
                                f"keeps {list(self._state_keys)} (saved by another optimizer type?)")
                continue
            for key, kind in self._state_keys.items():
                value = entry[key]
                if kind == "int":
                    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
                        problems.append(f"  {where}: {key} must be an int >= 0, got {value!r}")
                elif not isinstance(value, np.ndarray):
                    problems.append(f"  {where}: {key} is a {type(value).__name__}, not an array")
                elif value.shape != param.shape:
                    problems.append(f"  {where}: {key} has shape {value.shape}")
                elif value.dtype != param.dtype:
                    problems.append(f"  {where}: {key} has dtype {value.dtype}, the parameter "
                                    f"{param.dtype}")
        if problems:
            shown = problems[:20] + ([f"  ... and {len(problems) - 20} more"] if len(problems) > 20 else [])
            raise ValueError(f"{name}.load_state_dict: the state does not fit this optimizer's "
                             f"parameters, nothing was changed ({len(problems)} problems):\n"
                             + "\n".join(shown))
        # all checked: apply
        for group, merged in zip(self.param_groups, merged_groups):
            group.update(merged)
        self.state.clear()
        for index, entry in saved_state.items():
            _, param = params_by_index[index]
            self.state[param] = {key: (np.array(value, copy=True) if isinstance(value, np.ndarray)
                                       else int(value)) for key, value in entry.items()}

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for index, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {index}")
            for key in sorted(group):
                if key != "params":
                    lines.append(f"    {key}: {group[key]}")
        lines.append(")")
        return "\n".join(lines)
