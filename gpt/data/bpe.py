"""Byte-pair encoding trained from scratch on your own text (the book's appendix "BPE from scratch").

Training (Sennrich et al. 2016; byte-level as in GPT-2, Radford et al. 2019):
1. Cut the text into pieces with GPT-2's pre-tokenizer regex (words with their leading space,
   numbers, punctuation runs, whitespace), so tokens never cross a word boundary. Count each
   distinct piece once, with its frequency.
2. Start every piece as its UTF-8 bytes: ids 0..255.
3. Repeat until the vocabulary is full: find the adjacent pair of ids occurring most often
   (weighted by piece frequency; ties go to the smallest pair of ids), give it a new id, and
   replace it in every piece that holds it.

Speed: pair counts are kept incrementally (only the pieces that hold the merged pair are
recounted) and the best pair comes from a heap with lazy deletion, so each merge costs about
the number of pieces it touches instead of a scan over the whole corpus. This trains a
2,048-id vocabulary on the 465k-character default corpus in about a second.

Encoding then runs through tiktoken's Rust encoder with our ranks (token bytes -> id in merge
order): tiktoken repeatedly merges the adjacent pair whose joined bytes have the lowest rank,
which replays our merges in the order they were learned.
"""
from __future__ import annotations

import heapq
import warnings
from collections import Counter, defaultdict

import regex

from .gpt2_files import ENDOFTEXT, GPT2_PAT_STR
from .tokenizer import TiktokenTokenizer, tokenizer_from_merges  # noqa: F401  (re-exported: the trainer's result)


def pretokenize(text: str, pat_str: str = GPT2_PAT_STR) -> Counter:
    """Frequency of each distinct piece of `text` (as UTF-8 bytes), `<|endoftext|>` left out."""
    pattern = regex.compile(pat_str)
    counts: Counter = Counter()
    for document in text.split(ENDOFTEXT):
        counts.update(pattern.findall(document))
    return Counter({piece.encode("utf-8", errors="replace"): n for piece, n in counts.items()})


def learn_merges(piece_counts: Counter, n_merges: int, min_frequency: int = 2) -> tuple[list[tuple[int, int]], list[bytes]]:
    """Learn up to `n_merges` merges: (merges as id pairs, token bytes of every id from 0).

    Stops early when the most frequent pair occurs fewer than `min_frequency` times.
    """
    tokens = [bytes([b]) for b in range(256)]           # id -> bytes
    token_id = {tok: i for i, tok in enumerate(tokens)}  # bytes -> id
    words = [list(piece) for piece in piece_counts]      # each piece as a list of ids
    freqs = list(piece_counts.values())

    pair_counts: dict[tuple[int, int], int] = defaultdict(int)
    pair_words: dict[tuple[int, int], set[int]] = defaultdict(set)  # pair -> pieces holding it (may be stale)
    for w, (word, freq) in enumerate(zip(words, freqs)):
        for pair in zip(word, word[1:]):
            pair_counts[pair] += freq
            pair_words[pair].add(w)
    heap = [(-count, pair) for pair, count in pair_counts.items()]
    heapq.heapify(heap)

    merges: list[tuple[int, int]] = []
    while len(merges) < n_merges and heap:
        neg_count, pair = heapq.heappop(heap)
        if pair_counts.get(pair, 0) != -neg_count:
            continue  # stale heap entry: the count changed since it was pushed
        if -neg_count < min_frequency:
            break
        joined = tokens[pair[0]] + tokens[pair[1]]
        new_id = token_id.get(joined)
        if new_id is None:  # (the same bytes made by another pair keep their first id)
            new_id = len(tokens)
            tokens.append(joined)
            token_id[joined] = new_id
            merges.append(pair)
        changed: set[tuple[int, int]] = set()
        for w in pair_words.pop(pair, ()):
            word, freq = words[w], freqs[w]
            if len(word) < 2:
                continue
            for old in zip(word, word[1:]):  # uncount the piece's pairs ...
                pair_counts[old] -= freq
                changed.add(old)
            merged, i = [], 0
            while i < len(word):
                if i + 1 < len(word) and word[i] == pair[0] and word[i + 1] == pair[1]:
                    merged.append(new_id)
                    i += 2
                else:
                    merged.append(word[i])
                    i += 1
            words[w] = merged
            for new in zip(merged, merged[1:]):  # ... and count the merged piece's pairs
                pair_counts[new] += freq
                pair_words[new].add(w)
                changed.add(new)
        pair_counts.pop(pair, None)
        changed.discard(pair)
        for p in changed:
            count = pair_counts[p]
            if count > 0:
                heapq.heappush(heap, (-count, p))
            else:
                pair_counts.pop(p, None)
    return merges, tokens


def train_bpe(text: str, vocab_size: int, *, pat_str: str = GPT2_PAT_STR, min_frequency: int = 2) -> TiktokenTokenizer:
    """Train a byte-level BPE of `vocab_size` ids (256 bytes + merges + `<|endoftext|>`) on `text`.

    When the text has too few repeated pairs to fill the vocabulary (pairs must occur at least
    `min_frequency` times), training stops early with a warning and the tokenizer is smaller;
    its `name` ("bpe:N") and `n_vocab` then give the real size.
    """
    if not isinstance(text, str):
        raise TypeError(f"train_bpe expects the training text as a str, got {type(text).__name__}")
    if not isinstance(vocab_size, int) or vocab_size < 257:
        raise ValueError(f"train_bpe: vocab_size must be an int >= 257 (256 bytes + <|endoftext|>), got {vocab_size!r}")
    if not text:
        raise ValueError("train_bpe: the training text is empty")
    merges, _ = learn_merges(pretokenize(text, pat_str), vocab_size - 257, min_frequency)
    if len(merges) < vocab_size - 257:
        warnings.warn(
            f"train_bpe: the text ({len(text):,} characters) only supports {len(merges)} merges occurring at "
            f"least {min_frequency} times; the vocabulary has {len(merges) + 257} ids, not {vocab_size}",
            stacklevel=2,
        )
    return tokenizer_from_merges(merges, pat_str)
