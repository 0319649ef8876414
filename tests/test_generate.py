"""gpt.generate: greedy and sampled decoding, top-k/top-p filters, EOS per row,
the KV cache (equal to no cache, also once the window slides), modes, bad input."""
from __future__ import annotations

import numpy as np
import pytest

import minigrad as mg
from conftest import shared_path
from gpt import (GPTModel, generate, sample_next_token, text_to_token_ids, token_ids_to_text,
                 top_k_filter, top_p_filter)

TINY = {"vocab_size": 40, "context_length": 12, "emb_dim": 8, "n_heads": 2, "n_layers": 2,
        "drop_rate": 0.0, "qkv_bias": True}


def tiny_model(dtype=np.float64, seed=0, **overrides) -> GPTModel:
    model = GPTModel({**TINY, **overrides}, dtype=dtype, generator=np.random.default_rng(seed))
    model.tok_emb.weight.data *= 3  # sharper distributions: fewer near-ties, livelier greedy runs
    return model


def prompt(batch=2, length=4, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, TINY["vocab_size"], size=(batch, length))


# ---------------------------------------------------------------------- greedy and the cache
def test_greedy_matches_the_books_loop():
    model = tiny_model().eval()
    ids = prompt()
    expected = ids.copy()
    for _ in range(6):  # the book's generate_text_simple
        with mg.no_grad():
            logits = model(expected[:, -TINY["context_length"]:]).data[:, -1, :]
        expected = np.concatenate([expected, logits.argmax(axis=-1)[:, None]], axis=1)
    for use_cache in (False, True):
        out = generate(model, ids, 6, use_cache=use_cache)
        assert out.dtype == np.int64 and out.shape == (2, 10)
        np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("context_size", [None, 5, 12, 100])
def test_cached_equals_uncached_also_after_the_window_slides(context_size):
    model = tiny_model(dtype=np.float32, seed=1)
    ids = prompt(batch=3, length=3, seed=2)
    new = 30  # 3 + 30 > context 12: the window slides many times
    uncached = generate(model, ids, new, context_size=context_size, use_cache=False)
    cached = generate(model, ids, new, context_size=context_size, use_cache=True)
    np.testing.assert_array_equal(cached, uncached)
    assert len(np.unique(uncached[:, 3:])) > 3  # not a trivial repetition
    np.testing.assert_array_equal(cached[:, :3], ids)


def test_cached_equals_uncached_when_sampling():
    model = tiny_model()
    ids = prompt(batch=2, length=5, seed=3)
    kwargs = dict(temperature=1.3, top_k=10, top_p=0.9, seed=11)
    np.testing.assert_array_equal(generate(model, ids, 25, use_cache=True, **kwargs),
                                  generate(model, ids, 25, use_cache=False, **kwargs))


def test_prompt_longer_than_the_context_is_cropped():
    model = tiny_model()
    ids = prompt(batch=1, length=20, seed=4)
    out = generate(model, ids, 3)
    np.testing.assert_array_equal(out[:, :20], ids)
    np.testing.assert_array_equal(out[:, 20:], generate(model, ids[:, -12:], 3)[:, 12:])


def test_tiny_gpt2_greedy_continuation():
    expected = np.load(shared_path("tiny-gpt2", "expected.npz"))
    state = dict(np.load(shared_path("tiny-gpt2", "state_dict_book.npz")))
    cfg = {"vocab_size": 50257, "context_length": 32, "emb_dim": 8, "n_heads": 4, "n_layers": 2,
           "drop_rate": 0.0, "qkv_bias": True}
    model = GPTModel(cfg).tie_weights()
    model.load_state_dict(state)
    for use_cache in (True, False):
        out = generate(model, expected["greedy_prompt_ids"], 10, use_cache=use_cache)
        np.testing.assert_array_equal(out, expected["greedy_ids"])


# ---------------------------------------------------------------------- sampling
def test_greedy_ties_go_to_the_lowest_id():
    logits = np.array([[0.0, 2.0, 2.0, 1.0], [5.0, 5.0, 5.0, 5.0]], dtype=np.float32)
    np.testing.assert_array_equal(sample_next_token(logits), [1, 0])
    np.testing.assert_array_equal(sample_next_token(logits, top_k=1, top_p=0.1), [1, 0])


def test_top_k_and_top_p_filters():
    logits = np.log(np.array([[0.05, 0.4, 0.1, 0.3, 0.15]]))
    assert np.isfinite(top_k_filter(logits, 2)).tolist() == [[False, True, False, True, False]]
    assert np.isfinite(top_k_filter(logits, 9)).all()
    # 0.4 < 0.5 so the second most likely (0.3) is needed; 0.4 + 0.3 >= 0.5 stops there
    assert np.isfinite(top_p_filter(logits, 0.5)).tolist() == [[False, True, False, True, False]]
    assert np.isfinite(top_p_filter(logits, 0.4)).tolist() == [[False, True, False, False, False]]
    assert np.isfinite(top_p_filter(logits, 0.01)).sum() == 1  # the most likely always stays
    assert np.isfinite(top_p_filter(logits, 1.0)).all()
    ties = np.zeros((1, 6))
    assert np.isfinite(top_k_filter(ties, 2)).all()  # ties with the k-th survive (as the book)


def test_sampling_never_picks_a_filtered_id():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 2, size=(4, 50))
    for top_k, top_p in [(1, None), (3, None), (None, 0.3), (None, 0.8), (5, 0.6), (50, 0.95)]:
        allowed = np.ones_like(logits, dtype=bool)
        scaled = logits / 0.7
        if top_k is not None:
            allowed &= np.isfinite(top_k_filter(scaled, top_k))
        if top_p is not None:
            allowed &= np.isfinite(top_p_filter(np.where(allowed, scaled, -np.inf), top_p))
        seen = np.zeros_like(allowed)
        for seed in range(300):
            picked = sample_next_token(logits, 0.7, top_k, top_p, np.random.default_rng(seed))
            assert allowed[np.arange(4), picked].all(), (top_k, top_p, seed)
            seen[np.arange(4), picked] = True
        assert seen.sum() > 4 or allowed.sum() == 4  # it does sample, not always the argmax


def test_sampling_follows_the_softmax():
    logits = np.log(np.array([[0.5, 0.3, 0.2, 1e-12]]))
    rng = np.random.default_rng(5)
    counts = np.bincount([sample_next_token(logits, 1.0, rng=rng)[0] for _ in range(4000)], minlength=4)
    np.testing.assert_allclose(counts / 4000, [0.5, 0.3, 0.2, 0.0], atol=0.03)


def test_generated_ids_stay_in_the_top_k_of_each_step():
    model = tiny_model()
    ids = prompt(batch=2, length=3, seed=6)
    out = generate(model, ids, 12, temperature=2.0, top_k=3, seed=1)
    with mg.no_grad():
        for step in range(3, out.shape[1]):
            logits = model(out[:, max(0, step - 12):step]).data[:, -1, :]
            top3 = np.argsort(-logits, axis=-1)[:, :3]
            assert all(out[row, step] in top3[row] for row in range(2)), step


def test_seed_makes_sampling_reproducible():
    model = tiny_model()
    ids = prompt()
    a = generate(model, ids, 15, temperature=1.5, seed=3)
    np.testing.assert_array_equal(a, generate(model, ids, 15, temperature=1.5, seed=3))
    assert not np.array_equal(a, generate(model, ids, 15, temperature=1.5, seed=4))


# ---------------------------------------------------------------------- end of text
def test_each_row_stops_at_eos_and_is_padded():
    model = tiny_model(seed=2)
    ids = prompt(batch=3, length=3, seed=7)
    free = generate(model, ids, 10)
    eos_id = int(free[1, 5])  # row 1 produces it at its third new position
    first = [np.flatnonzero(free[row, 3:] == eos_id) for row in range(3)]
    out = generate(model, ids, 10, eos_id=eos_id)
    for row in range(3):
        if len(first[row]):
            stop = 3 + first[row][0]
            np.testing.assert_array_equal(out[row, :stop + 1], free[row, :stop + 1])  # eos is kept
            assert (out[row, stop:] == eos_id).all()  # and pads the rest
        else:
            np.testing.assert_array_equal(out[row], free[row, :out.shape[1]])
    if all(len(f) for f in first):  # every row stopped: generation ended early
        assert out.shape[1] == 3 + max(f[0] for f in first) + 1


def test_generation_ends_when_every_row_has_stopped():
    model = tiny_model(seed=3)
    ids = prompt(batch=1, length=3, seed=8)
    free = generate(model, ids, 8)
    eos_id = int(free[0, 4])
    out = generate(model, ids, 8, eos_id=eos_id)
    stop = 3 + int(np.flatnonzero(free[0, 3:] == eos_id)[0])
    assert out.shape == (1, stop + 1) and out[0, -1] == eos_id


# ---------------------------------------------------------------------- modes, graph, bad input
def test_generation_runs_in_eval_mode_and_restores_the_mode():
    model = tiny_model(drop_rate=0.5)
    ids = prompt()
    model.train()
    a = generate(model, ids, 8)
    assert model.training and all(m.training for m in model.modules())
    b = generate(model, ids, 8)
    np.testing.assert_array_equal(a, b)  # dropout off while generating
    model.eval()
    np.testing.assert_array_equal(generate(model, ids, 8), a)
    assert not model.training
    assert mg.is_grad_enabled()
    assert all(p.grad is None for p in model.parameters())


def test_zero_new_tokens_returns_the_prompt():
    ids = prompt()
    np.testing.assert_array_equal(generate(tiny_model(), ids, 0), ids)


@pytest.mark.parametrize("kwargs, error, words", [
    (dict(max_new_tokens=-1), ValueError, "max_new_tokens"),
    (dict(temperature=-0.5), ValueError, "temperature"),
    (dict(top_k=0, temperature=1.0), ValueError, "top_k"),
    (dict(top_p=0.0, temperature=1.0), ValueError, "top_p"),
    (dict(top_p=1.5, temperature=1.0), ValueError, "top_p"),
    (dict(eos_id=40), ValueError, r"eos_id must be an id in \[0, 40\)"),
    (dict(context_size=0), ValueError, "context_size"),
])
def test_bad_generation_arguments(kwargs, error, words):
    kwargs = {"max_new_tokens": 3, **kwargs}
    with pytest.raises(error, match=words):
        generate(tiny_model(), prompt(), **kwargs)


def test_bad_prompts():
    model = tiny_model()
    with pytest.raises(ValueError, match="at least one token"):
        generate(model, np.zeros((1, 0), dtype=np.int64), 3)
    with pytest.raises(TypeError, match="integers"):
        generate(model, np.zeros((1, 3)), 3)
    with pytest.raises(IndexError, match="token id 40"):
        generate(model, np.array([[1, 40]]), 3)


# ---------------------------------------------------------------------- text helpers
def test_text_round_trip_with_the_gpt2_encoding():
    tiktoken = pytest.importorskip("tiktoken")
    from tiktoken.load import data_gym_to_mergeable_bpe_ranks

    ranks = data_gym_to_mergeable_bpe_ranks(str(shared_path("gpt2", "vocab.bpe")),
                                            str(shared_path("gpt2", "encoder.json")))
    pattern = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
    encoding = tiktoken.Encoding("gpt2-offline", pat_str=pattern, mergeable_ranks=ranks,
                                 special_tokens={"<|endoftext|>": 50256})
    ids = text_to_token_ids("Hello, world<|endoftext|>", encoding)
    assert ids.shape == (1, 4) and ids.dtype == np.int64
    assert ids.tolist() == [[15496, 11, 995, 50256]]
    assert token_ids_to_text(ids, encoding) == "Hello, world<|endoftext|>"
    assert token_ids_to_text(mg.Tensor(ids[0]), encoding) == "Hello, world<|endoftext|>"
    with pytest.raises(ValueError, match="one row"):
        token_ids_to_text(np.zeros((2, 3), dtype=np.int64), encoding)
