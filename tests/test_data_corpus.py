"""Text sources (default corpus, files, directories, bad files) and the on-disk token cache."""
from __future__ import annotations

import os
import stat

import numpy as np
import pytest
from conftest import shared_path

import gpt
from gpt.data.corpus import cache_file_name, list_text_files

EOT = "<|endoftext|>"


@pytest.fixture
def user_cache(tmp_path, monkeypatch):
    folder = tmp_path / "user-cache"
    monkeypatch.setenv("GPT_CACHE_DIR", str(folder))
    return folder


def test_default_corpus_is_the_python_reference():
    text = gpt.default_corpus_text()
    assert 400_000 < len(text) < 600_000
    assert text == gpt.default_corpus_text()  # deterministic (sorted topic order)
    assert "assignment statement" in text.lower()


def test_directory_is_searched_recursively_and_sorted(tmp_path):
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "two.md").write_text("two", encoding="utf-8")
    (tmp_path / "a.txt").write_text("one", encoding="utf-8")
    (tmp_path / "skip.py").write_text("print()", encoding="utf-8")
    assert [p.name for p in list_text_files(tmp_path)] == ["a.txt", "two.md"]
    assert gpt.load_text(tmp_path) == f"one{EOT}two"
    assert gpt.load_text([tmp_path / "b" / "two.md", tmp_path / "a.txt"]) == f"two{EOT}one"


def test_bad_files_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.txt' does not exist"):
        gpt.load_text(tmp_path / "missing.txt")
    (tmp_path / "empty.txt").write_text("", encoding="utf-8")
    with pytest.raises(ValueError, match="empty.txt' is empty"):
        gpt.load_text(tmp_path / "empty.txt")
    (tmp_path / "blank.txt").write_text(" \n\n", encoding="utf-8")
    with pytest.raises(ValueError, match="only whitespace"):
        gpt.load_text(tmp_path / "blank.txt")
    empty_dir = tmp_path / "nothing"
    empty_dir.mkdir()
    with pytest.raises(FileNotFoundError, match="holds no"):
        gpt.load_text(empty_dir)
    with pytest.raises(ValueError, match="no data paths"):
        gpt.load_text([])


def test_non_utf8_names_file_and_offset_or_is_replaced(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes("café au lait\nolé".encode("latin-1"))
    with pytest.raises(ValueError, match=r"latin1.txt: not UTF-8 text: byte offset 3 \(line 1\)"):
        gpt.load_text(path)
    assert gpt.load_text(path, errors="replace") == "caf\ufffd au lait\nol\ufffd"
    ids = gpt.tokenize_files(path, "bytes", cache_dir=tmp_path / "c", errors="replace")
    assert gpt.get_tokenizer("bytes").decode(ids) == "caf\ufffd au lait\nol\ufffd"
    with pytest.raises(ValueError, match="byte offset 3"):
        gpt.tokenize_files(path, "bytes", cache_dir=tmp_path / "c")


def test_utf8_bom_is_dropped(tmp_path):
    path = tmp_path / "bom.txt"
    path.write_bytes(b"\xef\xbb\xbfhello")
    assert gpt.load_text(path) == "hello"


def test_tokenize_files_caches_in_the_cache_folder_and_memory_maps(tmp_path, user_cache):
    first, second = tmp_path / "a.txt", tmp_path / "b.txt"
    first.write_text("Hello there. " * 50, encoding="utf-8")
    second.write_text("General Kenobi! " * 50, encoding="utf-8")
    tokenizer = gpt.get_tokenizer("bytes")
    ids = gpt.tokenize_files([first, second], tokenizer)
    assert isinstance(ids, np.memmap) and ids.dtype == np.uint16
    assert ids.tolist() == tokenizer.encode(gpt.load_text([first, second]))
    assert int((ids == tokenizer.eot_id).sum()) == 1  # documents joined by one <|endoftext|>
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.txt", "user-cache"]  # nothing beside
    cached = list(user_cache.glob("*.tokens.npy"))
    assert [p.name for p in cached] == [cache_file_name([first, second], tokenizer)]
    assert cached[0].name.startswith("a.txt+1.bytes.")

    class NoEncoding(gpt.ByteTokenizer):
        def encode_array(self, text):
            raise AssertionError("a cache hit must not tokenize")

    again = gpt.tokenize_files([first, second], NoEncoding())
    assert np.array_equal(again, ids)

    second.write_text("General Grievous! " * 50, encoding="utf-8")  # new content, new key
    changed = gpt.tokenize_files([first, second], tokenizer)
    assert not np.array_equal(changed, ids)
    assert len(list(user_cache.glob("*.tokens.npy"))) == 2


def test_same_text_in_two_folders_gets_two_caches(tmp_path, user_cache):
    for folder in ("one", "two"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "t.txt").write_text("same words " * 30, encoding="utf-8")
        gpt.tokenize_files(tmp_path / folder / "t.txt", "bytes")
    assert len(list(user_cache.glob("t.txt.bytes.*.tokens.npy"))) == 2  # keyed by path too


def test_a_cache_beside_the_text_only_when_asked(tmp_path, user_cache):
    path = tmp_path / "t.txt"
    path.write_text("beside the text " * 30, encoding="utf-8")
    ids = gpt.tokenize_files(path, "bytes", beside=True)
    assert len(list(tmp_path.glob("t.txt.bytes.*.tokens.npy"))) == 1 and not user_cache.exists()
    assert str(ids.filename).startswith(str(tmp_path)) and ids.tolist() == list(path.read_bytes())


def test_cache_is_keyed_by_tokenizer_identity(tmp_path, user_cache):
    path = tmp_path / "t.txt"
    text = "the cat sat on the mat; the cat ate the rat. " * 40
    path.write_text(text, encoding="utf-8")
    bpe_a = gpt.train_bpe(text, 270)
    bpe_b = gpt.train_bpe(text.replace("cat", "dog"), 270)
    ids_a = gpt.tokenize_files(path, bpe_a)
    ids_b = gpt.tokenize_files(path, bpe_b)
    assert ids_a.tolist() == bpe_a.encode(text) and ids_b.tolist() == bpe_b.encode(text)
    assert len(list(user_cache.glob("*.tokens.npy"))) == 2


def test_read_only_folder_falls_back_to_the_user_cache_when_asked_for_beside(tmp_path, user_cache):
    folder = tmp_path / "ro"
    folder.mkdir()
    path = folder / "t.txt"
    path.write_text("read only " * 30, encoding="utf-8")
    folder.chmod(stat.S_IRUSR | stat.S_IXUSR | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH)
    try:
        ids = gpt.tokenize_files(path, "bytes", beside=True)
        assert list(folder.glob("*.npy")) == []
        assert len(list(user_cache.glob("t.txt.bytes.*.tokens.npy"))) == 1
        again = gpt.tokenize_files(path, "bytes", beside=True)
        assert np.array_equal(again, ids) and str(again.filename).startswith(str(user_cache))
    finally:
        folder.chmod(0o755)


def test_shared_data_is_never_written(user_cache):
    verdict = shared_path("the-verdict.txt")
    before = sorted(os.listdir(verdict.parent))
    ids = gpt.tokenize_files(verdict, "bytes")
    assert len(ids) == len(verdict.read_bytes())
    assert sorted(os.listdir(verdict.parent)) == before


def test_broken_cache_is_redone_with_a_warning(tmp_path, user_cache):
    path = tmp_path / "t.txt"
    path.write_text("some text " * 20, encoding="utf-8")
    ids = np.array(gpt.tokenize_files(path, "bytes"))
    cache = next(user_cache.glob("*.tokens.npy"))
    cache.write_bytes(b"garbage")
    with pytest.warns(UserWarning, match="unreadable or damaged token cache"):
        again = gpt.tokenize_files(path, "bytes")
    assert np.array_equal(again, ids)


def test_prepare_corpus_for_the_command_line(tmp_path, user_cache):
    from gpt.data.corpus import prepare_corpus

    tokenizer, ids, description = prepare_corpus(None, "bytes")
    assert tokenizer.name == "bytes" and len(ids) > 400_000 and "default corpus" in description
    path = tmp_path / "t.txt"
    path.write_text("a tiny corpus about cats and hats; cats sat on hats. " * 30, encoding="utf-8")
    bpe, ids, description = prepare_corpus(path, "bpe:270")
    assert bpe.n_vocab == 270 and ids.tolist() == bpe.encode(gpt.load_text(path))
    again, ids_again, _ = prepare_corpus(path, bpe)  # resuming: the checkpoint's tokenizer, not retrained
    assert again is bpe and np.array_equal(ids_again, ids)
