"""`gpt explain`'s work: load a model, capture one prompt, gather the run's metrics, write the page.

    result = explain("runs/default", "The for statement", out="explain.html", max_new_tokens=10)
    result.path, result.size_bytes, result.seconds
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from ..model.config import count_parameters
from ..training.checkpoint import CheckpointError, load_checkpoint
from ..weights import is_gpt2_folder, load_gpt2
from .capture import capture_prompt, generation_steps
from .metrics import read_metrics, training_data
from .page import render_page, write_page
from .summary import attention_data, distribution_data, lens_data, mlp_data, rounded, vocab_entry

CHECKPOINT_FOLDERS = ("", "checkpoint", "checkpoint.old")  # a run folder or its checkpoint folder


@dataclass
class LoadedModel:
    model: object
    tokenizer: object
    name: str            # short: "GPT-2 (124M)", "run default (step 400)"
    description: str     # where it came from
    run_dir: Path | None  # the training run's folder (metrics.jsonl), None for GPT-2 weights
    metrics: list        # records stored in the checkpoint (used when metrics.jsonl is absent)


def _stored_task(path: Path) -> str | None:
    """The train_config task of a checkpoint folder ("classification", "instruction", or None)."""
    for sub in CHECKPOINT_FOLDERS:
        config = path / sub / "config.json"
        if config.is_file():
            try:
                return (json.loads(config.read_text()).get("train_config") or {}).get("task")
            except (ValueError, OSError, AttributeError):
                return None
    return None


def load_model(path, tokenizer_path=None) -> LoadedModel:
    """A language model and its tokenizer from a `gpt train` run folder (or its checkpoint/) or a
    GPT-2 folder (OpenAI's or Hugging Face's layout); clear errors for anything else."""
    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"--checkpoint {path} does not exist")
    if is_gpt2_folder(path):
        model, tokenizer = load_gpt2(path)
        folder = path if path.is_dir() else path.parent
        return LoadedModel(model, tokenizer, f"GPT-2 ({folder.name})", f"GPT-2 weights in {folder}", None, [])
    if _stored_task(path) == "classification":
        raise CheckpointError(f"--checkpoint {path} holds a classifier (from `gpt classify-train`): its head "
                              f"outputs classes, not tokens; explain a language model (a `gpt train` run "
                              f"or GPT-2 weights), or use `gpt classify` for this one")
    model, tokenizer, info = load_checkpoint(path, tokenizer_path=tokenizer_path)
    if tokenizer is None:
        raise CheckpointError(f"checkpoint {info['path']} stores no tokenizer, so the prompt cannot be encoded")
    checkpoint = Path(info["path"])
    run_dir = checkpoint.parent if checkpoint.name in CHECKPOINT_FOLDERS[1:] else checkpoint
    return LoadedModel(model, tokenizer, f"the model of run '{run_dir.name}' (step {info['step']})",
                       f"checkpoint {checkpoint} (step {info['step']})", run_dir, list(info.get("metrics") or []))


@dataclass
class ExplainResult:
    path: Path
    size_bytes: int
    seconds: float
    notes: list


def build_data(loaded: LoadedModel, prompt: str, max_new_tokens: int = 10, temperature: float = 0.8,
               top_k: int | None = None, top_p: float | None = None, seed: int | None = None) -> dict:
    """The page's data for one prompt (see summary.py for what is embedded and how)."""
    model, tokenizer = loaded.model, loaded.tokenizer
    cfg = model.cfg
    context = cfg["context_length"]
    notes = []
    prompt_ids = tokenizer.encode(prompt) if prompt else []
    if not prompt_ids:
        prompt_ids = [tokenizer.eot_id]
        notes.append("The prompt is empty: the model starts from <|endoftext|> alone, as `gpt generate` does.")
    total = len(prompt_ids)
    seen = prompt_ids[-context:]
    if total > context:
        notes.append(f"The prompt is {total} tokens, longer than the model's context of {context}: it is cropped "
                     f"to its last {context} tokens, as `gpt generate` crops it; the first {total - context} "
                     f"are not shown.")
    capture = capture_prompt(model, seen)
    settings = {"temperature": float(temperature), "top_k": top_k, "top_p": top_p, "seed": seed}
    steps = generation_steps(model, prompt_ids, max_new_tokens, temperature, top_k, top_p, seed)
    distributions = [dict(distribution_data(step.logits, step.chosen_id, settings), context=step.context_length)
                     for step in steps]
    chosen = [step.chosen_id for step in steps if step.chosen_id is not None]
    referenced = set(seen) | set(capture.lens_ids.ravel().tolist()) | set(chosen)
    for step in distributions:
        referenced |= set(step["top_ids"])
    training, training_note = None, ("These are GPT-2 weights, not a `gpt train` run: there are no training "
                                     "metrics to draw.")
    if loaded.run_dir is not None:
        records, metrics_note = read_metrics(loaded.run_dir, loaded.metrics)
        training = training_data(records)
        if metrics_note:
            notes.append(metrics_note)
        training_note = f"No metrics were recorded for {loaded.run_dir}."
    attention = attention_data(capture)
    if attention["note"]:
        notes.append(f"Attention: {attention['note']}.")
    return {
        "version": 1, "title": f"gpt explain: {loaded.name}",
        "model": {"name": loaded.name, "description": loaded.description, "n_layers": cfg["n_layers"],
                  "n_heads": cfg["n_heads"], "emb_dim": cfg["emb_dim"], "context_length": context,
                  "vocab_size": cfg["vocab_size"], "tokenizer": getattr(tokenizer, "name", "?"),
                  "parameters": count_parameters(cfg, tied=bool(getattr(model, "weights_tied", False)))},
        "prompt": {"text": prompt, "tokens_total": total, "cropped": max(0, total - context)},
        "notes": notes,
        "tokens": [int(i) for i in seen],
        "vocab": {str(i): vocab_entry(tokenizer, int(i)) for i in sorted(referenced)},
        "attention": attention,
        "lens": lens_data(capture),
        "norms": {"residual": rounded(capture.residual_norms), "attention": rounded(capture.attention_norms),
                  "mlp": rounded(capture.mlp_norms)},
        "mlp": mlp_data(capture),
        "generation": {"settings": settings, "bars": len(distributions[0]["top_ids"]), "steps": distributions,
                       "context_tail": [int(i) for i in prompt_ids[-8:]]},
        "training": training, "training_note": training_note,
    }


def explain(checkpoint, prompt: str, out="explain.html", max_new_tokens: int = 10, temperature: float = 0.8,
            top_k: int | None = None, top_p: float | None = None, seed: int | None = None,
            tokenizer_path=None) -> ExplainResult:
    """Write the page for `prompt` on the model in `checkpoint`; returns where, how big, how long."""
    start = time.perf_counter()
    out = Path(out).expanduser()
    if not out.parent.is_dir():  # before the minutes of work, not after
        raise FileNotFoundError(f"--out {out}: the folder {out.parent} does not exist (create it first)")
    if temperature < 0:
        raise ValueError(f"--temperature must be >= 0, got {temperature}")
    if top_p is not None and not 0 < top_p <= 1:
        raise ValueError(f"--top-p must be in (0, 1], got {top_p}")
    if top_k is not None and top_k < 1:
        raise ValueError(f"--top-k must be >= 1, got {top_k}")
    loaded = load_model(checkpoint, tokenizer_path)
    data = build_data(loaded, prompt, max_new_tokens, temperature, top_k, top_p, seed)
    path = write_page(render_page(data), out)
    return ExplainResult(path, path.stat().st_size, time.perf_counter() - start, data["notes"])
