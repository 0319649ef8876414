"""Tokenizers: bytes, GPT-2 (offline resolution, the book's facts), states, bad input."""
from __future__ import annotations

import hashlib
import json
import shutil
import socket
import threading

import numpy as np
import pytest
from conftest import shared_path
from hypothesis import given
from hypothesis import strategies as st

import gpt
from gpt.data import gpt2_files
from gpt.data.gpt2_files import OPENAI_ENCODER_JSON_URL, OPENAI_VOCAB_BPE_URL

EOT = "<|endoftext|>"


# ------------------------------------------------------------------------------------ bytes

@given(st.text())
def test_bytes_round_trips_any_unicode(text):
    tok = gpt.get_tokenizer("bytes")
    ids = tok.encode(text)
    assert tok.decode(ids) == text
    assert all(0 <= i < 256 for i in ids) or EOT in text
    assert tok.encode_array(text).dtype == np.uint16
    assert tok.encode_array(text).tolist() == ids


def test_bytes_facts_and_eot():
    tok = gpt.get_tokenizer("bytes")
    assert (tok.name, tok.n_vocab, tok.eot_id) == ("bytes", 257, 256)
    assert tok.encode("hé") == [104, 0xC3, 0xA9]
    assert tok.encode(f"a{EOT}b") == [97, 256, 98]
    assert tok.decode([97, 256, 98]) == f"a{EOT}b"
    assert tok.encode("") == [] and tok.decode([]) == ""


def test_bytes_decode_invalid_utf8_uses_replacement():
    tok = gpt.get_tokenizer("bytes")
    assert tok.decode([104, 0xC3]) == "h\ufffd"          # a cut multi-byte character
    assert tok.decode([0xFF, 105]) == "\ufffdi"


def test_decode_accepts_arrays_tensors_and_batch_of_one():
    tok = gpt.get_tokenizer("bytes")
    ids = tok.encode("hi")
    assert tok.decode(np.array(ids)) == "hi"
    assert tok.decode(np.array([ids], dtype=np.int64)) == "hi"   # (1, T)

    class TensorLike:
        data = np.array([ids])

    assert tok.decode(TensorLike()) == "hi"
    assert tok.decode(np.int64(104)) == tok.decode(104) == "h"


@pytest.mark.parametrize("bad, named", [([-1], -1), ([257], 257), ([1, 2, 300], 300)])
def test_decode_out_of_vocab_names_id_and_n_vocab(bad, named):
    tok = gpt.get_tokenizer("bytes")
    with pytest.raises(ValueError, match=rf"token id {named} .*n_vocab 257"):
        tok.decode(bad)


def test_decode_rejects_batches_and_non_integers():
    tok = gpt.get_tokenizer("bytes")
    with pytest.raises(ValueError, match=r"shape \(2, 2\)"):
        tok.decode(np.zeros((2, 2), dtype=np.int64))
    with pytest.raises(ValueError, match="non-integer"):
        tok.decode(np.array([1.5]))
    with pytest.raises(TypeError, match="expects a str"):
        tok.encode(b"bytes")


def test_get_tokenizer_bad_names():
    with pytest.raises(ValueError, match="unknown tokenizer 'gpt3'"):
        gpt.get_tokenizer("gpt3")
    with pytest.raises(ValueError, match="train_bpe"):
        gpt.get_tokenizer("bpe:512")
    with pytest.raises(ValueError, match="integer"):
        gpt.get_tokenizer("bpe:many")
    with pytest.raises(ValueError, match="at least 257"):
        gpt.get_tokenizer("bpe:100")


def test_bytes_state_round_trip():
    state = gpt.get_tokenizer("bytes").to_state()
    json.dumps(state)
    assert gpt.tokenizer_from_state(state).name == "bytes"


# ------------------------------------------------------------------------------------ GPT-2

@pytest.fixture
def gpt2_dir():
    return shared_path("gpt2")


def test_gpt2_book_facts(gpt2_dir):
    tok = gpt.get_tokenizer("gpt2", path=gpt2_dir)
    assert (tok.name, tok.n_vocab, tok.eot_id) == ("gpt2", 50257, 50256)
    assert tok.encode("Hello, world") == [15496, 11, 995]
    verdict = shared_path("the-verdict.txt").read_text(encoding="utf-8")
    ids = tok.encode(verdict)
    assert len(ids) == 5145
    assert tok.decode(ids) == verdict
    assert tok.encode_array(verdict).dtype == np.uint16
    # the book's section 2.5 example
    text = "Hello, do you like tea? <|endoftext|> In the sunlit terraces of someunknownPlace."
    ids = tok.encode(text)
    assert ids[:8] == [15496, 11, 466, 345, 588, 8887, 30, 220] and ids[8] == 50256
    assert tok.decode(ids) == text


def test_gpt2_ranks_match_tiktokens_loader(gpt2_dir, monkeypatch):
    """Our parser reproduces tiktoken.load.data_gym_to_mergeable_bpe_ranks, which also reads HF files."""
    import tiktoken.load

    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", "")  # tiktoken's loader: no caching of local files
    ours = gpt.get_tokenizer("gpt2", path=gpt2_dir)
    theirs = tiktoken.load.data_gym_to_mergeable_bpe_ranks(str(gpt2_dir / "vocab.bpe"), str(gpt2_dir / "encoder.json"))
    assert ours.encoding._mergeable_ranks == theirs
    hf = shared_path("tiny-gpt2", "hf")
    hf_ranks = tiktoken.load.data_gym_to_mergeable_bpe_ranks(str(hf / "merges.txt"), str(hf / "vocab.json"))
    assert hf_ranks == theirs


def test_gpt2_pattern_is_tiktokens():
    from tiktoken_ext.openai_public import r50k_pat_str

    assert gpt2_files.GPT2_PAT_STR == r50k_pat_str


@pytest.mark.parametrize("layout", ["openai_dir", "openai_file", "hf_dir", "hf_no_final_newline", "tiktoken_file", "tokenizer_json"])
def test_gpt2_file_layouts(layout, gpt2_dir, tmp_path):
    reference = gpt.get_tokenizer("gpt2", path=gpt2_dir)
    if layout == "openai_dir":
        path = gpt2_dir
    elif layout == "openai_file":
        path = gpt2_dir / "vocab.bpe"
    elif layout in ("hf_dir", "hf_no_final_newline"):
        shutil.copy(gpt2_dir / "encoder.json", tmp_path / "vocab.json")
        merges = (gpt2_dir / "vocab.bpe").read_text(encoding="utf-8")
        (tmp_path / "merges.txt").write_text(merges.rstrip("\n") if layout == "hf_no_final_newline" else merges, encoding="utf-8")
        path = tmp_path
    elif layout == "tiktoken_file":
        import base64

        lines = [base64.b64encode(t) + b" " + str(r).encode() for t, r in reference.encoding._mergeable_ranks.items()]
        path = tmp_path / "gpt2.tiktoken"
        path.write_bytes(b"\n".join(lines) + b"\n")
    else:
        vocab = json.loads((gpt2_dir / "encoder.json").read_text(encoding="utf-8"))
        merges = (gpt2_dir / "vocab.bpe").read_text(encoding="utf-8").split("\n")[1:-1]
        data = {"model": {"type": "BPE", "vocab": vocab, "merges": [m.split(" ") for m in merges]}}
        path = tmp_path / "tokenizer.json"
        path.write_text(json.dumps(data), encoding="utf-8")
    tok = gpt.get_tokenizer("gpt2", path=path)
    assert tok.ranks_sha256 == reference.ranks_sha256
    assert tok.encode("Hello, world") == [15496, 11, 995]


def test_gpt2_mismatched_files_are_a_clear_error(gpt2_dir, tmp_path):
    shutil.copy(gpt2_dir / "encoder.json", tmp_path / "encoder.json")
    merges = (gpt2_dir / "vocab.bpe").read_text(encoding="utf-8").split("\n")
    (tmp_path / "vocab.bpe").write_text("\n".join(merges[:1] + merges[2:]), encoding="utf-8")  # one merge lost
    with pytest.raises(ValueError, match="same model"):
        gpt.get_tokenizer("gpt2", path=tmp_path)


@pytest.fixture
def no_network(monkeypatch, tmp_path):
    """Every connection attempt fails; tiktoken's cache is an empty folder; no env override."""
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args[:2])
        raise OSError("network disabled by the test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    cache = tmp_path / "tiktoken-cache"
    cache.mkdir()
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(cache))
    for name in ("GPT2_TOKENIZER_DIR", "GPT_OFFLINE", "DATA_GYM_CACHE_DIR"):
        monkeypatch.delenv(name, raising=False)
    return cache


def test_gpt2_offline_error_says_what_to_download(no_network):
    with pytest.raises(gpt.TokenizerNotFoundError) as info:
        gpt.get_tokenizer("gpt2")
    message = str(info.value)
    assert isinstance(info.value, FileNotFoundError)
    for needed in (OPENAI_ENCODER_JSON_URL, OPENAI_VOCAB_BPE_URL, "GPT2_TOKENIZER_DIR", "merges.txt", "vocab.json"):
        assert needed in message
    assert "downloading it failed" in message
    assert "Traceback" not in message


def test_gpt2_offline_flag_skips_the_download(no_network, monkeypatch):
    monkeypatch.setenv("GPT_OFFLINE", "1")
    with pytest.raises(gpt.TokenizerNotFoundError, match="not attempted"):
        gpt.get_tokenizer("gpt2")


def test_gpt2_offline_by_env_var_and_path(no_network, monkeypatch, gpt2_dir):
    assert gpt.get_tokenizer("gpt2", path=gpt2_dir).encode("Hello, world") == [15496, 11, 995]
    monkeypatch.setenv("GPT2_TOKENIZER_DIR", str(gpt2_dir))
    assert gpt.get_tokenizer("gpt2").encode("Hello, world") == [15496, 11, 995]
    monkeypatch.setenv("GPT2_TOKENIZER_DIR", str(no_network / "missing"))
    with pytest.raises(gpt.TokenizerNotFoundError, match=r"\$GPT2_TOKENIZER_DIR"):
        gpt.get_tokenizer("gpt2")


def test_gpt2_offline_from_tiktokens_cache(no_network, gpt2_dir):
    for url, name in ((OPENAI_VOCAB_BPE_URL, "vocab.bpe"), (OPENAI_ENCODER_JSON_URL, "encoder.json")):
        shutil.copy(gpt2_dir / name, no_network / hashlib.sha1(url.encode()).hexdigest())
    tok = gpt.get_tokenizer("gpt2")
    assert tok.source.startswith("tiktoken cache")
    assert tok.encode("Hello, world") == [15496, 11, 995]


def test_gpt2_corrupt_tiktoken_cache_is_not_used(no_network, gpt2_dir):
    for url in (OPENAI_VOCAB_BPE_URL, OPENAI_ENCODER_JSON_URL):
        (no_network / hashlib.sha1(url.encode()).hexdigest()).write_bytes(b"truncated")
    with pytest.raises(gpt.TokenizerNotFoundError):
        gpt.get_tokenizer("gpt2")


def test_gpt2_download_attempt_is_time_bounded(monkeypatch):
    import tiktoken

    release = threading.Event()
    monkeypatch.delenv("GPT_OFFLINE", raising=False)
    monkeypatch.setattr(tiktoken, "get_encoding", lambda name: release.wait(10))
    try:
        encoding, reason = gpt2_files.download_gpt2_encoding(timeout=0.2)
    finally:
        release.set()
    assert encoding is None and "0.2 s" in reason


def test_gpt2_state_round_trip(gpt2_dir):
    tok = gpt.get_tokenizer("gpt2", path=gpt2_dir)
    state = json.loads(json.dumps(tok.to_state()))
    assert "merges" not in state  # GPT-2's files are found again, not stored
    again = gpt.tokenizer_from_state(state, path=gpt2_dir)
    assert again.encode("Hello, world") == [15496, 11, 995]
    state["ranks_sha256"] = "0" * 64
    with pytest.raises(ValueError, match="differs"):
        gpt.tokenizer_from_state(state, path=gpt2_dir)
