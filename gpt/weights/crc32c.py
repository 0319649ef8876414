"""CRC-32C (Castagnoli), the checksum LevelDB tables and TensorFlow tensor bundles use.

Reflected polynomial 0x82F63B78, initial value and final xor 0xFFFFFFFF (RFC 3720, iSCSI):
`crc32c(b"123456789") == 0xE3069283`. LevelDB stores checksums *masked*
(`rotate_right(crc, 15) + 0xA282EAD8`) so that a CRC of data holding CRCs stays well mixed.

Two implementations:
- `crc32c(data)`: the textbook byte-at-a-time table loop in pure Python (~10 MB/s), used for
  the small index blocks.
- `crc32c_numpy(data)`: the same CRC for large buffers (tensor data, hundreds of MB). A CRC is
  linear over GF(2), so the buffer is cut into many equal lanes whose CRCs advance together,
  one byte column per NumPy step (~200 MB/s); the lane CRCs are then chained with the
  "combine" rule crc(A + B) = shift_{len(B)}(crc(A)) xor crc(B) (zlib's crc32_combine),
  where the shift by n zero bytes is a multiplication by x^(8n) modulo the polynomial.
"""
from __future__ import annotations

import numpy as np

POLY = 0x82F63B78  # CRC-32C polynomial, bit-reflected
MASK_DELTA = 0xA282EAD8


def _make_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ POLY if crc & 1 else crc >> 1
        table.append(crc)
    return table


_TABLE = _make_table()
_TABLE_NP = np.array(_TABLE, dtype=np.uint32)


def crc32c(data: bytes | bytearray | memoryview, crc: int = 0) -> int:
    """CRC-32C of `data`, continuing from a previous result `crc` (0 to start)."""
    table = _TABLE
    crc ^= 0xFFFFFFFF
    for byte in bytes(data):
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def mask(crc: int) -> int:
    """LevelDB's masked form of a CRC: rotate right by 15 bits, add a constant (mod 2**32)."""
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + MASK_DELTA) & 0xFFFFFFFF


def unmask(masked: int) -> int:
    """Inverse of `mask`."""
    rotated = (masked - MASK_DELTA) & 0xFFFFFFFF
    return ((rotated >> 17) | (rotated << 15)) & 0xFFFFFFFF


def _multiply_mod_p(a: int, b: int) -> int:
    """a * b modulo the CRC polynomial, in the bit-reflected representation (zlib's multmodp)."""
    product = 0
    bit = 1 << 31  # x^0 in reflected order
    while a:
        if a & bit:
            product ^= b
            a ^= bit
        bit >>= 1
        b = (b >> 1) ^ POLY if b & 1 else b >> 1  # b * x
    return product


def _x_power_8n(n_bytes: int) -> int:
    """x^(8 n) mod P (reflected): the operator that moves a CRC register past n zero bytes."""
    result = 1 << 31  # x^0
    square = 1 << 30  # x^1
    exponent = 8 * n_bytes
    while exponent:  # square-and-multiply
        if exponent & 1:
            result = _multiply_mod_p(square, result)
        square = _multiply_mod_p(square, square)
        exponent >>= 1
    return result


def crc32c_combine(crc_a: int, crc_b: int, length_b: int) -> int:
    """CRC of A + B from crc(A), crc(B) and len(B) (zlib's crc32_combine)."""
    return _multiply_mod_p(_x_power_8n(length_b), crc_a) ^ crc_b


def _shift_tables(n_bytes: int) -> np.ndarray:
    """Four (256,) uint32 tables T with shift_n(c) = T0[c & 255] ^ T1[c>>8 & 255] ^ ...

    shift_n(c) = c * x^(8n) mod P is linear in c, so it is fixed by the images of the 32
    unit registers; the tables precompute it byte by byte for the many lane combines.
    """
    operator = _x_power_8n(n_bytes)
    images = np.array([_multiply_mod_p(operator, 1 << bit) for bit in range(32)], dtype=np.uint32)
    bits = ((np.arange(256)[:, None] >> np.arange(8)) & 1).astype(bool)  # (256, 8)
    tables = np.zeros((4, 256), dtype=np.uint32)
    for k in range(4):
        tables[k] = np.bitwise_xor.reduce(np.where(bits, images[None, 8 * k:8 * k + 8], 0), axis=1)
    return tables


def crc32c_numpy(data, lanes: int = 16384, chunk_bytes: int = 1 << 23) -> int:
    """CRC-32C of a large buffer (bytes, ndarray or memmap) at NumPy speed; equals `crc32c`.

    The buffer is read in chunks of at most `chunk_bytes` so a memory-mapped file is never
    copied whole; each chunk is split into lanes (each at least 256 bytes long) advanced
    together one byte per step. What is left over is done the same way with fewer lanes.
    """
    flat = np.frombuffer(data, dtype=np.uint8) if not isinstance(data, np.ndarray) \
        else data.reshape(-1).view(np.uint8)
    total = flat.size
    if total < 4096:
        return crc32c(flat.tobytes())
    lanes = max(1, min(lanes, total // 256))
    lane_len = max(1, min(chunk_bytes // lanes, total // lanes))
    block = lanes * lane_len
    lane_tables = _shift_tables(lane_len)  # chains lane CRCs (each lane_len bytes long)
    crc = 0
    done = 0
    while done + block <= total:
        chunk = np.ascontiguousarray(flat[done:done + block].reshape(lanes, lane_len).T)  # (L, lanes)
        register = np.full(lanes, 0xFFFFFFFF, dtype=np.uint32)
        for column in chunk:  # one byte of every lane per step
            register = _TABLE_NP[(register ^ column) & 0xFF] ^ (register >> 8)
        for lane_crc in (register ^ np.uint32(0xFFFFFFFF)).tolist():  # standard CRC of each lane
            crc = _apply(lane_tables, crc) ^ lane_crc  # crc(A + B) = shift(crc(A)) ^ crc(B)
        done += block
    if done < total:
        crc = crc32c_combine(crc, crc32c_numpy(flat[done:], lanes, chunk_bytes), total - done)
    return crc


def _apply(tables: np.ndarray, crc: int) -> int:
    """shift(crc) through the four byte tables of `_shift_tables`."""
    return int(tables[0, crc & 0xFF] ^ tables[1, (crc >> 8) & 0xFF]
               ^ tables[2, (crc >> 16) & 0xFF] ^ tables[3, crc >> 24])
