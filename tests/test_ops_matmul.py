"""Matrix multiplication: 1-D, 2-D and batched N-D with broadcast batch dimensions, including
the folded (B, T, C) @ (C, D) fast path; gradcheck, NumPy forward values, errors."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, strategies as st
from hypothesis.extra import numpy as hnp

from minigrad import Tensor, gradcheck, no_grad
from core_strategies import leaf, values


@st.composite
def matmul_shapes(draw):
    """Shapes (a, b) that np.matmul accepts: each operand 1-D, 2-D or batched, with batch
    dimensions that broadcast against each other (size-1 and missing axes included)."""
    n, k, m = (draw(st.integers(1, 3)) for _ in range(3))
    batch = draw(hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=2, max_side=3))
    a_batch, b_batch = batch.input_shapes
    a_shape = (k,) if draw(st.booleans()) and not a_batch else a_batch + (n, k)
    b_shape = (k,) if draw(st.booleans()) and not b_batch else b_batch + (k, m)
    return a_shape, b_shape


@given(data=st.data(), ab=matmul_shapes())
def test_matmul_gradcheck_and_forward(data, ab):
    a_shape, b_shape = ab
    a, b = leaf(data.draw(values(a_shape))), leaf(data.draw(values(b_shape)))
    out = a @ b
    expected = np.matmul(a.data, b.data)
    assert out.shape == expected.shape
    np.testing.assert_allclose(out.data, expected, rtol=1e-12, atol=1e-12)
    assert gradcheck(lambda x, y: x @ y, a, b)


@given(data=st.data(), lead=hnp.array_shapes(min_dims=1, max_dims=3, max_side=3),
       k=st.integers(1, 3), m=st.integers(1, 3))
def test_folded_fast_path_batch_times_matrix(data, lead, k, m):
    # (B, T, C) @ (C, D): folded into one (B*T, C) @ (C, D) GEMM, forward and backward
    a, b = leaf(data.draw(values(lead + (k,)))), leaf(data.draw(values((k, m))))
    np.testing.assert_allclose((a @ b).data, np.matmul(a.data, b.data), rtol=1e-12, atol=1e-12)
    assert gradcheck(lambda x, y: x @ y, a, b)


def test_fast_path_with_non_contiguous_input():
    rng = np.random.default_rng(0)
    a = leaf(rng.standard_normal((3, 4, 2)))
    b = leaf(rng.standard_normal((3, 5)))
    # a.transpose(...) is a non-contiguous (4, 2, 3) view: reshape must copy, not misread
    assert gradcheck(lambda x, y: x.transpose(1, 2, 0) @ y, a, b)


def test_vector_dot_and_matrix_vector():
    a = Tensor(np.array([1.0, 2.0, 3.0]), requires_grad=True)
    b = Tensor(np.array([4.0, 5.0, 6.0]), requires_grad=True)
    out = a @ b
    assert out.shape == () and out.item() == 32.0
    out.backward()
    np.testing.assert_array_equal(a.grad, b.data)
    np.testing.assert_array_equal(b.grad, [1.0, 2.0, 3.0])
    m = Tensor(np.ones((2, 3)))
    assert (m @ a).shape == (2,) and (a @ m.T).shape == (2,)


def test_matmul_keeps_float32_and_mixes_with_ndarrays():
    a = Tensor(np.ones((2, 3, 4), dtype=np.float32), requires_grad=True)
    w = Tensor(np.ones((4, 5), dtype=np.float32), requires_grad=True)
    out = a @ w
    assert out.dtype == np.float32
    out.sum().backward()
    assert a.grad.dtype == np.float32 and w.grad.dtype == np.float32
    np.testing.assert_array_equal(w.grad, np.full((4, 5), 6.0))
    assert isinstance(np.ones((2, 5, 3)) @ a, Tensor)  # ndarray @ Tensor -> __rmatmul__


def test_parameter_gradient_from_matmul_is_adopted_without_copy():
    # MatMul returns freshly allocated gradients, so the engine stores them as-is
    w = Tensor(np.ones((4, 5), dtype=np.float32), requires_grad=True)
    x = Tensor(np.ones((2, 4), dtype=np.float32))
    out = x @ w
    captured = {}
    ctx = out._ctx
    original = ctx.backward

    def spy(g):
        captured["grads"] = original(g)
        return captured["grads"]

    ctx.backward = spy
    out.sum().backward()
    assert w.grad is captured["grads"][1]


@pytest.mark.parametrize("a_shape, b_shape, message", [
    ((2, 3), (4, 5), r"matmul: cannot multiply \(2, 3\) @ \(4, 5\): inner dimensions 3 and 4 differ"),
    ((3,), (4,), r"matmul: cannot multiply \(3,\) @ \(4,\)"),
    ((2, 2, 3), (3, 3, 4), r"matmul: batch dimensions of \(2, 2, 3\) @ \(3, 3, 4\) do not broadcast"),
    ((), (3,), r"matmul: both operands need at least 1 dimension, got \(\) @ \(3,\)"),
])
def test_matmul_errors_name_both_shapes(a_shape, b_shape, message):
    with pytest.raises(ValueError, match=message):
        Tensor(np.ones(a_shape)) @ Tensor(np.ones(b_shape))


def test_matmul_under_no_grad_saves_nothing():
    a = Tensor(np.ones((2, 3)), requires_grad=True)
    with no_grad():
        out = a @ a.T
    assert out._ctx is None and not out.requires_grad
