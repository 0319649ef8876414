"""Training data that changed under us: a token cache damaged in place (bytes flipped, its
checksum missing) is noticed and redone, never used; resuming after the data file changed in
place is refused, naming the checkpoint, instead of training on other text."""
from __future__ import annotations

import numpy as np
import pytest

import gpt
from gpt.training.checkpoint import CheckpointError
from gpt.training.loop import TrainConfig, train


@pytest.fixture
def user_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GPT_CACHE_DIR", str(tmp_path / "user-cache"))
    return tmp_path / "user-cache"


def test_a_token_cache_damaged_in_place_is_redone(tmp_path, user_cache):
    path = tmp_path / "t.txt"
    path.write_text("some text, and more text. " * 50, encoding="utf-8")
    ids = np.array(gpt.tokenize_files(path, "bytes"))
    cache = next(user_cache.glob("*.tokens.npy"))
    raw = bytearray(cache.read_bytes())
    raw[-10] ^= 0x01  # a valid .npy of in-range tokens, one of them changed
    cache.write_bytes(bytes(raw))
    assert int(np.load(cache).max()) < 257  # nothing but the checksum can tell
    with pytest.warns(UserWarning, match="damaged token cache .*SHA-256 differs"):
        again = gpt.tokenize_files(path, "bytes")
    assert np.array_equal(again, ids)
    cache.with_name(cache.name + ".sha256").unlink()  # no checksum: not trusted either
    with pytest.warns(UserWarning, match="damaged token cache"):
        assert np.array_equal(gpt.tokenize_files(path, "bytes"), ids)
    assert np.array_equal(gpt.tokenize_files(path, "bytes"), ids)  # rewritten: used quietly now


def test_resuming_after_the_data_changed_in_place_is_refused(tmp_path, user_cache):
    text = tmp_path / "corpus.txt"
    text.write_text("The quick brown fox jumps over the lazy dog. " * 80)
    settings = dict(data=[str(text)], tokenizer="bytes", preset="tiny", batch_size=4, eval_every=1000,
                    eval_batches=1, sample_tokens=0, quiet=True, out=str(tmp_path / "run"))
    train(TrainConfig(max_steps=4, stop_at=2, **settings))
    text.write_text("A completely different text, of the same length as before, or so. " * 53)
    with pytest.raises(CheckpointError, match="was trained on other data") as caught:
        train(TrainConfig(max_steps=4, resume=True, **settings))
    assert "run/checkpoint" in str(caught.value)
    text.write_text("The quick brown fox jumps over the lazy dog. " * 80)  # the data is back
    assert train(TrainConfig(max_steps=4, resume=True, **settings)).step == 4
