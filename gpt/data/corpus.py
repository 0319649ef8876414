"""Where training text comes from, and its tokens cached on disk (the book's section 2.1, at scale).

- `default_corpus_text()`: a corpus that needs no download and no file: the Python Language
  Reference topics shipped with every CPython (`pydoc_data.topics`), 79 topics joined in
  sorted order, 465,047 characters of English prose and code examples on Python 3.11.
- `list_text_files(paths)` / `load_text(paths)`: a file, several files, or a directory
  (searched recursively for *.txt and *.md, in sorted order).
- `tokenize_files(paths, tokenizer)`: the files' token ids as one array, documents joined by
  `<|endoftext|>`, tokenized once and kept as a `.npy` (nanoGPT's uint16 token files),
  memory-mapped on reuse. The cache lives in the user's cache folder ($GPT_CACHE_DIR, else
  $XDG_CACHE_HOME/minigrad-gpt, else ~/.cache/minigrad-gpt), never in the data's folder unless
  asked (`beside=True`, `gpt train --cache-beside-data`; a read-only data folder then falls back
  to the cache folder). The cache name holds the tokenizer's identity (a trained BPE's includes
  a hash of its ranks) and a hash of the files' absolute paths and bytes, so any change of either
  tokenizes again; `<cache>.sha256` beside it holds the SHA-256 of the cache's own bytes, so a
  damaged cache is noticed and redone, never used.
- `prepare_corpus(data, tokenizer)`: the one path from the data settings (`--data`,
  `--tokenizer`) to (tokenizer, token ids, description), training a bpe:N on the text first.

Text must be UTF-8: bytes that are not give a ValueError naming the file and the byte offset
(`errors="strict"`, the default), or become U+FFFD with `errors="replace"`.
"""
from __future__ import annotations

import hashlib
import os
import re
import tempfile
import warnings
from pathlib import Path

import numpy as np

from minigrad.serialization import default_file_mode, file_sha256

from .gpt2_files import ENDOFTEXT
from .registry import get_tokenizer, is_trained_here, make_tokenizer
from .tokenizer import Tokenizer

TEXT_SUFFIXES = (".txt", ".md")
CACHE_FORMAT = "tokens-v2"  # bump when the cache layout changes (v2: a .sha256 beside each)
ENV_CACHE_DIR = "GPT_CACHE_DIR"
BPE_TRAIN_CHARS = 20_000_000  # a tokenizer trained on the data (bpe:N) sees at most this much of it
DEFAULT_CORPUS_DESCRIPTION = "the default corpus (Python Language Reference, pydoc_data.topics)"


def default_corpus_text() -> str:
    """The Python Language Reference topics of this CPython (`pydoc_data.topics`), sorted by key."""
    from pydoc_data.topics import topics  # a 0.7 MB module: loaded only when the default corpus is used

    return "\n\n".join(topics[key].strip("\n") for key in sorted(topics))


def list_text_files(paths) -> list[Path]:
    """The text files named by `paths` (a path or a list): files as given, directories searched
    recursively for *.txt / *.md in sorted order."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    paths = list(paths)
    if not paths:
        raise ValueError("no data paths given")
    files: list[Path] = []
    for raw in paths:
        path = Path(raw).expanduser()
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in TEXT_SUFFIXES)
            if not found:
                raise FileNotFoundError(f"data directory {str(path)!r} holds no {' or '.join('*' + s for s in TEXT_SUFFIXES)} files")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise FileNotFoundError(f"data file {str(path)!r} does not exist")
    return files


def decode_text_file(path: Path, data: bytes, errors: str = "strict") -> str:
    """`data` (the bytes of `path`) as text: UTF-8, a clear error at the first bad byte, not empty."""
    if errors not in ("strict", "replace"):
        raise ValueError(f"errors must be 'strict' or 'replace', got {errors!r}")
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]  # a UTF-8 byte-order mark is not text
    try:
        text = data.decode("utf-8", errors=errors)
    except UnicodeDecodeError as exc:
        bad = data[exc.start:exc.end]
        line = data.count(b"\n", 0, exc.start) + 1
        raise ValueError(
            f"{path}: not UTF-8 text: byte offset {exc.start} (line {line}) holds {bad!r}. Convert the file "
            f"to UTF-8 (e.g. `iconv -f latin1 -t utf-8`), or load it with errors='replace' to put U+FFFD there."
        ) from None
    if not text.strip():
        raise ValueError(f"data file {str(path)!r} is empty" + (" (only whitespace)" if text else ""))
    return text


def load_text(paths, errors: str = "strict") -> str:
    """The text of `paths` (see list_text_files); several files are joined by `<|endoftext|>`,
    so `tokenizer.encode(load_text(paths))` gives the ids `tokenize_files(paths, tokenizer)` stores."""
    return ENDOFTEXT.join(decode_text_file(f, f.read_bytes(), errors) for f in list_text_files(paths))


# ---------------------------------------------------------------------------------------------
# Token cache
# ---------------------------------------------------------------------------------------------

def user_cache_dir() -> Path:
    """$GPT_CACHE_DIR, else $XDG_CACHE_HOME/minigrad-gpt, else ~/.cache/minigrad-gpt."""
    if os.environ.get(ENV_CACHE_DIR):
        return Path(os.environ[ENV_CACHE_DIR]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "minigrad-gpt"


def cache_file_name(files: list[Path], tokenizer: Tokenizer, errors: str = "strict") -> str:
    """'<first file>[+N].<tokenizer identity>.<hash of identity, paths and contents>.tokens.npy'
    (the paths keep two data folders with a same-named file apart in the one cache folder)."""
    key = hashlib.sha256(f"{CACHE_FORMAT}\0{tokenizer.identity}\0{errors}".encode())
    for f in files:
        key.update(os.fsencode(os.path.abspath(f)) + b"\0")
        key.update(file_sha256(f).encode())
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", tokenizer.identity)
    more = f"+{len(files) - 1}" if len(files) > 1 else ""
    return f"{files[0].name}{more}.{slug}.{key.hexdigest()[:16]}.tokens.npy"


def _checksum_path(path: Path) -> Path:
    """Beside each cache, `<cache>.sha256`: the SHA-256 of its bytes, written with it."""
    return path.with_name(path.name + ".sha256")


def _load_cached(path: Path, tokenizer: Tokenizer) -> np.ndarray | None:
    """The cached array at `path`, or None when absent, unreadable or damaged (its bytes no
    longer match the SHA-256 written with it): a broken cache is redone, never used."""
    if not path.is_file():
        return None
    try:
        recorded = _checksum_path(path).read_text(encoding="ascii").strip()
        if file_sha256(path) != recorded:
            raise ValueError(f"its SHA-256 differs from the one recorded in {_checksum_path(path).name}")
        ids = np.load(path, mmap_mode="r")
        if ids.ndim != 1 or ids.dtype != tokenizer.dtype or ids.size == 0 or int(ids.max()) >= tokenizer.n_vocab:
            raise ValueError(f"shape {ids.shape}, dtype {ids.dtype}")
        return ids
    except (OSError, ValueError, EOFError, UnicodeDecodeError) as exc:
        warnings.warn(f"ignoring the unreadable or damaged token cache {path} ({exc}); tokenizing again",
                      stacklevel=3)
        return None


def _write_atomically(path: Path, ids: np.ndarray) -> None:
    """np.save to a temporary file in the same folder, fsync, then rename over `path`."""
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, default_file_mode())  # mkstemp makes 0600
        with os.fdopen(fd, "wb") as f:
            np.save(f, ids)
            f.flush()
            os.fsync(f.fileno())
        _checksum_path(path).write_text(file_sha256(Path(tmp)) + "\n", encoding="ascii")
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def _writable(folder: Path) -> bool:
    """Whether to write in `folder`: it exists (or can be made), we may write, and it has write
    bits at all (root may write anywhere, but a folder without write bits is meant read-only)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        return os.access(folder, os.W_OK) and bool(folder.stat().st_mode & 0o222)
    except OSError:
        return False


def tokenize_files(paths, tokenizer, cache_dir=None, errors: str = "strict", beside: bool = False) -> np.ndarray:
    """Token ids of the files of `paths` as one (T,) array (uint16 when the vocab fits, else uint32).

    Files are joined by `<|endoftext|>`. The result is cached in the user's cache folder (see the
    module docstring; `cache_dir` forces the folder; `beside=True` puts it beside the first file
    when that folder is writable) and comes back as a read-only memory map.
    """
    tokenizer = get_tokenizer(tokenizer)
    files = list_text_files(paths)
    name = cache_file_name(files, tokenizer, errors)
    if cache_dir is not None:
        candidates = [Path(cache_dir).expanduser()]
    else:
        candidates = [files[0].parent, user_cache_dir()] if beside else [user_cache_dir()]
    for folder in candidates:
        cached = _load_cached(folder / name, tokenizer)
        if cached is not None:
            return cached

    pieces = []
    for i, f in enumerate(files):
        if i:
            pieces.append(np.array([tokenizer.eot_id], dtype=tokenizer.dtype))
        pieces.append(tokenizer.encode_array(decode_text_file(f, f.read_bytes(), errors)))
    ids = np.concatenate(pieces)  # (T,)

    for folder in candidates:
        if not _writable(folder):
            continue
        try:
            _write_atomically(folder / name, ids)
        except OSError:
            continue
        return np.load(folder / name, mmap_mode="r")
    warnings.warn(f"could not write a token cache in {', '.join(map(str, candidates))}; keeping tokens in memory", stacklevel=2)
    return ids


def describe_files(files: list[Path]) -> str:
    """'3 file(s): a.txt, b.txt, c.txt' (the first three named)."""
    shown = ", ".join(str(f) for f in files[:3]) + (f" and {len(files) - 3} more" if len(files) > 3 else "")
    return f"{len(files)} file(s): {shown}"


def prepare_corpus(data=None, tokenizer="bytes", tokenizer_path=None, cache_dir=None, errors: str = "strict",
                   log=None, cache_beside: bool = False):
    """(tokenizer, token ids (T,), description): the one path from data settings to tokens,
    used by `gpt train`, `gpt eval` and `gpt.train`.

    data: None for the default corpus, else a file, several files or a directory.
    tokenizer: a name ("bytes", "gpt2", "bpe:N": see gpt.data.registry) or a Tokenizer (e.g.
    rebuilt from a checkpoint when resuming: it is used as is, never retrained). A kind that
    learns from the data (bpe:N, without a file at `tokenizer_path`) is trained on the first
    BPE_TRAIN_CHARS characters of the text. log: called with one line before such training.
    cache_beside: keep the token cache beside the text (see tokenize_files) instead of the cache folder.
    """
    if data is None:
        text, files, description = default_corpus_text(), None, DEFAULT_CORPUS_DESCRIPTION
    else:
        files = list_text_files(data)
        text, description = None, describe_files(files)

    def training_text() -> str:
        return (text if text is not None else load_text(files, errors))[:BPE_TRAIN_CHARS]

    if log is not None and is_trained_here(tokenizer, tokenizer_path):
        log(f"training a {tokenizer} tokenizer on {description}")
    tokenizer = make_tokenizer(tokenizer, tokenizer_path, training_text)
    if text is not None:
        token_ids = tokenizer.encode_array(text)  # (T,)
    else:
        token_ids = tokenize_files(files, tokenizer, cache_dir, errors, beside=cache_beside)  # (T,) cached, memory-mapped
    return tokenizer, token_ids, f"{description}, tokenizer {tokenizer.name}"
