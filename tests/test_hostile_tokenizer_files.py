"""GPT-2 tokenizer files built broken here (encoder.json that is a list, ids that are not
integers, nested or non-UTF-8 JSON, a tokenizer.json of another shape, a bad merge line): each
is a TokenizerFileError (a FileFormatError) naming the file, never a TypeError."""
from __future__ import annotations

import json

import pytest

from gpt.data.gpt2_files import TokenizerFileError, load_ranks_from_path
from minigrad.untrusted import MAX_MESSAGE, FileFormatError

MERGES = "#version: 0.2\nĠ t\n"


def folder_with(tmp_path, encoder: bytes, merges: str = MERGES, names=("encoder.json", "vocab.bpe")):
    (tmp_path / names[0]).write_bytes(encoder)
    (tmp_path / names[1]).write_text(merges, encoding="utf-8")
    return tmp_path


@pytest.mark.parametrize("encoder, match", [
    (b'["a", "b"]', "must be an object mapping each token to its integer id, got \\['a', 'b'\\]"),
    (b'{"a": "0"}', "must be an object mapping"),
    (b"[" * 50_000 + b"]" * 50_000, "nested 50000 levels deep"),
    (b'{"caf\xe9": 1}', "not UTF-8"),
    (b'{"a": 1', "not valid JSON"),
])
def test_encoder_json_that_is_not_a_token_to_id_object(tmp_path, encoder, match):
    folder = folder_with(tmp_path, encoder)
    with pytest.raises(TokenizerFileError, match=match) as caught:
        load_ranks_from_path(folder)
    assert str(folder / "encoder.json") in str(caught.value) and len(str(caught.value)) < MAX_MESSAGE
    assert isinstance(caught.value, FileFormatError)


def test_bad_merge_line_names_the_merges_file(tmp_path):
    folder = folder_with(tmp_path, b"{}", merges="#version: 0.2\na b c\n", names=("vocab.json", "merges.txt"))
    with pytest.raises(TokenizerFileError, match="merges.txt: line 2 is not a merge"):
        load_ranks_from_path(folder)


@pytest.mark.parametrize("content", [b"[1, 2]", b'{"model": [1]}', b'{"model": {"type": "BPE", "vocab": [], "merges": []}}',
                                     b'{"model": {"type": "BPE", "vocab": {}, "merges": [1]}}'])
def test_tokenizer_json_of_another_shape(tmp_path, content):
    (tmp_path / "tokenizer.json").write_bytes(content)
    with pytest.raises(TokenizerFileError, match="tokenizer.json"):
        load_ranks_from_path(tmp_path)
