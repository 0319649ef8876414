"""Classification finetuning (the book's chapter 6): data, head, freezing, loss/accuracy, training."""
from __future__ import annotations

import numpy as np
import pytest

from minigrad.optim import AdamW

from gpt import GPTModel
from gpt.finetune import (ClassificationDataset, add_classification_head, calc_accuracy, calc_loss,
                          classification_logits, classify_text, freeze_for_classification,
                          label_names_of, random_split, read_classification_file, train_classifier,
                          write_classification_file)
from gpt.data import get_tokenizer

TINY = {"vocab_size": 257, "context_length": 32, "emb_dim": 16, "n_heads": 2, "n_layers": 3,
        "drop_rate": 0.0, "qkv_bias": False}


@pytest.fixture
def tokenizer():
    return get_tokenizer("bytes")


def tiny_model(seed=0):
    return GPTModel(TINY, generator=np.random.default_rng(seed))


# ---------------------------------------------------------------------------- data
def test_dataset_pads_with_eot_to_the_longest(tokenizer):
    records = [("ab", "spam"), ("abcd", "ham"), ("a", "spam")]
    ds = ClassificationDataset(records, tokenizer)
    assert ds.label_names == ["ham", "spam"] and ds.num_classes == 2
    assert ds.max_length == 4 and ds.pad_token_id == tokenizer.eot_id == 256
    np.testing.assert_array_equal(ds.input_ids, [[97, 98, 256, 256], [97, 98, 99, 100], [97, 256, 256, 256]])
    np.testing.assert_array_equal(ds.labels, [1, 0, 1])
    ids, label = ds[1]
    assert ids.dtype == np.int64 and label == 0 and len(ds) == 3


def test_dataset_truncates_and_pads_to_max_length(tokenizer):
    ds = ClassificationDataset([("abcdef", 1), ("ab", 0)], tokenizer, max_length=3, pad_token_id=7)
    np.testing.assert_array_equal(ds.input_ids, [[97, 98, 99], [97, 98, 7]])
    assert ds.label_names == ["0", "1"]


def test_integer_labels_and_shared_names(tokenizer):
    assert label_names_of([("x", 0), ("y", "2")]) == ["0", "1", "2"]
    ds = ClassificationDataset([{"text": "x", "label": "1"}], tokenizer, label_names=["0", "1", "2"])
    assert ds.labels.tolist() == [1] and ds.num_classes == 3


def test_csv_and_tsv_files(tmp_path, tokenizer):
    records = [{"text": 'say "hi", then go', "label": "greeting"}, {"text": "bye\tnow", "label": "farewell"}]
    for name in ("data.csv", "data.tsv"):
        path = tmp_path / name
        write_classification_file(records, path)
        read = read_classification_file(path)
        assert [r["text"] for r in read] == [r["text"] for r in records]
        ds = ClassificationDataset(path, tokenizer)
        assert ds.label_names == ["farewell", "greeting"] and ds.labels.tolist() == [1, 0]
    (tmp_path / "book.csv").write_text("Label,Text\n1,win money now\n0,see you at 5\n")
    ds = ClassificationDataset(tmp_path / "book.csv", tokenizer)
    assert ds.labels.tolist() == [1, 0]


def test_bad_data_errors_name_the_row(tmp_path, tokenizer):
    path = tmp_path / "bad.csv"
    path.write_text("text,label\nhello,a\n ,b\n")
    with pytest.raises(ValueError, match="bad.csv line 3: the text is empty"):
        ClassificationDataset(path, tokenizer)
    path.write_text("text,label\nhello,a\nworld,c\n")
    with pytest.raises(ValueError, match=r"bad.csv line 3: label 'c' is not one of the 2 classes"):
        ClassificationDataset(path, tokenizer, label_names=["a", "b"])
    with pytest.raises(ValueError, match="record 1: label 5"):
        ClassificationDataset([("x", 0), ("y", 5)], tokenizer, label_names=["0", "1"])
    with pytest.raises(ValueError, match="record 0: the text is empty"):
        ClassificationDataset([("", 0)], tokenizer)
    path.write_text("sentence,class\nhello,a\n")
    with pytest.raises(ValueError, match="'text' and 'label'"):
        read_classification_file(path)
    with pytest.raises(FileNotFoundError):
        read_classification_file(tmp_path / "missing.csv")
    with pytest.raises(TypeError, match="record 0"):
        ClassificationDataset([42], tokenizer)


def test_random_split_is_seeded_and_complete():
    records = list(range(100))
    train, val, test = random_split(records, 0.7, 0.1, seed=123)
    assert (len(train), len(val), len(test)) == (70, 10, 20)
    assert sorted(train + val + test) == records
    assert random_split(records, 0.7, 0.1, seed=123)[0] == train
    with pytest.raises(ValueError, match="fractions"):
        random_split(records, 0.9, 0.2)


# ---------------------------------------------------------------------------- head and freezing
def test_head_and_freezing_touch_exactly_the_intended_parameters():
    model = tiny_model()
    add_classification_head(model, 3, generator=np.random.default_rng(1))
    assert model.out_head.weight.shape == (3, 16) and model.out_head.bias.shape == (3,)
    trainable = freeze_for_classification(model, trainable_blocks=1)
    expected = [name for name, _ in model.named_parameters()
                if name.startswith(("trf_blocks.2.", "final_norm.", "out_head."))]
    assert trainable == expected
    assert sorted({name.split(".")[0] for name in trainable}) == ["final_norm", "out_head", "trf_blocks"]

    before = {name: p.data.copy() for name, p in model.named_parameters()}
    optimizer = AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2, weight_decay=0.1)
    ids = np.random.default_rng(2).integers(0, 257, size=(4, 10))
    loss = calc_loss_batch_for(model, ids, np.array([0, 1, 2, 1]))
    loss.backward()
    optimizer.step()
    for name, p in model.named_parameters():
        if name in trainable:
            assert not np.array_equal(p.data, before[name]), f"{name} did not change"
        else:
            np.testing.assert_array_equal(p.data, before[name], err_msg=f"frozen {name} changed")
            assert p.grad is None


def calc_loss_batch_for(model, ids, labels):
    from gpt.finetune import calc_loss_batch
    return calc_loss_batch(ids, labels, model)


def test_freezing_options():
    model = tiny_model()
    add_classification_head(model, 2)
    names = freeze_for_classification(model, trainable_blocks=0, train_final_norm=False)
    assert names == ["out_head.weight", "out_head.bias"]
    names = freeze_for_classification(model, trainable_blocks=3)
    assert not any(name.startswith(("tok_emb", "pos_emb")) for name in names)
    assert any(name.startswith("trf_blocks.0.") for name in names)
    with pytest.raises(ValueError, match="trainable_blocks"):
        freeze_for_classification(model, trainable_blocks=4)
    with pytest.raises(ValueError, match="num_classes"):
        add_classification_head(model, 1)


def test_head_replaces_a_tied_head():
    model = tiny_model().tie_weights()
    add_classification_head(model, 2)
    assert not model.weights_tied and model.tok_emb.weight.shape == (257, 16)


def test_logits_come_from_the_last_position():
    model = tiny_model()
    add_classification_head(model, 2)
    ids = np.random.default_rng(3).integers(0, 257, size=(2, 9))
    np.testing.assert_array_equal(classification_logits(model, ids).data, model(ids).data[:, -1, :])
    changed = ids.copy()
    changed[:, 0] = (changed[:, 0] + 1) % 257  # the last position sees the first token
    assert not np.allclose(classification_logits(model, changed).data, classification_logits(model, ids).data)


# ---------------------------------------------------------------------------- training
def toy_records(count, seed):
    """Texts of vowels (class 'vowels') or of consonants (class 'consonants')."""
    rng = np.random.default_rng(seed)
    records = []
    for i in range(count):
        letters = "aeiou" if i % 2 == 0 else "bcdfg"
        text = "".join(rng.choice(list(letters), size=rng.integers(3, 9)))
        records.append((text, "vowels" if i % 2 == 0 else "consonants"))
    return records


def test_tiny_model_learns_a_toy_classification(tokenizer):
    train = ClassificationDataset(toy_records(64, 0), tokenizer, max_length=8)
    val = ClassificationDataset(toy_records(16, 1), tokenizer, max_length=8, label_names=train.label_names)
    model = tiny_model()
    add_classification_head(model, train.num_classes, generator=np.random.default_rng(1))
    freeze_for_classification(model, trainable_blocks=1)
    start_loss = calc_loss(val, model)
    optimizer = AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-3, weight_decay=0.1)
    logged = []
    history = train_classifier(model, train, val, optimizer, num_epochs=5, batch_size=8,
                               eval_freq=10, eval_iter=2, log=logged.append)
    assert history["steps"] == 40 and history["examples_seen"] == 320
    assert len(history["train_accs"]) == 5 and logged
    assert calc_loss(val, model) < start_loss / 2
    assert calc_accuracy(val, model) == 1.0
    assert calc_accuracy(train, model) == 1.0
    label, probs = classify_text("aeiouuea", model, tokenizer, max_length=8, label_names=train.label_names)
    assert label == "vowels" and probs.shape == (2,) and abs(probs.sum() - 1) < 1e-5
    with pytest.raises(ValueError, match="empty"):
        classify_text("  ", model, tokenizer)


def test_training_refuses_a_frozen_model(tokenizer):
    data = ClassificationDataset(toy_records(16, 0), tokenizer)
    model = tiny_model()
    add_classification_head(model, 2)
    model.requires_grad_(False)
    with pytest.raises(ValueError, match="frozen"):
        train_classifier(model, data, data, AdamW(list(model.parameters()), lr=1e-3), 1, log=None)
