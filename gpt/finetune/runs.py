"""Loading a base model for finetuning and saving/loading finetuned run folders.

A base is either a run folder of `gpt train` (its checkpoint) or a GPT-2 folder (OpenAI's or
Hugging Face's layout, read by `gpt.weights.load_gpt2`). A finetuned run folder is an ordinary
checkpoint (gpt/training/checkpoint.py) whose train_config says what was finetuned:

    OUT/checkpoint/      the finetuned model (LoRA already merged into the weights)
    OUT/lora.npz         LoRA matrices only (when trained with --lora-rank), lora_state_dict
    OUT/test-responses.json   (instruct-train) the test split with the model's answers

An instruction-finetuned folder is a plain GPT checkpoint (`gpt generate --checkpoint OUT`
works); a classifier's head has num_classes outputs, so load it with `load_classifier`.
"""
from __future__ import annotations

import json
import os

from pathlib import Path

import numpy as np

import minigrad
from minigrad.untrusted import short_repr

from ..data.registry import tokenizer_from_state
from ..model.gpt_model import GPTModel
from ..training.checkpoint import (CheckpointError, build_tokenizer, check_model_state, is_checkpoint,
                                   load_checkpoint, read_checkpoint, save_checkpoint)
from ..training.progress import METRICS_FILE
from ..weights import is_gpt2_folder, load_gpt2
from ..weights.hub_cache import resolve_checkpoint_path
from ..weights.gpt2 import model_without_random_init
from .classify import MAX_CLASSES, add_classification_head
from .guards import check_finite_weights
from .lora import lora_state_dict, merge_lora

CLASSIFICATION_TASK = "classification"
INSTRUCTION_TASK = "instruction"


def load_base_model(path):
    """(model, tokenizer, description) from a `gpt train` run folder or a GPT-2 folder (a hub id
    such as openai-community/gpt2: its copy in the Hugging Face cache)."""
    path = Path(resolve_checkpoint_path(path))
    if not path.exists():
        raise FileNotFoundError(f"base model not found: {path} (give a `gpt train` run folder or a "
                                f"GPT-2 folder, e.g. from `gpt download gpt2-small`)")
    if is_checkpoint(path):
        model, tokenizer, info = load_checkpoint(path)
        task = (info.get("train_config") or {}).get("task")
        if task == CLASSIFICATION_TASK:
            raise CheckpointError(f"{path} holds a classifier; finetune from a language model "
                                  f"(a `gpt train` run or GPT-2 weights)")
        if tokenizer is None:
            raise CheckpointError(f"{path}: the checkpoint stores no tokenizer, so text cannot be encoded")
        return model, tokenizer, f"checkpoint {info['path']} (step {info['step']})"
    if is_gpt2_folder(path):
        model, tokenizer = load_gpt2(path)
        return model, tokenizer, f"GPT-2 weights from {path}"
    raise CheckpointError(f"{path} is neither a `gpt train` run folder (with checkpoint/) nor a "
                          f"GPT-2 folder (hparams.json + model.ckpt.* or config.json + model.safetensors)")


def prepare_output_folder(out, overwrite: bool = False) -> Path:
    """Create `out`; a folder that already holds a checkpoint is a ValueError unless `overwrite`."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file, not a folder")
    if is_checkpoint(out) and not overwrite:
        raise ValueError(f"--out {out} already holds a checkpoint; choose another folder or "
                              f"pass --overwrite")
    out.mkdir(parents=True, exist_ok=True)
    return out


def write_metrics(out, records: list[dict]) -> Path:
    """OUT/metrics.jsonl (one JSON object per line, as `gpt train` writes; `gpt plot` draws it),
    replaced atomically so a rerun with --overwrite leaves no records of the old run."""
    path = Path(out) / METRICS_FILE
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")
    os.replace(temporary, path)
    return path


def save_finetuned(out, model, tokenizer, train_config: dict, metrics: dict, lora: bool) -> Path:
    """Save LoRA matrices (if any) to OUT/lora.npz, merge them into the weights, write
    OUT/metrics.jsonl (metrics["records"]) and the model as OUT/checkpoint. Returns the checkpoint folder."""
    out = Path(out)
    write_metrics(out, metrics.pop("records", []))
    if lora:
        minigrad.save(lora_state_dict(model), out / "lora.npz")
        merge_lora(model)
    return save_checkpoint(out, model, tokenizer, model_config=model.cfg, train_config=train_config,
                           state={"step": int(metrics.get("steps", 0)), "finetune_metrics": metrics})


def _classifier_tokenizer(checkpoint, config: dict):
    """The stored tokenizer; GPT-2's BPE files are looked up in the base model's folder first
    (a GPT-2 folder holds them), then where `gpt.get_tokenizer("gpt2")` looks."""
    state = checkpoint.state.get("tokenizer")
    base = Path(config.get("base") or "")
    if state is not None and state.get("kind", state.get("name")) == "gpt2" and base.is_dir():
        try:
            return tokenizer_from_state(state, path=base)
        except (OSError, ValueError, KeyError):
            pass  # not there (e.g. a run folder): the usual search below
    return build_tokenizer(checkpoint)


def load_classifier(path, allow_non_finite: bool = False):
    """(model, tokenizer, train_config) of a folder written by `gpt classify-train`; the
    train_config holds label_names, max_length and pad_token_id. Weights holding NaN or
    infinity are refused (DivergedError), or only warned about with `allow_non_finite`."""
    checkpoint = read_checkpoint(path, with_optimizer=False)
    config = checkpoint.config.get("train_config") or {}
    if config.get("task") != CLASSIFICATION_TASK:
        raise CheckpointError(f"{checkpoint.path} is not a classifier (train_config task is "
                              f"{config.get('task')!r}); train one with `gpt classify-train`")
    # skip drawing random weights that the checkpoint overwrites (seconds for GPT-2)
    model = model_without_random_init(GPTModel, checkpoint.model_config, np.float32)
    names = config.get("label_names")
    if not isinstance(names, list) or not 2 <= len(names) <= MAX_CLASSES or not all(isinstance(n, str) for n in names):
        raise CheckpointError(f"{checkpoint.path / 'config.json'}: train_config.label_names must be a list of "
                              f"2 to {MAX_CLASSES:,} class names, got {short_repr(names)}")
    check_finite_weights(checkpoint.model_state, f"classifier {checkpoint.path}", allow=allow_non_finite)
    add_classification_head(model, len(config["label_names"]))
    check_model_state(model, checkpoint.model_state, f"classifier {checkpoint.path}")
    model.load_state_dict({name: np.asarray(value) for name, value in checkpoint.model_state.items()})
    model.eval()
    tokenizer = _classifier_tokenizer(checkpoint, config)
    if tokenizer is None:
        raise CheckpointError(f"{checkpoint.path}: no tokenizer stored with the classifier")
    return model, tokenizer, config
