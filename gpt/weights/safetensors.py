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
import math
import os
import struct
from pathlib import Path
from typing import Mapping

import numpy as np

from minigrad.untrusted import loads_json, short_repr

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
        header = loads_json(raw_header, f"{self.path}: header", WeightsError,
                            object_pairs_hook=self._unique_names)
        if not isinstance(header, dict):
            raise WeightsError(f"{self.path}: header is a JSON {type(header).__name__}, expected an object")
        self.metadata: dict[str, str] = header.pop("__metadata__", None) or {}
        if not isinstance(self.metadata, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in self.metadata.items()):
            raise WeightsError(f"{self.path}: __metadata__ must map strings to strings, got "
                               f"{short_repr(self.metadata)}")
        self.data_start = 8 + header_size
        self.data_size = file_size - self.data_start
        self.entries: dict[str, tuple[str, tuple[int, ...], int, int]] = {}
        for name, info in header.items():
            self.entries[name] = self._check_entry(name, info)
        self._check_tiling()
        self._mmap = None

    def _unique_names(self, pairs: list) -> dict:
        """json object hook: a name given twice in one object is an error, not "last wins"."""
        names = [name for name, _ in pairs]
        if len(set(names)) != len(names):
            twice = next(name for name in names if names.count(name) > 1)
            raise WeightsError(f"{self.path}: the header names {short_repr(twice)} twice")
        return dict(pairs)

    def _check_tiling(self) -> None:
        """The tensors' byte ranges must tile the data exactly, as the reference reader
        demands: no gap, no overlap (two names sharing bytes), nothing after the last."""
        cursor = 0
        previous = None
        for name, (_, _, begin, end) in sorted(self.entries.items(), key=lambda item: item[1][2:]):
            if begin != cursor:
                what = (f"overlaps {short_repr(previous)} (which ends at {cursor})" if begin < cursor
                        else f"leaves a gap after byte {cursor}")
                raise WeightsError(f"{self.path}: tensor {short_repr(name)} at data_offsets "
                                   f"[{begin}, {end}] {what}; the header is corrupt or tampered")
            cursor, previous = end, name
        if cursor != self.data_size:
            raise WeightsError(f"{self.path}: {self.data_size - cursor:,} bytes follow the last "
                               f"tensor (its data ends at {cursor:,} of {self.data_size:,}); the "
                               f"file is corrupt or not one safetensors file")

    def _check_entry(self, name: str, info) -> tuple[str, tuple[int, ...], int, int]:
        where = f"{self.path}: tensor {short_repr(name)}"
        if not isinstance(info, dict) or not {"dtype", "shape", "data_offsets"} <= info.keys():
            raise WeightsError(f"{where}: header entry must have dtype, shape and data_offsets, got {info!r}")
        dtype, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
        if dtype not in DTYPES:
            raise WeightsError(f"{where}: dtype {dtype!r} is not supported (supported: {', '.join(DTYPES)})")
        if (not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape)
                or not isinstance(offsets, list) or len(offsets) != 2
                or not all(type(o) is int for o in offsets) or not 0 <= offsets[0] <= offsets[1]):
            raise WeightsError(f"{where}: malformed shape {short_repr(shape)} or data_offsets "
                               f"{short_repr(offsets)}")
        begin, end = offsets
        expected = math.prod(shape) * np.dtype(DTYPES[dtype]).itemsize  # Python ints: no wrap-around
        if end - begin != expected:
            raise WeightsError(f"{where}: {dtype} shape {short_repr(shape)} needs {expected} bytes, "
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
    try:
        with open(tmp, "wb") as handle:
            handle.write(struct.pack("<Q", len(raw_header)))
            handle.write(raw_header)
            for array in arrays:
                handle.write(np.ascontiguousarray(array).data)  # no extra copy of C-order arrays
        os.replace(tmp, path)
    except BaseException:  # a full disk, Ctrl-C: no partial file is left behind
        tmp.unlink(missing_ok=True)
        raise
    return path
