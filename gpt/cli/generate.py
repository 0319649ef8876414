"""`gpt generate`: continue a prompt with a trained checkpoint or GPT-2's weights (chapter 5.3).

    gpt generate --checkpoint runs/default --prompt "The for statement"
    gpt generate --checkpoint gpt2-small --prompt "Every effort moves you" --top-k 50
"""
from __future__ import annotations

import argparse
import os

import numpy as np

from minigrad.untrusted import read_json_file

from ..model.generate import generate
from ..training import checkpoint as ckpt
from ..finetune.runs import CLASSIFICATION_TASK
from ..weights import is_gpt2_folder, load_gpt2
from ..weights.hub_cache import resolve_checkpoint_path
from .common import Command, UserError, nonnegative_float, nonnegative_int, positive_int, probability, seed


def add_generate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, metavar="DIR",
                        help="a run folder of `gpt train`, its checkpoint/ folder, or a GPT-2 folder "
                             "(OpenAI's or Hugging Face's layout)")
    parser.add_argument("--prompt", default="", metavar="TEXT", help="text to continue (default: none, "
                        "start from <|endoftext|>)")
    parser.add_argument("--max-new-tokens", type=nonnegative_int, default=100, help="(default: 100)")
    parser.add_argument("--temperature", type=nonnegative_float, default=0.8,
                        help="0: greedy; higher: more random (default: 0.8)")
    parser.add_argument("--top-k", type=positive_int, default=None, help="sample among the k most likely tokens "
                        "(default: all)")
    parser.add_argument("--top-p", type=probability, default=None, help="nucleus sampling: the smallest set "
                        "of tokens with this much probability, in (0, 1] (default: all)")
    parser.add_argument("--seed", type=seed, default=None, help="seed of the sampling (same seed, same text; "
                        "default: a fresh one)")
    parser.add_argument("--num-samples", type=positive_int, default=1, help="texts to generate (default: 1)")
    parser.add_argument("--no-cache", action="store_true", help="recompute the whole context at each token")
    parser.add_argument("--tokenizer-path", metavar="PATH", default=None,
                        help="GPT-2's tokenizer files, for a run trained with --tokenizer gpt2 (default: "
                             "$GPT2_TOKENIZER_DIR or tiktoken's cache)")
    parser.add_argument("--threads", type=positive_int, default=None, help="BLAS threads (default: all cores)")
    parser.add_argument("--allow-non-finite", action="store_true",
                        help="load weights holding NaN or infinity (refused otherwise; generation then says so)")


def load_any_model(path: str, tokenizer_path: str | None = None, allow_non_finite: bool = False):
    """(model, tokenizer, description) from a training checkpoint or a GPT-2 weights folder (a
    Hugging Face hub id such as openai-community/gpt2: its copy in the Hugging Face cache)."""
    path = resolve_checkpoint_path(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"--checkpoint {path} does not exist")
    if ckpt.is_checkpoint(path):
        model, tokenizer, info = ckpt.load_checkpoint(path, tokenizer_path=tokenizer_path,
                                                      allow_non_finite=allow_non_finite)
        return model, tokenizer, f"checkpoint {info['path']} (step {info['step']})"
    if is_gpt2_folder(path):
        model, tokenizer = load_gpt2(path, allow_non_finite=allow_non_finite)
        return model, tokenizer, f"GPT-2 weights in {path}"
    return ckpt.load_checkpoint(path) + ("",)  # raises the checkpoint error that says what is missing


def _task_of(path) -> str | None:
    """The finetuning task recorded in a run folder's config.json (None: pretraining, or not a run)."""
    try:
        if not ckpt.is_checkpoint(path):
            return None
        config = read_json_file(ckpt.find_checkpoint(path) / ckpt.CONFIG_FILE, ckpt.CheckpointError,
                                     max_bytes=ckpt.MAX_JSON_BYTES)
    except (OSError, ValueError):
        return None  # load_any_model says what is wrong
    train_config = config.get("train_config") if isinstance(config, dict) else None
    return train_config.get("task") if isinstance(train_config, dict) else None


def run_generate(args) -> int:
    if _task_of(args.checkpoint) == CLASSIFICATION_TASK:
        raise UserError(f"{args.checkpoint} is a classifier (gpt classify-train): its head scores classes, not "
                        f"tokens, so it generates no text; use gpt classify --checkpoint {args.checkpoint} --text TEXT")
    model, tokenizer, description = load_any_model(args.checkpoint, args.tokenizer_path, args.allow_non_finite)
    if tokenizer is None:
        raise UserError(f"{description} stores no tokenizer, so a text prompt cannot be encoded")
    prompt_ids = tokenizer.encode(args.prompt) if args.prompt else [tokenizer.eot_id]
    context = model.cfg["context_length"]
    for index in range(args.num_samples):
        seed = None if args.seed is None else args.seed + index
        ids = generate(model, np.asarray([prompt_ids], dtype=np.int64), args.max_new_tokens,
                       temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
                       seed=seed, use_cache=not args.no_cache, context_size=context)
        new_ids = ids[0, len(prompt_ids):].tolist()
        text = (args.prompt + tokenizer.decode(new_ids)) if args.prompt else tokenizer.decode(new_ids)
        if args.num_samples > 1:
            print(f"--- sample {index + 1}")
        print(text)
    return 0


COMMANDS = [Command("generate", "generate text from a checkpoint or GPT-2 weights", add_generate_arguments,
                    run_generate)]
