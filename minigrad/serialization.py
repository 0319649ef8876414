"""`minigrad.save(obj, path)` / `minigrad.load(path)`: state dicts and checkpoints in one `.npz`.

    minigrad.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "step": 100},
                  "run/checkpoint.npz")
    checkpoint = minigrad.load("run/checkpoint.npz")

What can be saved: nested dicts (str, int, float, bool or None keys; OrderedDict stays
OrderedDict), lists, tuples, ndarrays and NumPy scalars of any non-object dtype (kept exactly,
bit for bit: uint16 token arrays, float32, int64, ...), Tensors (loaded back as Tensors,
`requires_grad` kept), Python ints, floats (NaN and inf too), bools, strings and None.
No code is pickled: every array is one `.npy` entry of the zip archive and the structure is
one JSON entry (`__minigrad__.json`) that refers to the arrays by name. Loading uses
`np.load(allow_pickle=False)`, so loading a file cannot run code.

Saving is atomic: the archive is written to a temporary file in the target's folder,
flushed and fsync'ed, then renamed over the target (`os.replace`). A crash never leaves a
half-written target; the previous file stays intact until the new one is complete. The file
gets the usual permissions (0666 minus the umask), and is never compressed.

A missing file raises FileNotFoundError; a truncated, corrupt, foreign or tampered file
raises `CheckpointError` (a ValueError) naming the file and what is wrong, after using at
most about the file's size in memory: compressed entries, raw-bytes entries, `.npy` headers
whose shape does not match their entry's size, and deeply nested structures are refused.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
import zipfile
from collections import OrderedDict

import numpy as np

from .tensor import Tensor
from .untrusted import FileFormatError, loads_json, short_repr, shorten

FORMAT = "minigrad.save"
VERSION = 1
STRUCTURE_ENTRY = "__minigrad__.json"
MAX_STRUCTURE_DEPTH = 256  # JSON levels (a nested dict takes 3): deeper is refused on load


class CheckpointError(FileFormatError):
    """A saved state cannot be used: a file given to `minigrad.load` is truncated, corrupt, or
    not a minigrad file; a checkpoint is missing, incomplete, or does not fit what it is loaded
    into. The one class for both: gpt's checkpoint folders (gpt.training.checkpoint) raise it
    too. A ValueError, as every FileFormatError."""


# ---------------------------------------------------------------- encoding to JSON + arrays
def _encode(obj, arrays: dict, where: str):
    """The JSON-able form of `obj`; its arrays go into `arrays` (name -> ndarray)."""
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, int):  # not bool (handled above)
        return obj
    if isinstance(obj, float):
        if math.isfinite(obj):
            return obj
        return {"__float__": repr(obj)}  # 'nan', 'inf', '-inf' (strict JSON has no NaN)
    if isinstance(obj, Tensor):
        name = _add_array(obj.data, arrays, where)
        return {"__tensor__": name, "requires_grad": bool(obj.requires_grad)}
    if isinstance(obj, np.ndarray):
        return {"__ndarray__": _add_array(obj, arrays, where)}
    if isinstance(obj, np.generic):
        return {"__scalar__": _add_array(np.asarray(obj), arrays, where)}
    if isinstance(obj, (list, tuple)):
        items = [_encode(item, arrays, f"{where}[{i}]") for i, item in enumerate(obj)]
        return items if isinstance(obj, list) else {"__tuple__": items}
    if isinstance(obj, dict):
        items = []
        for key, value in obj.items():
            if key is not None and not isinstance(key, (str, int, float, bool)):
                raise TypeError(f"minigrad.save: key {key!r} of {where} is a "
                                f"{type(key).__name__}; keys must be str, int, float, bool or None")
            items.append([_encode(key, arrays, where), _encode(value, arrays, f"{where}[{key!r}]")])
        tag = "__odict__" if isinstance(obj, OrderedDict) else "__dict__"
        return {tag: items}
    raise TypeError(f"minigrad.save: cannot save {where}, a {type(obj).__name__} (supported: "
                    f"dict, list, tuple, ndarray, Tensor, NumPy scalar, int, float, bool, str, None)")


def _add_array(array: np.ndarray, arrays: dict, where: str) -> str:
    if array.dtype.hasobject:
        raise TypeError(f"minigrad.save: {where} is an object array, which cannot be saved "
                        f"without pickle")
    name = f"a{len(arrays)}"
    arrays[name] = array
    return name


def _decode(obj, arrays: dict):
    if isinstance(obj, list):
        return [_decode(item, arrays) for item in obj]
    if not isinstance(obj, dict):
        return obj
    (tag, value), *rest = obj.items()
    if tag == "__ndarray__":
        return arrays[value]
    if tag == "__scalar__":
        return arrays[value][()]
    if tag == "__tensor__":
        return Tensor(arrays[value], requires_grad=obj["requires_grad"])
    if tag == "__float__":
        return float(value)
    if tag == "__tuple__":
        return tuple(_decode(item, arrays) for item in value)
    if tag in ("__dict__", "__odict__"):
        pairs = [(_decode(key, arrays), _decode(item, arrays)) for key, item in value]
        return OrderedDict(pairs) if tag == "__odict__" else dict(pairs)
    raise ValueError(f"unknown tag {tag!r}")


def _array_names(obj, found: list) -> list:
    """Every array name the structure refers to."""
    if isinstance(obj, list):
        for item in obj:
            _array_names(item, found)
    elif isinstance(obj, dict):
        for tag in ("__ndarray__", "__scalar__", "__tensor__"):
            if tag in obj:
                found.append(obj[tag])
                return found
        for value in obj.values():
            _array_names(value, found)
    return found


# ---------------------------------------------------------------- save / load
def save(obj, path) -> None:
    """Write `obj` (a state dict or a nested structure of them, see the module docstring) to
    `path` as one .npz archive, atomically. The path is used as given (no suffix added)."""
    path = os.fspath(path)
    arrays: dict = {}
    structure = {"format": FORMAT, "version": VERSION, "tree": _encode(obj, arrays, "obj")}
    header = json.dumps(structure, allow_nan=False).encode("utf-8")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"minigrad.save: folder {folder} does not exist (saving {path})")
    handle, temp_path = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(path)}.",
                                         suffix=".tmp")
    try:
        os.fchmod(handle, default_file_mode())  # mkstemp makes 0600; a saved file is 0644 as usual
        with os.fdopen(handle, "wb") as file:
            np.savez(file, **{STRUCTURE_ENTRY: np.frombuffer(header, dtype=np.uint8)}, **arrays)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp_path, path)
    except BaseException:
        if os.path.exists(temp_path):
            os.remove(temp_path)
        raise
    fsync_path(folder)


def current_umask() -> int:
    """The process's umask (the permission bits new files and folders do not get)."""
    umask = os.umask(0o022)  # the only portable way to read the umask is to set it...
    os.umask(umask)  # ...and put it back
    return umask


def default_file_mode() -> int:
    """The permissions `open(path, "w")` would give a new file: 0o666 minus the umask."""
    return 0o666 & ~current_umask()


def file_sha256(path) -> str:
    """The hex SHA-256 of a file's bytes, read in 4 MiB blocks (bounded memory on any size)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def fsync_path(path) -> None:
    """fsync a file or a folder, e.g. to make a rename itself durable (best effort: not every
    platform can open a folder)."""
    try:
        descriptor = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def load(path):
    """Read back what `save` wrote: the same structure, arrays with their exact dtypes.

    Memory stays bounded by the file's size whatever the file says: every entry must be
    stored uncompressed (as `save` writes it) and fit in the file, every `.npy` header's
    shape must account for exactly the bytes of its entry, and the structure's JSON nesting
    is bounded. Anything else is a CheckpointError naming the file.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"minigrad.load: no such file: {path}")
    if os.path.isdir(path):
        raise IsADirectoryError(f"minigrad.load: {path} is a folder, not a file")
    if not zipfile.is_zipfile(path):
        size = os.path.getsize(path)
        raise CheckpointError(f"minigrad.load: {path} is not a minigrad checkpoint: not a zip/.npz "
                              f"archive ({size} bytes; truncated, corrupt or another format)")
    try:
        with zipfile.ZipFile(path) as archive:
            names = sorted(info.filename.removesuffix(".npy") for info in archive.infolist())
            if STRUCTURE_ENTRY not in names:
                shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
                raise CheckpointError(
                    f"minigrad.load: {path} is a .npz archive but not a minigrad checkpoint: it "
                    f"has no '{STRUCTURE_ENTRY}' entry (entries: {shorten(shown) or 'none'}); "
                    f"use numpy.load for plain .npz files")
            entries = _check_entries(archive, path)
            raw = _read_npy(archive, entries[STRUCTURE_ENTRY], path)
            if raw.dtype != np.uint8 or raw.ndim != 1:
                raise CheckpointError(f"minigrad.load: {path}: the structure entry is a {raw.dtype} "
                                      f"array of shape {raw.shape}, expected uint8 bytes")
            structure = loads_json(raw.tobytes(), f"minigrad.load: {path}: structure entry",
                                   CheckpointError, max_depth=MAX_STRUCTURE_DEPTH)
            if not isinstance(structure, dict) or structure.get("format") != FORMAT:
                raise CheckpointError(f"minigrad.load: {path}: the structure entry does not "
                                      f"describe a minigrad checkpoint")
            if structure.get("version") != VERSION:
                raise CheckpointError(f"minigrad.load: {path} has format version "
                                      f"{short_repr(structure.get('version'))}, this minigrad "
                                      f"reads version {VERSION}")
            if "tree" not in structure:
                raise CheckpointError(f"minigrad.load: {path}: the structure entry has no 'tree'")
            wanted = _array_names(structure["tree"], [])
            absent = [name for name in wanted if not isinstance(name, str) or name not in entries]
            if absent:
                raise CheckpointError(f"minigrad.load: {path} lacks the array entries "
                                      f"{short_repr(absent[:5])} its structure refers to (corrupt file)")
            arrays = {name: _read_npy(archive, entries[name], path) for name in wanted}
    except CheckpointError:
        raise
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError, UnicodeDecodeError,
            zipfile.LargeZipFile, NotImplementedError) as error:
        raise CheckpointError(f"minigrad.load: {path} is truncated or corrupt: "
                              f"{type(error).__name__}: {shorten(error)}") from error
    try:
        return _decode(structure["tree"], arrays)
    except (ValueError, KeyError, TypeError, AttributeError, IndexError) as error:
        raise CheckpointError(f"minigrad.load: {path}: malformed structure entry "
                              f"({type(error).__name__}: {shorten(error)})") from error


def _check_entries(archive: zipfile.ZipFile, path: str) -> dict:
    """Array name -> ZipInfo, after checking that every entry is an uncompressed `.npy` file
    that fits in the archive (so reading it cannot take more memory than the file has)."""
    archive_size = os.path.getsize(path)
    entries: dict = {}
    for info in archive.infolist():
        if not info.filename.endswith(".npy"):
            raise CheckpointError(f"minigrad.load: {path}: entry {short_repr(info.filename)} is not "
                                  f"an .npy array (raw bytes are not accepted)")
        name = info.filename[:-len(".npy")]
        if name in entries:
            raise CheckpointError(f"minigrad.load: {path}: entry {short_repr(info.filename)} "
                                  f"appears twice (corrupt or tampered file)")
        if info.compress_type != zipfile.ZIP_STORED:
            raise CheckpointError(f"minigrad.load: {path}: entry {short_repr(info.filename)} is "
                                  f"compressed (method {info.compress_type}); minigrad.save never "
                                  f"compresses, so this file was not written by it")
        if info.file_size != info.compress_size or info.file_size > archive_size:
            raise CheckpointError(f"minigrad.load: {path}: entry {short_repr(info.filename)} claims "
                                  f"{info.file_size:,} bytes, but the file has {archive_size:,} "
                                  f"(truncated or corrupt)")
        entries[name] = info
    return entries


def _read_npy(archive: zipfile.ZipFile, info: zipfile.ZipInfo, path: str) -> np.ndarray:
    """One `.npy` entry as a writable array, its header checked against the entry's size
    before anything is allocated (a header claiming 2**40 floats in a small file is refused)."""
    where = f"minigrad.load: {path}: entry {short_repr(info.filename)}"
    with archive.open(info) as file:
        version = np.lib.format.read_magic(file)
        if version == (1, 0):
            shape, fortran_order, dtype = np.lib.format.read_array_header_1_0(file)
        elif version in ((2, 0), (3, 0)):
            shape, fortran_order, dtype = np.lib.format.read_array_header_2_0(file)
        else:
            raise CheckpointError(f"{where}: unsupported .npy version {version}")
        if dtype.hasobject:
            raise CheckpointError(f"{where} holds Python objects, which cannot be loaded "
                                  f"without pickle")
        count = math.prod(shape)  # Python ints: no overflow
        expected = count * dtype.itemsize
        available = info.file_size - file.tell()
        if expected != available:
            raise CheckpointError(f"{where}: its header says {dtype} {list(shape)} = {expected:,} "
                                  f"bytes, but the entry holds {available:,} (corrupt or tampered)")
        array = np.empty(count, dtype=dtype)
        view = memoryview(array.view(np.uint8).reshape(-1)) if expected else memoryview(b"")
        filled = 0
        while filled < expected:
            got = file.readinto(view[filled:filled + (1 << 24)])  # 16 MiB at a time
            if not got:
                raise CheckpointError(f"{where} ends after {filled:,} of {expected:,} bytes")
            filled += got
        file.read(1)  # reaching the end makes zipfile check the entry's CRC-32
    return array.reshape(shape, order="F" if fortran_order else "C")
