"""Scans and the reductions built on them: cumsum cumprod cummax cummin logcumsumexp along
a dim; prod, logsumexp, norm.

Backward rules (g the incoming gradient, along the scanned dim):
  cumsum:        d/dx_j = sum_{i>=j} g_i  (a reversed cumsum of g)
  cumprod:       d/dx_j = sum_{i>=j} g_i out_i / x_j where x has no zeros; with zeros,
                 PyTorch's exact rule without division (see Cumprod)
  cummax/cummin: the values are a gather at the returned indices (the last position that
                 reached the running max/min, as PyTorch), so g goes to those positions
  logcumsumexp:  d/dx_j = sum_{i>=j} g_i exp(x_j - out_i)
  prod:          d/dx_j = g * (product of the other elements), computed from exclusive
                 prefix and suffix products: exact with zeros (also its second derivative,
                 which goes through cumprod's)
  logsumexp:     d/dx = g softmax(x); norm: d/dx = g x / norm (0 where the norm is 0)
"""
from __future__ import annotations

import numpy as np

from ..autograd import Function
from ..tensor import Tensor
from .extremes import ValuesIndices
from .index import Gather
from .promote import as_float, cast, check_dim
from .shape import Concat


def _reverse_cumsum(x: Tensor, dim: int) -> Tensor:
    return x.flip(dim).cumsum(dim).flip(dim)


class Cumsum(Function):
    # out_i = sum_{j<=i} x_j: d/dx_j = sum_{i>=j} g_i
    def forward(self, a, dim):
        self.dim = dim
        return np.cumsum(a, axis=dim)

    def backward(self, g):
        return _reverse_cumsum_array(g, self.dim)

    def backward_graph(self, g):
        return _reverse_cumsum(g, self.dim)


class Cumprod(Function):
    # out_i = prod_{j<=i} x_j: d/dx_k = sum_{i>=k} g_i prod_{j<=i, j!=k} x_j. Without zeros that
    # is sum_{i>=k} g_i out_i / x_k. With z the first zero along the dim (PyTorch's rule):
    #   k < z: the same division (x_k != 0; out_i = 0 for i >= z);
    #   k = z: sum_{i>=z} g_i out'_i, out' the cumprod of x with x_z replaced by 1;
    #   k > z: 0 (every product that omits x_k still holds x_z = 0).
    def forward(self, a, dim):
        self.dim = dim
        out = np.cumprod(a, axis=dim)
        if self.requires_grad:
            self.out = out
        return out

    def backward(self, g):
        x, out, dim = self.parents[0].data, self.out, self.dim
        zero = x == 0
        if not zero.any():
            return _reverse_cumsum_array(g * out, dim) / x
        zeros_so_far = np.cumsum(zero, axis=dim)
        before = zeros_so_far == 0  # k < z
        first = zero & (zeros_so_far == 1)  # k = z
        grad = np.where(before, _reverse_cumsum_array(np.where(before, g * out, 0), dim)
                        / np.where(before, x, 1), 0)
        omitted = np.cumprod(np.where(first, 1, x), axis=dim)  # out' (x_z replaced by 1)
        return np.where(first, _reverse_cumsum_array(g * omitted, dim), grad).astype(x.dtype, copy=False)

    def backward_graph(self, g):
        # the piecewise rule above is exact but its own derivative is not (the zeros at k > z
        # depend on x_z), so a graph uses the sum itself: row k of a (..., n, n) matrix is x
        # with x_k replaced by 1; its cumprod along i gives prod_{j<=i, j!=k} x_j
        x, dim = self.parents[0], self.dim
        if not (x.data == 0).any():
            return _reverse_cumsum(g * Cumprod.apply(x, dim=dim), dim) / x
        n = x.shape[dim]
        x_last, g_last = x.movedim(dim, -1), g.movedim(dim, -1)  # (..., n)
        rows = x_last.unsqueeze(-2).expand(*x_last.shape[:-1], n, n)  # (..., k, i)
        omitted = rows.masked_fill(np.eye(n, dtype=bool), 1.0).cumprod(-1)  # (..., k, i)
        upper = Tensor._wrap(np.triu(np.ones((n, n), x.dtype)), False)  # 1 where i >= k
        return (g_last.unsqueeze(-2) * omitted * upper).sum(-1).movedim(-1, dim)  # (..., n) -> x's shape


def _reverse_cumsum_array(a: np.ndarray, dim: int) -> np.ndarray:
    return np.flip(np.cumsum(np.flip(a, dim), axis=dim), dim)


class Logcumsumexp(Function):
    # out_i = log sum_{j<=i} e^{x_j}: d/dx_j = sum_{i>=j} g_i e^{x_j - out_i}
    def forward(self, a, dim):
        self.dim = dim
        return np.logaddexp.accumulate(a, axis=dim) if a.size else a.copy()

    def backward_graph(self, g):
        x = self.parents[0]
        out = Logcumsumexp.apply(x, dim=self.dim)
        shift = Tensor._wrap(np.max(x.data, axis=self.dim, keepdims=True) if x.numel() else
                             np.zeros((), x.dtype), False)  # keeps both exponentials in range
        return _reverse_cumsum(g * (shift - out).exp(), self.dim) * (x - shift).exp()


def _running_index(a: np.ndarray, dim: int, smallest: bool) -> np.ndarray:
    """For each position, the index of the running max (min) so far: the last one on ties."""
    running = (np.minimum if smallest else np.maximum).accumulate(a, axis=dim)
    positions = np.arange(a.shape[dim]).reshape([-1 if i == dim else 1 for i in range(a.ndim)])
    reached = np.where(a == running, positions, 0)
    return np.maximum.accumulate(reached, axis=dim)


class Norm(Function):
    # out = sqrt(sum x^2) over axes: d/dx = g x / out, 0 where out == 0 (PyTorch's choice)
    def forward(self, a, axes, keepdim):
        self.axes, self.keepdim = axes, keepdim
        return np.sqrt(np.sum(a * a, axis=axes, keepdims=keepdim))

    def backward_graph(self, g):
        x = self.parents[0]
        out = Norm.apply(x, axes=self.axes, keepdim=True)
        zero = Tensor._wrap((out.data == 0), False)
        safe = out.masked_fill(zero, 1.0)
        if not self.keepdim:
            g = g.reshape(out.shape)
        return (g * x / safe).masked_fill(zero, 0.0)


def _axes(op: str, dim, x: Tensor):
    if dim is None:
        return tuple(range(x.ndim))
    dims = (dim,) if isinstance(dim, (int, np.integer)) else tuple(dim)
    return tuple(sorted(check_dim(op, d, x.ndim, x.shape) for d in dims)) if x.ndim else ()


class ScanMethods:
    """Scans and scan-based reductions (installed onto Tensor by minigrad.ops)."""

    def cumsum(self, dim: int, *, dtype=None):
        """Running sums along dim (integers accumulate in int64, as PyTorch). Backward: the
        reversed running sum of g."""
        source = self if dtype is None else cast(self, np.dtype(dtype))
        if source.dtype.kind in "bi" and source.dtype != np.int64:
            source = cast(source, np.int64)
        if source.ndim == 0:
            return source.clone() if source.dtype.kind == "f" else source
        return Cumsum.apply(source, dim=check_dim("cumsum", dim, self.ndim, self.shape))

    def cumprod(self, dim: int, *, dtype=None):
        """Running products along dim. Backward: sum_{i>=j} g_i out_i / x_j, and PyTorch's
        exact rule without division where x has zeros."""
        source = self if dtype is None else cast(self, np.dtype(dtype))
        if source.ndim == 0:
            return source.clone() if source.dtype.kind == "f" else source
        return Cumprod.apply(source, dim=check_dim("cumprod", dim, self.ndim, self.shape))

    def cummax(self, dim: int):
        """(values, indices) of the running maximum along dim (indices: the last position
        that reached it). Backward: g to those positions."""
        return self._running_extreme("cummax", dim, smallest=False)

    def cummin(self, dim: int):
        """(values, indices) of the running minimum along dim. Backward: g to those positions."""
        return self._running_extreme("cummin", dim, smallest=True)

    def _running_extreme(self, op, dim, smallest):
        dim = check_dim(op, dim, self.ndim, self.shape)
        if self.ndim == 0:
            return ValuesIndices(self, Tensor._wrap(np.zeros((), np.int64), False))
        indices = Tensor._wrap(_running_index(self.data, dim, smallest).astype(np.int64), False)
        return ValuesIndices(Gather.apply(self, indices, dim=dim), indices)

    def logcumsumexp(self, dim: int):
        """log of the running sum of exp along dim, without overflow. Backward:
        d/dx_j = sum_{i>=j} g_i exp(x_j - out_i)."""
        x = as_float(self)
        if x.ndim == 0:
            return x.clone()
        return Logcumsumexp.apply(x, dim=check_dim("logcumsumexp", dim, self.ndim, self.shape))

    def prod(self, dim=None, keepdim: bool = False, *, dtype=None):
        """Product over dim (one int, or all elements when None). Backward: g times the
        product of the other elements (exclusive prefix x suffix products: exact with zeros)."""
        source = self if dtype is None else cast(self, np.dtype(dtype))
        if source.dtype.kind in "bi" and source.dtype != np.int64:
            source = cast(source, np.int64)
        if dim is None:
            out = source.reshape(-1).prod(0)
            return out.reshape((1,) * self.ndim) if keepdim else out
        dim = check_dim("prod", dim, self.ndim, self.shape)
        if source.ndim == 0:
            return source
        if source.dtype.kind != "f":
            return Tensor._wrap(np.prod(source.data, axis=dim, keepdims=keepdim), False)
        return Prod.apply(source, dim=dim, keepdim=keepdim)

    def logsumexp(self, dim, keepdim: bool = False):
        """log(sum(exp(x))) over dim without overflow (-inf for all -inf, and over an empty dim,
        as PyTorch). Backward: g softmax(x)."""
        x = as_float(self)
        axes = _axes("logsumexp", dim, x)
        if any(x.shape[d] == 0 for d in axes):  # log of an empty sum: -inf (gradient: empty)
            return x.sum(dim, keepdim=keepdim) + float("-inf")
        shift = np.max(x.data, axis=axes, keepdims=True, initial=-np.inf)  # -inf over an empty dim
        shift = Tensor._wrap(np.where(np.isfinite(shift), shift, 0).astype(x.dtype), False)  # a constant
        with np.errstate(divide="ignore"):  # all -inf: log 0 = -inf, the right answer
            out = (x - shift).exp().sum(dim, keepdim=True).log() + shift
        return out if keepdim else out.squeeze(dim)

    def norm(self, p="fro", dim=None, keepdim: bool = False):
        """The p-norm over dim (all elements when None): p 2 / "fro" (Euclidean), 1, inf,
        -inf, or any positive number. Backward for p=2: g x / norm (0 where the norm is 0)."""
        x = as_float(self)
        axes = _axes("norm", dim, x)
        if p in ("fro", 2, 2.0):
            return Norm.apply(x, axes=axes, keepdim=keepdim)
        if p == 1:
            return x.abs().sum(axes, keepdim=keepdim)
        if p == float("inf"):
            return x.abs().amax(axes, keepdim=keepdim)
        if p == float("-inf"):
            return x.abs().amin(axes, keepdim=keepdim)
        if isinstance(p, (int, float)) and p > 0:
            return (x.abs() ** p).sum(axes, keepdim=keepdim) ** (1.0 / p)
        raise ValueError(f"norm: p must be 'fro', inf, -inf or a positive number, got {p!r}")


class Prod(Function):
    # out = prod_j x_j along dim: d/dx_j = g * (product of the other elements), which is
    # (prefix product before j) * (suffix product after j): no division, exact with zeros
    def forward(self, a, dim, keepdim):
        self.dim, self.keepdim = dim, keepdim
        return np.prod(a, axis=dim, keepdims=keepdim)

    def backward_graph(self, g):
        x, dim = self.parents[0], self.dim
        n = x.shape[dim]
        if not self.keepdim:
            g = g.unsqueeze(dim)
        if n == 0:
            return g.expand(x.shape)
        ones = Tensor._wrap(np.ones(x.shape[:dim] + (1,) + x.shape[dim + 1:], x.dtype), False)
        before = Concat.apply(ones, x.narrow(dim, 0, n - 1), axis=dim).cumprod(dim)  # prod_{k<j}
        after = Concat.apply(x.narrow(dim, 1, n - 1), ones, axis=dim).flip(dim).cumprod(dim).flip(dim)  # prod_{k>j}
        return g * before * after
