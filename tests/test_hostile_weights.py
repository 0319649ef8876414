"""GPT-2 weight folders built broken here: a bit flip in any tensor, safetensors offsets that
overlap or repeat, shapes whose product wraps int64, protobuf fields of the wrong wire type,
configs that claim 100,000 layers, JSON that is nested, not UTF-8 or a list, a full disk while
saving. Each ends in a WeightsError naming the file (short, and before any big allocation), or
for saving, in no partial file."""
from __future__ import annotations

import errno
import json
import struct

import numpy as np
import pytest

from gpt.weights import WeightsError, load_gpt2, save_gpt2
from gpt.weights import safetensors as safetensors_module
from gpt.weights._wire import field_bytes, field_fixed32, field_varint
from gpt.weights.leveldb_table import write_table
from gpt.weights.mapping import book_config, check_tensors
from gpt.weights.safetensors import SafeTensorsFile
from gpt.weights.tf_checkpoint import TFCheckpoint, write_tf_checkpoint
from minigrad.untrusted import MAX_MESSAGE
from weights_helpers import TINY, random_gpt2_tensors, write_hf_folder, write_openai_folder


def short_error(excinfo, *names):
    message = str(excinfo.value)
    assert len(message) < MAX_MESSAGE, len(message)
    for name in names:
        assert str(name) in message, (name, message)
    return message


# ------------------------------------------------------------------ TF checkpoints: integrity

def test_one_flipped_bit_in_a_large_tensor_is_caught_by_default(tmp_path):
    big = np.random.default_rng(0).standard_normal(1_200_000).astype(np.float32)  # 4.8 MB > the old 4 MiB limit
    _, data_path = write_tf_checkpoint(tmp_path / "model.ckpt", {"model/big": big})
    raw = bytearray(data_path.read_bytes())
    raw[3_333_333] ^= 0x04
    data_path.write_bytes(bytes(raw))
    with pytest.raises(WeightsError, match="CRC-32C mismatch for tensor 'model/big'") as caught:
        TFCheckpoint(tmp_path)["model/big"]
    short_error(caught, data_path, "verify_crc=False")
    assert TFCheckpoint(tmp_path, verify_crc=False)["model/big"].shape == big.shape  # opt out


def test_flipped_bit_in_a_gpt2_folder_stops_load_gpt2(tmp_path):
    folder = write_openai_folder(tmp_path / "o", random_gpt2_tensors(**TINY))
    data = folder / "model.ckpt.data-00000-of-00001"
    raw = bytearray(data.read_bytes())
    raw[len(raw) // 2] ^= 0x80
    data.write_bytes(bytes(raw))
    with pytest.raises(WeightsError, match="CRC-32C mismatch"):
        load_gpt2(folder)
    load_gpt2(folder, verify_crc=False)


def _index(tmp_path, entry: bytes, header: bytes = field_varint(1, 1)):
    (tmp_path / "model.ckpt.index").write_bytes(write_table([(b"", header), (b"model/w", entry)]))
    (tmp_path / "model.ckpt.data-00000-of-00001").write_bytes(bytes(64))
    return tmp_path / "model.ckpt.index"


def test_protobuf_field_of_the_wrong_wire_type(tmp_path):
    index = _index(tmp_path, field_bytes(1, b"\x01"))  # dtype as bytes instead of a varint
    with pytest.raises(WeightsError, match="field 1 is stored as length-delimited, but the schema says varint") as caught:
        TFCheckpoint(tmp_path)
    short_error(caught, index, "'model/w'")
    _index(tmp_path, field_varint(1, 1) + field_varint(2, 5))  # shape as a varint
    with pytest.raises(WeightsError, match="field 2 is stored as varint"):
        TFCheckpoint(tmp_path)
    _index(tmp_path, field_varint(1, 1), header=field_bytes(1, b"x"))  # num_shards as bytes
    with pytest.raises(WeightsError, match="bundle header"):
        TFCheckpoint(tmp_path)


def test_tf_shape_whose_product_wraps_int64(tmp_path):
    dims = b"".join(field_bytes(2, field_varint(1, 1 << 32)) for _ in range(3))  # 2**96 elements
    _index(tmp_path, field_varint(1, 1) + field_bytes(2, dims) + field_varint(5, 0)
           + field_fixed32(6, 0))
    with pytest.raises(WeightsError, match="should take 316912650057057350374175801344 bytes"):
        TFCheckpoint(tmp_path)["model/w"]


def test_tf_entries_outside_the_data(tmp_path):
    _index(tmp_path, field_varint(1, 1) + field_varint(3, 7) + field_varint(5, 4))  # a scalar float
    with pytest.raises(WeightsError, match="shard 7, but the header says there are 1"):
        TFCheckpoint(tmp_path)["model/w"]
    _index(tmp_path, field_varint(1, 1) + field_varint(4, (1 << 64) - 8))  # offset -8
    with pytest.raises(WeightsError, match="negative offset -8"):
        TFCheckpoint(tmp_path)


# ------------------------------------------------------------------ safetensors: tiling, sizes

def _safetensors(path, header: dict, data: bytes):
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data)
    return path


def test_safetensors_offsets_must_tile_the_data(tmp_path):
    f32 = {"dtype": "F32", "shape": [2]}
    cases = {
        "overlap": ({"a": {**f32, "data_offsets": [0, 8]}, "b": {**f32, "data_offsets": [4, 12]}}, 12, "overlaps 'a'"),
        "duplicate": ({"a": {**f32, "data_offsets": [0, 8]}, "b": {**f32, "data_offsets": [0, 8]}}, 8, "overlaps"),
        "gap": ({"a": {**f32, "data_offsets": [8, 16]}}, 16, "leaves a gap after byte 0"),
        "trailing": ({"a": {**f32, "data_offsets": [0, 8]}}, 100, "92 bytes follow the last tensor"),
    }
    for name, (header, size, match) in cases.items():
        path = _safetensors(tmp_path / f"{name}.safetensors", header, bytes(size))
        with pytest.raises(WeightsError, match=match) as caught:
            SafeTensorsFile(path)
        short_error(caught, path)
    empty = {"a": {"dtype": "F32", "shape": [0], "data_offsets": [0, 0]},
             "b": {"dtype": "F32", "shape": [0], "data_offsets": [0, 0]}, "c": {**f32, "data_offsets": [0, 8]}}
    assert SafeTensorsFile(_safetensors(tmp_path / "ok.safetensors", empty, bytes(8)))["c"].shape == (2,)


def test_safetensors_name_given_twice_in_the_header(tmp_path):
    raw = b'{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, "a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}'
    path = tmp_path / "twice.safetensors"
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + bytes(4))
    with pytest.raises(WeightsError, match="names 'a' twice"):
        SafeTensorsFile(path)


def test_safetensors_shape_whose_product_wraps_int64(tmp_path):
    header = {"w": {"dtype": "F32", "shape": [1 << 32, 1 << 32, 1 << 32], "data_offsets": [0, 0]}}
    path = _safetensors(tmp_path / "wrap.safetensors", header, b"")
    with pytest.raises(WeightsError, match="needs 316912650057057350374175801344 bytes"):
        SafeTensorsFile(path)


def test_safetensors_header_nested_or_not_utf8_or_odd_metadata(tmp_path):
    for name, raw, match in (("deep", b"[" * 10_000 + b"]" * 10_000, "nested 10000 levels"),
                             ("latin", b'{"\xe9": 1}', "not UTF-8"),
                             ("meta", b'{"__metadata__": [1, 2]}', "__metadata__ must map")):
        path = tmp_path / f"{name}.safetensors"
        path.write_bytes(struct.pack("<Q", len(raw)) + raw)
        with pytest.raises(WeightsError, match=match) as caught:
            SafeTensorsFile(path)
        short_error(caught, path)


# ------------------------------------------------------------------ configs that claim too much

@pytest.mark.parametrize("layout", ["openai", "hf"])
def test_config_claiming_100000_layers_is_refused_before_allocating(tmp_path, layout):
    tensors = random_gpt2_tensors(**TINY)
    if layout == "openai":
        folder = write_openai_folder(tmp_path / "o", tensors)
        config = folder / "hparams.json"
        key = "n_layer"
    else:
        folder = write_hf_folder(tmp_path / "h", tensors)
        config = folder / "config.json"
        key = "n_layer"
    values = json.loads(config.read_text())
    values[key] = 1000
    config.write_text(json.dumps(values))
    with pytest.raises(WeightsError, match="at least .* bytes, but the weight files hold") as caught:
        load_gpt2(folder)
    short_error(caught, config)
    for huge in (100_000, 10 ** 7):
        values[key] = huge
        config.write_text(json.dumps(values))
        with pytest.raises(WeightsError, match=f"'n_layer' is {huge:,}, more than the limit") as caught:
            load_gpt2(folder)
        short_error(caught, config)


def test_missing_tensor_report_is_capped():
    cfg = book_config(257, 16, 8, 2, 500)
    with pytest.raises(WeightsError, match=r"6,004 problems") as caught:
        check_tensors({}, cfg)
    assert "... and 5,984 more" in short_error(caught)


@pytest.mark.parametrize("content, match", [
    (b"[1, 2, 3]", "expected a JSON object, got a list"),
    (b"\xff\xfe n_layer", "not UTF-8"),
    (b"{" * 5000, "nested 5000 levels"),
    (b'{"n_vocab": 257', "not valid JSON"),
])
def test_hparams_files_that_are_not_a_json_object(tmp_path, content, match):
    folder = write_openai_folder(tmp_path / "o", random_gpt2_tensors(**TINY))
    (folder / "hparams.json").write_bytes(content)
    with pytest.raises(WeightsError, match=match) as caught:
        load_gpt2(folder)
    short_error(caught, folder / "hparams.json")


# ------------------------------------------------------------------ saving: no partial files

def _full_disk(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


@pytest.mark.parametrize("layout", ["hf", "openai"])
def test_save_gpt2_on_a_full_disk_leaves_no_partial_folder(tmp_path, monkeypatch, layout):
    model, tokenizer = load_gpt2(write_hf_folder(tmp_path / "src", random_gpt2_tensors(**TINY)))
    monkeypatch.setattr(safetensors_module.np, "ascontiguousarray", _full_disk)  # hf: mid-tensor
    monkeypatch.setattr("gpt.weights.gpt2.hparams_from_config", _full_disk)  # openai: after the bundle
    with pytest.raises(OSError, match="No space left"):
        save_gpt2(model, tmp_path / "new", tokenizer, layout=layout)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]  # no folder, no temporary


def test_save_gpt2_on_a_full_disk_keeps_the_previous_files(tmp_path, monkeypatch):
    model, tokenizer = load_gpt2(write_hf_folder(tmp_path / "src", random_gpt2_tensors(**TINY)))
    folder = save_gpt2(model, tmp_path / "out", tokenizer)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    monkeypatch.setattr(safetensors_module.np, "ascontiguousarray", _full_disk)
    with pytest.raises(OSError, match="No space left"):
        save_gpt2(model, folder, tokenizer)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before  # old files, no .tmp


def test_gpt2_weights_holding_nan_are_refused_unless_allowed(tmp_path):
    tensors = random_gpt2_tensors(**TINY)
    tensors["h.1.mlp.c_fc.weight"][2, 3] = np.inf
    folder = write_hf_folder(tmp_path / "h", tensors)
    with pytest.raises(WeightsError, match="hold NaN or infinity") as caught:
        load_gpt2(folder)
    short_error(caught, folder, "trf_blocks.1.ff.layers.0.weight")
    with pytest.warns(RuntimeWarning, match="NaN or infinity"):
        load_gpt2(folder, allow_non_finite=True)
