"""Instruction finetuning (the book's chapter 7): prompts, collate function, dataset, training."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minigrad.optim import AdamW

from gpt import GPTModel
from gpt.finetune import (InstructionDataset, custom_collate_fn, format_input, format_response,
                          generate_response, generate_test_responses, load_instruction_data,
                          split_instruction_data, train_instruct, validate_records)
from gpt.finetune.instruct import calc_loss
from gpt.data import get_tokenizer

PAD = 50256
IGNORE = -100


# ---------------------------------------------------------------------------- prompts
def test_format_input_is_the_books_alpaca_template():
    entry = {"instruction": "Identify the correct spelling of the following word.",
             "input": "Ocassion", "output": "The correct spelling is 'Occasion.'"}
    assert format_input(entry) == (
        "Below is an instruction that describes a task. Write a response that appropriately "
        "completes the request.\n\n### Instruction:\nIdentify the correct spelling of the "
        "following word.\n\n### Input:\nOcassion")
    assert format_response(entry) == "\n\n### Response:\nThe correct spelling is 'Occasion.'"
    no_input = {"instruction": "Name a color.", "input": "", "output": "Blue."}
    assert format_input(no_input).endswith("### Instruction:\nName a color.")
    assert "### Input" not in format_input(no_input)
    assert format_input({"instruction": "Name a color."}) == format_input(no_input)


# ---------------------------------------------------------------------------- collate
BOOK_BATCH = [[0, 1, 2, 3, 4], [5, 6], [7, 8, 9]]


def test_collate_matches_the_book():
    inputs, targets = custom_collate_fn(BOOK_BATCH)
    np.testing.assert_array_equal(inputs, [[0, 1, 2, 3, 4],
                                           [5, 6, PAD, PAD, PAD],
                                           [7, 8, 9, PAD, PAD]])
    np.testing.assert_array_equal(targets, [[1, 2, 3, 4, PAD],
                                            [6, PAD, IGNORE, IGNORE, IGNORE],
                                            [8, 9, PAD, IGNORE, IGNORE]])
    assert inputs.dtype == np.int64 and targets.dtype == np.int64


def test_collate_truncates_and_masks_prompts():
    inputs, targets = custom_collate_fn(BOOK_BATCH, allowed_max_length=3)
    np.testing.assert_array_equal(inputs, [[0, 1, 2], [5, 6, PAD], [7, 8, 9]])
    np.testing.assert_array_equal(targets, [[1, 2, 3], [6, PAD, IGNORE], [8, 9, PAD]])
    # prompts of 3, 1 and 2 tokens: targets[:L-1] predict prompt tokens and are ignored
    inputs, targets = custom_collate_fn(BOOK_BATCH, mask_prompt=True, prompt_lengths=[3, 1, 2],
                                        pad_token_id=99, ignore_index=-1)
    np.testing.assert_array_equal(inputs, [[0, 1, 2, 3, 4], [5, 6, 99, 99, 99], [7, 8, 9, 99, 99]])
    np.testing.assert_array_equal(targets, [[-1, -1, 3, 4, 99], [6, 99, -1, -1, -1], [-1, 9, 99, -1, -1]])


@settings(max_examples=25)
@given(st.lists(st.lists(st.integers(0, 50), min_size=1, max_size=9), min_size=1, max_size=5))
def test_collate_properties(batch):
    inputs, targets = custom_collate_fn(batch, pad_token_id=PAD)
    longest = max(len(item) for item in batch)
    assert inputs.shape == targets.shape == (len(batch), longest)
    for row, item in enumerate(batch):
        np.testing.assert_array_equal(inputs[row, :len(item)], item)
        assert np.all(inputs[row, len(item):] == PAD)
        np.testing.assert_array_equal(targets[row, :len(item) - 1], item[1:])
        assert targets[row, len(item) - 1] == PAD  # exactly one end-of-text to learn
        assert np.all(targets[row, len(item):] == IGNORE)


def test_collate_bad_arguments():
    with pytest.raises(ValueError, match="empty"):
        custom_collate_fn([])
    with pytest.raises(ValueError, match="prompt_lengths"):
        custom_collate_fn(BOOK_BATCH, mask_prompt=True)
    with pytest.raises(ValueError, match="2 prompt lengths for a batch of 3"):
        custom_collate_fn(BOOK_BATCH, mask_prompt=True, prompt_lengths=[1, 1])
    with pytest.raises(ValueError, match="row 0's prompt has 4 tokens"):
        custom_collate_fn(BOOK_BATCH, mask_prompt=True, prompt_lengths=[4, 1, 1], allowed_max_length=4)


# ---------------------------------------------------------------------------- records, dataset, split
def test_bad_records_are_named():
    with pytest.raises(ValueError, match=r"record 1 lacks the field\(s\) \['output'\]"):
        validate_records([{"instruction": "a", "output": "b"}, {"instruction": "c"}])
    with pytest.raises(ValueError, match=r"record 0 lacks the field\(s\) \['instruction'\]"):
        validate_records([{"input": "x", "output": "b"}])
    with pytest.raises(TypeError, match="record 2 is a str"):
        validate_records([{"instruction": "a", "output": "b"}] * 2 + ["oops"])
    with pytest.raises(TypeError, match="record 0: field 'output' must be a string"):
        validate_records([{"instruction": "a", "output": 3}])
    with pytest.raises(TypeError, match="list of records"):
        validate_records({"instruction": "a"})


def test_load_instruction_data(tmp_path):
    path = tmp_path / "data.json"
    path.write_text(json.dumps([{"instruction": "a", "input": "", "output": "b"}]))
    assert load_instruction_data(path)[0]["output"] == "b"
    path.write_text("[{")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_instruction_data(path)
    with pytest.raises(FileNotFoundError):
        load_instruction_data(tmp_path / "none.json")


def test_books_split_sizes():
    data = list(range(1100))
    train, val, test = split_instruction_data(data)
    assert (len(train), len(val), len(test)) == (935, 55, 110)  # the book's 85/5/10
    assert train == data[:935] and test == data[935:1045] and val == data[1045:]


def test_instruction_dataset_and_prompt_lengths():
    tokenizer = get_tokenizer("bytes")
    data = [{"instruction": "Say hi.", "input": "", "output": "Hi!"},
            {"instruction": "Double it.", "input": "2", "output": "4"}]
    ds = InstructionDataset(data, tokenizer)
    assert len(ds) == 2
    assert ds[0] == tokenizer.encode(format_input(data[0]) + format_response(data[0]))
    assert ds.prompt_lengths == [len(tokenizer.encode(format_input(entry))) for entry in data]
    with pytest.raises(ValueError, match="record 1: the prompt has"):
        InstructionDataset(data, tokenizer, allowed_max_length=ds.prompt_lengths[1])


def test_shared_instruction_data_formats(shared_data):
    data = load_instruction_data(shared_data / "instruction-data.json")
    assert len(data) == 1100
    train, val, test = split_instruction_data(data)
    assert (len(train), len(val), len(test)) == (935, 55, 110)


# ---------------------------------------------------------------------------- training
TOY = [
    {"instruction": "Name the color.", "input": "sky", "output": "blue"},
    {"instruction": "Name the color.", "input": "grass", "output": "green"},
    {"instruction": "Name the color.", "input": "snow", "output": "white"},
    {"instruction": "Name the color.", "input": "coal", "output": "black"},
]


class WordTokenizer:
    """Words, spaces and punctuation as tokens (short sequences keep the test fast)."""

    def __init__(self, texts):
        pieces = sorted({piece for text in texts for piece in re.findall(r"\w+|\W", text)})
        self.vocab = {piece: index for index, piece in enumerate(pieces)}
        self.pieces = pieces
        self.eot_id = len(pieces)
        self.n_vocab = len(pieces) + 1

    def encode(self, text):
        return [self.vocab[piece] for piece in re.findall(r"\w+|\W", text)]

    def decode(self, ids):
        return "".join("<|endoftext|>" if i == self.eot_id else self.pieces[i] for i in ids)


def test_tiny_model_learns_a_toy_instruction_set(tmp_path):
    tokenizer = WordTokenizer([format_input(entry) + format_response(entry) for entry in TOY])
    cfg = {"vocab_size": tokenizer.n_vocab, "context_length": 80, "emb_dim": 32, "n_heads": 2,
           "n_layers": 2, "drop_rate": 0.0, "qkv_bias": False}
    model = GPTModel(cfg, generator=np.random.default_rng(0))
    train = InstructionDataset(TOY * 2, tokenizer)
    val = InstructionDataset(TOY, tokenizer)
    assert max(len(ids) for ids in train.encoded_texts) < 80
    options = {"pad_token_id": tokenizer.eot_id, "mask_prompt": True}
    start = calc_loss(val, model, batch_size=4, **options)
    optimizer = AdamW(list(model.parameters()), lr=1e-2, weight_decay=0.0)
    history = train_instruct(model, train, val, optimizer, num_epochs=40, batch_size=4, eval_freq=0,
                             mask_prompt=True, pad_token_id=tokenizer.eot_id, log=None)
    assert history["steps"] == 80
    assert calc_loss(val, model, batch_size=4, **options) < start / 10
    answers = [generate_response(model, tokenizer, entry, max_new_tokens=12) for entry in TOY]
    assert answers == [entry["output"] for entry in TOY]
    results = generate_test_responses(model, tokenizer, TOY[:2], tmp_path / "out" / "responses.json",
                                      max_new_tokens=12)
    written = json.loads((tmp_path / "out" / "responses.json").read_text())
    assert written == results and written[0] == {**TOY[0], "model_response": "blue"}
