"""File formats of gpt.weights: CRC-32C, varints, LevelDB tables, TF tensor bundles, safetensors."""
from __future__ import annotations

import json
import struct

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from conftest import shared_path
from gpt.weights import WeightsError, crc32c
from gpt.weights._wire import encode_varint, parse_fields, read_varint
from gpt.weights.leveldb_table import build_block, read_table, write_table
from gpt.weights.safetensors import SafeTensorsFile, float32_to_bfloat16_bits, load_file, save_file
from gpt.weights.tf_checkpoint import TFCheckpoint, write_tf_checkpoint

# ------------------------------------------------------------------ CRC-32C and varints


def test_crc32c_known_values():
    assert crc32c.crc32c(b"123456789") == 0xE3069283  # RFC 3720 check value
    assert crc32c.crc32c(b"") == 0
    assert crc32c.crc32c(bytes(32)) == 0x8A9136AA  # RFC 3720 B.4: 32 bytes of zeros
    assert crc32c.crc32c(b"6789", crc32c.crc32c(b"12345")) == 0xE3069283  # continues a CRC
    assert crc32c.unmask(crc32c.mask(0x12345678)) == 0x12345678
    assert crc32c.crc32c_combine(crc32c.crc32c(b"12345"), crc32c.crc32c(b"6789"), 4) == 0xE3069283


@settings(max_examples=15)
@given(st.integers(0, 20000), st.integers(1, 3000), st.integers(1, 3), st.integers(0, 2**32 - 1))
def test_crc32c_numpy_equals_bytewise(n_bytes, chunk_bytes, threads, seed):
    data = np.random.default_rng(seed).integers(0, 256, n_bytes, dtype=np.uint8)
    assert crc32c.crc32c_numpy(data, chunk_bytes=chunk_bytes, threads=threads) == crc32c.crc32c(data.tobytes())


def test_crc32c_numpy_default_chunks():
    data = np.random.default_rng(1).integers(0, 256, (1 << 23) + 12345, dtype=np.uint8)  # 8 MB + tail
    assert crc32c.crc32c_numpy(data) == crc32c.crc32c_numpy(data, chunk_bytes=(1 << 20) + 48, threads=1)
    for size in (100_000, 4096, 4095, 300_001, 16 * 129 + 4096):  # odd block counts pad in front
        head = data[:size].tobytes()
        assert crc32c.crc32c_numpy(head) == crc32c.crc32c(head)


@given(st.integers(0, 2**64 - 1))
def test_varint_round_trip(value):
    encoded = encode_varint(value)
    assert read_varint(encoded + b"\x99", 0) == (value, len(encoded))


def test_varint_errors_and_protobuf_fields():
    assert encode_varint(300) == b"\xac\x02"
    with pytest.raises(WeightsError, match="truncated"):
        read_varint(b"\xac", 0)
    with pytest.raises(WeightsError, match="more than 10 bytes"):
        read_varint(b"\xff" * 11, 0)
    # field 1 varint 150, field 2 bytes "hi", field 6 fixed32
    message = b"\x08\x96\x01" + b"\x12\x02hi" + b"\x35" + struct.pack("<I", 7)
    assert parse_fields(message, "m") == [(1, 0, 150), (2, 2, b"hi"), (6, 5, 7)]
    with pytest.raises(WeightsError, match="wire type 3"):
        parse_fields(b"\x0b", "m")
    with pytest.raises(WeightsError, match="runs past the end"):
        parse_fields(b"\x12\x05hi", "m")


# ------------------------------------------------------------------ LevelDB tables


def _entries(n, seed=0):
    rng = np.random.default_rng(seed)
    keys = sorted({f"model/h{rng.integers(0, 40)}/{rng.choice(['attn', 'mlp'])}/{i}".encode() for i in range(n)})
    return [(key, rng.integers(0, 256, rng.integers(0, 40), dtype=np.uint8).tobytes()) for key in keys]


def test_table_matches_tensorflow_byte_for_byte():
    index = shared_path("tiny-gpt2", "openai", "model.ckpt.index").read_bytes()
    entries = read_table(index, "model.ckpt.index")
    assert len(entries) == 29 and entries[0][0] == b""
    assert entries[-1][0] == b"model/wte"
    assert write_table(entries, block_size=1 << 18) == index  # our writer = TF's BundleWriter


@pytest.mark.parametrize("block_size", [1, 64, 4096])
@pytest.mark.parametrize("restart_interval", [1, 3, 16])
def test_table_round_trip_multi_block(block_size, restart_interval):
    entries = _entries(60)
    data = write_table(entries, block_size=block_size, restart_interval=restart_interval)
    assert read_table(data, "t") == entries
    assert read_table(write_table([]), "empty") == []


def test_table_rejects_unsorted_keys():
    with pytest.raises(ValueError, match="sorted"):
        write_table([(b"b", b""), (b"a", b"")])


def test_table_corruption_is_reported():
    data = bytearray(write_table(_entries(20), block_size=200))
    bad_magic = data[:-1] + b"\x00"
    with pytest.raises(WeightsError, match="bad table magic"):
        read_table(bytes(bad_magic), "x.index")
    flipped = bytearray(data)
    flipped[10] ^= 0x40  # inside the first data block
    with pytest.raises(WeightsError, match="x.index data block 0: CRC-32C mismatch"):
        read_table(bytes(flipped), "x.index")
    with pytest.raises(WeightsError, match="too short"):
        read_table(bytes(data[:20]), "x.index")


def test_table_rejects_snappy_blocks():
    entries = _entries(5)
    data = bytearray(write_table(entries, block_size=1 << 20))  # one data block, at offset 0
    size = len(build_block(entries, 16))
    assert data[size] == 0  # its trailer's compression type: none
    data[size] = 1  # Snappy, with a valid checksum
    offset = 0
    crc = crc32c.mask(crc32c.crc32c(bytes(data[offset:offset + size + 1])))
    data[offset + size + 1:offset + size + 5] = struct.pack("<I", crc)
    with pytest.raises(WeightsError, match="Snappy"):
        read_table(bytes(data), "x.index")


# ------------------------------------------------------------------ TF tensor bundles


def test_read_tiny_gpt2_bundle():
    folder = shared_path("tiny-gpt2", "openai")
    checkpoint = TFCheckpoint(folder, verify_crc=True)
    assert len(checkpoint) == 28
    assert checkpoint.shape("model/h0/attn/c_attn/w") == (1, 8, 24)
    wte = checkpoint["model/wte"]
    assert wte.shape == (50257, 8) and wte.dtype == np.float32 and not wte.flags.writeable
    assert checkpoint.entries["model/h0/attn/c_attn/b"].offset == 0  # proto3: absent field = 0
    book = np.load(shared_path("tiny-gpt2", "state_dict_book.npz"))
    assert np.array_equal(wte, book["tok_emb.weight"])
    assert TFCheckpoint(folder / "model.ckpt.index").keys() == checkpoint.keys()  # .index path
    assert TFCheckpoint(folder / "model.ckpt").keys() == checkpoint.keys()  # prefix


def test_bundle_writer_reproduces_tensorflow_files(tmp_path):
    folder = shared_path("tiny-gpt2", "openai")
    original = TFCheckpoint(folder)
    write_tf_checkpoint(tmp_path / "model.ckpt", {name: np.array(original[name]) for name in original},
                        block_size=1 << 18)
    for suffix in (".index", ".data-00000-of-00001"):
        assert (tmp_path / f"model.ckpt{suffix}").read_bytes() == (folder / f"model.ckpt{suffix}").read_bytes()


def test_bundle_round_trip_dtypes_and_shapes(tmp_path):
    rng = np.random.default_rng(3)
    tensors = {
        "a/float": rng.standard_normal((3, 4)).astype(np.float32),
        "a/double": rng.standard_normal(5),
        "b/half": rng.standard_normal((2, 2)).astype(np.float16),
        "b/int64": np.arange(-3, 3, dtype=np.int64),
        "c/int32": np.arange(6, dtype=np.int32).reshape(1, 2, 3),
        "c/scalar": np.float32(2.5),
        "c/empty": np.zeros((0, 3), np.float32),
        "d/bool": np.array([True, False]),
        "d/bigendian": np.arange(4, dtype=">f4"),
    }
    write_tf_checkpoint(tmp_path / "x.ckpt", tensors, block_size=32)  # several data blocks
    checkpoint = TFCheckpoint(tmp_path / "x.ckpt", verify_crc=True)
    assert sorted(checkpoint.keys()) == sorted(tensors)
    for name, array in tensors.items():
        loaded = checkpoint[name]
        assert loaded.shape == np.shape(array) and np.array_equal(loaded, array), name
        assert loaded.dtype == np.asarray(array).dtype.newbyteorder("=") or name == "d/bigendian"


def test_bundle_folder_resolution(tmp_path):
    write_tf_checkpoint(tmp_path / "sub" / "model.ckpt", {"x": np.ones(2, np.float32)})
    (tmp_path / "sub" / "checkpoint").write_text('model_checkpoint_path: "/elsewhere/model.ckpt"\n')
    assert TFCheckpoint(tmp_path / "sub").keys() == ["x"]  # absolute path that moved: use the name
    write_tf_checkpoint(tmp_path / "sub" / "other.ckpt", {"y": np.ones(2, np.float32)})
    (tmp_path / "sub" / "checkpoint").unlink()
    with pytest.raises(WeightsError, match="several checkpoints"):
        TFCheckpoint(tmp_path / "sub")
    with pytest.raises(FileNotFoundError, match="no TensorFlow checkpoint"):
        TFCheckpoint(tmp_path / "nothing")


def test_bundle_truncated_data_file_names_file_tensor_and_sizes(tmp_path):
    tensors = {"model/a": np.ones(10, np.float32), "model/b": np.ones((4, 4), np.float32)}
    _, data_path = write_tf_checkpoint(tmp_path / "model.ckpt", tensors)
    data_path.write_bytes(data_path.read_bytes()[:60])  # a: 40 bytes ok, b: needs [40, 104)
    checkpoint = TFCheckpoint(tmp_path)
    assert checkpoint["model/a"].shape == (10,)
    with pytest.raises(WeightsError) as error:
        checkpoint["model/b"]
    message = str(error.value)
    assert "model.ckpt.data-00000-of-00001" in message and "'model/b'" in message
    assert "64 bytes" in message and "file has 60 bytes" in message


def test_bundle_corrupt_tensor_crc_and_missing_data_file(tmp_path):
    _, data_path = write_tf_checkpoint(tmp_path / "model.ckpt", {"w": np.arange(8, dtype=np.float32)})
    raw = bytearray(data_path.read_bytes())
    raw[5] ^= 1
    data_path.write_bytes(bytes(raw))
    with pytest.raises(WeightsError, match="CRC-32C mismatch for tensor 'w'"):
        TFCheckpoint(tmp_path)["w"]
    assert TFCheckpoint(tmp_path, verify_crc=False)["w"].shape == (8,)  # sizes only
    data_path.unlink()
    with pytest.raises(WeightsError, match="data file missing"):
        TFCheckpoint(tmp_path)["w"]


def test_bundle_index_corruption(tmp_path):
    index_path, _ = write_tf_checkpoint(tmp_path / "model.ckpt", {"w": np.zeros(3, np.float32)})
    raw = bytearray(index_path.read_bytes())
    raw[3] ^= 0x10
    index_path.write_bytes(bytes(raw))
    with pytest.raises(WeightsError, match="CRC-32C mismatch"):
        TFCheckpoint(tmp_path)
    index_path.write_bytes(b"not an index at all, just some bytes that are long enough....")
    with pytest.raises(WeightsError, match="bad table magic"):
        TFCheckpoint(tmp_path)


def test_bundle_without_header_is_rejected(tmp_path):
    (tmp_path / "model.ckpt.index").write_bytes(write_table([(b"a", b"")]))
    with pytest.raises(WeightsError, match="no bundle header"):
        TFCheckpoint(tmp_path)


# ------------------------------------------------------------------ safetensors


def test_read_tiny_gpt2_safetensors():
    weights = SafeTensorsFile(shared_path("tiny-gpt2", "hf", "model.safetensors"))
    assert len(weights) == 28 and weights.metadata == {"format": "pt"}
    assert weights.data_start == 8 + 2496
    wte = weights["transformer.wte.weight"]
    assert wte.shape == (50257, 8) and wte.dtype == np.float32 and not wte.flags.writeable
    book = np.load(shared_path("tiny-gpt2", "state_dict_book.npz"))
    assert np.array_equal(wte, book["tok_emb.weight"])


def test_safetensors_round_trip_all_dtypes(tmp_path):
    rng = np.random.default_rng(5)
    tensors = {
        "f32": rng.standard_normal((3, 5)).astype(np.float32), "f64": rng.standard_normal(4),
        "f16": rng.standard_normal(7).astype(np.float16), "i64": np.arange(-2, 5, dtype=np.int64),
        "i32": np.arange(3, dtype=np.int32), "i16": np.arange(3, dtype=np.int16),
        "i8": np.arange(-3, 3, dtype=np.int8), "u8": np.arange(9, dtype=np.uint8).reshape(3, 3),
        "bool": np.array([[True], [False]]), "scalar": np.float32(1.5), "empty": np.zeros((2, 0), np.float32),
        "transposed": rng.standard_normal((3, 4)).astype(np.float32).T,
    }
    save_file(tensors, tmp_path / "t.safetensors", metadata={"format": "pt", "note": "x"})
    header_length = struct.unpack("<Q", (tmp_path / "t.safetensors").read_bytes()[:8])[0]
    assert header_length % 8 == 0
    weights = SafeTensorsFile(tmp_path / "t.safetensors")
    assert weights.metadata == {"format": "pt", "note": "x"}
    for name, array in tensors.items():
        assert weights[name].dtype == np.asarray(array).dtype and np.array_equal(weights[name], array), name
    assert set(load_file(tmp_path / "t.safetensors")) == set(tensors)
    assert weights.dtype("f16") == "F16" and weights.shape("u8") == (3, 3)


def test_safetensors_bf16_read_and_write(tmp_path):
    values = np.array([1.0, -2.5, 3.140625, 1e-3, 65504.0, np.inf, -0.0], np.float32)
    bits = float32_to_bfloat16_bits(values)
    assert bits[0] == 0x3F80 and bits[1] == 0xC020  # bf16 is the upper half of float32
    save_file({"x": values}, tmp_path / "b.safetensors", bf16=True)
    weights = SafeTensorsFile(tmp_path / "b.safetensors")
    assert weights.dtype("x") == "BF16"
    loaded = weights["x"]
    assert loaded.dtype == np.float32
    np.testing.assert_allclose(loaded, values, rtol=2 ** -8)
    assert loaded[2] == 3.140625 and np.isinf(loaded[5])
    # round to nearest even: 1 + 2**-8 is a tie between 1 and 1 + 2**-7 -> 1
    assert float32_to_bfloat16_bits(np.float32(1 + 2 ** -8)) == 0x3F80
    nan_bits = float32_to_bfloat16_bits(np.array([np.nan], np.float32))
    assert np.isnan((nan_bits.astype(np.uint32) << 16).view(np.float32)).all()


def _write_raw(path, header: dict | bytes, data: bytes = b""):
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data)
    return path


def test_safetensors_bad_input(tmp_path):
    (tmp_path / "a").write_bytes(b"abc")
    with pytest.raises(WeightsError, match="too short"):
        SafeTensorsFile(tmp_path / "a")
    (tmp_path / "b").write_bytes(struct.pack("<Q", 999) + b"{}")
    with pytest.raises(WeightsError, match="header length 999 does not fit"):
        SafeTensorsFile(tmp_path / "b")
    with pytest.raises(WeightsError, match="not valid JSON"):
        SafeTensorsFile(_write_raw(tmp_path / "c", b"{oops"))
    with pytest.raises(WeightsError, match="dtype 'F8_E4M3' is not supported"):
        SafeTensorsFile(_write_raw(tmp_path / "d", {"w": {"dtype": "F8_E4M3", "shape": [1], "data_offsets": [0, 1]}}, b"\0"))
    with pytest.raises(WeightsError, match=r"shape \[2, 2\] needs 16 bytes"):
        SafeTensorsFile(_write_raw(tmp_path / "e", {"w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 12]}}, bytes(16)))
    with pytest.raises(WeightsError, match="truncated file: tensor 'w'"):
        SafeTensorsFile(_write_raw(tmp_path / "f", {"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}, bytes(10)))
    with pytest.raises(WeightsError, match="must have dtype, shape and data_offsets"):
        SafeTensorsFile(_write_raw(tmp_path / "g", {"w": {"dtype": "F32"}}))
    with pytest.raises(WeightsError, match="JSON list"):
        SafeTensorsFile(_write_raw(tmp_path / "h", b"[1, 2]"))
    with pytest.raises(TypeError, match="complex128"):
        save_file({"z": np.zeros(2, np.complex128)}, tmp_path / "z.safetensors")
    with pytest.raises(KeyError, match="no tensor 'nope'"):
        SafeTensorsFile(_write_raw(tmp_path / "i", {}))["nope"]


def test_safetensors_truncated_real_file(tmp_path):
    raw = shared_path("tiny-gpt2", "hf", "model.safetensors").read_bytes()
    (tmp_path / "model.safetensors").write_bytes(raw[:-100])
    with pytest.raises(WeightsError) as error:
        SafeTensorsFile(tmp_path / "model.safetensors")
    assert "truncated file" in str(error.value) and "transformer." in str(error.value)
    assert f"expected at least {len(raw)}" in str(error.value)
