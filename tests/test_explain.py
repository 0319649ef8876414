"""gpt.explain: the captured internals match the model's own forward, the page's data is complete
and small, and bad input gives clear errors or notes (the browser test is test_explain_browser.py)."""
from __future__ import annotations

import base64
import json
import re
import tomllib

import numpy as np
import pytest

from gpt import GPTModel, generate, get_tokenizer
from gpt.explain.build import LoadedModel, build_data, explain, load_model
from gpt.explain.capture import attention_weights, capture_prompt, generation_steps
from gpt.explain.page import SCRIPTS, embedded_json, render_page
from gpt.explain.metrics import training_data
from gpt.explain.summary import distribution_data, vocab_entry
from gpt.training.checkpoint import CheckpointError, save_checkpoint
from minigrad import no_grad

from conftest import PROJECT_ROOT, shared_path

CFG = {"vocab_size": 257, "context_length": 24, "emb_dim": 16, "n_heads": 4, "n_layers": 3,
       "drop_rate": 0.1, "qkv_bias": True}


def small_model(dtype=np.float32):
    return GPTModel(CFG, dtype=dtype, generator=np.random.default_rng(0))


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A `gpt train`-like run folder: a checkpoint plus metrics.jsonl with per-layer diagnostics."""
    folder = tmp_path_factory.mktemp("run")
    save_checkpoint(folder, small_model(), get_tokenizer("bytes"), state={"step": 30},
                    train_config={"task": None})
    lines = [{"step": 0, "train_loss": 5.6, "val_loss": 5.7},
             {"step": 10, "train_loss": 4.1, "lr": 1e-3, "grad_norm": 2.0},
             {"step": 20, "train_loss": 3.2, "lr": 5e-4,
              "diagnostics": {"layers": [{"act_std": 1.0 + i, "grad_norm": 0.1 * i} for i in range(3)]}},
             {"step": 30, "train_loss": "nan", "val_loss": 3.3, "block2.act_mean": 0.5, "note": "text"}]
    (folder / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in lines) + "\nnot json\n")
    return folder


def test_attention_weights_reproduce_the_blocks_attention():
    model = small_model(np.float64)
    model.eval()
    ids = np.random.default_rng(1).integers(0, 257, size=(1, 11))
    with no_grad():
        x = model.tok_emb(ids) + model.pos_emb(np.arange(11))
        for block in model.trf_blocks:
            att = block.att
            normed = block.norm1(x)
            weights = attention_weights(att, normed.data[0])  # (H, T, T)
            assert weights.shape == (4, 11, 11)
            np.testing.assert_allclose(weights.sum(-1), 1.0, atol=1e-6)
            assert np.all(np.triu(weights, k=1) == 0)  # no query sees a later key
            values = (normed.data[0] @ att.W_value.weight.data.T + att.W_value.bias.data)  # (T, C)
            values = values.reshape(11, 4, 4).transpose(1, 0, 2)  # (H, T, D)
            context = (weights.astype(np.float64) @ values).transpose(1, 0, 2).reshape(11, 16)  # (T, C)
            ours = context @ att.out_proj.weight.data.T + att.out_proj.bias.data
            np.testing.assert_allclose(ours, att(normed).data[0], atol=1e-5)  # float32 weights
            x = block(x)


def test_capture_matches_the_models_forward():
    model = small_model()
    model.train()  # capture switches to eval (dropout off) and restores the mode
    ids = np.random.default_rng(2).integers(0, 257, size=13)
    capture = capture_prompt(model, ids)
    assert model.training
    model.eval()
    with no_grad():
        logits = model(ids[None]).data[0]  # (T, V)
    np.testing.assert_array_equal(capture.logits, logits)  # the last lens is the model's own logits
    assert capture.attention.shape == (3, 4, 13, 13) and capture.residual_norms.shape == (4, 13)
    assert capture.lens_ids.shape == (4, 13, 5)
    assert np.array_equal(capture.lens_ids[-1, :, 0], logits.argmax(-1))
    probs = np.exp(logits - logits.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    np.testing.assert_allclose(capture.lens_next_probs[-1], probs[np.arange(12), ids[1:]], rtol=1e-5)
    # the residual stream is the blocks' own output: its norms match running them one by one
    np.testing.assert_allclose(capture.residual_norms[-1], np.linalg.norm(capture_states(model, ids), axis=-1),
                               rtol=1e-6)
    assert len(capture.mlp_activations) == 3 and capture.mlp_activations[0].shape == (13, 64)


def capture_states(model, ids):
    """The residual stream after the last block, by running the blocks one by one."""
    with no_grad():
        x = model.tok_emb(ids[None]) + model.pos_emb(np.arange(len(ids)))
        for block in model.trf_blocks:
            x = block(x)
    return x.data[0]


def test_generation_steps_are_generates_ids():
    model = small_model()
    prompt = np.arange(5, 20)
    steps = generation_steps(model, prompt, 6, temperature=0.9, top_k=30, seed=4)
    ids = generate(model, prompt[None], 6, temperature=0.9, top_k=30, seed=4)[0, 15:]
    assert [s.chosen_id for s in steps] == ids.tolist()
    assert [s.context_length for s in steps] == [15, 16, 17, 18, 19, 20]
    only = generation_steps(model, prompt, 0)
    assert len(only) == 1 and only[0].chosen_id is None


def test_distribution_data_round_trips_the_logits():
    rng = np.random.default_rng(3)
    logits = rng.normal(size=3000).astype(np.float32) * 3
    step = distribution_data(logits, chosen_id=int(np.argsort(logits)[5]), settings={"temperature": 1.0})
    head = np.frombuffer(base64.b64decode(step["head"]), dtype="<f2").astype(np.float64)
    order = np.argsort(-logits, kind="stable")
    assert step["top_ids"] == order[:20].tolist()
    np.testing.assert_allclose(head, (logits[order] - logits.max())[:1024], atol=4e-3)
    assert sum(step["tail"]["counts"]) == 3000 - 1024
    assert step["chosen_rank"] == 3000 - 6
    probs = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    np.testing.assert_allclose(step["reference_probs"], probs[order[:20]], rtol=1e-4)


def test_training_data_draws_whatever_keys_exist():
    records = [{"step": 0, "train_loss": 2.0, "val_loss": 2.1},
               {"step": 5, "train_loss": 1.5, "layers": [{"grad": 1.0}, {"grad": 2.0}], "flag": True},
               {"step": 9, "x": {"y": [1, 2, "z"]}, "train_loss": "inf"}, "not a record"]
    sections = training_data(records)["sections"]
    assert [s["name"] for s in sections] == ["metrics"]
    charts = {c["title"]: c for c in sections[0]["charts"]}
    assert list(charts)[0] == "loss"
    labels = {s["label"] for s in charts["loss"]["series"]}
    assert labels == {"train_loss (at evaluation)", "val_loss", "train_loss"}
    assert {s["label"] for s in charts["layers[#].grad"]["series"]} == {"0", "1"}
    assert charts["x.y[#]"]["series"][0]["points"] == [[9, 1.0]]
    assert "flag" not in charts
    assert training_data([]) is None and training_data([{"step": 1}]) is None
    # gpt train --diagnostics: sections by the first two keys; histograms and long lists skipped
    diagnostics = [{"step": s, "diagnostics": {"layers": {f"trf_blocks.{i}": {"std": 1.0 + i} for i in range(3)},
                                               "histograms": {"grad": {"counts": [1, 2]}},
                                               "params": {"tok_emb.weight": {"grad_norm": 0.5}}},
                    "bins": list(range(40))} for s in (5, 10)]
    data = training_data(diagnostics)
    assert [s["name"] for s in data["sections"]] == ["diagnostics.layers", "diagnostics.params"]
    layers = data["sections"][0]["charts"][0]
    assert layers["title"] == "trf_blocks.#.std" and [s["label"] for s in layers["series"]] == ["0", "1", "2"]
    assert data["sections"][1]["charts"][0]["title"] == "tok_emb.weight.grad_norm"
    assert data["skipped"] == ["bins", "diagnostics.histograms"]


def test_vocab_entries_show_bytes_that_are_not_text():
    tokenizer = get_tokenizer("bytes")
    assert vocab_entry(tokenizer, ord("a")) == ["a", None, False]
    assert vocab_entry(tokenizer, 0xE2)[1] == "e2"  # half of a multi-byte character
    assert vocab_entry(tokenizer, 256) == ["<|endoftext|>", None, True]


def test_page_is_self_contained_and_escapes_the_prompt(run_dir, tmp_path):
    prompt = "</script>caf\u00e9\u2603"  # 17 bytes: the context of 24 holds them all
    result = explain(run_dir, prompt, out=tmp_path / "page.html", max_new_tokens=3, seed=0)
    text = result.path.read_text()
    assert text.count("</script>") == 3  # the error hook, the data, the page's script: no more
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", text)  # nothing fetched
    assert "@import" not in text and "url(" not in text
    data = json.loads(re.search(r'<script type="application/json" id="explain-data">(.*?)</script>', text,
                                re.S).group(1))
    assert data["prompt"]["text"] == prompt
    assert [data["vocab"][str(i)][0] for i in data["tokens"][:9]] == list("</script>")
    assert [data["vocab"][str(i)][1] for i in data["tokens"][-3:]] == ["e2", "98", "83"]  # the snowman's bytes
    sections = data["training"]["sections"]
    assert sections[0]["charts"][0]["title"] == "loss"
    titles = {(s["name"], c["title"]) for s in sections for c in s["charts"]}
    assert {("diagnostics.layers", "layers[#].act_std"), ("metrics", "block#.act_mean"), ("metrics", "lr"),
            ("metrics", "grad_norm")} <= titles
    assert any("not JSON records" in note for note in data["notes"])
    assert len(data["generation"]["steps"]) == 3
    for name in SCRIPTS:
        assert f"/* {name}:" in text
    assert embedded_json({"a": "</b>"}) == '{"a":"<\\/b>"}'


def test_long_and_empty_prompts_are_noted(run_dir):
    loaded = load_model(run_dir)
    data = build_data(loaded, "x" * 40, max_new_tokens=2, seed=0)  # bytes: 40 tokens > context 24
    assert len(data["tokens"]) == 24 and data["prompt"]["cropped"] == 16
    assert any("cropped to its last 24 tokens" in note for note in data["notes"])
    assert data["generation"]["steps"][0]["context"] == 24
    empty = build_data(loaded, "", max_new_tokens=0)
    assert empty["tokens"] == [256] and any("empty" in note for note in empty["notes"])
    assert len(empty["generation"]["steps"]) == 1 and empty["generation"]["steps"][0]["chosen"] is None


def test_bad_input_gives_clear_errors(run_dir, tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        explain(run_dir, "hi", out=tmp_path / "missing" / "page.html")
    with pytest.raises(FileNotFoundError, match="--checkpoint .* does not exist"):
        explain(tmp_path / "nothing", "hi", out=tmp_path / "page.html")
    with pytest.raises(ValueError, match="--top-p"):
        explain(run_dir, "hi", out=tmp_path / "page.html", top_p=1.5)
    classifier = tmp_path / "classifier"
    model = small_model()
    save_checkpoint(classifier, model, get_tokenizer("bytes"), train_config={"task": "classification"})
    with pytest.raises(CheckpointError, match="classifier"):
        explain(classifier, "hi", out=tmp_path / "page.html")
    assert not (tmp_path / "page.html").exists()


def test_tiny_gpt2_in_both_layouts_gives_the_same_page_data():
    pages = []
    for layout in ("openai", "hf"):
        loaded = load_model(shared_path("tiny-gpt2", layout))
        pages.append(build_data(loaded, "Every effort moves you", max_new_tokens=2, temperature=0.0))
        assert pages[-1]["training"] is None and "GPT-2" in pages[-1]["training_note"]
    assert pages[0]["tokens"] == [6109, 3626, 6100, 345]
    assert pages[0]["lens"]["ids"] == pages[1]["lens"]["ids"]
    expected = np.load(shared_path("tiny-gpt2", "expected.npz"))
    assert [s["chosen"] for s in pages[0]["generation"]["steps"]] == [
        int(i) for i in generate(load_model(shared_path("tiny-gpt2", "hf")).model,
                                 expected["input_ids"][:1, :4], 2)[0, 4:]]


def test_page_of_a_gpt2_124m_sized_model_stays_under_10_mb():
    """A 32-token prompt on a random model of GPT-2 124M's shape (12 layers, 12 heads, 768 wide).

    The page's size hardly depends on the values: attention (12 x 12 x 32 x 32 uint8) dominates;
    each generated step adds ~4 KB, so one step stands for the ten of the default."""
    cfg = {"vocab_size": 50257, "context_length": 1024, "emb_dim": 768, "n_heads": 12, "n_layers": 12,
           "drop_rate": 0.0, "qkv_bias": True}
    model = GPTModel(cfg, init_weights=False).tie_weights()
    rng = np.random.default_rng(0)
    for name, parameter in model.named_parameters():
        if name.endswith("weight") and ("att." in name or name == "tok_emb.weight"):  # non-uniform attention
            parameter.data = rng.standard_normal(parameter.shape, dtype=np.float32) * 0.1
    tokenizer = get_tokenizer("gpt2", path=shared_path("tiny-gpt2", "openai"))
    words = (" Every effort moves you toward the quiet old house, said the painter with a smile, and the"
             " light in the window fell on the table where the letters lay open")
    loaded = LoadedModel(model, tokenizer, "124M-sized", "random weights", None, [])
    data = build_data(loaded, words, max_new_tokens=1, seed=0)
    size = len(render_page(data).encode("utf-8"))
    assert len(data["tokens"]) == 32 and data["attention"]["per_head"] is not None
    assert data["lens"]["top"] == 5 and len(data["lens"]["ids"]) == 13
    assert size <= 10_000_000 - 9 * 5_000, size


def test_package_data_ships_the_page_files():
    config = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["gpt.explain"]
    static = PROJECT_ROOT / "gpt" / "explain" / "static"
    shipped = {path.name for pattern in patterns for path in (PROJECT_ROOT / "gpt" / "explain").glob(pattern)}
    assert {path.name for path in static.iterdir() if path.is_file()} <= shipped
