"""Tokenizers: text -> token ids -> text (the book's chapter 2, sections 2.2-2.5 and appendix "BPE from scratch").

One small interface, `Tokenizer`, and the kinds behind it (by name: gpt.data.registry's
`get_tokenizer(name, path=None)`):

- "bytes" (`ByteTokenizer`): the 256 byte values of the UTF-8 text are the ids 0..255,
  `<|endoftext|>` is 256 (n_vocab 257). Needs nothing and round-trips any Unicode. Decoding
  ids that do not form valid UTF-8 (a model may sample such bytes) puts U+FFFD for each bad
  sequence (errors="replace"), as tiktoken's decode does.
- "gpt2" (`load_gpt2_tokenizer`): GPT-2's 50,257-token byte-level BPE through tiktoken, from
  local files first (see gpt/data/gpt2_files.py for the search order and the
  GPT2_TOKENIZER_DIR variable).
- "bpe:N" (`tokenizer_from_merges`): a byte-level BPE with N ids trained on your own text
  (gpt/data/bpe.py, `train_bpe`), encoded by tiktoken's fast encoder with our ranks; its
  merges travel in `to_state()`.

In every kind the special token `<|endoftext|>` may appear in the text and maps to `eot_id`.
A checkpoint stores `tokenizer.to_state()` (JSON-able) and rebuilds it with
`tokenizer_from_state(state)` (gpt.data.registry).
"""
from __future__ import annotations

import base64

import functools
import hashlib
import json
import os
from pathlib import Path

import numpy as np
import tiktoken

from .gpt2_files import (
    ENDOFTEXT,
    ENV_DIR,
    GPT2_PAT_STR,
    TokenizerNotFoundError,
    download_gpt2_encoding,
    how_to_get_gpt2,
    load_ranks_from_path,
    load_ranks_from_tiktoken_cache,
)

STATE_VERSION = 1


def storage_dtype(n_vocab: int) -> type:
    """The smallest unsigned dtype holding ids 0..n_vocab-1: uint16 up to 65,536 ids, else uint32."""
    return np.uint16 if n_vocab <= 2**16 else np.uint32


class Tokenizer:
    """The interface: `encode`, `encode_array`, `decode`, `n_vocab`, `eot_id`, `name`, `to_state`."""

    name: str
    n_vocab: int
    eot_id: int

    def encode(self, text: str) -> list[int]:
        """Token ids of `text` (`<|endoftext|>` in the text becomes eot_id)."""
        raise NotImplementedError

    def encode_array(self, text: str) -> np.ndarray:
        """Token ids as a (T,) array of `self.dtype` (uint16 when n_vocab <= 65,536, else uint32)."""
        return np.asarray(self.encode(text), dtype=self.dtype)

    def decode(self, token_ids) -> str:
        """Text of ids given as a list, a (T,) or (1, T) array, one int, or a Tensor-like with `.data`.

        Ids outside 0..n_vocab-1 raise ValueError; byte sequences that are not valid UTF-8
        decode to U+FFFD (errors="replace")."""
        raise NotImplementedError

    def to_state(self) -> dict:
        """A JSON-able dict that `tokenizer_from_state` turns back into this tokenizer."""
        raise NotImplementedError

    @property
    def dtype(self) -> type:
        return storage_dtype(self.n_vocab)

    @property
    def identity(self) -> str:
        """A short string naming exactly this vocabulary (used to key token caches)."""
        return self.name

    def _checked_ids(self, token_ids) -> np.ndarray:
        """(T,) int64 ids from any accepted input, each checked to lie in [0, n_vocab)."""
        data = getattr(token_ids, "data", token_ids)
        if isinstance(data, memoryview):  # an ndarray's own .data is a buffer, not a Tensor's array
            data = token_ids
        ids = np.asarray(data)
        if ids.ndim == 0:
            ids = ids.reshape(1)  # one id (e.g. the token just sampled)
        if ids.ndim == 2 and ids.shape[0] == 1:
            ids = ids[0]  # (1, T) -> (T,), the book's batch of one
        if ids.ndim != 1:
            raise ValueError(
                f"{self.name}.decode expects one sequence of ids, shape (T,) or (1, T); got shape "
                f"{tuple(ids.shape)} (decode each row separately)"
            )
        if ids.size == 0:
            return ids.astype(np.int64)
        if ids.dtype.kind == "f":
            if not np.all(ids == np.round(ids)):
                raise ValueError(f"{self.name}.decode got non-integer ids (dtype {ids.dtype})")
        elif ids.dtype.kind not in "iub":
            raise TypeError(f"{self.name}.decode expects integer token ids, got dtype {ids.dtype}")
        ids = ids.astype(np.int64)
        bad = (ids < 0) | (ids >= self.n_vocab)
        if bad.any():
            position = int(np.argmax(bad))
            raise ValueError(
                f"token id {int(ids[position])} at position {position} is outside the vocabulary of "
                f"{self.name!r} (n_vocab {self.n_vocab}: valid ids are 0..{self.n_vocab - 1})"
            )
        return ids

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} n_vocab={self.n_vocab} eot_id={self.eot_id}>"


def _encodable(text: str) -> str:
    """`text` with lone surrogates (not encodable as UTF-8) replaced by U+FFFD, as tiktoken does."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


class ByteTokenizer(Tokenizer):
    """UTF-8 bytes as ids 0..255, `<|endoftext|>` = 256; n_vocab 257."""

    name = "bytes"
    n_vocab = 257
    eot_id = 256

    def encode_array(self, text: str) -> np.ndarray:
        if not isinstance(text, str):
            raise TypeError(f"bytes.encode expects a str, got {type(text).__name__}")
        parts = _encodable(text).split(ENDOFTEXT)
        pieces = []
        for i, part in enumerate(parts):
            if i:
                pieces.append(np.array([self.eot_id], dtype=np.uint16))
            pieces.append(np.frombuffer(part.encode("utf-8"), dtype=np.uint8).astype(np.uint16))
        return np.concatenate(pieces)  # (T,) uint16

    def encode(self, text: str) -> list[int]:
        return self.encode_array(text).tolist()

    def decode(self, token_ids) -> str:
        ids = self._checked_ids(token_ids)
        eot_positions = np.flatnonzero(ids == self.eot_id)
        texts, start = [], 0
        for end in [*eot_positions.tolist(), len(ids)]:
            texts.append(ids[start:end].astype(np.uint8).tobytes().decode("utf-8", errors="replace"))
            start = end + 1
        return ENDOFTEXT.join(texts)

    def to_state(self) -> dict:
        return {"name": "bytes", "kind": "bytes", "version": STATE_VERSION, "n_vocab": 257, "eot_id": 256}


def ranks_sha256(mergeable_ranks: dict[bytes, int]) -> str:
    """SHA-256 of the tokens in rank order (length-prefixed): identifies a BPE vocabulary."""
    digest = hashlib.sha256()
    for token, rank in sorted(mergeable_ranks.items(), key=lambda kv: kv[1]):
        digest.update(rank.to_bytes(4, "little") + len(token).to_bytes(2, "little") + token)
    return digest.hexdigest()


class TiktokenTokenizer(Tokenizer):
    """A byte-level BPE encoded by tiktoken: GPT-2's ("gpt2") or one trained here ("bpe:N").

    `merges` (for trained BPEs) lists the (left id, right id) pair that made each token from
    id 256 on; it is what `to_state` saves.
    """

    def __init__(self, name: str, mergeable_ranks: dict[bytes, int], eot_id: int,
                 pat_str: str = GPT2_PAT_STR, merges: list[tuple[int, int]] | None = None,
                 source: str = ""):
        n_vocab = max(max(mergeable_ranks.values()), eot_id) + 1
        if len(mergeable_ranks) + 1 != n_vocab or eot_id in mergeable_ranks.values():
            raise ValueError(
                f"tokenizer {name!r}: ranks must be the ids 0..{n_vocab - 2} with eot_id {eot_id} the "
                f"last id; got {len(mergeable_ranks)} ranks up to {max(mergeable_ranks.values())}"
            )
        self.name = name
        self.n_vocab = n_vocab
        self.eot_id = int(eot_id)
        self.pat_str = pat_str
        self.merges = merges
        self.source = source  # where the ranks came from (a path, tiktoken's cache, training)
        self._ranks = mergeable_ranks
        self.encoding = tiktoken.Encoding(
            name, pat_str=pat_str, mergeable_ranks=mergeable_ranks, special_tokens={ENDOFTEXT: self.eot_id}
        )

    @functools.cached_property
    def ranks_sha256(self) -> str:
        return ranks_sha256(self._ranks)

    @property
    def identity(self) -> str:
        return f"{self.name}-{self.ranks_sha256[:16]}"

    def encode(self, text: str) -> list[int]:
        if not isinstance(text, str):
            raise TypeError(f"{self.name}.encode expects a str, got {type(text).__name__}")
        return self.encoding.encode(text, allowed_special={ENDOFTEXT})

    def encode_array(self, text: str) -> np.ndarray:
        if not isinstance(text, str):
            raise TypeError(f"{self.name}.encode expects a str, got {type(text).__name__}")
        ids = self.encoding.encode_to_numpy(_encodable(text), allowed_special={ENDOFTEXT})  # (T,) uint32
        return ids.astype(self.dtype, copy=False)

    def decode(self, token_ids) -> str:
        return self.encoding.decode(self._checked_ids(token_ids).tolist(), errors="replace")

    def tiktoken_file_bytes(self) -> bytes:
        """The ranks as a `.tiktoken` file ('base64-token rank' per line, tiktoken's own format):
        what `get_tokenizer("gpt2", path=FILE)` reads back (a checkpoint carries GPT-2's this way)."""
        ordered = sorted(self._ranks.items(), key=lambda item: item[1])
        return b"".join(base64.b64encode(token) + b" %d\n" % rank for token, rank in ordered)

    def to_state(self) -> dict:
        state = {
            "name": self.name,
            "kind": "gpt2" if self.name == "gpt2" else "bpe",
            "version": STATE_VERSION,
            "n_vocab": self.n_vocab,
            "eot_id": self.eot_id,
            "ranks_sha256": self.ranks_sha256,
        }
        if self.merges is not None:
            state["pat_str"] = self.pat_str
            state["merges"] = [[int(a), int(b)] for a, b in self.merges]
        return state

    def save(self, path: str | os.PathLike) -> None:
        """Write `to_state()` as JSON (reload with get_tokenizer('bpe:N', path) or tokenizer_from_state)."""
        Path(path).write_text(json.dumps(self.to_state()), encoding="utf-8")


def tokenizer_from_merges(merges, pat_str: str = GPT2_PAT_STR) -> TiktokenTokenizer:
    """The "bpe:N" tokenizer of a merge list: ids 0..255 bytes, one id per merge, then <|endoftext|>."""
    tokens = [bytes([b]) for b in range(256)]
    ranks = {tok: i for i, tok in enumerate(tokens)}
    clean = []
    for k, pair in enumerate(merges):
        try:
            a, b = (int(x) for x in pair)
        except (TypeError, ValueError):
            raise ValueError(f"BPE merge {k} must be a pair of ids, got {pair!r}") from None
        if not (0 <= a < len(tokens) and 0 <= b < len(tokens)):
            raise ValueError(f"BPE merge {k} ({a}, {b}) uses an id not yet defined (ids so far: 0..{len(tokens) - 1})")
        joined = tokens[a] + tokens[b]
        if joined in ranks:
            raise ValueError(f"BPE merge {k} ({a}, {b}) makes the existing token {joined!r} again")
        ranks[joined] = len(tokens)
        tokens.append(joined)
        clean.append((a, b))
    eot_id = len(tokens)
    return TiktokenTokenizer(f"bpe:{eot_id + 1}", ranks, eot_id, pat_str=pat_str, merges=clean, source="trained")


# ---------------------------------------------------------------------------------------------
# GPT-2
# ---------------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=4)
def _gpt2_from_file_key(resolved: str, mtime_ns: int, origin: str) -> TiktokenTokenizer:
    ranks, eot_id, source = load_ranks_from_path(resolved, origin)
    return TiktokenTokenizer("gpt2", ranks, eot_id, source=source)


def _gpt2_from_path(path, origin: str) -> TiktokenTokenizer:
    resolved = Path(path).expanduser().resolve()
    mtime = resolved.stat().st_mtime_ns if resolved.exists() else 0
    return _gpt2_from_file_key(str(resolved), mtime, origin)


def load_gpt2_tokenizer(path: str | os.PathLike | None = None) -> TiktokenTokenizer:
    """GPT-2's tokenizer: `path` -> $GPT2_TOKENIZER_DIR -> tiktoken's cache -> download -> clear error."""
    if path is not None:
        return _gpt2_from_path(path, "path")
    env_dir = os.environ.get(ENV_DIR, "").strip()
    if env_dir:
        return _gpt2_from_path(env_dir, f"folder (from ${ENV_DIR})")
    cached = load_ranks_from_tiktoken_cache()
    if cached is not None:
        ranks, eot_id, source = cached
        return TiktokenTokenizer("gpt2", ranks, eot_id, source=source)
    encoding, reason = download_gpt2_encoding()
    if encoding is not None:
        eot_id = encoding.eot_token
        ranks = {encoding.decode_single_token_bytes(i): i for i in range(encoding.n_vocab) if i != eot_id}
        return TiktokenTokenizer("gpt2", ranks, eot_id, source="tiktoken download")
    raise TokenizerNotFoundError(
        f"The GPT-2 tokenizer is not available: no path was given, ${ENV_DIR} is not set, tiktoken's "
        f"cache does not hold it, and downloading it failed ({reason}).\n{how_to_get_gpt2()}"
    )
