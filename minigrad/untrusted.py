"""Reading files that may be broken or hostile: one error class, JSON with bounded nesting,
messages of bounded length.

A small file must never cost a lot of memory or time, nor produce a huge error message:

- `loads_json(data, where, error)` parses JSON after checking its nesting depth (at most
  `MAX_JSON_DEPTH` levels), so `[[[[...]]]]` is a clear error instead of a RecursionError,
  and not-UTF-8 bytes or bad syntax raise `error` naming `where`.
- `shorten(text)` caps any text (a repr of a value read from a file, a nested exception's
  message) at `MAX_SHOWN` characters, so an error message stays one readable line.
"""
from __future__ import annotations

import json
import os
import re

import numpy as np

MAX_JSON_DEPTH = 64  # nesting levels; the deepest file this project writes has 6
MAX_SHOWN = 200  # characters of a value shown in an error message
MAX_MESSAGE = 2000  # characters of a whole error message



class FileFormatError(ValueError):
    """A file (or folder) that cannot be used as it is: truncated, corrupt, tampered with, of
    another format, or claiming sizes it cannot hold. The message names the file and says what
    is wrong. The base of every such error of minigrad and gpt (minigrad's CheckpointError,
    gpt's WeightsError, DataError, TokenizerFileError, ...), so one `except` catches them."""


_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)


def shorten(text, limit: int = MAX_SHOWN) -> str:
    """`text` (or str(text)) cut to `limit` characters, saying how much was left out."""
    text = str(text)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text) - limit:,} more characters)"


def short_repr(value, limit: int = MAX_SHOWN) -> str:
    """repr(value) cut to `limit` characters (a value read from a file can be huge)."""
    return shorten(repr(value), limit)


def json_depth(data: bytes) -> int:
    """The deepest nesting of objects/arrays in JSON bytes (brackets inside strings ignored)."""
    without_strings = _JSON_STRING.sub(b'""', data)
    codes = np.frombuffer(without_strings, dtype=np.uint8)
    step = (np.isin(codes, (ord("["), ord("{"))).astype(np.int64)
            - np.isin(codes, (ord("]"), ord("}"))))
    return int(np.cumsum(step).max(initial=0))


def loads_json(data, where: str, error: type[Exception] = FileFormatError,
               max_depth: int = MAX_JSON_DEPTH, object_pairs_hook=None):
    """json.loads of `data` (bytes or str) read from `where`; any problem raises `error`.

    Refused before parsing: nesting deeper than `max_depth`; bytes that are not UTF-8.
    `object_pairs_hook` is json's (it may raise `error` itself, e.g. on duplicate keys).
    """
    if isinstance(data, str):
        raw = data.encode("utf-8", errors="surrogatepass")
    else:
        raw = bytes(data)
        try:
            data = raw.decode("utf-8")
        except UnicodeDecodeError as problem:
            raise error(f"{where}: not UTF-8 text (byte 0x{raw[problem.start]:02x} at offset "
                        f"{problem.start}); expected a JSON file") from None
    depth = json_depth(raw)
    if depth > max_depth:
        raise error(f"{where}: JSON nested {depth} levels deep, more than the limit of {max_depth}")
    try:
        return json.loads(data, object_pairs_hook=object_pairs_hook)
    except error:
        raise  # from the hook: already says what is wrong
    except (json.JSONDecodeError, RecursionError, ValueError) as problem:
        raise error(f"{where}: not valid JSON ({shorten(problem)})") from None


def read_json_file(path, error: type[Exception] = FileFormatError, max_bytes: int = 1 << 30,
                   max_depth: int = MAX_JSON_DEPTH):
    """The JSON value of the file at `path`, checked as `loads_json` does; a file larger than
    `max_bytes` is refused before it is read."""
    size = os.path.getsize(path)
    if size > max_bytes:
        raise error(f"{path}: {size:,} bytes, more than the {max_bytes:,} a JSON file here may have")
    with open(path, "rb") as file:
        return loads_json(file.read(), str(path), error, max_depth)
