"""PyTorch's dtype names as NumPy scalar types: `minigrad.float32`, `minigrad.long`, ...

    minigrad.zeros(3, dtype=minigrad.long)      # int64
    x.to(minigrad.float64)                       # or x.double()

`minigrad.float` is float32 and `minigrad.int` int32, as in PyTorch (not Python's float/int).
"""
from __future__ import annotations

import numpy as np

float32 = float = np.float32  # noqa: A001 (PyTorch's names shadow the builtins on purpose)
float64 = double = np.float64
float16 = half = np.float16
int64 = long = np.int64
int32 = int = np.int32  # noqa: A001
int16 = short = np.int16
int8 = np.int8
uint8 = np.uint8
bool = np.bool_  # noqa: A001

_TENSOR_TYPE_NAMES = {
    "float32": "FloatTensor", "float64": "DoubleTensor", "float16": "HalfTensor",
    "int64": "LongTensor", "int32": "IntTensor", "int16": "ShortTensor", "int8": "CharTensor",
    "uint8": "ByteTensor", "bool": "BoolTensor",
}


def tensor_type_name(dtype) -> str:
    """PyTorch's legacy type string for `dtype`, e.g. 'minigrad.FloatTensor' for float32."""
    name = np.dtype(dtype).name
    return f"minigrad.{_TENSOR_TYPE_NAMES.get(name, name)}"


def get_default_dtype():
    """The dtype of tensors made from Python floats: float32."""
    return np.float32


__all__ = ["float32", "float", "float64", "double", "float16", "half", "int64", "long", "int32",
           "int", "int16", "short", "int8", "uint8", "bool", "get_default_dtype"]
