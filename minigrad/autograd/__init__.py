"""The autograd machinery: grad mode, the `Function` base class, and the backward pass.

    grad_mode.py   no_grad(), enable_grad(), is_grad_enabled()
    function.py    Function (forward / backward / backward_graph / reference), unbroadcast
    engine.py      run_backward: the reverse walk over the graph, behind Tensor.backward()
    gradients.py   grad(outputs, inputs, ...): gradients returned, as torch.autograd.grad
    functional.py  vjp, jvp, hvp, jacobian, hessian (torch.autograd.functional)
    anomaly.py     detect_anomaly(): the op and source line behind the first NaN/inf of a backward
    saved.py       a live graph's arrays are read-only until its backward (saved_by, updating)

`Function.apply(*inputs)` runs the forward and, when any input requires grad and grad mode is
on, records the node on the output tensor (`out._ctx`). A backward walks those nodes in reverse
topological order, accumulates gradients into leaves, and releases each node as soon as it has
run. A second backward through a released node raises RuntimeError (pass `retain_graph=True`
to the first one to keep the graph). With `create_graph=True` the backward itself is recorded,
so gradients can be differentiated again (second and higher derivatives).
"""
from .grad_mode import enable_grad, is_grad_enabled, no_grad, set_grad_enabled
from .function import Function, unbroadcast
from .engine import run_backward
from .gradients import grad
from .anomaly import detect_anomaly, is_anomaly_enabled
from .saved import saved_by
from . import functional

__all__ = ["Function", "unbroadcast", "no_grad", "enable_grad", "is_grad_enabled",
           "set_grad_enabled", "run_backward", "grad", "functional", "detect_anomaly",
           "is_anomaly_enabled", "saved_by"]
