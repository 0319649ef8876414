"""Sliding windows, the resumable loader, the train/val split, and bad input."""
from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import gpt
from gpt.data import DataLoader, SlidingWindowDataset, create_dataloader, train_val_split


@given(n_tokens=st.integers(2, 80), max_length=st.integers(1, 12), stride=st.integers(1, 12))
def test_windows_match_direct_slicing(n_tokens, max_length, stride):
    ids = np.random.default_rng(n_tokens).integers(0, 50257, n_tokens).astype(np.uint16)
    if n_tokens < max_length + 1:
        with pytest.raises(ValueError, match=f"the text has {n_tokens} tokens; max_length {max_length} needs at least {max_length + 1}"):
            SlidingWindowDataset(ids, max_length, stride)
        return
    dataset = SlidingWindowDataset(ids, max_length, stride)
    starts = list(range(0, n_tokens - max_length, stride))  # the book's GPTDatasetV1 loop
    assert len(dataset) == len(starts)
    for k, i in enumerate(starts):
        inputs, targets = dataset[k]
        assert np.array_equal(inputs, ids[i:i + max_length])
        assert np.array_equal(targets, ids[i + 1:i + max_length + 1])
        assert np.shares_memory(inputs, ids)  # a view, not a copy
    inputs, targets = dataset.batch(np.arange(len(starts))[::-1])
    assert inputs.dtype == np.int64 and inputs.shape == (len(starts), max_length)
    for row, i in enumerate(reversed(starts)):
        assert np.array_equal(inputs[row], ids[i:i + max_length])
        assert np.array_equal(targets[row], ids[i + 1:i + max_length + 1])


def test_book_example_max_length_4_stride_1():
    ids = np.arange(10)
    loader = create_dataloader(ids, batch_size=1, max_length=4, stride=1, shuffle=False)
    first_inputs, first_targets = next(iter(loader))
    assert first_inputs.tolist() == [[0, 1, 2, 3]] and first_targets.tolist() == [[1, 2, 3, 4]]
    assert len(loader) == 6


def test_bad_arguments_are_clear():
    ids = np.arange(20)
    with pytest.raises(ValueError, match="stride must be positive, got 0"):
        SlidingWindowDataset(ids, 4, 0)
    with pytest.raises(ValueError, match="max_length must be positive"):
        SlidingWindowDataset(ids, -1, 1)
    with pytest.raises(TypeError, match="max_length must be an int"):
        SlidingWindowDataset(ids, 4.0, 1)
    dataset = SlidingWindowDataset(ids, 4, 4)
    with pytest.raises(ValueError, match="batch_size must be positive, got 0"):
        DataLoader(dataset, 0)
    with pytest.raises(ValueError, match="has 4 windows, fewer than batch_size 8"):
        DataLoader(dataset, 8)
    assert len(DataLoader(dataset, 8, drop_last=False)) == 1
    with pytest.raises(IndexError, match="out of range"):
        dataset[4]
    with pytest.raises(ValueError, match=r"shape \(2, 10\)"):
        SlidingWindowDataset(ids.reshape(2, 10), 4, 1)
    with pytest.raises(TypeError, match="integers"):
        SlidingWindowDataset(np.zeros(20, dtype=np.float32), 4, 1)


def epoch_batches(loader):
    return [(x.copy(), y.copy()) for x, y in loader]


def test_loader_covers_every_window_once_per_epoch_and_drop_last():
    dataset = SlidingWindowDataset(np.arange(101), 4, 3)  # 33 windows
    loader = DataLoader(dataset, 5, shuffle=True, seed=1)
    batches = epoch_batches(loader)
    assert len(batches) == len(loader) == 6  # 33 // 5, the last 3 windows dropped
    firsts = np.concatenate([x[:, 0] for x, _ in batches])
    assert len(set(firsts.tolist())) == 30
    keep_last = DataLoader(dataset, 5, shuffle=False, drop_last=False)
    batches = epoch_batches(keep_last)
    assert [len(x) for x, _ in batches] == [5] * 6 + [3]
    assert np.array_equal(np.concatenate([x[:, 0] for x, _ in batches]), np.arange(0, 99, 3))


def test_shuffle_is_reproducible_by_seed_and_changes_per_epoch():
    dataset = SlidingWindowDataset(np.arange(501), 8, 4)  # 124 windows: 31 full batches
    run = lambda seed: [x[:, 0].tolist() for x, _ in DataLoader(dataset, 4, shuffle=True, seed=seed)]  # noqa: E731
    assert run(7) == run(7)
    assert run(7) != run(8)
    loader = DataLoader(dataset, 4, shuffle=True, seed=7)
    epoch0 = [x[:, 0].tolist() for x, _ in loader]
    epoch1 = [x[:, 0].tolist() for x, _ in loader]
    assert loader.epoch == 1 and epoch0 != epoch1
    assert sorted(sum(epoch0, [])) == sorted(sum(epoch1, []))


@pytest.mark.parametrize("stop_after", [0, 1, 5, 11, 12, 13, 30])
def test_resume_mid_epoch_yields_exactly_the_remaining_batches(stop_after):
    dataset = SlidingWindowDataset(np.arange(300), 6, 5)  # 59 windows, 12 batches of 4 per epoch
    straight = DataLoader(dataset, 4, shuffle=True, seed=3)
    expected = [straight.next_batch() for _ in range(40)]

    first = DataLoader(dataset, 4, shuffle=True, seed=3)
    for _ in range(stop_after):
        first.next_batch()
    state = json.loads(json.dumps(first.state_dict()))  # a checkpoint stores it as JSON
    resumed = DataLoader(dataset, 4, shuffle=True, seed=0)  # the seed comes from the state
    resumed.load_state_dict(state)
    rest = [resumed.next_batch() for _ in range(40 - stop_after)]
    for (x, y), (ex, ey) in zip(rest, expected[stop_after:]):
        assert np.array_equal(x, ex) and np.array_equal(y, ey)


def test_resume_with_for_loops():
    dataset = SlidingWindowDataset(np.arange(200), 4, 2)
    loader = DataLoader(dataset, 8, shuffle=True, seed=5)
    full = epoch_batches(DataLoader(dataset, 8, shuffle=True, seed=5))
    seen = []
    for x, y in loader:
        seen.append((x.copy(), y.copy()))
        if len(seen) == 4:
            state = loader.state_dict()
            break
    resumed = DataLoader(dataset, 8, shuffle=True, seed=5)
    resumed.load_state_dict(state)
    seen.extend(epoch_batches(resumed))
    assert len(seen) == len(full)
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(seen, full))
    assert resumed.state_dict()["epoch"] == 0 and len(epoch_batches(resumed)) == len(full)
    assert resumed.epoch == 1


def test_loader_state_from_another_setup_is_refused():
    dataset = SlidingWindowDataset(np.arange(200), 4, 2)
    state = DataLoader(dataset, 8).state_dict()
    with pytest.raises(ValueError, match="batch_size=8 but this loader has batch_size=4"):
        DataLoader(dataset, 4).load_state_dict(state)
    other = SlidingWindowDataset(np.arange(300), 4, 2)
    with pytest.raises(ValueError, match="num_windows"):
        DataLoader(other, 8).load_state_dict(state)


def test_train_val_split():
    ids = np.arange(100, dtype=np.uint16)
    train, val = train_val_split(ids, 0.9)
    assert np.array_equal(train, ids[:90]) and np.array_equal(val, ids[90:])
    assert np.shares_memory(train, ids)
    for ratio in (0.0, 1.0, 1.5):
        with pytest.raises(ValueError, match="between 0 and 1"):
            train_val_split(ids, ratio)
    with pytest.raises(ValueError, match="too few"):
        train_val_split(np.arange(3), 0.1)


def test_the_verdict_pipeline_like_the_book(tmp_path, monkeypatch):
    """Chapter 2's numbers: 5,145 GPT-2 tokens; the book's loader settings give 20 windows of 256."""
    from conftest import shared_path

    monkeypatch.setenv("GPT_CACHE_DIR", str(tmp_path))
    verdict = shared_path("the-verdict.txt")
    tokenizer = gpt.get_tokenizer("gpt2", path=shared_path("gpt2"))
    ids = gpt.tokenize_files(verdict, tokenizer)
    assert len(ids) == 5145 and ids.dtype == np.uint16
    train, val = train_val_split(ids, 0.9)
    loader = create_dataloader(train, batch_size=2, max_length=256, stride=256, shuffle=True, drop_last=True)
    assert len(loader) == 9  # the book's chapter 5 train loader: 9 batches of (2, 256)
    x, y = next(iter(loader))
    assert x.shape == y.shape == (2, 256)
