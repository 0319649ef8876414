"""Varints and protocol-buffer fields: the byte encodings inside LevelDB tables and TF bundles.

A varint stores an unsigned integer 7 bits per byte, least significant group first, the high
bit of each byte saying "more follows" (300 -> b"\\xac\\x02"). A protobuf message is a list
of fields, each a varint key `(field_number << 3) | wire_type` followed by its value:
wire type 0 = varint, 1 = 8 bytes, 2 = varint length + bytes, 5 = 4 bytes. Fields may come
in any order and repeat; proto3 leaves out fields equal to their default (0, empty).
"""
from __future__ import annotations

import struct

from .errors import WeightsError


def read_varint(buffer: bytes, pos: int, what: str = "varint") -> tuple[int, int]:
    """Decode the varint at `buffer[pos:]`; returns (value, position after it)."""
    result = 0
    shift = 0
    while True:
        if pos >= len(buffer):
            raise WeightsError(f"truncated {what}: ran past the end of the buffer ({len(buffer)} bytes)")
        byte = buffer[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift >= 64:
            raise WeightsError(f"malformed {what}: more than 10 bytes")


def encode_varint(value: int) -> bytes:
    """The varint bytes of a non-negative integer (negative int64 as two's complement)."""
    if value < 0:
        value += 1 << 64
    out = bytearray()
    while True:
        low = value & 0x7F
        value >>= 7
        if value:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


WIRE_TYPE_NAMES = {0: "varint", 1: "fixed64", 2: "length-delimited", 5: "fixed32"}


def parse_fields(buffer: bytes, what: str,
                 wire_types: dict[int, int] | None = None) -> list[tuple[int, int, int | bytes]]:
    """Split a protobuf message into (field number, wire type, value) triples, in order.

    Varint and fixed-width values come back as ints, length-delimited ones as bytes.
    `wire_types` (field number -> wire type) are the types the schema gives the known fields:
    a known field stored with another type is a WeightsError (unknown fields pass).
    """
    fields = []
    pos = 0
    while pos < len(buffer):
        key, pos = read_varint(buffer, pos, what)
        number, wire_type = key >> 3, key & 7
        if wire_type == 0:
            value, pos = read_varint(buffer, pos, what)
        elif wire_type == 1:
            if pos + 8 > len(buffer):
                raise WeightsError(f"truncated {what}: fixed64 field {number} runs past the end")
            value = struct.unpack_from("<Q", buffer, pos)[0]
            pos += 8
        elif wire_type == 2:
            length, pos = read_varint(buffer, pos, what)
            if pos + length > len(buffer):
                raise WeightsError(f"truncated {what}: field {number} of {length} bytes runs past the end")
            value = bytes(buffer[pos:pos + length])
            pos += length
        elif wire_type == 5:
            if pos + 4 > len(buffer):
                raise WeightsError(f"truncated {what}: fixed32 field {number} runs past the end")
            value = struct.unpack_from("<I", buffer, pos)[0]
            pos += 4
        else:
            raise WeightsError(f"malformed {what}: field {number} has unsupported wire type {wire_type}")
        expected = (wire_types or {}).get(number, wire_type)
        if expected != wire_type:
            raise WeightsError(f"malformed {what}: field {number} is stored as "
                               f"{WIRE_TYPE_NAMES[wire_type]}, but the schema says "
                               f"{WIRE_TYPE_NAMES[expected]}; the file is corrupt")
        fields.append((number, wire_type, value))
    return fields


def to_int64(value: int) -> int:
    """Reinterpret a decoded varint as a signed int64 (protobuf int64 stores -1 as 2**64-1)."""
    return value - (1 << 64) if value >= 1 << 63 else value


def field_varint(number: int, value: int) -> bytes:
    """Encode a varint field (proto3: the caller leaves out zeros)."""
    return encode_varint(number << 3) + encode_varint(value)


def field_bytes(number: int, payload: bytes) -> bytes:
    """Encode a length-delimited field (string, bytes or embedded message)."""
    return encode_varint((number << 3) | 2) + encode_varint(len(payload)) + payload


def field_fixed32(number: int, value: int) -> bytes:
    """Encode a fixed32 field."""
    return encode_varint((number << 3) | 5) + struct.pack("<I", value)
