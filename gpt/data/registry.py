"""Tokenizers by name: one `TokenizerKind` entry per kind, so a new tokenizer is one entry here.

    get_tokenizer("bytes" | "gpt2" | "bpe:N", path=None)   a tokenizer by name (path: its files)
    make_tokenizer(name, path, training_text)              the same, or one trained on the text
                                                           for the kinds that learn (bpe:N)
    tokenizer_from_state(state, path=None)                 back from `tokenizer.to_state()`
    check_tokenizer_name(name)                             the clean name, or ValueError saying why

The command line's `--tokenizer` help, its check of the flag, the training data's setup and
a checkpoint's rebuild all read TOKENIZER_KINDS, so they cannot disagree. To add a kind, write
its Tokenizer (gpt/data/tokenizer.py shows two) and add one entry below.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from minigrad.untrusted import read_json_file, shorten

from .bpe import train_bpe
from .gpt2_files import GPT2_PAT_STR, TokenizerFileError
from .tokenizer import ByteTokenizer, Tokenizer, load_gpt2_tokenizer, tokenizer_from_merges


@dataclass(frozen=True)
class TokenizerKind:
    """One kind of tokenizer: how its name is written and how one is made."""

    kind: str                  # the name ("bytes"), or its prefix ("bpe" of "bpe:N"); to_state()["kind"]
    spelling: str              # how the name is written, for messages and --help: "bytes", "bpe:N"
    help: str                  # one line for --help
    load: Callable             # (name, path) -> Tokenizer: by name, `path` its files (or None)
    from_state: Callable       # (state, path) -> Tokenizer: back from to_state()
    check: Callable | None = None  # (name) -> None: ValueError when the name's parameter is bad
    train: Callable | None = None  # (name, text) -> Tokenizer: learned from the data (when no path)

    def matches(self, name: str) -> bool:
        """Whether a lower-case `name` is of this kind ("bpe:2048" is of "bpe", "bytes" of "bytes")."""
        return name.startswith(self.kind + ":") if ":" in self.spelling else name == self.kind


# ---------------------------------------------------------------------------------------------
# The kinds' own functions
# ---------------------------------------------------------------------------------------------

def parse_bpe_size(name: str) -> int:
    """N of a "bpe:N" tokenizer name (ValueError when N is missing, not an int, or below 257)."""
    try:
        size = int(name.split(":", 1)[1])
    except ValueError:
        raise ValueError(f"tokenizer name {name!r}: 'bpe:N' needs an integer vocabulary size N, e.g. 'bpe:2048'") from None
    if size < 257:
        raise ValueError(f"tokenizer name {name!r}: N must be at least 257 (256 bytes + <|endoftext|>)")
    return size


def _load_bpe(name: str, path) -> Tokenizer:
    """A "bpe:N" saved with `tokenizer.save(path)` (one to train has no file yet)."""
    size = parse_bpe_size(name)
    if path is None:
        raise ValueError(
            f"tokenizer {name!r} is trained on your text: call gpt.train_bpe(text, {size}) (the "
            "command line does this from --data), or give path= a JSON file saved by tokenizer.save()"
        )
    state_path = Path(path).expanduser()
    if not state_path.is_file():
        raise FileNotFoundError(f"BPE tokenizer file {str(state_path)!r} does not exist")
    state = read_json_file(state_path, TokenizerFileError)  # bounded depth, UTF-8, names the file
    if not isinstance(state, dict):
        raise TokenizerFileError(f"{state_path}: expected a JSON object saved by tokenizer.save(), "
                                 f"got a {type(state).__name__}")
    try:
        tokenizer = tokenizer_from_state(state)
    except (KeyError, TypeError) as error:
        raise TokenizerFileError(f"{state_path}: not a tokenizer saved by tokenizer.save() "
                                 f"({type(error).__name__}: {shorten(error)})") from None
    if tokenizer.n_vocab != size:
        raise ValueError(f"{state_path} holds a tokenizer with n_vocab {tokenizer.n_vocab}, not {size}")
    return tokenizer


def _bpe_from_state(state: dict, path) -> Tokenizer:
    """A trained BPE rebuilt from its merges, checked against its ranks hash."""
    if "merges" not in state:
        raise ValueError(f"tokenizer state {state['name']!r} has no 'merges' (truncated checkpoint?)")
    tokenizer = tokenizer_from_merges(state["merges"], pat_str=state.get("pat_str", GPT2_PAT_STR))
    expected = state.get("ranks_sha256")
    if expected and expected != tokenizer.ranks_sha256:
        raise ValueError(f"tokenizer state {state['name']!r}: its merges do not match its ranks hash (corrupt?)")
    return tokenizer


def _gpt2_from_state(state: dict, path) -> Tokenizer:
    """GPT-2's tokenizer loaded again from its files, checked to be the same vocabulary."""
    tokenizer = load_gpt2_tokenizer(path)
    expected = state.get("ranks_sha256")
    if expected and expected != tokenizer.ranks_sha256:
        raise ValueError(
            f"the GPT-2 tokenizer found at {tokenizer.source} differs from the one this checkpoint "
            f"was made with (ranks hash {tokenizer.ranks_sha256[:16]} != {expected[:16]})"
        )
    return tokenizer


# ---------------------------------------------------------------------------------------------
# The registry
# ---------------------------------------------------------------------------------------------

TOKENIZER_KINDS: dict[str, TokenizerKind] = {kind.kind: kind for kind in [
    TokenizerKind("bytes", "bytes", "UTF-8 bytes, 257 ids; needs nothing",
                  load=lambda name, path: ByteTokenizer(), from_state=lambda state, path: ByteTokenizer()),
    TokenizerKind("gpt2", "gpt2", "GPT-2's 50,257-token BPE (its files: --tokenizer-path, $GPT2_TOKENIZER_DIR "
                  "or tiktoken's cache)", load=lambda name, path: load_gpt2_tokenizer(path),
                  from_state=_gpt2_from_state),
    TokenizerKind("bpe", "bpe:N", "a BPE of N tokens trained on the data", load=_load_bpe,
                  from_state=_bpe_from_state, check=parse_bpe_size,
                  train=lambda name, text: train_bpe(text, parse_bpe_size(name))),
]}

TOKENIZER_NAMES = tuple(kind.spelling for kind in TOKENIZER_KINDS.values())  # ("bytes", "gpt2", "bpe:N")


def find_kind(name: str) -> TokenizerKind:
    """The kind of a (lower-case) tokenizer name; ValueError listing the kinds when none fits."""
    for kind in TOKENIZER_KINDS.values():
        if kind.matches(name):
            return kind
    raise ValueError(f"unknown tokenizer {name!r}; choose one of: {', '.join(TOKENIZER_NAMES)}")


def check_tokenizer_name(name: str) -> str:
    """The clean (stripped, lower-case) name; ValueError when no kind has it or its parameter is bad."""
    key = name.strip().lower()
    kind = find_kind(key)
    if kind.check is not None:
        kind.check(key)
    return key


def get_tokenizer(name: str | Tokenizer, path: str | os.PathLike | None = None) -> Tokenizer:
    """The tokenizer called `name`: "bytes", "gpt2" or "bpe:N" (a Tokenizer is returned as is).

    path: for "gpt2", a folder (or file) with GPT-2's BPE files; for "bpe:N", a JSON file
    written by `tokenizer.save(path)`. A "bpe:N" tokenizer otherwise has to be trained first:
    `gpt.train_bpe(text, N)`.
    """
    if isinstance(name, Tokenizer):
        return name
    if not isinstance(name, str):
        raise TypeError(f"tokenizer name must be a str, got {type(name).__name__}")
    key = check_tokenizer_name(name)
    return find_kind(key).load(key, path)


def is_trained_here(name, path=None) -> bool:
    """Whether `make_tokenizer(name, path, ...)` trains a tokenizer (a kind that learns, no file)."""
    if not isinstance(name, str) or path is not None:
        return False
    return find_kind(check_tokenizer_name(name)).train is not None


def make_tokenizer(name: str | Tokenizer, path=None, training_text: Callable[[], str] | None = None) -> Tokenizer:
    """`get_tokenizer(name, path)`, except that a kind that learns from the data (bpe:N) without
    a file at `path` is trained on `training_text()` (called only then)."""
    if is_trained_here(name, path):
        key = check_tokenizer_name(name)
        if training_text is None:
            raise ValueError(f"tokenizer {key!r} is trained on the data: give the text to train it on")
        return find_kind(key).train(key, training_text())
    return get_tokenizer(name, path)


def tokenizer_from_state(state: dict, path: str | os.PathLike | None = None) -> Tokenizer:
    """Rebuild a tokenizer from `Tokenizer.to_state()` (a checkpoint's copy).

    A trained BPE is rebuilt from its merges; GPT-2 is loaded again from its files (`path` or
    the usual search) and checked to be the same vocabulary.
    """
    if not isinstance(state, dict) or "name" not in state:
        raise ValueError(f"tokenizer state must be a dict with a 'name', got {type(state).__name__}")
    kind = state.get("kind") or state["name"].split(":")[0]
    if kind not in TOKENIZER_KINDS:
        raise ValueError(f"unknown tokenizer kind {kind!r} in state (name {state['name']!r})")
    return TOKENIZER_KINDS[kind].from_state(state, path)
