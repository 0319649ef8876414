"""`gpt eval`: loss and perplexity of a checkpoint (the book's `calc_loss_loader`, 5.1.3).

    gpt eval --checkpoint runs/default                 # on the run's own validation split
    gpt eval --checkpoint runs/default --data notes/   # on other text
"""
from __future__ import annotations

import argparse

from ..data.corpus import tokenize_files
from ..finetune.instruct import (InstructionDataset, calc_loss as instruction_loss, load_instruction_data,
                                split_instruction_data)
from ..finetune.runs import CLASSIFICATION_TASK, INSTRUCTION_TASK
from ..training import checkpoint as ckpt
from ..training.config import TrainConfig
from ..training.data import build_data
from ..training.evaluate import evaluate_tokens, perplexity
from .common import Command, UserError, positive_int
from .generate import load_any_model


def add_eval_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, metavar="DIR",
                        help="a run folder of `gpt train` (or a GPT-2 folder, with --data)")
    parser.add_argument("--data", nargs="+", action="extend", metavar="PATH",
                        help="text to evaluate on (default: the run's own validation split)")
    parser.add_argument("--tokenizer-path", metavar="PATH", default=None,
                        help="GPT-2's tokenizer files, for a run trained with --tokenizer gpt2")
    parser.add_argument("--cache-beside-data", action="store_true",
                        help="keep the token cache of --data beside the text (default: in $GPT_CACHE_DIR)")
    parser.add_argument("--split", choices=["val", "train"], default="val",
                        help="which split of the run's data, without --data (default: val)")
    parser.add_argument("--batch-size", type=positive_int, default=8, help="(default: 8)")
    parser.add_argument("--max-batches", type=positive_int, default=None,
                        help="evaluate this many batches of evenly spaced windows (default: all)")
    parser.add_argument("--threads", type=positive_int, default=None, help="BLAS threads (default: all cores)")


def run_eval(args) -> int:
    model, tokenizer, description = load_any_model(args.checkpoint, args.tokenizer_path)
    if args.data:
        if tokenizer is None:
            raise UserError(f"{description} stores no tokenizer to encode --data with")
        token_ids = tokenize_files(args.data, tokenizer, beside=args.cache_beside_data)
        what = f"{', '.join(args.data)}"
    else:
        if not ckpt.is_checkpoint(args.checkpoint):
            raise UserError(f"{args.checkpoint} is not a training run: give the text with --data")
        stored = ckpt.read_checkpoint(args.checkpoint, with_optimizer=False).config.get("train_config")
        if not stored:
            raise UserError(f"{description} has no training config: give the text with --data")
        if stored.get("task") == INSTRUCTION_TASK:
            return _eval_instruction_run(model, tokenizer, description, stored, args)
        if stored.get("task") == CLASSIFICATION_TASK:
            raise UserError(f"{description} is a classifier: `gpt classify-train` printed its accuracies "
                            f"(metrics.jsonl holds them); classify texts with gpt classify --checkpoint {args.checkpoint}")
        config = TrainConfig.from_dict(stored)
        data = build_data(config, tokenizer)  # the run's text and split, with its own tokenizer
        token_ids = data.val_tokens if args.split == "val" else data.train_tokens
        what = f"the run's {args.split} split ({data.description})"
    loss, n_windows = evaluate_tokens(model, token_ids, args.batch_size, args.max_batches)
    print(f"{description}")
    print(f"data: {what}: {len(token_ids):,} tokens, {n_windows:,} windows evaluated")
    print(f"loss {loss:.4f}  perplexity {perplexity(loss):.2f}")
    return 0


def _eval_instruction_run(model, tokenizer, description: str, stored: dict, args) -> int:
    """Loss and perplexity of an instruction run on its validation records (the book's 7.6
    split of the same JSON file and record limit), as its training evaluated them."""
    records = load_instruction_data(stored["data"])[:stored.get("records")]
    train_records, val_records, _ = split_instruction_data(records)
    chosen = val_records if args.split == "val" else train_records
    allowed = stored.get("allowed_max_length") or model.cfg["context_length"]
    dataset = InstructionDataset(chosen, tokenizer, allowed)
    loss = instruction_loss(dataset, model, args.batch_size, args.max_batches, pad_token_id=tokenizer.eot_id,
                            allowed_max_length=allowed, mask_prompt=bool(stored.get("mask_prompt")))
    print(description)
    print(f"data: the {args.split} records of {stored['data']}: {len(chosen):,} records")
    print(f"loss {loss:.4f}  perplexity {perplexity(loss):.2f}")
    return 0


COMMANDS = [Command("eval", "loss and perplexity of a checkpoint on its validation split or on --data",
                    add_eval_arguments, run_eval)]
