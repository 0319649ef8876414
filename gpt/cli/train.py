"""`gpt train`: pretrain a GPT (the book's chapter 5) with every TrainConfig field as a flag.

    gpt train --out runs/default                 # the main job: default corpus, model, tokenizer
    gpt train --out runs/default --resume        # continue it, bit for bit

Only the flags the user gives reach TrainConfig (argparse.SUPPRESS), so a resumed run can tell
settings the user changed from defaults.
"""
from __future__ import annotations

import argparse
import dataclasses
import os

from ..data.registry import TOKENIZER_KINDS
from ..training.config import PRESETS, SCHEDULES, TrainConfig
from ..training.loop import train
from ..training.progress import format_duration
from ..training.world import is_main_process
from .common import (EXIT_INTERRUPTED, Command, finite_float, nonnegative_int, positive_int, quoted, seed,
                     tokenizer_name, what_next)


def _default(name: str):
    return {f.name: f.default for f in dataclasses.fields(TrainConfig)}[name]


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    S = argparse.SUPPRESS  # unset flags stay out of args: we know what the user gave (for --resume)

    def add(group, flag, help, aliases=(), **kwargs):
        field = flag.lstrip("-").replace("-", "_")
        default = _default(field) if field != "temperature" else None
        if kwargs.get("action") not in ("store_true",) and "default" not in help:
            help = f"{help} (default: {'none' if default is None else default})"
        if "metavar" not in kwargs and kwargs.get("type") in (positive_int, nonnegative_int, int):
            kwargs["metavar"] = "N"
        elif "metavar" not in kwargs and kwargs.get("type") is finite_float:
            kwargs["metavar"] = "X"
        group.add_argument(flag, *aliases, default=S, help=help, **kwargs)

    data = parser.add_argument_group("data")
    add(data, "--data", "text file(s) or folder(s) of .txt/.md files; default: the embedded corpus "
        "(the Python Language Reference of this CPython)", nargs="+", action="extend", metavar="PATH")
    add(data, "--tokenizer", "; ".join(f"{kind.spelling}: {kind.help}" for kind in TOKENIZER_KINDS.values()),
        type=tokenizer_name, metavar="NAME")
    add(data, "--tokenizer-path", "gpt2: a folder with GPT-2's tokenizer files (encoder.json + vocab.bpe, or "
        "vocab.json + merges.txt; default: $GPT2_TOKENIZER_DIR or tiktoken's cache); bpe:N: a BPE saved "
        "with tokenizer.save() instead of training one", metavar="PATH")
    add(data, "--val-fraction", "share of the tokens held out for validation", type=finite_float)
    add(data, "--cache-beside-data", "keep the token cache beside the text (default: in $GPT_CACHE_DIR, "
        "else ~/.cache/minigrad-gpt)", action="store_true")
    add(data, "--stride", "step between training windows (default: the context length)", type=positive_int)

    model = parser.add_argument_group("model")
    add(model, "--preset", "model size: " + ", ".join(
        f"{name} ({p['emb_dim']}x{p['n_layers']}, ctx {p['context_length']})" for name, p in PRESETS.items()),
        choices=list(PRESETS), metavar="NAME")
    add(model, "--emb-dim", "embedding width (overrides the preset)", type=positive_int)
    add(model, "--n-layers", "transformer blocks (overrides the preset)", type=positive_int)
    add(model, "--n-heads", "attention heads (overrides the preset)", type=positive_int)
    add(model, "--context-length", "tokens per window (overrides the preset)", type=positive_int)
    add(model, "--dropout", "dropout rate (default: the preset's, else 0)", type=finite_float)
    add(model, "--qkv-bias", "biases on the query/key/value projections", action="store_true")

    optim = parser.add_argument_group("optimization")
    add(optim, "--batch-size", "windows per step (default: the preset's, else 8)", type=positive_int)
    add(optim, "--grad-accum-steps", "micro-batches per optimizer step", type=positive_int)
    add(optim, "--lr", "peak learning rate (default: the preset's: default 2e-3, 124M 4e-4, gpt2-small "
        "6e-4, ...; else 1e-3)", aliases=("--learning-rate",), type=finite_float)
    add(optim, "--min-lr", "final learning rate of the cosine schedule (default: lr/10)", type=finite_float)
    add(optim, "--warmup-steps", "linear warmup steps (cosine: at most a tenth of the run)", type=nonnegative_int)
    add(optim, "--schedule", "learning-rate schedule: cosine (nanoGPT's warmup from lr/warmup, then cosine to "
        "--min-lr), book (the book's appendix D: warmup from --initial-lr, then cosine), constant",
        choices=list(SCHEDULES))
    add(optim, "--initial-lr", "first lr of the book schedule's warmup (default: lr/10)", type=finite_float)
    add(optim, "--weight-decay", "AdamW weight decay (matrices only)", type=finite_float)
    add(optim, "--beta1", "AdamW beta1", type=finite_float)
    add(optim, "--beta2", "AdamW beta2", type=finite_float)
    add(optim, "--grad-clip", "clip the gradient norm to this (0: off)", type=finite_float)
    add(optim, "--max-steps", "optimizer steps (default: the preset's budget, else one epoch)", type=positive_int)
    add(optim, "--epochs", "passes over the training data (stops at --max-steps if that comes first)",
        type=finite_float)
    add(optim, "--seed", "seed of init, dropout and shuffling", type=seed, metavar="N")

    run = parser.add_argument_group("evaluation, logging, checkpoints")
    add(run, "--eval-every", "evaluate and print a sample every N steps", type=positive_int)
    add(run, "--eval-batches", "batches per loss estimate", type=positive_int)
    add(run, "--log-every", "a progress line every N steps", type=positive_int)
    add(run, "--diagnostics", "every N steps, record per-layer activation and gradient statistics "
        "and update-to-data ratios into metrics.jsonl (drawn by gpt plot; 0: off)",
        type=nonnegative_int)
    add(run, "--save-every", "write a checkpoint every N steps (also at the end and on Ctrl-C)",
        type=positive_int)
    add(run, "--sample-prompt", "prompt of the samples", metavar="TEXT")
    add(run, "--sample-tokens", "tokens per sample (0: no samples)", type=nonnegative_int)
    add(run, "--sample-temperature", "sampling temperature of the samples", type=finite_float)
    add(run, "--sample-top-k", "top-k of the samples", type=positive_int)

    out = parser.add_argument_group("the run")
    out.add_argument("--out", required=True, metavar="DIR", help="run folder: checkpoint/, metrics.jsonl")
    add(out, "--resume", "continue the run in --out from its checkpoint", action="store_true")
    add(out, "--overwrite", "replace a run already in --out", action="store_true")
    add(out, "--stop-at", "stop (and save) after this step, keeping the schedule of --max-steps",
        type=positive_int)
    add(out, "--threads", "BLAS threads for matrix multiplies (default: all cores)", type=positive_int)
    add(out, "--zero-stage", "under mpiexec: 1 = ZeRO-1, each rank keeps and updates 1/N of AdamW's "
        "state; 0 = every rank runs all of AdamW (no effect in one process)", type=int, choices=(0, 1),
        metavar="0|1")
    add(out, "--quiet", "print nothing (metrics.jsonl is still written)", action="store_true")


def run_train(args) -> int:
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    given = {key: value for key, value in vars(args).items() if key in fields}
    if "data" in given:
        given["data"] = [os.path.abspath(os.path.expanduser(path)) for path in given["data"]]
    if "tokenizer_path" in given:
        given["tokenizer_path"] = os.path.abspath(os.path.expanduser(given["tokenizer_path"]))
    given["out"] = os.path.abspath(os.path.expanduser(args.out))
    config = TrainConfig(**given)
    result = train(config, explicit=set(given))
    talk = not config.quiet and is_main_process()  # [mpi hook] only rank 0 prints
    if result.interrupted:
        if talk and result.checkpoint:
            print(what_next(f"gpt train --out {quoted(args.out)} --resume      # continue where it stopped"))
        return EXIT_INTERRUPTED
    if talk:
        parts = [f"done: {result.step} steps in {format_duration(result.elapsed)}"]
        if result.val_loss is not None:
            parts.append(f"val loss {result.val_loss:.4f}")
        if result.checkpoint:
            parts.append(f"checkpoint {result.checkpoint}")
        print("; ".join(parts))
        if result.checkpoint:
            run = quoted(args.out)
            print(what_next(f"gpt generate --checkpoint {run} --prompt {quoted(config.sample_prompt)}",
                            f"gpt eval --checkpoint {run}", f"gpt plot {run}"))
    return 0


COMMANDS = [Command("train", "train a GPT (with no --data: the embedded corpus and default model)",
                    add_train_arguments, run_train)]
