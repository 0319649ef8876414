"""Finding and reading GPT-2's byte-pair-encoding files, offline first.

GPT-2's tokenizer (the book's section 2.5) is 50,256 byte-level BPE tokens plus
`<|endoftext|>` = 50256. tiktoken downloads its two files on first use; here we find them
locally instead, in this order (`resolve_gpt2_ranks`):

1. an explicit `path`: a folder, or one of its files, holding
   - OpenAI's `encoder.json` + `vocab.bpe` (in every OpenAI GPT-2 checkpoint folder),
   - Hugging Face's `vocab.json` + `merges.txt` (in every HF gpt2 folder; same formats),
   - Hugging Face's `tokenizer.json`, or
   - a tiktoken `.tiktoken` file (base64 token, space, rank per line; `r50k_base.tiktoken`);
2. the folder named by the environment variable `GPT2_TOKENIZER_DIR`;
3. tiktoken's own download cache, when the files are already there (tiktoken keeps them in
   `$TIKTOKEN_CACHE_DIR`, else `$DATA_GYM_CACHE_DIR`, else `<tmp>/data-gym-cache`, each file
   named by the SHA-1 of its URL; see `tiktoken/load.py: read_file_cached`);
4. one download attempt through `tiktoken.get_encoding("gpt2")` (skipped when `GPT_OFFLINE=1`;
   bounded by `GPT2_DOWNLOAD_TIMEOUT` seconds, default 20), every exception caught;
5. otherwise `TokenizerNotFoundError`, saying what to download and where to put it.

We parse the files ourselves rather than through `tiktoken.load.data_gym_to_mergeable_bpe_ranks`
(whose algorithm we copy and test against): tiktoken's loader copies even local files into its
cache keyed by the *path* (a changed file at the same path would then be read stale), and it
drops the last merge of a `merges.txt` without a final newline.
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import tempfile
import threading
from pathlib import Path

import tiktoken

from minigrad.untrusted import FileFormatError, loads_json, short_repr

ENDOFTEXT = "<|endoftext|>"

# GPT-2's pre-tokenizer (tiktoken_ext.openai_public.r50k_pat_str; equivalent to the regex of
# OpenAI's encoder.py, written with possessive quantifiers so it runs faster).
GPT2_PAT_STR = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s"""

OPENAI_ENCODER_JSON_URL = "https://openaipublic.blob.core.windows.net/gpt-2/encodings/main/encoder.json"
OPENAI_VOCAB_BPE_URL = "https://openaipublic.blob.core.windows.net/gpt-2/encodings/main/vocab.bpe"
R50K_TIKTOKEN_URL = "https://openaipublic.blob.core.windows.net/encodings/r50k_base.tiktoken"
HF_VOCAB_JSON_URL = "https://huggingface.co/openai-community/gpt2/resolve/main/vocab.json"
HF_MERGES_TXT_URL = "https://huggingface.co/openai-community/gpt2/resolve/main/merges.txt"
# SHA-256 of the official files (the hashes tiktoken checks its downloads against).
KNOWN_SHA256 = {
    OPENAI_ENCODER_JSON_URL: "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783",
    OPENAI_VOCAB_BPE_URL: "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5",
    R50K_TIKTOKEN_URL: "306cd27f03c1a714eca7108e03d66b7dc042abe8c258b44c199a7ed9838dd930",
}

ENV_DIR = "GPT2_TOKENIZER_DIR"
ENV_OFFLINE = "GPT_OFFLINE"
ENV_TIMEOUT = "GPT2_DOWNLOAD_TIMEOUT"


class TokenizerFileError(FileFormatError):
    """A tokenizer file (encoder.json, vocab.bpe, tokenizer.json, .tiktoken) is malformed; the
    message names it."""


class TokenizerNotFoundError(FileNotFoundError):
    """A tokenizer's files could not be found (the message says what to download or set)."""


def how_to_get_gpt2() -> str:
    """The instructions the not-found error prints."""
    return (
        "To use the GPT-2 tokenizer without network, download OpenAI's two files\n"
        f"    {OPENAI_ENCODER_JSON_URL}\n"
        f"    {OPENAI_VOCAB_BPE_URL}\n"
        "(or Hugging Face's\n"
        f"    {HF_VOCAB_JSON_URL}\n"
        f"    {HF_MERGES_TXT_URL})\n"
        "into one folder, then either pass that folder (get_tokenizer('gpt2', path=FOLDER), or the\n"
        f"command line's --tokenizer-path FOLDER) or set the environment variable {ENV_DIR}=FOLDER.\n"
        "Any GPT-2 checkpoint folder (OpenAI's models/124M, Hugging Face's gpt2) already holds them.\n"
        "Tokenizers that need no files: 'bytes', or 'bpe:N' trained on your own text."
    )


# ---------------------------------------------------------------------------------------------
# Parsers: file contents -> mergeable ranks {token bytes: rank} (tiktoken's format)
# ---------------------------------------------------------------------------------------------

def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's printable stand-in character for each byte (OpenAI's `bytes_to_unicode`).

    Printable non-space bytes ('!'..'~', '¡'..'¬', '®'..'ÿ') stand for themselves; the other 68
    bytes get the characters chr(256), chr(257), ... in byte order (so the space byte 32 is
    written 'Ġ' = chr(288)). Files of GPT-2's tokenizer store token bytes this way.
    """
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) \
        + list(range(ord("®"), ord("ÿ") + 1))
    table = {byte: chr(byte) for byte in printable}
    extra = 0
    for byte in range(256):
        if byte not in table:
            table[byte] = chr(256 + extra)
            extra += 1
    return table


def _data_gym_byte_map() -> dict[str, int]:
    """The inverse of `bytes_to_unicode`: stand-in character -> byte."""
    return {char: byte for byte, char in bytes_to_unicode().items()}


def ranks_from_data_gym(merges_text: str, encoder_json_text: str, source: str = "",
                        json_source: str | None = None) -> tuple[dict[bytes, int], int]:
    """(mergeable ranks, eot id) from OpenAI's vocab.bpe + encoder.json, or HF's merges.txt + vocab.json.

    The ranks are the 256 single bytes (in GPT-2's order: printable bytes first) followed by one
    token per merge line, in order; encoder.json must agree with them (as tiktoken checks).
    """
    char_to_byte = _data_gym_byte_map()

    def to_bytes(value: str) -> bytes:
        try:
            return bytes(char_to_byte[c] for c in value)
        except KeyError as exc:
            raise TokenizerFileError(f"{source}: character {exc.args[0]!r} is not a GPT-2 byte symbol") from None

    byte_order = sorted(char_to_byte.items(), key=lambda kv: ord(kv[0]))
    ranks = {bytes([b]): i for i, (_, b) in enumerate(byte_order)}
    for line_no, line in enumerate(merges_text.split("\n"), start=1):
        if not line.strip() or (line_no == 1 and line.startswith("#version")):
            continue  # the '#version: 0.2' header, blank lines, a missing or present final newline
        parts = line.split()
        if len(parts) != 2:
            raise TokenizerFileError(f"{source}: line {line_no} is not a merge 'A B': {line[:80]!r}")
        ranks[to_bytes(parts[0]) + to_bytes(parts[1])] = len(ranks)

    json_source = json_source or f"{source}: the encoder/vocab JSON"
    encoder = loads_json(encoder_json_text, json_source, TokenizerFileError)
    if not isinstance(encoder, dict) or not all(type(v) is int for v in encoder.values()):
        raise TokenizerFileError(f"{json_source} must be an object mapping each token "
                                 f"to its integer id, got {short_repr(encoder, 80)}")
    eot_id = encoder.pop(ENDOFTEXT, len(ranks))
    encoder.pop("<|startoftext|>", None)
    encoder_bytes = {to_bytes(k): v for k, v in encoder.items()}
    if encoder_bytes != ranks:
        raise TokenizerFileError(
            f"{source}: the token ids of the vocabulary JSON ({len(encoder_bytes)} tokens) do not match "
            f"the merge order of the merges file ({len(ranks)} tokens); are the two files from the same model?"
        )
    return ranks, int(eot_id)


def ranks_from_tiktoken_file(contents: bytes, source: str = "") -> tuple[dict[bytes, int], int]:
    """(mergeable ranks, eot id) from a .tiktoken file: 'base64-token rank' per line."""
    ranks: dict[bytes, int] = {}
    for line_no, line in enumerate(contents.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            token, rank = line.split()
            ranks[base64.b64decode(token, validate=True)] = int(rank)
        except Exception:
            raise TokenizerFileError(f"{source}: line {line_no} is not 'base64-token rank': {line[:80]!r}") from None
    if not ranks:
        raise TokenizerFileError(f"{source}: no tokens in this .tiktoken file")
    return ranks, max(ranks.values()) + 1


def ranks_from_hf_tokenizer_json(text: str, source: str = "") -> tuple[dict[bytes, int], int]:
    """(mergeable ranks, eot id) from a Hugging Face tokenizer.json of a GPT-2-style BPE."""
    data = loads_json(text, source, TokenizerFileError)
    model = (data.get("model") if isinstance(data, dict) else None) or {}
    if not isinstance(model, dict) or model.get("type") != "BPE" or not isinstance(model.get("vocab"), dict) \
            or not isinstance(model.get("merges"), list):
        raise TokenizerFileError(f"{source}: not a byte-level BPE tokenizer.json (model: {short_repr(model, 80)})")
    try:
        merges = [m if isinstance(m, str) else " ".join(m) for m in model["merges"]]
        vocab = dict(model["vocab"])
        for added in data.get("added_tokens", []):
            vocab.setdefault(added["content"], added["id"])
    except (TypeError, KeyError, AttributeError) as error:
        raise TokenizerFileError(f"{source}: malformed merges or added_tokens ({short_repr(error, 80)})") from None
    return ranks_from_data_gym("\n".join(merges), json.dumps(vocab), source)


# ---------------------------------------------------------------------------------------------
# Finding files
# ---------------------------------------------------------------------------------------------

def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise TokenizerFileError(f"{path}: not UTF-8 text (byte offset {exc.start})") from None


def load_ranks_from_path(path: str | os.PathLike, origin: str = "path") -> tuple[dict[bytes, int], int, str]:
    """(ranks, eot id, description) from a folder or file; TokenizerNotFoundError when absent.

    `origin` names where the path came from (for the error message).
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise TokenizerNotFoundError(f"GPT-2 tokenizer {origin} {str(path)!r} does not exist.\n{how_to_get_gpt2()}")
    folder = path if path.is_dir() else path.parent
    name = "" if path.is_dir() else path.name
    pairs = [("encoder.json", "vocab.bpe"), ("vocab.json", "merges.txt")]
    for vocab_name, merges_name in pairs:
        if name in ("", vocab_name, merges_name):
            vocab_file, merges_file = folder / vocab_name, folder / merges_name
            if vocab_file.is_file() and merges_file.is_file():
                ranks, eot = ranks_from_data_gym(_read_text(merges_file), _read_text(vocab_file), str(merges_file),
                                                 json_source=str(vocab_file))
                return ranks, eot, f"{vocab_file} + {merges_file}"
    if name in ("", "tokenizer.json") and (folder / "tokenizer.json").is_file():
        file = folder / "tokenizer.json"
        ranks, eot = ranks_from_hf_tokenizer_json(_read_text(file), str(file))
        return ranks, eot, str(file)
    candidates = [path] if name.endswith(".tiktoken") else sorted(folder.glob("*.tiktoken")) if not name else []
    if candidates:
        ranks, eot = ranks_from_tiktoken_file(candidates[0].read_bytes(), str(candidates[0]))
        return ranks, eot, str(candidates[0])
    raise TokenizerNotFoundError(
        f"GPT-2 tokenizer {origin} {str(path)!r} holds none of: encoder.json + vocab.bpe, "
        f"vocab.json + merges.txt, tokenizer.json, *.tiktoken.\n{how_to_get_gpt2()}"
    )


def tiktoken_cache_dir() -> str | None:
    """The folder tiktoken caches downloads in (None when its caching is disabled)."""
    if "TIKTOKEN_CACHE_DIR" in os.environ:
        cache_dir = os.environ["TIKTOKEN_CACHE_DIR"]
    elif "DATA_GYM_CACHE_DIR" in os.environ:
        cache_dir = os.environ["DATA_GYM_CACHE_DIR"]
    else:
        cache_dir = os.path.join(tempfile.gettempdir(), "data-gym-cache")
    return cache_dir or None


def tiktoken_cache_path(url: str) -> str | None:
    """Where tiktoken keeps the download of `url` (its SHA-1 under the cache folder)."""
    cache_dir = tiktoken_cache_dir()
    return None if cache_dir is None else os.path.join(cache_dir, hashlib.sha1(url.encode()).hexdigest())


def _cached_verified(url: str) -> bytes | None:
    path = tiktoken_cache_path(url)
    if path is None or not os.path.isfile(path):
        return None
    with open(path, "rb") as f:
        data = f.read()
    return data if hashlib.sha256(data).hexdigest() == KNOWN_SHA256[url] else None


def load_ranks_from_tiktoken_cache() -> tuple[dict[bytes, int], int, str] | None:
    """GPT-2's ranks from tiktoken's cache when its earlier download is there intact, else None."""
    vocab_bpe = _cached_verified(OPENAI_VOCAB_BPE_URL)
    encoder_json = _cached_verified(OPENAI_ENCODER_JSON_URL)
    if vocab_bpe is not None and encoder_json is not None:
        ranks, eot = ranks_from_data_gym(vocab_bpe.decode(), encoder_json.decode(), "tiktoken cache")
        return ranks, eot, f"tiktoken cache {tiktoken_cache_dir()}"
    r50k = _cached_verified(R50K_TIKTOKEN_URL)
    if r50k is not None:  # r50k_base has exactly GPT-2's ranks
        ranks, eot = ranks_from_tiktoken_file(r50k, "tiktoken cache")
        return ranks, eot, f"tiktoken cache {tiktoken_cache_dir()}"
    return None


def download_gpt2_encoding(timeout: float | None = None):
    """tiktoken.get_encoding('gpt2') in a thread, bounded by `timeout` s: (encoding, None) or (None, reason)."""
    if os.environ.get(ENV_OFFLINE, "").strip().lower() in ("1", "true", "yes"):
        return None, f"not attempted ({ENV_OFFLINE} is set)"
    if timeout is None:
        try:
            timeout = float(os.environ.get(ENV_TIMEOUT, "20"))
        except ValueError:
            timeout = 20.0
    result: dict = {}

    def attempt() -> None:
        try:
            result["encoding"] = tiktoken.get_encoding("gpt2")
        except BaseException as exc:  # noqa: BLE001 - any failure becomes the reason in our message
            result["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"

    thread = threading.Thread(target=attempt, name="gpt2-tokenizer-download", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        return None, f"no answer within {timeout:g} s"
    if "encoding" in result:
        return result["encoding"], None
    return None, result.get("error", "unknown failure")
