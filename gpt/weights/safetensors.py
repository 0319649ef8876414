"""Read and write `.safetensors` files with NumPy alone (no torch, no safetensors package).

Format (https://github.com/huggingface/safetensors):

    [8 bytes: N, unsigned little-endian] [N bytes: JSON header] [raw tensor bytes]

The header maps each tensor name to `{"dtype": "F32", "shape": [768, 2304],
"data_offsets": [begin, end]}`, offsets relative to the first byte after the header; an
optional `"__metadata__"` holds string -> string pairs. Data is little-endian, C order.
Reading memory-maps the file once and returns read-only views into it, so a 500 MB file
opens instantly and only the pages touched are read. BF16 (no NumPy dtype) is converted to
float32 on access: a bfloat16 is the upper 16 bits of a float32.
"""
from __future__ import annotations

import json
import os
import struct
from pathlib import Path
from typing import Mapping

import numpy as np

from .errors import WeightsError
from .tf_checkpoint import bfloat16_to_float32

# safetensors dtype string -> NumPy dtype (BF16 is read as uint16 bits, then widened)
DTYPES: dict[str, str] = {
    "F64": "<f8", "F32": "<f4", "F16": "<f2", "BF16": "<u2",
    "I64": "<i8", "I32": "<i4", "I16": "<i2", "I8": "i1",
    "U64": "<u8", "U32": "<u4", "U16": "<u2", "U8": "u1", "BOOL": "?",
}
NUMPY_TO_SAFETENSORS = {np.dtype(code): name for name, code in DTYPES.items() if name not in ("BF16",)}
MAX_HEADER_BYTES = 100 << 20  # the reference implementation's limit


class SafeTensorsFile:
    """A `.safetensors` file opened for lazy, memory-mapped reading.

        weights = SafeTensorsFile("model.safetensors")
        weights.keys()                       # tensor names in file order
        weights.metadata                     # {"format": "pt"}
        weights["wte.weight"]                # read-only view, shape (50257, 768), float32
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        file_size = self.path.stat().st_size
        if file_size < 8:
            raise WeightsError(f"{self.path}: {file_size} bytes is too short for a safetensors file "
                               "(it starts with an 8-byte header length)")
        with open(self.path, "rb") as handle:
            header_size = struct.unpack("<Q", handle.read(8))[0]
            if header_size > MAX_HEADER_BYTES or 8 + header_size > file_size:
                raise WeightsError(f"{self.path}: header length {header_size} does not fit (file has "
                                   f"{file_size} bytes, limit {MAX_HEADER_BYTES}); not a safetensors file or truncated")
            raw_header = handle.read(header_size)
        try:
            header = json.loads(raw_header.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise WeightsError(f"{self.path}: header is not valid JSON ({error}); not a safetensors file") from None
        if not isinstance(header, dict):
            raise WeightsError(f"{self.path}: header is a JSON {type(header).__name__}, expected an object")
        self.metadata: dict[str, str] = header.pop("__metadata__", None) or {}
        self.data_start = 8 + header_size
        self.data_size = file_size - self.data_start
        self.entries: dict[str, tuple[str, tuple[int, ...], int, int]] = {}
        for name, info in header.items():
            self.entries[name] = self._check_entry(name, info)
        self._mmap = None

    def _check_entry(self, name: str, info) -> tuple[str, tuple[int, ...], int, int]:
        where = f"{self.path}: tensor {name!r}"
        if not isinstance(info, dict) or not {"dtype", "shape", "data_offsets"} <= info.keys():
            raise WeightsError(f"{where}: header entry must have dtype, shape and data_offsets, got {info!r}")
        dtype, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
        if dtype not in DTYPES:
            raise WeightsError(f"{where}: dtype {dtype!r} is not supported (supported: {', '.join(DTYPES)})")
        if (not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape)
                or not isinstance(offsets, list) or len(offsets) != 2
                or not all(isinstance(o, int) for o in offsets) or not 0 <= offsets[0] <= offsets[1]):
            raise WeightsError(f"{where}: malformed shape {shape!r} or data_offsets {offsets!r}")
        begin, end = offsets
        expected = int(np.prod(shape, dtype=np.int64)) * np.dtype(DTYPES[dtype]).itemsize
        if end - begin != expected:
            raise WeightsError(f"{where}: {dtype} shape {shape} needs {expected} bytes, "
                               f"but data_offsets [{begin}, {end}] hold {end - begin}")
        if end > self.data_size:
            raise WeightsError(f"{self.path}: truncated file: tensor {name!r} needs data bytes [{begin}, {end}) "
                               f"but only {self.data_size} bytes follow the header "
                               f"(file is {self.data_start + self.data_size} bytes, expected at least {self.data_start + end})")
        return dtype, tuple(shape), begin, end

    def keys(self) -> list[str]:
        return list(self.entries)

    def __contains__(self, name: str) -> bool:
        return name in self.entries

    def __iter__(self):
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def shape(self, name: str) -> tuple[int, ...]:
        return self.entries[name][1]

    def dtype(self, name: str) -> str:
        """The stored dtype string ("F32", "BF16", ...)."""
        return self.entries[name][0]

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self.entries:
            raise KeyError(f"{self.path}: no tensor {name!r} (it has {len(self.entries)} tensors)")
        dtype, shape, begin, end = self.entries[name]
        if self._mmap is None:
            self._mmap = (np.memmap(self.path, dtype=np.uint8, mode="r", offset=self.data_start)
                          if self.data_size else np.zeros(0, dtype=np.uint8))
        array = self._mmap[begin:end].view(DTYPES[dtype]).reshape(shape)
        return bfloat16_to_float32(array) if dtype == "BF16" else array

    def get(self, name: str, default=None):
        return self[name] if name in self.entries else default


def load_file(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """All tensors of a safetensors file as a dict of read-only memory-mapped arrays."""
    weights = SafeTensorsFile(path)
    return {name: weights[name] for name in weights}


def float32_to_bfloat16_bits(array: np.ndarray) -> np.ndarray:
    """float32 -> bfloat16 bit patterns (uint16), rounding to nearest even; NaN stays NaN."""
    bits = np.asarray(array, dtype=np.float32, order="C").view(np.uint32)
    rounded = (bits + (np.uint32(0x7FFF) + ((bits >> 16) & 1))) >> 16
    nan = np.isnan(array)
    return np.where(nan, (bits >> 16) | np.uint32(0x40), rounded).astype(np.uint16)


def save_file(tensors: Mapping[str, np.ndarray], path: str | os.PathLike,
              metadata: Mapping[str, str] | None = None, bf16: bool = False) -> Path:
    """Write `tensors` (name -> ndarray) as a safetensors file, atomically (tmp file + rename).

    Tensors are stored sorted by name, back to back; the JSON header is padded with spaces to
    a multiple of 8 bytes so every tensor stays 8-byte aligned. `bf16=True` stores float32
    arrays as BF16 (half the size, ~3 significant digits).
    """
    path = Path(path)
    header: dict[str, object] = {}
    if metadata:
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
            raise TypeError("save_file: metadata must map str to str")
        header["__metadata__"] = dict(metadata)
    arrays = []
    offset = 0
    for name in sorted(tensors):
        array = np.asarray(tensors[name])
        if bf16 and array.dtype == np.float32:
            array, dtype_name = float32_to_bfloat16_bits(array), "BF16"
        else:
            little = array.dtype.newbyteorder("<") if array.dtype.byteorder == ">" else array.dtype
            array = np.asarray(array, dtype=little)
            if array.dtype not in NUMPY_TO_SAFETENSORS:
                raise TypeError(f"save_file: tensor {name!r} has dtype {array.dtype}, supported: "
                                f"{sorted(str(d) for d in NUMPY_TO_SAFETENSORS)}")
            dtype_name = NUMPY_TO_SAFETENSORS[array.dtype]
        header[name] = {"dtype": dtype_name, "shape": list(array.shape),
                        "data_offsets": [offset, offset + array.nbytes]}
        arrays.append(array)
        offset += array.nbytes
    raw_header = json.dumps(header, separators=(",", ":")).encode("utf-8")
    raw_header += b" " * (-len(raw_header) % 8)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as handle:
        handle.write(struct.pack("<Q", len(raw_header)))
        handle.write(raw_header)
        for array in arrays:
            handle.write(np.ascontiguousarray(array).data)  # no extra copy of C-order arrays
    os.replace(tmp, path)
    return path
