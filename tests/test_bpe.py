"""BPE trained from scratch: round trips, the merges tiktoken replays, states, sizes, speed."""
from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import gpt
from gpt.data.bpe import learn_merges, pretokenize, tokenizer_from_merges

EOT = "<|endoftext|>"


@pytest.fixture(scope="module")
def corpus():
    return gpt.default_corpus_text()


@pytest.fixture(scope="module")
def small_bpe(corpus):
    return gpt.train_bpe(corpus[:60_000] + " naïve café 東京 😀 " * 3, 600)


@settings(max_examples=60)
@given(st.text())
def test_trained_bpe_round_trips_any_unicode(small_bpe, text):
    ids = small_bpe.encode(text)
    assert small_bpe.decode(ids) == text
    assert all(0 <= i < small_bpe.n_vocab for i in ids)
    assert small_bpe.encode_array(text).tolist() == ids


def test_trained_bpe_identity(small_bpe):
    assert (small_bpe.name, small_bpe.n_vocab, small_bpe.eot_id) == ("bpe:600", 600, 599)
    assert small_bpe.encode(f"a{EOT}b")[1] == 599
    assert small_bpe.decode(small_bpe.encode(f"a{EOT}b")) == f"a{EOT}b"
    assert small_bpe.identity.startswith("bpe:600-")


def test_tiktoken_replays_the_learned_merges(corpus):
    """tiktoken's lowest-rank-first merging gives what applying the merges in learned order gives."""
    text = corpus[:30_000]
    tok = gpt.train_bpe(text, 400)

    def apply_merges(piece: bytes) -> list[int]:
        ids = list(piece)
        for k, (a, b) in enumerate(tok.merges):
            merged, i = [], 0
            while i < len(ids):
                if i + 1 < len(ids) and ids[i] == a and ids[i + 1] == b:
                    merged.append(256 + k)
                    i += 2
                else:
                    merged.append(ids[i])
                    i += 1
            ids = merged
        return ids

    pieces = list(pretokenize(text))
    assert len(pieces) > 500
    for piece in pieces:
        assert tok.encoding._encode_single_piece(piece) == apply_merges(piece), piece


def test_merges_are_most_frequent_pairs():
    # "ab" occurs 3 times per word, "bc" twice: (a, b) is learned first, then (ab, c) or (b, c).
    counts = pretokenize("abab abab abc abc abc")
    merges, tokens = learn_merges(counts, 2)
    assert merges[0] == (ord("a"), ord("b"))
    assert tokens[256] == b"ab"


def test_state_round_trip_is_json_and_exact(small_bpe):
    state = json.loads(json.dumps(small_bpe.to_state()))
    again = gpt.tokenizer_from_state(state)
    assert again.identity == small_bpe.identity
    text = "The quick brown fox; def f(x): return x ** 2"
    assert again.encode(text) == small_bpe.encode(text)


def test_save_and_get_tokenizer_by_path(small_bpe, tmp_path):
    path = tmp_path / "bpe.json"
    small_bpe.save(path)
    assert gpt.get_tokenizer("bpe:600", path=path).identity == small_bpe.identity
    with pytest.raises(ValueError, match="n_vocab 600, not 700"):
        gpt.get_tokenizer("bpe:700", path=path)
    with pytest.raises(FileNotFoundError):
        gpt.get_tokenizer("bpe:600", path=tmp_path / "missing.json")


def test_corrupt_states_are_clear_errors(small_bpe):
    state = small_bpe.to_state()
    with pytest.raises(ValueError, match="not yet defined"):
        gpt.tokenizer_from_state({**state, "merges": [[0, 5000]]})
    with pytest.raises(ValueError, match="existing token"):
        tokenizer_from_merges([[97, 98], [97, 98]])
    with pytest.raises(ValueError, match="ranks hash"):
        gpt.tokenizer_from_state({**state, "merges": state["merges"][:-1]})
    with pytest.raises(ValueError, match="no 'merges'"):
        gpt.tokenizer_from_state({k: v for k, v in state.items() if k != "merges"})


def test_different_vocabularies_have_different_identities(corpus):
    a = gpt.train_bpe(corpus[:20_000], 300)
    b = gpt.train_bpe(corpus[20_000:40_000], 300)
    assert a.name == b.name == "bpe:300"
    assert a.identity != b.identity


def test_small_text_stops_early_with_a_warning():
    with pytest.warns(UserWarning, match="only supports"):
        tok = gpt.train_bpe("hello hello hello", 1000)
    assert tok.n_vocab < 1000 and tok.name == f"bpe:{tok.n_vocab}"
    assert tok.decode(tok.encode("hello world")) == "hello world"


def test_bad_arguments():
    with pytest.raises(ValueError, match=">= 257"):
        gpt.train_bpe("some text", 100)
    with pytest.raises(ValueError, match="empty"):
        gpt.train_bpe("", 300)
    with pytest.raises(TypeError, match="str"):
        gpt.train_bpe(b"bytes", 300)


def test_default_corpus_vocab_2048_compresses(corpus):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the default corpus fills 2,048 ids
        tok = gpt.train_bpe(corpus, 2048)
    assert tok.n_vocab == 2048
    ids = tok.encode_array(corpus)
    assert ids.dtype == np.uint16
    assert len(ids) < 0.35 * len(corpus.encode("utf-8"))  # ~3.6 bytes per token
    assert tok.decode(ids) == corpus
