"""minigrad.load on hostile .npz files built here: every one is refused with a CheckpointError
naming the file, after using no more memory than the file's size (no zip bombs, no .npy header
claiming 2**40 floats, no raw-bytes entries, no deep JSON), and saved files get the umask's
permissions."""
from __future__ import annotations

import io
import json
import os
import stat
import zipfile

import numpy as np
import pytest

import minigrad as mg
from minigrad.serialization import STRUCTURE_ENTRY, CheckpointError
from minigrad.untrusted import MAX_MESSAGE


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def structure(tree) -> bytes:
    header = json.dumps({"format": "minigrad.save", "version": 1, "tree": tree}).encode()
    return npy_bytes(np.frombuffer(header, np.uint8))


def write_zip(path, entries: dict, compression=zipfile.ZIP_STORED):
    with zipfile.ZipFile(path, "w", compression=compression) as archive:
        for name, payload in entries.items():
            archive.writestr(name, payload)
    return path


def refused(path, match):
    with pytest.raises(CheckpointError, match=match) as caught:
        mg.load(path)
    message = str(caught.value)
    assert str(path) in message
    assert len(message) < MAX_MESSAGE
    return message


def test_deflated_entry_is_refused_before_it_expands(tmp_path):
    """A 1000x deflate bomb: minigrad.save never compresses, so compressed entries are refused."""
    zeros = npy_bytes(np.zeros(1 << 20, np.float32))  # 4 MiB of zeros -> a few KB deflated
    path = write_zip(tmp_path / "bomb.npz", {f"{STRUCTURE_ENTRY}.npy": structure({"__ndarray__": "a0"}),
                                             "a0.npy": zeros}, zipfile.ZIP_DEFLATED)
    assert os.path.getsize(path) * 100 < len(zeros)
    refused(path, "compressed")


def test_npy_header_claiming_two_to_the_forty_floats(tmp_path):
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False,
                                                  "shape": (1 << 40,)})
    path = write_zip(tmp_path / "huge.npz", {f"{STRUCTURE_ENTRY}.npy": structure({"__ndarray__": "a0"}),
                                             "a0.npy": header.getvalue() + b"\0" * 64})
    refused(path, r"header says float32 \[1099511627776\] = 4,398,046,511,104 bytes.*holds 64")


def test_npy_header_with_fewer_elements_than_bytes(tmp_path):
    data = npy_bytes(np.arange(8, dtype=np.float32))
    patched = data.replace(b"(8,)", b"(2,)")
    path = write_zip(tmp_path / "short.npz", {f"{STRUCTURE_ENTRY}.npy": structure({"__ndarray__": "a0"}),
                                              "a0.npy": patched})
    refused(path, "header says")


def test_raw_bytes_entry_is_refused_not_returned_as_bytes(tmp_path):
    for entries in ({f"{STRUCTURE_ENTRY}.npy": structure({"__ndarray__": "a0"}), "a0": b"raw bytes"},
                    {f"{STRUCTURE_ENTRY}.npy": structure({"__ndarray__": "a0"}), "a0.npy": b"raw bytes!"}):
        path = write_zip(tmp_path / "raw.npz", entries)
        refused(path, "raw bytes|truncated or corrupt")


def test_object_arrays_are_refused_without_pickle(tmp_path):
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, np.array([{"x": 1}], dtype=object), allow_pickle=True)
    path = write_zip(tmp_path / "pickle.npz", {f"{STRUCTURE_ENTRY}.npy": structure({"__ndarray__": "a0"}),
                                               "a0.npy": buffer.getvalue()})
    refused(path, "pickle")


def test_duplicate_entries_are_refused(tmp_path):
    path = tmp_path / "twice.npz"
    with pytest.warns(UserWarning, match="Duplicate"):
        write_zip(path, {f"{STRUCTURE_ENTRY}.npy": structure({"__ndarray__": "a0"}),
                         "a0.npy": npy_bytes(np.ones(2))})
        with zipfile.ZipFile(path, "a") as archive:
            archive.writestr("a0.npy", npy_bytes(np.zeros(2)))
    refused(path, "twice")


def test_deeply_nested_structure_is_a_clear_error(tmp_path):
    deep = json.dumps({"format": "minigrad.save", "version": 1, "tree": None}).encode()
    deep = deep.replace(b"null", b"[" * 100_000 + b"]" * 100_000)
    path = write_zip(tmp_path / "deep.npz", {f"{STRUCTURE_ENTRY}.npy": npy_bytes(np.frombuffer(deep, np.uint8))})
    refused(path, "nested 100001 levels deep, more than the limit")


def test_structure_that_is_not_utf8_or_not_bytes(tmp_path):
    path = write_zip(tmp_path / "latin.npz", {f"{STRUCTURE_ENTRY}.npy": npy_bytes(np.frombuffer(b"\xff\xfe{", np.uint8))})
    refused(path, "not UTF-8")
    path = write_zip(tmp_path / "floats.npz", {f"{STRUCTURE_ENTRY}.npy": npy_bytes(np.ones(3))})
    refused(path, "expected uint8 bytes")


def test_huge_values_in_the_structure_give_short_messages(tmp_path):
    header = json.dumps({"format": "minigrad.save", "version": "9" * 1_000_000, "tree": None}).encode()
    path = write_zip(tmp_path / "long.npz", {f"{STRUCTURE_ENTRY}.npy": npy_bytes(np.frombuffer(header, np.uint8))})
    refused(path, "format version")
    names = {"__ndarray__": "x" * 100_000}
    path = write_zip(tmp_path / "name.npz", {f"{STRUCTURE_ENTRY}.npy": structure(names)})
    refused(path, "lacks the array entries")


def test_malformed_trees_are_checkpoint_errors(tmp_path):
    for tree in ({"__ndarray__": ["a0"]}, {"__tensor__": "a0"}, {"__dict__": [[1]]}, {"__what__": 1}):
        path = write_zip(tmp_path / "tree.npz", {f"{STRUCTURE_ENTRY}.npy": structure(tree),
                                                 "a0.npy": npy_bytes(np.ones(2))})
        refused(path, "malformed|lacks")


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_saved_files_follow_the_umask(tmp_path, umask):
    previous = os.umask(umask)
    try:
        mg.save({"w": np.ones(3)}, tmp_path / "c.npz")
    finally:
        os.umask(previous)
    assert stat.S_IMODE(os.stat(tmp_path / "c.npz").st_mode) == 0o666 & ~umask


def test_saved_files_are_never_compressed(tmp_path):
    mg.save({"w": np.zeros(10_000)}, tmp_path / "c.npz")
    with zipfile.ZipFile(tmp_path / "c.npz") as archive:
        assert {info.compress_type for info in archive.infolist()} == {zipfile.ZIP_STORED}
