"""gpt.train: the loss falls, resume is bit for bit, bad settings and divergence fail clearly."""
from __future__ import annotations

import importlib
import math

import numpy as np
import pytest

import minigrad
from gpt.training import checkpoint as ckpt
from gpt.training.data import DataError
from gpt.training.loop import TrainConfig, TrainingError, learning_rate, train

TEXT = (
    "The quick brown fox jumps over the lazy dog. "
    "A for statement iterates over the items of a sequence. "
    "The while statement repeats while a condition is true. "
) * 40  # ~5,800 characters of a few repeated sentences


@pytest.fixture(autouse=True, scope="module")
def one_blas_thread():
    """Tiny matrices gain nothing from BLAS threads, and lose a lot on a busy machine."""
    from minigrad.runtime import get_blas_threads, set_blas_threads

    before = get_blas_threads()
    set_blas_threads(1)
    yield
    if before:
        set_blas_threads(before)


@pytest.fixture
def text_file(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text(TEXT)
    return str(path)


def tiny(text_file, **overrides) -> TrainConfig:
    """A tiny bytes-level run: emb 32, 2 layers, context 16, batch 8."""
    values = dict(data=[text_file], tokenizer="bytes", preset="tiny", batch_size=8, lr=3e-3,
                  warmup_steps=2, max_steps=20, eval_every=10, eval_batches=4, log_every=5,
                  save_every=1000, sample_tokens=0, quiet=True, seed=7)
    values.update(overrides)
    return TrainConfig(**values)


def params_of(model) -> dict:
    return {name: value.copy() for name, value in model.state_dict().items()}


def test_loss_falls_quickly(text_file):
    result = train(tiny(text_file, max_steps=60, eval_every=60))
    evaluations = [r for r in result.metrics if "val_loss" in r]
    first, last = evaluations[0], evaluations[-1]
    assert first["step"] == 0 and last["step"] == 60
    assert first["val_loss"] > 5.0  # ~ln(257) at the start
    assert last["val_loss"] < first["val_loss"] - 2.0
    assert last["val_ppl"] == pytest.approx(np.exp(last["val_loss"]), rel=1e-4)
    logged = [r for r in result.metrics if "tokens_per_s" in r]
    assert logged and all(r["tokens_per_s"] > 0 and 0 <= r["mfu"] for r in logged)


def test_resume_equals_straight_run_bit_for_bit(text_file, tmp_path):
    # dropout (RNG state), gradient accumulation, a cosine schedule, and several epochs
    settings = dict(max_steps=16, dropout=0.1, grad_accum_steps=2, warmup_steps=3, batch_size=16)
    straight = train(tiny(text_file, out=str(tmp_path / "a"), **settings))
    assert straight.step == 16

    first = train(tiny(text_file, out=str(tmp_path / "b"), stop_at=7, **settings))
    assert first.step == 7 and not first.interrupted
    minigrad.random.manual_seed(999)  # whatever happens in between must not matter
    resumed = train(tiny(text_file, out=str(tmp_path / "b"), resume=True, **settings))
    assert resumed.step == 16

    a, b = params_of(straight.model), params_of(resumed.model)
    assert a.keys() == b.keys()
    for name in a:
        assert np.array_equal(a[name], b[name]), name
    # the loader crossed epochs (so its position and shuffling were restored correctly)
    assert straight.metrics[-1]["epoch"] >= 2
    # the resumed run's metrics continue the first run's
    steps = [r["step"] for r in resumed.metrics if "tokens_per_s" in r]
    assert steps == sorted(steps) and steps[-1] == 16


def test_resume_with_other_model_shape_is_refused(text_file, tmp_path):
    train(tiny(text_file, out=str(tmp_path / "run"), max_steps=4))
    with pytest.raises(TrainingError, match="emb_dim"):
        train(tiny(text_file, out=str(tmp_path / "run"), resume=True, emb_dim=64, max_steps=8),
              explicit={"emb_dim", "max_steps", "resume", "out"})


def test_resume_extends_max_steps(text_file, tmp_path):
    train(tiny(text_file, out=str(tmp_path / "run"), max_steps=4))
    result = train(tiny(text_file, out=str(tmp_path / "run"), resume=True, max_steps=6),
                   explicit={"max_steps", "resume", "out"})
    assert result.step == 6


def test_resume_from_python_needs_only_the_folder(text_file, tmp_path):
    out = str(tmp_path / "run")
    train(tiny(text_file, out=out, max_steps=6, stop_at=3))
    result = train(TrainConfig(out=out, resume=True, quiet=True))
    assert result.step == 6


def test_overwrite_keeps_the_old_run_when_the_new_one_cannot_start(text_file, tmp_path):
    out = str(tmp_path / "run")
    train(tiny(text_file, out=out, max_steps=2))
    with pytest.raises(DataError):
        train(tiny(text_file, out=out, overwrite=True, batch_size=4096))
    assert ckpt.read_checkpoint(out).step == 2


def test_occupied_folder_is_refused_then_overwritten(text_file, tmp_path):
    out = str(tmp_path / "run")
    train(tiny(text_file, out=out, max_steps=2))
    with pytest.raises(TrainingError, match="already holds a training run"):
        train(tiny(text_file, out=out, max_steps=2))
    result = train(tiny(text_file, out=out, max_steps=3, overwrite=True))
    assert result.step == 3
    assert ckpt.read_checkpoint(out).step == 3


def test_resume_without_checkpoint_is_refused(text_file, tmp_path):
    with pytest.raises(TrainingError, match="nothing to resume"):
        train(tiny(text_file, out=str(tmp_path / "empty"), resume=True))


def test_batch_that_does_not_fit_names_the_numbers(text_file):
    with pytest.raises(DataError, match=r"windows of context 16.*batch size 4096"):
        train(tiny(text_file, batch_size=4096))


def test_non_finite_loss_stops_and_keeps_the_last_checkpoint(text_file, tmp_path, monkeypatch):
    train_module = importlib.import_module("gpt.training.loop")  # the module (gpt.train is the function)

    out = tmp_path / "run"
    real_forward = train_module.GPTModel.forward  # the training step's loss: model(x, targets=y)
    calls = {"n": 0}

    def poisoned(self, in_idx, cache=None, targets=None):
        loss = real_forward(self, in_idx, cache, targets)
        if targets is None or not minigrad.is_grad_enabled():
            return loss  # logits, or an evaluation: not a training step
        calls["n"] += 1
        return loss * float("nan") if calls["n"] == 6 else loss  # the 6th step's loss is NaN

    monkeypatch.setattr(train_module.GPTModel, "forward", poisoned)
    with pytest.raises(TrainingError, match=r"diverged at step 6: the loss is nan.*step 4"):
        train(tiny(text_file, out=str(out), max_steps=10, save_every=2, eval_every=100))
    model, _, info = ckpt.load_checkpoint(out)
    assert info["step"] == 4


def test_huge_learning_rate_diverges_with_a_message(text_file):
    with pytest.raises(TrainingError, match=r"diverged at step \d+"):
        train(tiny(text_file, lr=1e30, grad_clip=0, max_steps=20, warmup_steps=0))


def test_learning_rate_schedule():
    config = TrainConfig(lr=1.0, min_lr=0.1, warmup_steps=10)
    lrs = [learning_rate(step, config, 200) for step in range(200)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)  # linear warmup
    assert all(a >= b for a, b in zip(lrs[9:], lrs[10:]))                 # then decays
    assert lrs[-1] == pytest.approx(0.1, abs=1e-3)
    assert learning_rate(5, TrainConfig(lr=0.5, schedule="constant"), 100) == 0.5


def nanogpt_learning_rate(step, config, max_steps):
    """The trainer's own schedule before it used minigrad.optim's (kept to check bit equality)."""
    peak = config.resolved_lr()
    min_lr = peak / 10 if config.min_lr is None else config.min_lr
    warmup = min(config.warmup_steps, max_steps // 10)
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = min((step - warmup) / max(max_steps - warmup, 1), 1.0)
    return min_lr + (peak - min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))


@pytest.mark.parametrize("settings, max_steps", [({"lr": 1.0, "min_lr": 0.1, "warmup_steps": 10}, 200),
                                                 ({"preset": "124M"}, 5000), ({"lr": 3e-3, "warmup_steps": 2}, 20),
                                                 ({"warmup_steps": 0}, 7), ({"warmup_steps": 500}, 30)])
def test_default_schedule_is_the_old_one_bit_for_bit(settings, max_steps):
    config = TrainConfig(**settings)
    assert [learning_rate(step, config, max_steps) for step in range(max_steps)] == \
        [nanogpt_learning_rate(step, config, max_steps) for step in range(max_steps)]


def test_book_schedule_trains_with_appendix_ds_lrs(text_file, monkeypatch):
    """--schedule book: the lr AdamW uses at every step is the one of the book's train_model loop."""
    used = []
    adamw_step = minigrad.optim.AdamW.step

    def recording_step(self, *args, **kwargs):
        used.append(self.param_groups[0]["lr"])
        return adamw_step(self, *args, **kwargs)

    monkeypatch.setattr(minigrad.optim.AdamW, "step", recording_step)
    n_steps, warmup, peak, initial, floor = 12, 4, 3e-3, 3e-5, 1e-6
    train(tiny(text_file, schedule="book", warmup_steps=warmup, lr=peak, initial_lr=initial,
               min_lr=floor, max_steps=n_steps))
    expected, global_step = [], -1
    lr_increment = (peak - initial) / warmup
    for _ in range(n_steps):  # appendix D's train_model, line for line
        global_step += 1
        if global_step < warmup:
            lr = initial + global_step * lr_increment
        else:
            progress = ((global_step - warmup) / (n_steps - warmup))
            lr = floor + (peak - floor) * 0.5 * (1 + math.cos(math.pi * progress))
        expected.append(lr)
    assert used == expected


def test_schedule_and_initial_lr_from_the_command_line():
    from gpt.cli import build_parser

    args = build_parser().parse_args(["train", "--out", "x", "--schedule", "book", "--initial-lr", "1e-5"])
    assert args.schedule == "book" and args.initial_lr == 1e-5
    with pytest.raises(ValueError, match="initial_lr"):
        TrainConfig(lr=1e-3, initial_lr=2e-3).validate()
    with pytest.raises(ValueError, match="schedule"):
        TrainConfig(schedule="linear").validate()


@pytest.mark.parametrize("field, value", [("lr", 0.0), ("batch_size", 0), ("preset", "huge"),
                                          ("val_fraction", 1.5), ("emb_dim", 33)])
def test_bad_settings_are_clear_errors(text_file, field, value):
    with pytest.raises(ValueError, match=field if field != "emb_dim" else "divisible"):
        train(tiny(text_file, **{field: value}))


def test_gpt2_tokenizer_from_a_folder_and_resume(text_file, tmp_path):
    from conftest import shared_path

    folder = shared_path("gpt2")
    out = str(tmp_path / "run")
    first = train(tiny(text_file, tokenizer="gpt2", tokenizer_path=str(folder), out=out, max_steps=4, stop_at=2))
    assert first.model.cfg["vocab_size"] == 50257
    resumed = train(TrainConfig(out=out, resume=True, quiet=True))
    assert resumed.step == 4
    model, tokenizer, info = ckpt.load_checkpoint(out, tokenizer_path=folder)
    assert tokenizer.encode("Hello, world") == [15496, 11, 995]
