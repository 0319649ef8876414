"""CRC-32C (Castagnoli), the checksum LevelDB tables and TensorFlow tensor bundles use.

Reflected polynomial 0x82F63B78, initial value and final xor 0xFFFFFFFF (RFC 3720, iSCSI):
`crc32c(b"123456789") == 0xE3069283`. LevelDB stores checksums *masked*
(`rotate_right(crc, 15) + 0xA282EAD8`) so that a CRC of data holding CRCs stays well mixed.

Two implementations:
- `crc32c(data)`: the textbook byte-at-a-time table loop in pure Python (~10 MB/s), used for
  the small index blocks.
- `crc32c_numpy(data)`: the same CRC for large buffers (every tensor of a checkpoint: 500 MB
  for GPT-2 124M, checked in about half a second on 2 cores). It rests on linearity over
  GF(2). Write raw(m) for the register after m when it starts at 0; then
      raw(A + B) = shift_{len(B)}(raw(A)) xor raw(B)       (zlib's crc32_combine)
  where shift_n (moving a register past n zero bytes) is a multiplication by x^(8n) modulo
  the polynomial. So the raw CRC of a 16-byte block of eight 16-bit words w0..w7 is
  P0[w0] ^ P1[w1] ^ ... ^ P7[w7], with P_k[w] = shift_{14-2k}(raw(w)): eight table lookups
  per 16 bytes, done for all blocks of a chunk at once. Neighbouring block CRCs are then
  merged pairwise (16 -> 32 -> 64 ... bytes), each merge a shift through two 65536-entry
  tables; chunks (4 MiB) run on a few threads and are chained in order at the end, so
  memory stays a few MB whatever the buffer's size (a memory-mapped file is never copied).
  The standard CRC adds the initial 0xFFFFFFFF: crc(m) = shift_{len(m)}(~0) ^ raw(m) ^ ~0.
"""
from __future__ import annotations

import functools
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from minigrad.runtime import available_cores

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


# ---------------------------------------------------------------- the fast NumPy CRC
_WORDS = 8  # 16-bit words per block: a block is 16 bytes
_BLOCK = 2 * _WORDS
_MERGE_UNTIL = 64  # block CRCs left when the rest is merged in plain Python


def _advance_zero_bytes(registers: np.ndarray, n_bytes: int) -> np.ndarray:
    """Registers moved past `n_bytes` zero bytes, one table step per byte."""
    for _ in range(n_bytes):
        registers = _TABLE_NP[registers & 0xFF] ^ (registers >> 8)
    return registers


@functools.lru_cache(maxsize=1)
def _position_tables() -> np.ndarray:
    """(8, 65536) uint32: row k maps word k of a block to its part of the block's raw CRC."""
    words = np.arange(1 << 16, dtype=np.uint32)
    registers = np.zeros(1 << 16, dtype=np.uint32)
    registers = _TABLE_NP[(registers ^ (words & 0xFF)) & 0xFF] ^ (registers >> 8)  # low byte first
    registers = _TABLE_NP[(registers ^ (words >> 8)) & 0xFF] ^ (registers >> 8)
    tables = np.empty((_WORDS, 1 << 16), dtype=np.uint32)
    tables[_WORDS - 1] = registers  # the last word: nothing follows it in the block
    for k in range(_WORDS - 2, -1, -1):
        tables[k] = _advance_zero_bytes(tables[k + 1], 2)  # two more bytes follow word k
    return tables


@functools.lru_cache(maxsize=64)
def _shift_tables(n_bytes: int) -> tuple[np.ndarray, np.ndarray]:
    """(low, high) (65536,) uint32 tables with shift_n(c) = low[c & 0xFFFF] ^ high[c >> 16].

    shift_n is linear in c, so it is fixed by the images of the 32 unit registers."""
    operator = _x_power_8n(n_bytes)
    images = [_multiply_mod_p(operator, 1 << bit) for bit in range(32)]
    values = np.arange(1 << 16, dtype=np.uint32)
    low = np.zeros(1 << 16, dtype=np.uint32)
    high = np.zeros(1 << 16, dtype=np.uint32)
    for bit in range(16):
        has_bit = ((values >> bit) & 1).astype(bool)
        low[has_bit] ^= np.uint32(images[bit])
        high[has_bit] ^= np.uint32(images[16 + bit])
    return low, high


def _raw_crc_of_blocks(chunk: np.ndarray) -> int:
    """raw CRC (register starting at 0) of a uint8 chunk whose length is a multiple of 16."""
    tables = _position_tables()
    words = chunk.view("<u2").reshape(-1, _WORDS)  # (blocks, 8)
    block_crcs = tables[0][words[:, 0]]  # (blocks,)
    for k in range(1, _WORDS):
        block_crcs ^= tables[k][words[:, k]]
    size = _BLOCK  # bytes covered by each entry of block_crcs
    while block_crcs.size > _MERGE_UNTIL:
        if block_crcs.size % 2:  # leading zero bytes leave a raw CRC unchanged: pad in front
            block_crcs = np.concatenate([np.zeros(1, dtype=np.uint32), block_crcs])
        low, high = _shift_tables(size)
        left = block_crcs[0::2]
        block_crcs = low[left & 0xFFFF] ^ high[left >> 16] ^ block_crcs[1::2]  # raw(A + B)
        size *= 2
    raw = 0
    operator = _x_power_8n(size)
    for block_crc in block_crcs.tolist():
        raw = _multiply_mod_p(operator, raw) ^ block_crc
    return raw


def crc32c_numpy(data, chunk_bytes: int = 1 << 22, threads: int | None = None) -> int:
    """CRC-32C of a large buffer (bytes, ndarray or memmap) at NumPy speed; equals `crc32c`.

    The buffer is read in chunks of `chunk_bytes` (rounded down to a multiple of 16), on up
    to `threads` threads (default: the usable cores, at most 4); the last < 16 bytes go
    through the byte loop.
    """
    flat = np.frombuffer(data, dtype=np.uint8) if not isinstance(data, np.ndarray) \
        else data.reshape(-1).view(np.uint8)
    total = flat.size
    if total < 4096:
        return crc32c(flat.tobytes())
    chunk_bytes = max(_BLOCK, chunk_bytes - chunk_bytes % _BLOCK)
    body = total - total % _BLOCK
    starts = range(0, body, chunk_bytes)
    if threads is None:
        threads = min(4, available_cores())
    chunks = (flat[start:min(start + chunk_bytes, body)] for start in starts)
    if threads > 1 and len(starts) > 1:
        with ThreadPoolExecutor(min(threads, len(starts))) as pool:  # NumPy releases the GIL
            raws = list(pool.map(_raw_crc_of_blocks, chunks))
    else:
        raws = [_raw_crc_of_blocks(chunk) for chunk in chunks]
    raw = 0
    for start, chunk_raw in zip(starts, raws):  # raw(A + B) = shift_len(B)(raw(A)) ^ raw(B)
        raw = _multiply_mod_p(_x_power_8n(min(chunk_bytes, body - start)), raw) ^ chunk_raw
    crc = _multiply_mod_p(_x_power_8n(body), 0xFFFFFFFF) ^ raw ^ 0xFFFFFFFF
    return crc32c(flat[body:].tobytes(), crc)  # the tail, continuing the CRC
