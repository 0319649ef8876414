"""Indexing along one axis: gather, scatter (and scatter_add / scatter_reduce), index_select,
index_add, take_along_dim, masked_select, nonzero (PyTorch's semantics).

    gather:   out[i][j] = a[index[i][j]][j]          (dim=0; index has a's ndim, any size
                                                      up to a's along the other axes)
    scatter_add: out = a; out[index[i][j]][j] += src[i][j]

gather and scatter_add are each other's gradient (the positions one reads the other adds to),
as are index_select and index_add. Indices must lie in [0, size) as in PyTorch (no negative
indices, no wrap-around); an out-of-range index raises an IndexError naming the op, the dim,
the bad value and the shapes.
"""
from __future__ import annotations

import numpy as np

from ..autograd import Function
from ..tensor import Tensor
from .promote import check_dim


def _check_indices(op: str, index: np.ndarray, size: int, dim: int, a_shape, index_shape) -> None:
    if index.dtype.kind not in "iu":
        raise TypeError(f"{op}: index must be an integer tensor, got dtype {index.dtype}")
    if index.size and (index.min() < 0 or index.max() >= size):
        bad = index.min() if index.min() < 0 else index.max()
        raise IndexError(f"{op}: index {bad} is out of range for dim {dim} of size {size} "
                         f"(input shape {tuple(a_shape)}, index shape {tuple(index_shape)})")


def along_dim_index(op: str, a_shape: tuple, index: np.ndarray, dim: int) -> tuple:
    """The NumPy fancy index that picks a[..., index[pos], ...] at every position of `index`.

    `index` has a's number of dimensions and at most a's size along every other axis."""
    if index.ndim != len(a_shape) and not (index.ndim <= 1 and len(a_shape) <= 1):
        raise ValueError(f"{op}: index has {index.ndim} dimensions, input has {len(a_shape)} "
                         f"(input shape {tuple(a_shape)}, index shape {index.shape})")
    if len(a_shape) == 0:
        _check_indices(op, index, 1, dim, a_shape, index.shape)
        return ()
    for axis, (n_index, n_in) in enumerate(zip(index.shape, a_shape)):
        if axis != dim and n_index > n_in:
            raise ValueError(f"{op}: index size {n_index} exceeds the input size {n_in} along dim "
                             f"{axis} (input shape {tuple(a_shape)}, index shape {index.shape})")
    _check_indices(op, index, a_shape[dim], dim, a_shape, index.shape)
    grids = list(np.ogrid[tuple(slice(n) for n in index.shape)])  # open mesh of positions
    grids[dim] = index
    return tuple(grids)


class Gather(Function):
    # out[pos] = a[where(pos)]: the gradient adds g back at those positions (a scatter_add)

    def forward(self, a, index, dim):
        self.dim = check_dim("gather", dim, a.ndim, a.shape)
        self.where, self.in_shape, self.index = along_dim_index("gather", a.shape, index, self.dim), a.shape, index
        return a[self.where] if a.ndim else np.broadcast_to(a, index.shape).copy()

    def backward(self, g):
        grad = np.zeros(self.in_shape, dtype=g.dtype)
        np.add.at(grad, self.where, g)
        return grad, None

    def backward_graph(self, g):
        zeros = Tensor._wrap(np.zeros(self.in_shape, dtype=g.dtype), False)
        return ScatterAdd.apply(zeros, self.parents[1], g, dim=self.dim), None


class ScatterAdd(Function):
    # out = a + (src added at where(pos)): d/da = g, d/dsrc = g read at those positions (gather)

    def forward(self, a, index, src, dim):
        self.dim = check_dim("scatter_add", dim, a.ndim, a.shape)
        _check_src("scatter_add", index, src)
        self.where = along_dim_index("scatter_add", a.shape, index, self.dim)
        self.src_shape, self.index = src.shape, index
        out = a.astype(np.result_type(a, src), copy=True)
        np.add.at(out, self.where, src[tuple(slice(n) for n in index.shape)])
        return out

    def backward(self, g):
        gsrc = None
        if self.needs_input_grad[2]:
            gsrc = np.zeros(self.src_shape, dtype=g.dtype)
            gsrc[tuple(slice(n) for n in self.index.shape)] = g[self.where]
        return g, None, gsrc

    def backward_graph(self, g):
        gsrc = Gather.apply(g, self.parents[1], dim=self.dim)
        if self.src_shape != self.index.shape:  # src larger than index: unread values get 0
            gsrc = pad_to(gsrc, self.src_shape)
        return g, None, gsrc


class Scatter(Function):
    # out = a with src written at where(pos): d/da = g with the written positions zeroed,
    # d/dsrc = g read at those positions (with repeated positions, PyTorch's choice of
    # writer is unspecified; here the last one in C order wins, and all of them get g)
    def forward(self, a, index, src, dim):
        self.dim = check_dim("scatter", dim, a.ndim, a.shape)
        _check_src("scatter", index, src)
        self.where = along_dim_index("scatter", a.shape, index, self.dim)
        self.written = np.zeros(a.shape, dtype=bool)
        self.written[self.where] = True
        self.src_shape, self.index = src.shape, index
        out = a.astype(np.result_type(a, src), copy=True)
        out[self.where] = src[tuple(slice(n) for n in index.shape)]
        return out

    def backward_graph(self, g):
        ga = g.masked_fill(Tensor._wrap(self.written, False), 0.0)
        gsrc = Gather.apply(g, self.parents[1], dim=self.dim)
        if self.src_shape != self.index.shape:
            gsrc = pad_to(gsrc, self.src_shape)
        return ga, None, gsrc


def _check_src(op: str, index: np.ndarray, src: np.ndarray) -> None:
    if src.ndim != index.ndim or any(i > s for i, s in zip(index.shape, src.shape)):
        raise ValueError(f"{op}: src of shape {src.shape} must be at least as large as index "
                         f"of shape {index.shape} along every dim")


def pad_to(x: Tensor, shape: tuple) -> Tensor:
    """`x` zero-padded at the end of each axis up to `shape` (a scatter into zeros)."""
    zeros = Tensor._wrap(np.zeros(shape, dtype=x.dtype), False)
    return SliceSet.apply(zeros, x)


class SliceSet(Function):
    # out = a with its leading block [:n0, :n1, ...] replaced by b: d/da = g outside the block,
    # d/db = g inside it
    def forward(self, a, b):
        self.block = tuple(slice(n) for n in b.shape)
        out = a.copy()
        out[self.block] = b
        return out

    def backward_graph(self, g):
        mask = np.zeros(g.shape, dtype=bool)
        mask[self.block] = True
        return g.masked_fill(Tensor._wrap(mask, False), 0.0), g[self.block]


class IndexSelect(Function):
    # out = a[..., index, ...] along dim: the gradient adds g back at those rows (index_add)

    def forward(self, a, index, dim):
        self.dim = check_dim("index_select", dim, a.ndim, a.shape)
        if index.ndim > 1:
            raise ValueError(f"index_select: index must be 0-d or 1-d, got shape {index.shape}")
        _check_indices("index_select", index, a.shape[self.dim] if a.ndim else 1, self.dim, a.shape, index.shape)
        self.index, self.in_shape = index.reshape(-1), a.shape
        return np.take(a, self.index, axis=self.dim if a.ndim else None)

    def backward(self, g):
        grad = np.zeros(self.in_shape, dtype=g.dtype)
        np.add.at(grad, (slice(None),) * self.dim + (self.index,), g)
        return grad, None

    def backward_graph(self, g):
        zeros = Tensor._wrap(np.zeros(self.in_shape, dtype=g.dtype), False)
        return IndexAdd.apply(zeros, Tensor._wrap(self.index, False), g, dim=self.dim), None


class IndexAdd(Function):
    # out = a; out[..., index[k], ...] += src[..., k, ...]: d/da = g, d/dsrc = g's rows at index
    def forward(self, a, index, src, dim, alpha=1):
        self.dim = check_dim("index_add", dim, a.ndim, a.shape)
        _check_indices("index_add", index, a.shape[self.dim], self.dim, a.shape, index.shape)
        expected = a.shape[:self.dim] + (index.size,) + a.shape[self.dim + 1:]
        if src.shape != expected:
            raise ValueError(f"index_add: src has shape {src.shape}, expected {expected} "
                             f"(input shape {a.shape}, {index.size} indices along dim {self.dim})")
        self.index, self.alpha = index.reshape(-1), alpha
        out = a.astype(np.result_type(a, src), copy=True)
        np.add.at(out, (slice(None),) * self.dim + (self.index,), src * alpha if alpha != 1 else src)
        return out

    def backward(self, g):
        gsrc = np.take(g, self.index, axis=self.dim) if self.needs_input_grad[2] else None
        return g, None, gsrc if self.alpha == 1 or gsrc is None else gsrc * self.alpha

    def backward_graph(self, g):
        gsrc = IndexSelect.apply(g, Tensor._wrap(self.index, False), dim=self.dim)
        return g, None, gsrc if self.alpha == 1 else gsrc * self.alpha


class IndexMethods:
    """Tensor methods of the indexing family (installed onto Tensor by minigrad.ops)."""

    def gather(self, dim: int, index) -> Tensor:
        """out[i][j][k] = self[index[i][j][k]][j][k] for dim=0 (likewise for other dims).

        index: an integer tensor with self's ndim, no larger than self along the other dims;
        out has index's shape and self's dtype. Backward: scatter_add of g at the index."""
        return Gather.apply(self, _index_tensor(index), dim=dim)

    def scatter_add(self, dim: int, index, src) -> Tensor:
        """A copy of self with src[i][j] added at [index[i][j]][j] (dim=0); repeats add up.

        Backward: g to self; g gathered at the index to src."""
        return ScatterAdd.apply(self, _index_tensor(index), _like(src, self), dim=dim)

    def scatter(self, dim: int, index, src=None, *, value=None, reduce=None) -> Tensor:
        """A copy of self with src[i][j] (or the number `value`) written at [index[i][j]][j].

        `reduce="add"|"multiply"` is the legacy form of scatter_reduce. Backward: g to self
        except at written positions; g gathered at the index to src."""
        if src is None and value is None:
            raise TypeError("scatter: pass src (a tensor) or value (a number)")
        if src is None or not isinstance(src, Tensor) and np.ndim(src) == 0:
            fill = value if src is None else src
            src = Tensor._wrap(np.full(np.shape(_raw(index)), fill, dtype=self.dtype), False)
        if reduce is not None:
            modes = {"add": "sum", "multiply": "prod"}
            if reduce not in modes:
                raise ValueError(f"scatter: reduce must be 'add' or 'multiply', got {reduce!r}")
            return self.scatter_reduce(dim, index, src, modes[reduce])
        return Scatter.apply(self, _index_tensor(index), _like(src, self), dim=dim)

    def index_select(self, dim: int, index) -> Tensor:
        """The slices self[..., index[k], ...] along dim (index 1-d); out has len(index) there.

        Backward: index_add of g at the index."""
        return IndexSelect.apply(self, _index_tensor(index), dim=dim)

    def index_add(self, dim: int, index, source, *, alpha=1) -> Tensor:
        """A copy of self with alpha * source[..., k, ...] added at self[..., index[k], ...].

        Backward: g to self; alpha * g[..., index, ...] to source."""
        return IndexAdd.apply(self, _index_tensor(index), _like(source, self), dim=dim, alpha=alpha)

    def take_along_dim(self, indices, dim: int | None = None) -> Tensor:
        """np.take_along_axis with broadcasting (dim None: on the flattened tensor).

        Backward: g added back at the picked positions."""
        indices = _index_tensor(indices)
        if dim is None:
            return Gather.apply(self.reshape(-1), indices.reshape(-1), dim=0)
        dim = check_dim("take_along_dim", dim, self.ndim, self.shape)
        if indices.ndim != self.ndim:
            raise ValueError(f"take_along_dim: indices have {indices.ndim} dimensions, input has "
                             f"{self.ndim} (shapes {indices.shape} and {self.shape})")
        a_shape, i_shape = list(self.shape), list(indices.shape)
        a_shape[dim] = i_shape[dim] = 1
        try:
            common = list(np.broadcast_shapes(tuple(a_shape), tuple(i_shape)))
        except ValueError:
            raise ValueError(f"take_along_dim: input {self.shape} and indices {indices.shape} do "
                             f"not broadcast outside dim {dim}") from None
        source = self.expand(*common[:dim], self.shape[dim], *common[dim + 1:])
        picked = np.broadcast_to(indices.data, tuple(common[:dim] + [indices.shape[dim]] + common[dim + 1:]))
        return Gather.apply(source, Tensor._wrap(picked, False), dim=dim)

    def take(self, index) -> Tensor:
        """self.flatten()[index], the result shaped like index. Backward: g added back."""
        return self.reshape(-1)[_index_tensor(index).data]

    def masked_select(self, mask) -> Tensor:
        """The 1-d tensor of self's elements where mask (bool, broadcast with self) is True.

        Backward: g written back at the selected positions, 0 elsewhere."""
        mask = _raw(mask)
        if np.asarray(mask).dtype != np.bool_:
            raise TypeError(f"masked_select: mask must be boolean, got dtype {np.asarray(mask).dtype}")
        shape = np.broadcast_shapes(self.shape, np.shape(mask))
        return self.expand(*shape)[np.broadcast_to(mask, shape)]

    def nonzero(self, *, as_tuple: bool = False):
        """int64 indices of the nonzero elements: shape (n, ndim), or a tuple of ndim 1-d
        tensors with `as_tuple=True` (row-major order). Not differentiable."""
        found = np.nonzero(self.data) if self.ndim else np.nonzero(self.data.reshape(1))
        if as_tuple:
            return tuple(Tensor._wrap(i.astype(np.int64), False) for i in found)
        return Tensor._wrap(np.stack(found, axis=1).astype(np.int64).reshape(-1, self.ndim), False)

    def argwhere(self) -> Tensor:
        """`nonzero()`: the (n, ndim) int64 indices of the nonzero elements."""
        return self.nonzero()


def _raw(x):
    return x.data if isinstance(x, Tensor) else x


def _index_tensor(index) -> Tensor:
    if isinstance(index, Tensor):
        return index
    array = np.asarray(index)
    return Tensor._wrap(array if array.size else array.astype(np.int64), False)


def _like(src, like: Tensor) -> Tensor:
    return src if isinstance(src, Tensor) else Tensor._wrap(np.asarray(src, dtype=like.dtype), False)
