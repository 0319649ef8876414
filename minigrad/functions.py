"""PyTorch's function forms of the Tensor methods: `minigrad.exp(x)` is `x.exp()`,
`minigrad.gather(x, dim, index)` is `x.gather(dim, index)`, and so on (each name below is the
very method, so its documentation is the method's). Creation functions (`zeros`, `arange`,
...) live in ops/creation.py; `cat`, `stack`, `where` in ops/__init__.py.
"""
from __future__ import annotations

from .tensor import Tensor
from . import ops  # noqa: F401 (installs the methods read below)
from .ops.creation import *  # noqa: F401,F403
from .ops.creation import __all__ as _creation_names
from .ops.einsum import einsum

_METHOD_FORMS = """
add sub mul div multiply divide true_divide pow matmul neg negative exp log sqrt tanh sigmoid
relu abs absolute sum mean var std var_mean std_mean reshape transpose permute swapaxes swapdims
split masked_fill clone eq ne lt le gt ge equal isclose allclose isnan isinf isposinf isneginf
isfinite any all count_nonzero logical_and logical_or logical_xor logical_not bitwise_and
bitwise_or bitwise_xor bitwise_not bitwise_left_shift bitwise_right_shift max min amax amin
argmax argmin sort argsort msort topk gather scatter scatter_add index_select index_add
take_along_dim take masked_select nonzero argwhere squeeze unsqueeze flatten unflatten
broadcast_to tile repeat_interleave flip fliplr flipud roll chunk tensor_split unbind select
narrow movedim moveaxis tril triu sin cos tan asin acos atan sinh cosh asinh acosh atanh arcsin
arccos arctan arcsinh arccosh arctanh log2 log10 log1p exp2 expm1 rsqrt reciprocal square erf
erfc erfinv sign sgn floor ceil trunc fix round frac clamp clip clamp_min clamp_max fmod
remainder floor_divide lerp copysign logaddexp atan2 arctan2 cumsum cumprod cummax cummin
logcumsumexp prod logsumexp norm diagonal diag diag_embed trace scatter_reduce
""".split()

globals().update({name: getattr(Tensor, name) for name in _METHOD_FORMS})

__all__ = list(_METHOD_FORMS) + [n for n in _creation_names if n not in _METHOD_FORMS] + ["einsum"]
