"""Saved arrays are safe: while a graph that will backpropagate through an array is alive,
writing that array in place is refused (NumPy's read-only flag); after backward, or once the
graph is dropped, it is writeable again; an optimizer may still update (PyTorch lets it), and
a later backward through the stale graph then fails naming the op and the step."""
from __future__ import annotations

import numpy as np
import pytest

import minigrad as mg
from minigrad import Tensor, gradcheck, optim
from minigrad.autograd import saved, saved_by


def _pair():
    return (Tensor(np.array([1.0, 2.0]), requires_grad=True),
            Tensor(np.array([2.0, 2.0]), requires_grad=True))


def test_the_issue_example_is_refused_and_the_gradient_stays_right():
    x, w = _pair()
    y = (x * w).sum()
    with pytest.raises(ValueError, match="read-only"):
        w.data[...] = 100
    with pytest.raises(ValueError, match="read-only"):
        w.data += 1
    with pytest.raises(ValueError, match="read-only"):
        np.add(w.data, 1, out=w.data)
    assert saved_by(w) == "mul"
    y.backward()
    np.testing.assert_array_equal(x.grad, [2.0, 2.0])  # w as it was in the forward
    w.data[...] = 100  # the graph is gone: writeable again
    assert saved_by(w) is None and saved.live_saved_arrays() == 0


def test_a_saved_output_is_protected_too_and_dropping_a_graph_releases_it():
    a, b = _pair()
    y = a / b  # Div's backward reads its output
    with pytest.raises(ValueError, match="read-only"):
        y.data[0] = 0.0
    del y  # never backpropagated: dropped
    a.data[0] = 3.0
    b.data[0] = 3.0
    assert saved.live_saved_arrays() == 0


def test_two_live_graphs_keep_an_array_until_both_are_gone():
    x, w = _pair()
    first, second = (x * w).sum(), (x * w * 2.0).sum()
    first.backward()
    with pytest.raises(ValueError, match="read-only"):
        w.data[...] = 5.0  # the second graph still holds w
    second.backward()
    w.data[...] = 5.0
    np.testing.assert_array_equal(x.grad, [6.0, 6.0])


def test_retain_graph_keeps_the_arrays_until_the_graph_is_dropped():
    x, w = _pair()
    y = (x * w).sum()
    y.backward(retain_graph=True)
    with pytest.raises(ValueError, match="read-only"):
        w.data[...] = 0.0
    del y
    w.data[...] = 0.0


def test_views_and_their_base_become_writeable_again():
    x = Tensor(np.arange(4.0), requires_grad=True)
    head = x[0:2]  # a view of x's array
    (head * head).sum().backward()
    x.data[...] = 1.0
    head.data[...] = 2.0
    np.testing.assert_array_equal(x.data, [2.0, 2.0, 1.0, 1.0])
    constant = Tensor(np.broadcast_to(np.float64(3.0), (4,)))  # read-only from the start
    (x * constant).sum().backward()
    assert not constant.data.flags.writeable  # left as it was


def test_an_optimizer_step_is_let_through_and_a_stale_backward_names_it():
    x, w = _pair()
    y = (x * w).sum()
    kept = (x * w * 3.0).sum()  # a graph kept alive across the step
    y.backward()
    optim.SGD([w], lr=0.5).step()  # w -= 0.5 * x
    np.testing.assert_array_equal(w.data, [1.5, 1.0])
    with pytest.raises(RuntimeError, match=r"the input 1 of 'mul' \(shape \(2,\)\).*modified in place by SGD.step"):
        kept.backward()
    fresh = (x * w).sum()  # saved after the step: not stale, although `kept` still is
    fresh.backward()
    np.testing.assert_array_equal(x.grad, [2.0 + 1.5, 2.0 + 1.0])
    del kept
    assert not saved.changed and saved.live_saved_arrays() == 0


def test_training_steps_leave_nothing_held():
    model = mg.nn.Linear(3, 2, dtype=np.float64, generator=np.random.default_rng(0))
    opt = optim.AdamW(model.parameters(), lr=0.1)
    for _ in range(3):
        loss = (model(Tensor(np.ones((4, 3)))) ** 2).sum()
        loss.backward()
        assert saved.live_saved_arrays() == 0  # backward released every node
        opt.step()
        opt.zero_grad()
    assert model.weight.data.flags.writeable


def test_gradcheck_works_while_the_caller_keeps_a_graph():
    x = Tensor(np.array([0.3, -0.8]), requires_grad=True)
    kept = x.tanh()  # holds x's array read-only
    assert gradcheck(lambda t: t.tanh() * t, x)
    np.testing.assert_array_equal(x.data, [0.3, -0.8])  # every nudge undone
    x.grad = None
    kept.sum().backward()  # and the kept graph is still valid (nothing marked changed)
    np.testing.assert_allclose(x.grad, 1 - np.tanh(x.data) ** 2)
