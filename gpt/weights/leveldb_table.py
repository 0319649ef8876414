"""Read and write LevelDB-format tables: the file format of TensorFlow's `.index` files.

Layout of a table file (leveldb/table/format.h, doc/table_format.md):

    [data block 0][trailer] ... [data block n][trailer]
    [metaindex block][trailer]          (filters; TensorFlow writes it empty)
    [index block][trailer]              (one entry per data block: key >= its last key -> handle)
    [footer: 48 bytes]                  metaindex handle, index handle (varints), zero padding,
                                        magic 0xdb4775248b80fb57 as 8 little-endian bytes

A block handle is two varints (offset, size). Every block is followed by a 5-byte trailer:
the compression type (0 = none, 1 = Snappy) and the masked CRC-32C of block + type byte.
A block is a run of entries, then an array of uint32 "restart" offsets and their count.
Each entry is `varint shared, varint non_shared, varint value_length, key_delta, value`: the
key is rebuilt as `previous_key[:shared] + key_delta` (keys share prefixes; at a restart
point shared is 0, so a reader could binary-search the restarts; we simply scan).
"""
from __future__ import annotations

import struct

from . import crc32c
from ._wire import encode_varint, read_varint
from .errors import WeightsError

TABLE_MAGIC = 0xDB4775248B80FB57
FOOTER_SIZE = 48  # two handles of at most 10 + 10 bytes each, padded to 40, + 8 magic bytes
TRAILER_SIZE = 5  # 1 compression-type byte + 4 bytes masked CRC-32C
NO_COMPRESSION, SNAPPY_COMPRESSION = 0, 1


# ------------------------------------------------------------------------------------ reading

def read_table(data: bytes, name: str = "table", verify_checksums: bool = True) -> list[tuple[bytes, bytes]]:
    """All (key, value) pairs of a LevelDB table held in `data`, in stored (sorted) order.

    `name` (the file's path) appears in every error. Block checksums are verified unless
    `verify_checksums` is False. Raises WeightsError on a bad magic number, a handle that
    points outside the file, a checksum mismatch, Snappy compression, or unsorted keys.
    """
    if len(data) < FOOTER_SIZE:
        raise WeightsError(f"{name}: {len(data)} bytes is too short for a LevelDB table "
                           f"(the footer alone is {FOOTER_SIZE} bytes); the file is truncated or not an index")
    footer = data[-FOOTER_SIZE:]
    magic = struct.unpack_from("<Q", footer, 40)[0]
    if magic != TABLE_MAGIC:
        raise WeightsError(f"{name}: bad table magic number 0x{magic:016x} (expected 0x{TABLE_MAGIC:016x}); "
                           "the file is not a TensorFlow .index / LevelDB table, or it is truncated")
    pos = 0
    meta_offset, pos = read_varint(footer, pos, f"{name} footer")
    meta_size, pos = read_varint(footer, pos, f"{name} footer")
    index_offset, pos = read_varint(footer, pos, f"{name} footer")
    index_size, pos = read_varint(footer, pos, f"{name} footer")
    body_size = len(data) - FOOTER_SIZE
    read_block(data, meta_offset, meta_size, body_size, f"{name} metaindex block", verify_checksums)
    index_block = read_block(data, index_offset, index_size, body_size, f"{name} index block", verify_checksums)
    entries: list[tuple[bytes, bytes]] = []
    for number, (_, handle) in enumerate(parse_block(index_block, f"{name} index block")):
        offset, pos = read_varint(handle, 0, f"{name} index entry {number}")
        size, _ = read_varint(handle, pos, f"{name} index entry {number}")
        block = read_block(data, offset, size, body_size, f"{name} data block {number}", verify_checksums)
        entries.extend(parse_block(block, f"{name} data block {number}"))
    for (previous, _), (key, _) in zip(entries, entries[1:]):
        if key <= previous:
            raise WeightsError(f"{name}: keys are not sorted ({previous!r} then {key!r}); the index is corrupt")
    return entries


def read_block(data: bytes, offset: int, size: int, limit: int, what: str, verify_checksums: bool) -> bytes:
    """The contents of the block at (offset, size), its trailer checked."""
    if offset + size + TRAILER_SIZE > limit:
        raise WeightsError(f"{what}: handle (offset {offset}, size {size}) + {TRAILER_SIZE}-byte trailer "
                           f"runs past the end of the table body ({limit} bytes); the file is truncated or corrupt")
    contents = data[offset:offset + size]
    block_type = data[offset + size]
    if verify_checksums:
        stored = crc32c.unmask(struct.unpack_from("<I", data, offset + size + 1)[0])
        actual = crc32c.crc32c(data[offset:offset + size + 1])  # contents + type byte
        if stored != actual:
            raise WeightsError(f"{what}: CRC-32C mismatch (stored 0x{stored:08x}, computed 0x{actual:08x}); "
                               "the index file is corrupt")
    if block_type == SNAPPY_COMPRESSION:
        raise WeightsError(f"{what}: Snappy-compressed block (type 0x01) is not supported; TensorFlow writes "
                           "checkpoint indexes uncompressed, so this file was written by another tool")
    if block_type != NO_COMPRESSION:
        raise WeightsError(f"{what}: unknown block compression type 0x{block_type:02x} (expected 0x00)")
    return contents


def parse_block(block: bytes, what: str) -> list[tuple[bytes, bytes]]:
    """The (key, value) entries of one uncompressed block, keys rebuilt from shared prefixes."""
    if len(block) < 4:
        raise WeightsError(f"{what}: {len(block)} bytes is too short for a block (needs its restart count)")
    num_restarts = struct.unpack_from("<I", block, len(block) - 4)[0]
    entries_end = len(block) - 4 - 4 * num_restarts
    if entries_end < 0:
        raise WeightsError(f"{what}: restart count {num_restarts} does not fit in {len(block)} bytes")
    entries = []
    key = b""
    pos = 0
    while pos < entries_end:
        shared, pos = read_varint(block, pos, what)
        non_shared, pos = read_varint(block, pos, what)
        value_length, pos = read_varint(block, pos, what)
        if shared > len(key) or pos + non_shared + value_length > entries_end:
            raise WeightsError(f"{what}: malformed entry at byte {pos} (shared {shared} of a "
                               f"{len(key)}-byte key, {non_shared} + {value_length} bytes following)")
        key = key[:shared] + block[pos:pos + non_shared]
        pos += non_shared
        entries.append((key, bytes(block[pos:pos + value_length])))
        pos += value_length
    return entries


# ------------------------------------------------------------------------------------ writing

def build_block(entries: list[tuple[bytes, bytes]], restart_interval: int) -> bytes:
    """Encode sorted entries as one block, sharing key prefixes between restart points."""
    out = bytearray()
    restarts = []
    previous = b""
    for number, (key, value) in enumerate(entries):
        if number % restart_interval == 0:
            restarts.append(len(out))
            shared = 0
        else:
            limit = min(len(previous), len(key))
            shared = next((i for i in range(limit) if previous[i] != key[i]), limit)
        out += encode_varint(shared) + encode_varint(len(key) - shared) + encode_varint(len(value))
        out += key[shared:] + value
        previous = key
    if not restarts:
        restarts.append(0)  # an empty block still has one restart point
    for offset in restarts:
        out += struct.pack("<I", offset)
    out += struct.pack("<I", len(restarts))
    return bytes(out)


def _with_trailer(block: bytes) -> bytes:
    type_byte = bytes([NO_COMPRESSION])
    return block + type_byte + struct.pack("<I", crc32c.mask(crc32c.crc32c(block + type_byte)))


def shortest_separator(start: bytes, limit: bytes) -> bytes:
    """A short key k with start <= k < limit (LevelDB's BytewiseComparator::FindShortestSeparator)."""
    common = 0
    while common < min(len(start), len(limit)) and start[common] == limit[common]:
        common += 1
    if common < min(len(start), len(limit)):
        byte = start[common]
        if byte < 0xFF and byte + 1 < limit[common]:
            return start[:common] + bytes([byte + 1])
    return start


def short_successor(key: bytes) -> bytes:
    """A short key >= `key` (FindShortSuccessor: bump the first byte that is not 0xff)."""
    for i, byte in enumerate(key):
        if byte != 0xFF:
            return key[:i] + bytes([byte + 1])
    return key


def write_table(entries: list[tuple[bytes, bytes]], block_size: int = 4096,
                restart_interval: int = 16) -> bytes:
    """Encode sorted (key, value) pairs as a LevelDB table (uncompressed, no filter).

    A data block is closed once it holds at least `block_size` bytes of entries, as
    LevelDB's TableBuilder does, so small `block_size` values give multi-block tables.
    """
    keys = [key for key, _ in entries]
    if keys != sorted(keys) or len(set(keys)) != len(keys):
        raise ValueError("write_table: keys must be unique and sorted bytewise")
    out = bytearray()
    index_entries = []
    groups: list[list[tuple[bytes, bytes]]] = []
    current: list[tuple[bytes, bytes]] = []
    size = 0
    for key, value in entries:
        current.append((key, value))
        size += len(key) + len(value) + 3
        if size >= block_size:
            groups.append(current)
            current, size = [], 0
    if current:
        groups.append(current)
    for number, group in enumerate(groups):
        block = build_block(group, restart_interval)
        handle = encode_varint(len(out)) + encode_varint(len(block))
        last_key = group[-1][0]
        if number + 1 < len(groups):
            separator = shortest_separator(last_key, groups[number + 1][0][0])
        else:
            separator = short_successor(last_key)
        index_entries.append((separator, handle))
        out += _with_trailer(block)
    meta_handle = encode_varint(len(out)) + encode_varint(len(build_block([], 1)))
    out += _with_trailer(build_block([], 1))
    index_block = build_block(index_entries, 1)  # LevelDB's index blocks restart at every entry
    index_handle = encode_varint(len(out)) + encode_varint(len(index_block))
    out += _with_trailer(index_block)
    footer = (meta_handle + index_handle).ljust(FOOTER_SIZE - 8, b"\0") + struct.pack("<Q", TABLE_MAGIC)
    return bytes(out + footer)
