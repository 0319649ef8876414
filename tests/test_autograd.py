"""The backward engine: deep graphs, accumulation, no_grad, graph release, retain_graph, the
Function contract, bad inputs to backward, dtype of every op's backward, NaN/inf."""
from __future__ import annotations

import gc
import sys
import threading
import weakref

import numpy as np
import pytest

import minigrad as mg
from minigrad import Function, Tensor, gradcheck, no_grad, unbroadcast
from core_strategies import leaf


# --------------------------------------------------------------------- deep graphs
def test_chain_of_100000_ops_backpropagates_iteratively():
    assert sys.getrecursionlimit() < 100_000  # a recursive sort would fail here
    x = Tensor(np.array([1.0, 2.0], dtype=np.float32), requires_grad=True)
    y = x
    for i in range(50_000):
        y = y * 1.0
        y = y + 1.0
    y.sum().backward()  # no RecursionError; its speed is the benchmarks' business, not a test's
    np.testing.assert_array_equal(x.grad, [1.0, 1.0])
    np.testing.assert_array_equal(y.data, [50_001.0, 50_002.0])


def test_dropping_a_deep_graph_without_backward_is_safe():
    x = Tensor(np.ones(2), requires_grad=True)
    y = x
    for _ in range(100_000):
        y = y + 1.0
    del y  # a long chain of Tensor -> node -> Tensor references is freed without a crash
    gc.collect()


# --------------------------------------------------------------------- accumulation
def test_repeated_use_accumulates():
    x = Tensor(np.array([0.5, -1.0, 2.0]), requires_grad=True)
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad, 2 * x.data)
    x.grad = None
    (x + x).sum().backward()
    np.testing.assert_allclose(x.grad, [2, 2, 2])
    x.grad = None
    (x * x + x * 3.0 + x.exp() - x / 2.0).sum().backward()
    np.testing.assert_allclose(x.grad, 2 * x.data + 3 + np.exp(x.data) - 0.5)


def test_repeated_use_in_a_diamond_passes_gradcheck():
    x = leaf([[0.3, -0.7], [1.1, 0.4]])

    def diamond(t):
        a = t * 2.0
        b = a.tanh() + a * a  # a feeds two ops
        return (b @ a.T + a.sum(axis=0)) * t

    assert gradcheck(diamond, x)


def test_gradients_accumulate_across_backward_calls():
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    (x * 3.0).sum().backward()
    (x * 3.0).sum().backward()
    np.testing.assert_array_equal(x.grad, [6.0, 6.0])
    x.zero_grad()
    assert x.grad is None


def test_shared_gradient_arrays_are_never_modified():
    # add passes its incoming array on to both inputs; the engine must copy before adding
    x = Tensor(np.ones(3), requires_grad=True)
    g = np.array([1.0, 2.0, 3.0])
    (x + x).backward(g)
    np.testing.assert_array_equal(g, [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(x.grad, [2.0, 4.0, 6.0])
    y = Tensor(np.ones(3), requires_grad=True)
    (y + 0.0).backward(g)
    assert y.grad is not g
    y.grad += 1.0
    np.testing.assert_array_equal(g, [1.0, 2.0, 3.0])
    for build in (lambda t: (t + 0.0) + t * 2.0, lambda t: t * 2.0 + (t + 0.0)):
        w = Tensor(np.ones(3), requires_grad=True)  # one borrowed and one fresh gradient
        build(w).backward(g)
        np.testing.assert_array_equal(g, [1.0, 2.0, 3.0])
        np.testing.assert_array_equal(w.grad, 3 * g)
    z = Tensor(np.ones((2, 3)), requires_grad=True)
    z.sum().backward()  # Sum returns a read-only broadcast view: the leaf gets a copy
    z.sum().backward()
    np.testing.assert_array_equal(z.grad, np.full((2, 3), 2.0))


def test_retain_grad_keeps_an_intermediate_gradient():
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    h = x * 2.0
    h.retain_grad()
    (h * h).sum().backward()
    np.testing.assert_array_equal(h.grad, 2 * h.data)
    np.testing.assert_array_equal(x.grad, 4 * h.data)


# --------------------------------------------------------------------- no_grad
def test_no_grad_builds_no_graph():
    x = Tensor(np.ones(3), requires_grad=True)
    with no_grad():
        y = (x * 2.0).exp().sum()
        assert not mg.is_grad_enabled()
    assert mg.is_grad_enabled()
    assert y._ctx is None and not y.requires_grad
    with pytest.raises(RuntimeError, match="does not require grad"):
        y.backward()


def test_no_grad_as_decorator_nesting_and_exceptions():
    x = Tensor(np.ones(2), requires_grad=True)

    @no_grad()
    def double(t):
        return t * 2.0

    assert double(x)._ctx is None
    with no_grad():
        with mg.enable_grad():
            assert (x * 2.0).requires_grad
        assert not (x * 2.0).requires_grad
    with pytest.raises(ZeroDivisionError):
        with no_grad():
            1 / 0
    assert mg.is_grad_enabled()


def test_grad_mode_is_per_thread():
    x = Tensor(np.ones(2), requires_grad=True)
    seen = []
    with no_grad():
        thread = threading.Thread(target=lambda: seen.append((x * 2.0).requires_grad))
        thread.start()
        thread.join()
    assert seen == [True]


def test_no_grad_in_another_thread_leaves_this_thread_recording():
    x = Tensor(np.ones(2), requires_grad=True)
    inside, outside = threading.Event(), threading.Event()
    seen = []

    def worker():
        with no_grad():
            inside.set()
            outside.wait()  # the main thread records an op while this one is in no_grad
            seen.append((x * 2.0).requires_grad)

    thread = threading.Thread(target=worker)
    thread.start()
    inside.wait()
    assert (x * 2.0).requires_grad and mg.is_grad_enabled()
    outside.set()
    thread.join()
    assert seen == [False] and mg.is_grad_enabled()


def test_topological_order_puts_every_tensor_after_its_parents():
    from minigrad.autograd.engine import _topological_order
    a, b = Tensor(np.ones(2), requires_grad=True), Tensor(np.ones(2), requires_grad=True)
    constant = Tensor(np.ones(2))
    shared = a * b
    out = (shared + a) * (shared - constant)
    order = _topological_order([out])
    position = {id(t): i for i, t in enumerate(order)}
    assert len(order) == len(position) == 6  # a, b, shared, shared + a, shared - constant, out
    assert id(constant) not in position  # needs no gradient: never visited
    for tensor in order:
        for parent in (tensor._ctx.parents if tensor._ctx is not None else ()):
            if parent.requires_grad:
                assert position[id(parent)] < position[id(tensor)]
    assert order[-1] is out
    # stopping at `shared` (a partial derivative): its parents are not visited
    stopped = _topological_order([out], stop={id(shared)})
    assert {id(t) for t in stopped} == {id(a), id(shared), id(out)} | {id(out._ctx.parents[0]), id(out._ctx.parents[1])}
    assert id(b) not in {id(t) for t in stopped}


# --------------------------------------------------------------------- graph release
def test_graph_is_released_after_backward():
    x = Tensor(np.ones((4, 4)), requires_grad=True)
    hidden = x.exp()  # Exp saves its output for backward
    node = weakref.ref(hidden._ctx)
    saved = weakref.ref(hidden._ctx.out)
    activation = weakref.ref(hidden)
    loss = (hidden * 3.0).sum()
    del hidden
    loss.backward()
    gc.collect()
    assert node() is None and saved() is None and activation() is None
    assert loss._ctx.parents is None  # the root's node is emptied, kept as a marker


def test_second_backward_without_retain_graph_raises():
    x = Tensor(np.ones(2), requires_grad=True)
    loss = (x * x).sum()
    loss.backward()
    with pytest.raises(RuntimeError, match="already freed by an earlier backward.*retain_graph=True"):
        loss.backward()
    np.testing.assert_array_equal(x.grad, [2.0, 2.0])  # unchanged by the failed call


def test_backward_through_a_freed_shared_intermediate_raises():
    x = Tensor(np.ones(2), requires_grad=True)
    hidden = x * 2.0
    hidden.sum().backward()
    with pytest.raises(RuntimeError, match="'mul' node was already freed"):
        (hidden * 3.0).sum().backward()


def test_retain_graph_allows_a_second_backward():
    x = Tensor(np.array([1.0, 3.0]), requires_grad=True)
    loss = (x * x).sum()
    loss.backward(retain_graph=True)
    loss.backward()
    np.testing.assert_array_equal(x.grad, 4 * x.data)
    with pytest.raises(RuntimeError, match="freed"):
        loss.backward()


def test_leaf_root_backward_and_detach():
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    x.backward(np.array([3.0, 4.0]))
    np.testing.assert_array_equal(x.grad, [3.0, 4.0])
    d = (x * 2.0).detach()
    assert not d.requires_grad and d._ctx is None and d.is_leaf


# --------------------------------------------------------------------- backward's bad inputs
def test_backward_on_non_scalar_needs_grad():
    y = Tensor(np.ones((2, 3)), requires_grad=True) * 2.0
    with pytest.raises(ValueError, match=r"backward: grad can be implicitly created only for a one-element tensor, this one has shape \(2, 3\)"):
        y.backward()
    y.backward(np.ones((2, 3)))  # fine with an explicit grad


def test_backward_with_wrong_shape_grad():
    y = Tensor(np.ones((2, 3)), requires_grad=True) * 2.0
    with pytest.raises(ValueError, match=r"backward: grad has shape \(3, 2\), tensor has shape \(2, 3\)"):
        y.backward(np.ones((3, 2)))


def test_backward_accepts_lists_tensors_and_one_element_shapes():
    x = Tensor(np.ones(2), requires_grad=True)
    (x * 2.0).backward([1.0, 0.5])
    np.testing.assert_array_equal(x.grad, [2.0, 1.0])
    x.grad = None
    (x * 2.0).backward(Tensor([1.0, 1.0]))
    np.testing.assert_array_equal(x.grad, [2.0, 2.0])
    x.grad = None
    (x * 2.0).sum(keepdims=True).backward()  # shape (1,): one element, grad implied
    np.testing.assert_array_equal(x.grad, [2.0, 2.0])


# --------------------------------------------------------------------- the Function contract
class Cube(Function):
    # d(a^3)/da = 3 a^2

    def forward(self, a):
        if self.requires_grad:
            self.a = a
        return a * a * a

    def backward(self, g):
        return g * 3 * self.a * self.a


class WrongShape(Function):
    def forward(self, a):
        return a.sum()

    def backward(self, g):
        return np.ones(3)


class Float64Grad(Function):
    # d(sum a)/da = 1, returned as a float64 array (and as a NumPy scalar for 0-d inputs)
    def forward(self, a):
        return a.sum()

    def backward(self, g):
        ones = np.ones(self.parents[0].shape, dtype=np.float64)
        return ones if ones.ndim else np.float64(1.0)


def test_engine_casts_a_gradient_to_its_inputs_dtype():
    x = Tensor(np.ones((2, 3), dtype=np.float32), requires_grad=True)
    Float64Grad.apply(x).backward()
    assert x.grad.dtype == np.float32 and x.grad.shape == (2, 3)
    np.testing.assert_array_equal(x.grad, np.ones((2, 3)))
    scalar = Tensor(np.float32(2.0), requires_grad=True)
    Float64Grad.apply(scalar).backward()  # a NumPy scalar becomes a 0-d array
    assert isinstance(scalar.grad, np.ndarray) and scalar.grad.dtype == np.float32 and scalar.grad == 1.0


class TooManyGrads(Function):
    def forward(self, a):
        return a * 1

    def backward(self, g):
        return g, g


def test_custom_function_passes_gradcheck():
    x = leaf([0.5, -1.2, 2.0])
    assert gradcheck(lambda t: Cube.apply(t), x)
    assert Cube.apply(Tensor(np.ones(2, dtype=np.float32))).dtype == np.float32


def test_engine_checks_returned_gradients():
    x = Tensor(np.ones(2), requires_grad=True)
    with pytest.raises(RuntimeError, match=r"wrongshape.backward: gradient has shape \(3,\), input has shape \(2,\)"):
        WrongShape.apply(x).backward()
    with pytest.raises(RuntimeError, match="toomanygrads.backward returned 2 gradients for 1 inputs"):
        TooManyGrads.apply(x).sum().backward()


def test_unbroadcast():
    g = np.ones((4, 2, 3))
    np.testing.assert_array_equal(unbroadcast(g, (2, 1)), np.full((2, 1), 12.0))
    np.testing.assert_array_equal(unbroadcast(g, (3,)), np.full(3, 8.0))
    assert unbroadcast(g, (4, 2, 3)) is g
    scalar = unbroadcast(g, ())
    assert isinstance(scalar, np.ndarray) and scalar.shape == () and scalar == 24.0
    assert unbroadcast(np.ones((2, 3), dtype=np.float32), (1, 3)).dtype == np.float32


# --------------------------------------------------------------------- float32 everywhere
def _ops_float32():
    f = np.float32
    rng = np.random.default_rng(0)

    def t(*shape, low=0.5):
        return Tensor(rng.uniform(low, 2.0, size=shape).astype(f), requires_grad=True)

    return {
        "add": lambda: t(2, 3) + t(3), "sub": lambda: t(2, 3) - t(1, 3),
        "mul": lambda: t(2, 3) * t(3), "div": lambda: t(2, 3) / t(2, 1),
        "pow": lambda: t(2, 3) ** t(3), "pow_const": lambda: t(2, 3) ** 3,
        "rpow": lambda: 2.0 ** t(3), "sqrt_pow": lambda: t(3) ** 0.5,
        "maximum": lambda: mg.maximum(t(2, 3), t(3)), "neg": lambda: -t(3),
        "exp": lambda: t(3).exp(), "log": lambda: t(3).log(), "sqrt": lambda: t(3).sqrt(),
        "tanh": lambda: t(3).tanh(), "sigmoid": lambda: t(3).sigmoid(),
        "relu": lambda: t(3, low=-1).relu(), "abs": lambda: t(3, low=-1).abs(),
        "sum": lambda: t(2, 3).sum(axis=0), "mean": lambda: t(2, 3).mean(axis=(0, 1)),
        "max": lambda: t(2, 3).amax(axis=-1), "var": lambda: t(2, 3).var(axis=1, keepdims=True),
        "matmul": lambda: t(2, 3) @ t(3, 4), "matmul_batched": lambda: t(2, 2, 3) @ t(2, 3, 4),
        "matmul_folded": lambda: t(2, 2, 3) @ t(3, 4), "matvec": lambda: t(3) @ t(3),
        "reshape": lambda: t(2, 3).reshape(3, 2), "transpose": lambda: t(2, 3).T,
        "getitem": lambda: t(4, 3)[np.array([0, 0, 2])], "getitem_slice": lambda: t(4, 3)[1:, ::2],
        "masked_fill": lambda: t(2, 3).masked_fill(np.eye(2, 3, dtype=bool), -np.inf),
        "where": lambda: mg.where(np.eye(2, 3, dtype=bool), t(2, 3), t(3)),
        "concat": lambda: mg.concat([t(2, 3), t(1, 3)]), "stack": lambda: mg.stack([t(3), t(3)]),
        "astype": lambda: t(3).astype(np.float32),
    }


@pytest.mark.parametrize("name", sorted(_ops_float32()))
def test_every_backward_keeps_float32(name):
    out = _ops_float32()[name]()
    assert out.dtype == np.float32, "forward upcast"
    # call the node's backward directly: the engine would hide an upcast by casting back
    grads = out._ctx.backward(np.ones(out.shape, dtype=np.float32))
    grads = grads if isinstance(grads, tuple) else (grads,)
    for parent, grad in zip(out._ctx.parents, grads):
        if grad is not None:
            assert np.asarray(grad).dtype == np.float32, f"{name}: backward upcast"
            assert np.shape(grad) == parent.shape


# --------------------------------------------------------------------- NaN and inf
def test_nan_and_inf_flow_through_backward_without_crashing():
    x = Tensor(np.array([1.0, np.inf, np.nan, 0.0]), requires_grad=True)
    with np.errstate(all="ignore"):
        loss = ((x * 2.0).exp() + x.log()).sum()
        loss.backward()
    assert np.isnan(loss.item())
    with np.errstate(all="ignore"):
        expected = 2 * np.exp(2 * x.data) + 1 / x.data  # same formula in NumPy
    np.testing.assert_array_equal(x.grad, expected)  # [2e^2 + 1, inf, nan, inf]
