"""Read (and write) TensorFlow checkpoints without TensorFlow: the "tensor bundle" V2 format.

OpenAI's GPT-2 release is such a checkpoint, `model.ckpt.*` next to `hparams.json`:

- `model.ckpt.index`: a LevelDB table (see `leveldb_table.py`) mapping each variable name to
  a `BundleEntryProto` (tensorflow/core/protobuf/tensor_bundle.proto):
      1 dtype (DataType enum, DT_FLOAT = 1)   2 shape (TensorShapeProto: repeated dim {1 size})
      3 shard_id   4 offset   5 size (bytes)   6 crc32c (fixed32, masked CRC-32C of the bytes)
  Proto3 leaves out zeros: a missing shard_id or offset means 0. The entry with the empty
  key "" is a `BundleHeaderProto`: 1 num_shards, 2 endianness (0 little), 3 version.
- `model.ckpt.data-00000-of-00001`: the raw tensors, C order, back to back.

`TFCheckpoint(path)` reads the index eagerly (a few KB) and each tensor lazily as a
read-only `np.memmap` view of the data file, after checking its size against the file.
`write_tf_checkpoint(prefix, tensors)` writes a bundle TensorFlow itself can read (used by
the tests to make tiny checkpoints; the index matches TensorFlow's byte for byte).
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import numpy as np

from minigrad.untrusted import short_repr

from . import crc32c
from ._wire import field_bytes, field_fixed32, field_varint, parse_fields, to_int64
from .errors import WeightsError
from .leveldb_table import read_table, write_table

# tensorflow/core/framework/types.proto: enum value -> (name, little-endian NumPy dtype)
TF_DTYPES: dict[int, tuple[str, str]] = {
    1: ("DT_FLOAT", "<f4"), 2: ("DT_DOUBLE", "<f8"), 3: ("DT_INT32", "<i4"), 4: ("DT_UINT8", "u1"),
    5: ("DT_INT16", "<i2"), 6: ("DT_INT8", "i1"), 9: ("DT_INT64", "<i8"), 10: ("DT_BOOL", "?"),
    14: ("DT_BFLOAT16", "<u2"),  # raw bits; converted to float32 by `bfloat16_to_float32`
    17: ("DT_UINT16", "<u2"), 19: ("DT_HALF", "<f2"), 22: ("DT_UINT32", "<u4"), 23: ("DT_UINT64", "<u8"),
}
TF_DTYPE_NAMES = {7: "DT_STRING", 8: "DT_COMPLEX64", 18: "DT_COMPLEX128", 20: "DT_RESOURCE", 21: "DT_VARIANT"}
NUMPY_TO_TF = {np.dtype(code): number for number, (name, code) in TF_DTYPES.items() if name != "DT_BFLOAT16"}


@dataclass(frozen=True)
class BundleEntry:
    """Where one tensor lives: dtype enum, shape, and its byte range in a data shard."""
    name: str
    dtype: int
    shape: tuple[int, ...]
    shard_id: int
    offset: int
    size: int
    crc32c: int | None  # masked, as stored; None when absent
    sliced: bool  # a partitioned variable (stored as slices): not supported

    @property
    def dtype_name(self) -> str:
        return TF_DTYPES.get(self.dtype, (TF_DTYPE_NAMES.get(self.dtype, f"enum {self.dtype}"),))[0]


def bfloat16_to_float32(bits: np.ndarray) -> np.ndarray:
    """bfloat16 values given as their uint16 bit patterns -> float32 (exact: bf16 is the top half)."""
    return (bits.astype(np.uint32) << 16).view(np.float32)


# protobuf wire types of the fields read (0 varint, 2 length-delimited, 5 fixed32)
ENTRY_WIRE_TYPES = {1: 0, 2: 2, 3: 0, 4: 0, 5: 0, 6: 5, 7: 2}  # BundleEntryProto
SHAPE_WIRE_TYPES = {2: 2, 3: 0}  # TensorShapeProto: dim, unknown_rank
DIM_WIRE_TYPES = {1: 0, 2: 2}  # TensorShapeProto.Dim: size, name
HEADER_WIRE_TYPES = {1: 0, 2: 0, 3: 2}  # BundleHeaderProto: num_shards, endianness, version


def _parse_shape(payload: bytes, what: str) -> tuple[int, ...]:
    dims = []
    for number, _, value in parse_fields(payload, f"{what} shape", SHAPE_WIRE_TYPES):
        if number == 2:  # repeated Dim { int64 size = 1; string name = 2; }
            size = 0
            for dim_number, _, dim_value in parse_fields(value, f"{what} dimension", DIM_WIRE_TYPES):
                if dim_number == 1:
                    size = to_int64(dim_value)
            if size < 0:
                raise WeightsError(f"{what}: unknown dimension size {size} in a stored tensor shape")
            dims.append(size)
        elif number == 3 and value:
            raise WeightsError(f"{what}: shape of unknown rank in a stored tensor")
    return tuple(dims)


def parse_bundle_entry(name: str, payload: bytes, index_path: str) -> BundleEntry:
    """Decode one BundleEntryProto (missing fields are proto3 zeros)."""
    what = f"{index_path}: entry {name!r}"
    values = {"dtype": 0, "shape": (), "shard_id": 0, "offset": 0, "size": 0, "crc32c": None, "sliced": False}
    for number, _, value in parse_fields(payload, what, ENTRY_WIRE_TYPES):
        if number == 1:
            values["dtype"] = value
        elif number == 2:
            values["shape"] = _parse_shape(value, what)
        elif number == 3:
            values["shard_id"] = value
        elif number == 4:
            values["offset"] = to_int64(value)
        elif number == 5:
            values["size"] = to_int64(value)
        elif number == 6:
            values["crc32c"] = value
        elif number == 7:
            values["sliced"] = True
    if values["offset"] < 0 or values["size"] < 0:
        raise WeightsError(f"{what}: negative offset {values['offset']} or size {values['size']}")
    return BundleEntry(name=name, **values)


def resolve_prefix(path: str | os.PathLike) -> Path:
    """The checkpoint prefix (`.../model.ckpt`) for a folder, a prefix, or its .index file.

    For a folder: the `checkpoint` state file's `model_checkpoint_path` (relative to the
    folder, or absolute if it still exists), else the single `*.index` file in it.
    """
    path = Path(path)
    if path.suffix == ".index" and path.is_file():
        return path.with_suffix("")
    if not path.is_dir():
        if Path(str(path) + ".index").is_file():
            return path
        raise FileNotFoundError(f"no TensorFlow checkpoint at {path}: expected a folder, a prefix "
                                f"with {path.name}.index next to it, or an .index file")
    state = path / "checkpoint"
    if state.is_file():
        for line in state.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("model_checkpoint_path:"):
                recorded = line.split(":", 1)[1].strip().strip('"')
                for candidate in (Path(recorded), path / recorded, path / Path(recorded).name):
                    if Path(str(candidate) + ".index").is_file():
                        return candidate
    indexes = sorted(path.glob("*.index"))
    if len(indexes) == 1:
        return indexes[0].with_suffix("")
    if not indexes:
        raise FileNotFoundError(f"{path}: no TensorFlow checkpoint (*.index file) in this folder")
    raise WeightsError(f"{path}: several checkpoints ({', '.join(p.name for p in indexes)}) and no "
                       "`checkpoint` file saying which one to use; pass the prefix instead")


class TFCheckpoint:
    """A TensorFlow tensor-bundle checkpoint, read lazily.

        ckpt = TFCheckpoint("gpt2/124M")          # folder, prefix or .index path
        ckpt.keys()                                # ['model/h0/attn/c_attn/b', ...]
        ckpt["model/wte"]                          # read-only memmap view, shape (50257, 768)

    verify_crc: True (default; None means the same) checks every tensor's CRC-32C the first
    time it is read (~1 GB/s on 2 cores: GPT-2 124M in about half a second); False checks
    sizes only.
    """

    def __init__(self, path: str | os.PathLike, verify_crc: bool | None = True):
        self.prefix = resolve_prefix(path)
        self.index_path = Path(str(self.prefix) + ".index")
        self.verify_crc = verify_crc is not False
        self._verified: set[str] = set()
        data = self.index_path.read_bytes()
        self.entries: dict[str, BundleEntry] = {}
        self.num_shards = 1
        header_seen = False
        for key, value in read_table(data, str(self.index_path)):
            if key == b"":
                header_seen = True
                self._parse_header(value)
                continue
            name = key.decode("utf-8", errors="replace")
            if name in self.entries:
                raise WeightsError(f"{self.index_path}: tensor {short_repr(name)} is listed twice")
            self.entries[name] = parse_bundle_entry(name, value, str(self.index_path))
        if not header_seen:
            raise WeightsError(f"{self.index_path}: no bundle header (entry with the empty key); "
                               "this LevelDB table is not a TensorFlow checkpoint index")
        self._shards: dict[int, np.memmap | np.ndarray] = {}

    def _parse_header(self, payload: bytes) -> None:
        for number, _, value in parse_fields(payload, f"{self.index_path}: bundle header", HEADER_WIRE_TYPES):
            if number == 1:
                self.num_shards = value
            elif number == 2 and value != 0:
                raise WeightsError(f"{self.index_path}: big-endian checkpoint (endianness {value}) is not supported")
        if self.num_shards < 1:
            raise WeightsError(f"{self.index_path}: bundle header says {self.num_shards} data shards")

    def data_path(self, shard_id: int = 0) -> Path:
        """The data file of a shard: `<prefix>.data-00000-of-00001`."""
        return Path(f"{self.prefix}.data-{shard_id:05d}-of-{self.num_shards:05d}")

    def keys(self) -> list[str]:
        return list(self.entries)

    def __contains__(self, name: str) -> bool:
        return name in self.entries

    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self):
        return iter(self.entries)

    def shape(self, name: str) -> tuple[int, ...]:
        return self._entry(name).shape

    def _entry(self, name: str) -> BundleEntry:
        if name not in self.entries:
            raise KeyError(f"{self.index_path}: no tensor {name!r} (it has {len(self.entries)} tensors)")
        return self.entries[name]

    def _shard(self, shard_id: int):
        if shard_id not in self._shards:
            path = self.data_path(shard_id)
            if not path.is_file():
                raise WeightsError(f"{path}: data file missing (the index {self.index_path.name} "
                                   f"lists tensors in shard {shard_id} of {self.num_shards})")
            size = path.stat().st_size
            self._shards[shard_id] = (np.memmap(path, dtype=np.uint8, mode="r") if size
                                      else np.zeros(0, dtype=np.uint8))
        return self._shards[shard_id]

    def __getitem__(self, name: str) -> np.ndarray:
        entry = self._entry(name)
        if entry.sliced:
            raise WeightsError(f"{self.index_path}: tensor {name!r} is stored as partitioned slices; not supported")
        if entry.dtype not in TF_DTYPES:
            raise WeightsError(f"{self.index_path}: tensor {name!r} has dtype {entry.dtype_name}, "
                               f"which cannot be read as a NumPy array")
        dtype = np.dtype(TF_DTYPES[entry.dtype][1])
        expected = math.prod(entry.shape) * dtype.itemsize  # Python ints: no wrap-around
        if entry.size != expected:
            raise WeightsError(f"{self.index_path}: tensor {name!r} ({entry.dtype_name}, shape {list(entry.shape)}) "
                               f"should take {expected} bytes but the index says {entry.size}")
        if not 0 <= entry.shard_id < self.num_shards:
            raise WeightsError(f"{self.index_path}: tensor {short_repr(name)} is in shard {entry.shard_id}, "
                               f"but the header says there are {self.num_shards} shards")
        shard = self._shard(entry.shard_id)
        path = self.data_path(entry.shard_id)
        if entry.offset + entry.size > shard.size:
            available = max(0, shard.size - entry.offset)
            raise WeightsError(f"{path}: truncated data file: tensor {name!r} needs bytes "
                               f"[{entry.offset}, {entry.offset + entry.size}) = {entry.size} bytes, "
                               f"but the file has {shard.size} bytes ({available} of them for this tensor)")
        raw = shard[entry.offset:entry.offset + entry.size]
        if self.verify_crc and entry.crc32c is not None and name not in self._verified:
            actual = crc32c.crc32c_numpy(raw)
            if crc32c.mask(actual) != entry.crc32c:
                raise WeightsError(f"{path}: CRC-32C mismatch for tensor {name!r} (stored 0x{crc32c.unmask(entry.crc32c):08x}, "
                                   f"computed 0x{actual:08x}); the data file is corrupt "
                                   f"(load with verify_crc=False to read it anyway)")
            self._verified.add(name)
        array = raw.view(dtype).reshape(entry.shape)
        if entry.dtype == 14:
            array = bfloat16_to_float32(array)
        return array

    def get(self, name: str, default=None):
        return self[name] if name in self.entries else default


def write_tf_checkpoint(prefix: str | os.PathLike, tensors: Mapping[str, np.ndarray],
                        block_size: int = 4096) -> tuple[Path, Path]:
    """Write `tensors` as a one-shard tensor bundle `<prefix>.index` + `<prefix>.data-00000-of-00001`.

    Names are stored sorted, data back to back in that order, each with its masked CRC-32C,
    exactly as TensorFlow's BundleWriter does. Returns the two paths.
    """
    prefix = Path(prefix)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    data_path = Path(f"{prefix}.data-00000-of-00001")
    index_path = Path(f"{prefix}.index")
    entries = [(b"", field_varint(1, 1) + field_bytes(3, field_varint(1, 1)))]  # num_shards 1, producer 1
    try:
        _write_bundle_files(tensors, data_path, index_path, entries, block_size)
    except BaseException:  # a full disk, Ctrl-C: no partial file is left behind
        for path in (data_path, index_path):
            Path(str(path) + ".tmp").unlink(missing_ok=True)
        raise
    return index_path, data_path


def _write_bundle_files(tensors: Mapping[str, np.ndarray], data_path: Path, index_path: Path,
                        entries: list, block_size: int) -> None:
    offset = 0
    with open(str(data_path) + ".tmp", "wb") as data_file:
        for name in sorted(tensors, key=lambda n: n.encode("utf-8")):
            array = np.asarray(tensors[name])
            little = array.dtype.newbyteorder("<") if array.dtype.byteorder == ">" else array.dtype
            array = np.asarray(array, dtype=little, order="C")
            if array.dtype not in NUMPY_TO_TF:
                raise TypeError(f"write_tf_checkpoint: tensor {name!r} has dtype {array.dtype}, "
                                f"supported: {sorted(str(d) for d in NUMPY_TO_TF)}")
            raw = array.tobytes()
            shape = b"".join(field_bytes(2, field_varint(1, dim) if dim else b"") for dim in array.shape)
            entry = field_varint(1, NUMPY_TO_TF[array.dtype]) + field_bytes(2, shape)
            if offset:
                entry += field_varint(4, offset)
            if raw:
                entry += field_varint(5, len(raw))
            entry += field_fixed32(6, crc32c.mask(crc32c.crc32c_numpy(raw)))
            entries.append((name.encode("utf-8"), entry))
            data_file.write(raw)
            offset += len(raw)
    table = write_table(entries, block_size=block_size)
    with open(str(index_path) + ".tmp", "wb") as index_file:
        index_file.write(table)
    os.replace(str(data_path) + ".tmp", data_path)
    os.replace(str(index_path) + ".tmp", index_path)
