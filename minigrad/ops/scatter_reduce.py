"""scatter_reduce: out = self with src reduced into the positions index names along dim
(PyTorch's semantics): reduce "sum", "prod", "mean", "amax" or "amin"; include_self=False
leaves self's value out of the reduction at the positions that receive src.

Backward rules (n = how many values met at a position, self included or not):
  sum:  g to self (where self took part), g read at the index to src
  mean: g / n likewise
  amax/amin: g shared evenly by the values equal to the result (as PyTorch)
  prod: g out / value for each value that took part (NaN where a value is 0, documented)
"""
from __future__ import annotations

import numpy as np

from ..autograd import Function
from ..tensor import Tensor
from .index import Gather, ScatterAdd, _check_src, _index_tensor, _like, along_dim_index, pad_to
from .promote import check_dim

_UFUNC = {"sum": np.add, "mean": np.add, "prod": np.multiply, "amax": np.maximum, "amin": np.minimum}
_IDENTITY = {"sum": 0.0, "mean": 0.0, "prod": 1.0, "amax": -np.inf, "amin": np.inf}


def _const(array, dtype) -> Tensor:
    return Tensor._wrap(np.asarray(array, dtype=dtype), False)


class ScatterReduce(Function):
    def forward(self, a, index, src, dim, reduce, include_self):
        if reduce not in _UFUNC:
            raise ValueError(f"scatter_reduce: reduce must be one of {sorted(_UFUNC)}, got {reduce!r}")
        self.dim = check_dim("scatter_reduce", dim, a.ndim, a.shape)
        _check_src("scatter_reduce", index, src)
        self.where = along_dim_index("scatter_reduce", a.shape, index, self.dim)
        self.src_shape, self.index = src.shape, index
        values = src[tuple(slice(n) for n in index.shape)]
        self.hit = np.zeros(a.shape, dtype=bool)
        self.hit[self.where] = True  # positions that receive src
        count = np.zeros(a.shape, dtype=np.int64)
        np.add.at(count, self.where, 1)
        self.count = count + (1 if include_self else 0) * self.hit + ~self.hit  # values met (>= 1)
        out = a.astype(np.result_type(a, src), copy=True)
        if not include_self:
            out[self.hit] = _IDENTITY[reduce] if out.dtype.kind == "f" else (
                np.iinfo(out.dtype).min if reduce == "amax" else np.iinfo(out.dtype).max if reduce == "amin"
                else int(_IDENTITY[reduce]))
        _UFUNC[reduce].at(out, self.where, values)
        if reduce == "mean":
            out = np.where(self.hit, out / self.count, out).astype(out.dtype) if out.dtype.kind == "f" \
                else np.where(self.hit, out // self.count, out)
        return out

    def backward_graph(self, g):
        a, index, src = self.parents
        reduce, include_self = self.options["reduce"], self.options["include_self"]
        self_in = ~self.hit | include_self  # where self's value took part in the result
        values = src[tuple(slice(n) for n in self.index.shape)]
        if reduce in ("sum", "mean"):
            scale = g / _const(self.count, g.dtype) if reduce == "mean" else g
            ga = scale * _const(self_in, g.dtype)
            gvalues = Gather.apply(scale, index, dim=self.dim)
        elif reduce == "prod":
            out = ScatterReduce.apply(a, index, src, **self.options)
            ga = (g * out / a) * _const(self_in, g.dtype)
            gvalues = Gather.apply(g * out, index, dim=self.dim) / values
        else:  # amax / amin: ties share evenly
            out = ScatterReduce.apply(a, index, src, **self.options).data
            self_hit = (a.data == out) & self_in
            src_hit = values.data == out[self.where]
            met = self_hit.astype(g.dtype)
            np.add.at(met, self.where, src_hit)
            share = g / _const(np.maximum(met, 1), g.dtype)
            ga = share * _const(self_hit, g.dtype)
            gvalues = Gather.apply(share, index, dim=self.dim) * _const(src_hit, g.dtype)
        gsrc = gvalues if self.src_shape == self.index.shape else pad_to(gvalues, self.src_shape)
        return ga, None, gsrc


class ScatterReduceMethods:
    """scatter_reduce (installed onto Tensor by minigrad.ops)."""

    def scatter_reduce(self, dim: int, index, src, reduce: str, *, include_self: bool = True):
        """A copy of self with src reduced ("sum", "prod", "mean", "amax", "amin") into
        [index[i][j]][j] (dim=0). Backward: see scatter_reduce.py (ties in amax/amin share)."""
        return ScatterReduce.apply(self, _index_tensor(index), _like(src, self), dim=dim,
                                   reduce=reduce, include_self=include_self)


__all__ = ["ScatterReduce", "ScatterReduceMethods", "ScatterAdd"]
