"""`Tensor`: a NumPy array that remembers how it was made, so gradients can flow back.

    x = Tensor(np.ones((2, 3)), requires_grad=True)   # float32 unless given float64
    y = (x * 2).sum()
    y.backward()                                      # x.grad == 2 everywhere

Dtype rules: Python numbers and lists become float32 (integers stay integer); a NumPy float
array keeps its dtype (float64 stays float64, so gradient checks run in double precision);
integer and boolean tensors never require grad. Operators broadcast like NumPy and promote
dtypes like PyTorch (see `minigrad/ops/promote.py`); the ops and the methods they give a
Tensor live in `minigrad.ops` (each family's methods next to its ops).

Comparisons `== != < <= > >=` are elementwise and give boolean tensors (no gradient), as in
PyTorch; `hash` stays identity-based (as in PyTorch), so tensors can be dict keys and set
members, but `tensor in some_list` compares values: look tensors up by identity (`id`).
NumPy interop: `np.asarray(t)` gives `t.data`; NumPy ufuncs refuse tensors (`np.exp(t)` is a
TypeError, use `t.exp()`), and `ndarray <op> tensor` calls the tensor's reflected operator.
"""
from __future__ import annotations

import numpy as np

from . import autograd
from .hooks import HookDict, RemovableHandle, add_hook

DEFAULT_DTYPE = np.float32


def _raw(value):
    """The ndarray inside a Tensor, anything else unchanged."""
    return value.data if isinstance(value, Tensor) else value


def _to_array(data, dtype=None) -> np.ndarray:
    """Convert `data` to an ndarray, float32 by default for Python floats and lists."""
    if isinstance(data, Tensor):
        data = data.data
    if dtype is not None:
        array = np.asarray(data, dtype=dtype)
    elif isinstance(data, (np.ndarray, np.generic)):
        array = np.asarray(data)  # NumPy data keeps its dtype (float64 stays float64)
    else:
        array = np.asarray(data)
        if array.dtype == np.float64:  # Python floats / lists of floats: default precision
            array = array.astype(DEFAULT_DTYPE)
    if array.dtype.kind not in "biuf":
        raise TypeError(f"Tensor: data must be numeric (bool, int or float), got dtype {array.dtype}")
    return array


class Tensor:
    """An n-dimensional array with an optional gradient.

    Attributes:
      data:          the ndarray holding the values
      grad:          the gradient, same shape as `data`, or None before any backward
      requires_grad: whether gradients are computed for this tensor

    What `.grad` holds: an ndarray after an ordinary `backward()`, the form optimizers and
    gradient clipping work on. After `backward(create_graph=True)` it is a Tensor that carries
    the graph of the gradient computation, so it can be differentiated again
    (`x.grad.sum().backward()`, or `grad(x.grad, ...)`); its values are `x.grad.data`. The type
    follows the backward that wrote it last: gradients accumulate, and an ordinary backward onto
    a Tensor `.grad` leaves the sum as an ndarray. Optimizers accept either. For higher
    derivatives, `minigrad.autograd.grad(..., create_graph=True)` returns the gradients instead
    of storing them and is usually clearer.
    """

    __slots__ = ("data", "grad", "_requires_grad", "_ctx", "_retain_grad", "_backward_hooks",
                 "__weakref__")
    __array_priority__ = 1000  # so ndarray <op> Tensor defers to Tensor's reflected operators
    __array_ufunc__ = None     # ... and NumPy ufuncs (np.exp(t), ndarray + t) never unwrap a Tensor

    def __init__(self, data, requires_grad: bool = False, dtype=None):
        self.data = _to_array(data, dtype)
        self.grad = None
        self._ctx = None
        self._retain_grad = False
        self._backward_hooks = None
        self._requires_grad = False
        self.requires_grad = requires_grad

    @classmethod
    def _wrap(cls, data: np.ndarray, requires_grad: bool) -> "Tensor":
        """Fast constructor for op outputs (no conversion, no checks)."""
        out = cls.__new__(cls)
        out.data = data if isinstance(data, np.ndarray) else np.asarray(data)
        out.grad = None
        out._ctx = None
        out._retain_grad = False
        out._backward_hooks = None
        out._requires_grad = requires_grad
        return out

    # ----------------------------------------------------------------- properties
    @property
    def requires_grad(self) -> bool:
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, value: bool) -> None:
        value = bool(value)
        if value and not np.issubdtype(self.data.dtype, np.floating):
            raise TypeError(
                f"only floating-point tensors can require grad, got dtype {self.data.dtype}"
            )
        self._requires_grad = value

    @property
    def shape(self) -> tuple:
        return self.data.shape

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def ndim(self) -> int:
        return self.data.ndim

    def size(self, dim: int | None = None):
        """The shape as a tuple (PyTorch's `torch.Size`), or the length of axis `dim`."""
        if dim is None:
            return self.data.shape
        if not -self.data.ndim <= dim < self.data.ndim:
            raise IndexError(f"size: dim {dim} is out of range for a tensor of shape {self.shape}")
        return self.data.shape[dim]

    def numel(self) -> int:
        """The number of elements (NumPy's `.size`)."""
        return self.data.size

    nelement = numel

    def dim(self) -> int:
        """The number of dimensions (`.ndim`)."""
        return self.data.ndim

    def element_size(self) -> int:
        """Bytes per element."""
        return self.data.itemsize

    @property
    def is_leaf(self) -> bool:
        return self._ctx is None

    def __len__(self) -> int:
        if self.data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return len(self.data)

    def __iter__(self):
        """Rows along axis 0, each a differentiable `self[i]` (like iterating an ndarray)."""
        if self.data.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(len(self.data)))

    def __bool__(self) -> bool:
        if self.data.size != 1:
            raise ValueError(
                f"the truth value of a tensor of shape {self.shape} is ambiguous; "
                f"use .data.any() or .data.all()"
            )
        return bool(self.data)

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        """`np.asarray(tensor)`: the data (no graph; copied only when asked or converted)."""
        array = self.data if dtype is None else self.data.astype(dtype, copy=False)
        return array.copy() if copy else array

    def __repr__(self) -> str:
        body = np.array2string(self.data, separator=", ", prefix="Tensor(", threshold=20)
        extras = [f"dtype={self.data.dtype}"]
        if self._ctx is not None:
            extras.append(f"grad_fn={type(self._ctx).__name__}")
        elif self.requires_grad:
            extras.append("requires_grad=True")
        return f"Tensor({body}, {', '.join(extras)})"

    # ----------------------------------------------------------------- conversion
    def numpy(self) -> np.ndarray:
        """The underlying array (shared, not copied)."""
        return self.data

    def tolist(self):
        """The values as (nested) Python lists of numbers."""
        return self.data.tolist()

    def item(self):
        """The single value as a Python number."""
        if self.data.size != 1:
            raise ValueError(f"item: only a tensor with one element converts, shape is {self.shape}")
        return self.data.item()

    def detach(self) -> "Tensor":
        """A tensor sharing this one's data, cut from the graph."""
        return Tensor._wrap(self.data, False)

    def requires_grad_(self, value: bool = True) -> "Tensor":
        self.requires_grad = value
        return self

    def retain_grad(self) -> None:
        """Keep `.grad` on this non-leaf tensor after backward (after its hooks ran)."""
        self._retain_grad = True

    def register_hook(self, hook) -> RemovableHandle:
        """Call `hook(grad)` each time the gradient with respect to this tensor is computed.

        `grad` is a Tensor holding the whole gradient of this tensor (summed over its uses);
        the hook must not modify it, but may return a new gradient (Tensor or ndarray, this
        tensor's shape) used in its place: stored into `.grad` of a leaf (or of a non-leaf
        that called `retain_grad()`) and passed on upstream. Hooks run in the order they
        were registered, each on the previous one's result, as PyTorch's tensor hooks.
        Returns a handle whose `remove()` detaches the hook.
        """
        if not self.requires_grad:
            raise RuntimeError("register_hook: cannot register a hook on a tensor that does "
                               "not require grad")
        if self._backward_hooks is None:
            self._backward_hooks = HookDict()
        return add_hook(self._backward_hooks, hook)

    def zero_grad(self) -> None:
        self.grad = None

    # ----------------------------------------------------------------- backward
    def backward(self, gradient=None, retain_graph: bool | None = None,
                 create_graph: bool = False) -> None:
        """Compute d(self)/d(leaf) for every leaf that requires grad, accumulating into `.grad`.

        `gradient` defaults to 1 for a one-element tensor; any other shape must pass it (a
        ValueError otherwise). The graph is freed afterwards unless `retain_graph=True`
        (default: the value of `create_graph`); a second backward through a freed graph raises
        RuntimeError. With `create_graph=True` the backward is itself recorded and `.grad`
        becomes a Tensor carrying that graph (see the class docstring).
        """
        if not self.requires_grad:
            raise RuntimeError(
                "backward: this tensor does not require grad (no input required grad, "
                "or it was computed under no_grad())"
            )
        if gradient is None:
            if self.data.size != 1:
                raise ValueError(
                    f"backward: grad can be implicitly created only for a one-element tensor, "
                    f"this one has shape {self.shape}; pass gradient=..."
                )
            gradient = Tensor._wrap(np.ones_like(self.data), False)
        elif not isinstance(gradient, Tensor):
            gradient = Tensor._wrap(np.asarray(gradient, dtype=self.dtype), False)
        if gradient.shape != self.shape:
            raise ValueError(
                f"backward: grad has shape {gradient.shape}, tensor has shape {self.shape}"
            )
        if gradient.dtype != self.dtype:
            gradient = Tensor._wrap(gradient.data.astype(self.dtype), False)
        if retain_graph is None:
            retain_graph = create_graph
        seed = gradient if create_graph else gradient.data
        autograd.run_backward(self, seed, retain_graph=retain_graph, create_graph=create_graph)

    # ----------------------------------------------------------------- operators
    # installed by minigrad.ops at import time, one mixin class per op family (ops/__init__.py);
    # `hash` is identity-based even though `==` is elementwise:
    __hash__ = object.__hash__
