"""minigrad.save / minigrad.load: exact round trips, no pickle, atomic writes, clear errors
for missing, truncated, corrupt and foreign files."""
from __future__ import annotations

import json
import os
import zipfile
from collections import OrderedDict

import numpy as np
import pytest

import minigrad as mg
from minigrad import nn
from minigrad.serialization import CheckpointError


def sample_object():
    rng = np.random.default_rng(0)
    return {
        "model": OrderedDict([("tok_emb.weight", rng.standard_normal((5, 3)).astype(np.float32)),
                              ("tokens", rng.integers(0, 50257, 100).astype(np.uint16)),
                              ("positions", np.arange(7, dtype=np.int64)),
                              ("double", rng.standard_normal((2, 2, 2))),
                              ("mask", np.tril(np.ones((3, 3), bool))),
                              ("strided", np.arange(12.0).reshape(3, 4)[:, ::2])]),
        "optimizer": {"state": {0: {"step": 3, "exp_avg": np.ones(2, np.float32)}},
                      "param_groups": [{"lr": 4e-4, "betas": (0.9, 0.999), "params": [0]}]},
        "info": {"step": 12, "loss": 3.25, "nan": float("nan"), "inf": float("-inf"),
                 "name": "run ü", "none": None, "flag": True, "empty": [], "huge": 2 ** 100,
                 "scalar": np.float32(1.5), 7: "int key", None: "none key"},
        "tensor": mg.Tensor(np.array([1.0, 2.0]), requires_grad=True),
        "empty_array": np.zeros((0, 4), np.float32),
    }


def assert_same(a, b):
    assert type(a) is type(b), (type(a), type(b))
    if isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape
        assert a.tobytes() == np.ascontiguousarray(b).tobytes()  # bit for bit
    elif isinstance(a, mg.Tensor):
        assert a.requires_grad == b.requires_grad
        assert_same(a.data, b.data)
    elif isinstance(a, dict):
        assert list(a) == list(b)
        for key in a:
            assert_same(a[key], b[key])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert_same(x, y)
    elif isinstance(a, float) and np.isnan(a):
        assert np.isnan(b)
    elif isinstance(a, np.generic):
        assert a.dtype == b.dtype and a == b
    else:
        assert a == b


def test_round_trip_is_exact(tmp_path):
    obj = sample_object()
    path = tmp_path / "checkpoint.npz"
    mg.save(obj, path)
    loaded = mg.load(path)
    expected = dict(obj)
    assert_same(loaded, expected)
    assert isinstance(loaded["model"], OrderedDict)
    assert loaded["optimizer"]["param_groups"][0]["betas"] == (0.9, 0.999)


def test_model_state_dict_round_trip(tmp_path):
    model = nn.Sequential(nn.Embedding(10, 4), nn.LayerNorm(4), nn.Linear(4, 10))
    mg.save(model.state_dict(), str(tmp_path / "model.npz"))
    fresh = nn.Sequential(nn.Embedding(10, 4, generator=np.random.default_rng(1)), nn.LayerNorm(4),
                          nn.Linear(4, 10, generator=np.random.default_rng(2)))
    fresh.load_state_dict(mg.load(tmp_path / "model.npz"))
    for (name, a), b in zip(model.state_dict().items(), fresh.state_dict().values()):
        np.testing.assert_array_equal(a, b, err_msg=name)


def test_file_has_no_pickle_and_a_json_structure(tmp_path):
    path = tmp_path / "c.npz"
    mg.save({"w": np.ones(2, np.float32), "step": 1}, path)
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        assert "__minigrad__.json.npy" in names
    with np.load(path, allow_pickle=False) as archive:  # plain NumPy can read every entry
        header = json.loads(archive["__minigrad__.json"].tobytes())
        assert header["format"] == "minigrad.save" and header["version"] == 1
        np.testing.assert_array_equal(archive["a0"], np.ones(2, np.float32))


def test_unsupported_values_are_refused_before_writing(tmp_path):
    path = tmp_path / "c.npz"
    with pytest.raises(TypeError, match=r"obj\['f'\], a builtin_function_or_method"):
        mg.save({"f": print}, path)
    with pytest.raises(TypeError, match="object array"):
        mg.save({"o": np.array([None, 1], dtype=object)}, path)
    with pytest.raises(TypeError, match="keys must be"):
        mg.save({(1, 2): 3}, path)
    assert os.listdir(tmp_path) == []


def test_atomic_save_leaves_no_temporary_files_and_replaces_the_target(tmp_path):
    path = tmp_path / "c.npz"
    mg.save({"v": np.zeros(3)}, path)
    mg.save({"v": np.ones(3)}, path)
    assert os.listdir(tmp_path) == ["c.npz"]
    np.testing.assert_array_equal(mg.load(path)["v"], np.ones(3))


def test_failed_save_keeps_the_previous_file_intact(tmp_path, monkeypatch):
    path = tmp_path / "c.npz"
    mg.save({"v": np.zeros(3)}, path)
    before = path.read_bytes()

    def crash(*args, **kwargs):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(np, "savez", crash)
    with pytest.raises(OSError, match="disk full"):
        mg.save({"v": np.ones(3)}, path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["c.npz"]  # the temporary file was removed


def test_save_into_a_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        mg.save({}, tmp_path / "no" / "c.npz")


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        mg.load(tmp_path / "absent.npz")


def test_truncated_file(tmp_path):
    path = tmp_path / "c.npz"
    mg.save(sample_object(), path)
    data = path.read_bytes()
    for size in (0, 10, len(data) // 2, len(data) - 5):
        path.write_bytes(data[:size])
        with pytest.raises(CheckpointError, match=str(path).replace("\\", "\\\\")):
            mg.load(path)


def test_corrupt_array_bytes(tmp_path):
    path = tmp_path / "c.npz"
    mg.save({"w": np.arange(1000, dtype=np.float32)}, path)
    data = bytearray(path.read_bytes())
    start = data.index(np.arange(1000, dtype=np.float32)[500:510].tobytes())
    data[start:start + 8] = b"\xff" * 8
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="corrupt"):
        mg.load(path)


def test_foreign_files(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(CheckpointError, match="not a minigrad checkpoint"):
        mg.load(text)
    plain = tmp_path / "plain.npz"
    np.savez(plain, weights=np.ones(3))
    with pytest.raises(CheckpointError, match="no '__minigrad__.json' entry.*weights"):
        mg.load(plain)
    npy = tmp_path / "array.npy"
    np.save(npy, np.ones(3))
    with pytest.raises(CheckpointError, match="not a zip"):
        mg.load(npy)
    other_zip = tmp_path / "other.zip"
    with zipfile.ZipFile(other_zip, "w") as archive:
        archive.writestr("readme.txt", "hi")
    with pytest.raises(CheckpointError, match="no '__minigrad__.json'"):
        mg.load(other_zip)
    with pytest.raises(IsADirectoryError):
        mg.load(tmp_path)


def test_newer_format_version_is_refused(tmp_path):
    path = tmp_path / "future.npz"
    header = json.dumps({"format": "minigrad.save", "version": 99, "tree": None}).encode()
    np.savez(path, **{"__minigrad__.json": np.frombuffer(header, np.uint8)})
    with pytest.raises(CheckpointError, match="version 99"):
        mg.load(path)


def test_structure_referring_to_absent_arrays(tmp_path):
    path = tmp_path / "broken.npz"
    header = json.dumps({"format": "minigrad.save", "version": 1,
                         "tree": {"__ndarray__": "a0"}}).encode()
    np.savez(path, **{"__minigrad__.json": np.frombuffer(header, np.uint8)})
    with pytest.raises(CheckpointError, match="a0"):
        mg.load(path)


def _structures():
    from hypothesis import strategies as st
    from hypothesis.extra import numpy as hnp

    dtypes = st.sampled_from([np.float32, np.float64, np.int64, np.uint16, np.int8, bool])
    arrays = dtypes.flatmap(lambda dtype: hnp.arrays(dtype, hnp.array_shapes(min_dims=0, max_dims=3,
                                                                             min_side=0, max_side=4)))
    leaves = (st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
              | st.text(max_size=8) | arrays)
    keys = st.text(max_size=5) | st.integers(-5, 5)
    return st.recursive(leaves, lambda children: st.lists(children, max_size=3)
                        | st.dictionaries(keys, children, max_size=3)
                        | st.tuples(children, children), max_leaves=12)


def test_any_supported_structure_round_trips_exactly():
    import tempfile

    from hypothesis import given, settings

    @settings(max_examples=40)
    @given(_structures())
    def check(obj):
        with tempfile.TemporaryDirectory() as folder:
            path = os.path.join(folder, "c.npz")
            mg.save(obj, path)
            assert_same(mg.load(path), obj)

    check()
