"""Write a byte-level BPE's vocabulary as GPT-2 files: `encoder.json` / `vocab.bpe`
(OpenAI's names) = `vocab.json` / `merges.txt` (Hugging Face's names, same bytes).

GPT-2 stores tokens as text by mapping each byte to a printable character (`bytes_to_unicode`
in OpenAI's encoder.py: printable Latin-1 bytes stand for themselves, the other 68 bytes
become U+0100 onwards, so the space 0x20 is "Ġ"). `encoder.json` maps every token to its
id; `vocab.bpe` lists the merges in rank order, one "left right" pair per line, merge n
making the token of id 256 + n. The pair behind a token is recovered by running BPE on the
token's bytes with only the lower-ranked tokens allowed: it stops at exactly the two halves
the merge joined. For GPT-2's own ranks this reproduces OpenAI's two files byte for byte.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from ..data.gpt2_files import ENDOFTEXT, bytes_to_unicode


def _merge_pair(token: bytes, rank: int, ranks: dict[bytes, int]) -> tuple[bytes, bytes]:
    """The two tokens whose merge made `token`: BPE on its bytes using only ranks below `rank`."""
    parts = [bytes([b]) for b in token]
    while len(parts) > 2:
        best = None
        for i in range(len(parts) - 1):
            pair_rank = ranks.get(parts[i] + parts[i + 1])
            if pair_rank is not None and pair_rank < rank and (best is None or pair_rank < best[0]):
                best = (pair_rank, i)
        if best is None:
            break
        i = best[1]
        parts[i:i + 2] = [parts[i] + parts[i + 1]]
    if len(parts) != 2:
        raise ValueError(f"token {token!r} (rank {rank}) is not the merge of two lower-ranked tokens; "
                         "these ranks are not a byte-level BPE")
    return parts[0], parts[1]


def tokenizer_ranks(tokenizer) -> tuple[dict[bytes, int], int]:
    """(token bytes -> id, eot id) of a tiktoken-backed tokenizer (`tokenizer.encoding`)."""
    encoding = tokenizer.encoding
    eot_id = tokenizer.eot_id
    ranks = {encoding.decode_single_token_bytes(i): i for i in range(encoding.n_vocab) if i != eot_id}
    return ranks, eot_id


def write_bpe_files(tokenizer, folder: str | os.PathLike, vocab_name: str = "vocab.json",
                    merges_name: str = "merges.txt") -> tuple[Path, Path]:
    """Write the tokenizer's vocabulary and merges into `folder` (GPT-2 file format)."""
    ranks, eot_id = tokenizer_ranks(tokenizer)
    byte_symbol = bytes_to_unicode()

    def as_text(token: bytes) -> str:
        return "".join(byte_symbol[b] for b in token)

    by_rank = sorted(ranks.items(), key=lambda item: item[1])
    single = [token for token, rank in by_rank if len(token) == 1]
    if len(single) != 256 or any(len(token) == 1 for token, rank in by_rank[256:]):
        raise ValueError("write_bpe_files: the first 256 ids must be the 256 single bytes (a byte-level BPE)")
    encoder = {as_text(token): rank for token, rank in by_rank}
    encoder[ENDOFTEXT] = eot_id
    lines = ["#version: 0.2"]
    for token, rank in by_rank[256:]:
        left, right = _merge_pair(token, rank, ranks)
        lines.append(f"{as_text(left)} {as_text(right)}")
    folder = Path(folder)
    vocab_path, merges_path = folder / vocab_name, folder / merges_name
    _write_text_atomically(vocab_path, json.dumps(encoder))
    _write_text_atomically(merges_path, "\n".join(lines) + "\n")
    return vocab_path, merges_path


def _write_text_atomically(path: Path, text: str) -> None:
    """Write to a temporary file beside `path`, then rename it over `path` (no partial file)."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
