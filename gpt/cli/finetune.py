"""The finetuning commands: `gpt classify-train`, `gpt classify`, `gpt instruct-train`.

    gpt classify-train --checkpoint gpt2/124M --data spam.csv --out runs/spam [--lora-rank 16]
    gpt classify --checkpoint runs/spam --text "You won a prize!"
    gpt instruct-train --checkpoint gpt2/124M --data instruction-data.json --out runs/alpaca

`add_finetune_parsers(subparsers)` registers them on the main parser's subparsers (gpt/cli/dispatch.py).
Defaults follow the book: AdamW lr 5e-5, weight decay 0.1, batch 8, 5 epochs (chapter 6) or
2 epochs (chapter 7).
"""
from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

import numpy as np

import minigrad
from minigrad.nn import Dropout
from minigrad.optim import AdamW

from ..training import TrainingError
from ..training.run_dir import held_run_folder
from .common import finite_float, nonnegative_int, positive_float, positive_int, seed
from ..finetune.classify import (ClassificationDataset, add_classification_head, calc_accuracy, classify_text,
                       freeze_for_classification, label_names_of, random_split,
                       read_classification_file, train_classifier)
from ..finetune.instruct import (RESPONSE_HEADER, InstructionDataset, calc_loss as calc_instruct_loss, format_input,
                       generate_test_responses, load_instruction_data, split_instruction_data,
                       train_instruct)
from ..finetune.lora import replace_linear_with_lora
from ..finetune.runs import (CLASSIFICATION_TASK, INSTRUCTION_TASK, load_base_model, load_classifier,
                   prepare_output_folder, save_finetuned)


def _what_next(*commands: str) -> None:
    """Print what to run next, ready to paste (as `gpt train` does)."""
    print("next:\n" + "\n".join(f"  {command}" for command in commands))


def _add_common(parser, epochs: int) -> None:
    parser.add_argument("--checkpoint", required=True, metavar="BASE",
                        help="the model to start from: a `gpt train` run folder or a GPT-2 folder")
    parser.add_argument("--out", required=True, metavar="DIR", help="folder for the finetuned model")
    parser.add_argument("--epochs", type=positive_int, default=epochs, help=f"epochs (default {epochs})")
    parser.add_argument("--lr", "--learning-rate", type=positive_float, default=5e-5,
                        help="AdamW learning rate (default 5e-5)")
    parser.add_argument("--weight-decay", type=finite_float, default=0.1, help="AdamW weight decay (default 0.1)")
    parser.add_argument("--batch-size", type=positive_int, default=8, help="batch size (default 8)")
    parser.add_argument("--grad-clip", type=positive_float, default=None, help="clip the gradient norm to this")
    parser.add_argument("--eval-every", type=nonnegative_int, default=None,
                        help="evaluate train/val loss every N steps (0: never)")
    parser.add_argument("--eval-iter", type=positive_int, default=5,
                        help="batches per loss estimate (default 5)")
    parser.add_argument("--lora-rank", type=positive_int, default=None, metavar="R",
                        help="train LoRA matrices of rank R on every Linear layer instead of the weights")
    parser.add_argument("--lora-alpha", type=finite_float, default=16.0, metavar="A",
                        help="LoRA scale alpha (default 16; the update is multiplied by alpha, as in the book)")
    parser.add_argument("--lora-scale-by-rank", action="store_true",
                        help="scale the LoRA update by alpha / rank (the LoRA paper) instead of alpha")
    parser.add_argument("--dropout", type=finite_float, default=None,
                        help="override the model's dropout rate while finetuning")
    parser.add_argument("--seed", type=seed, default=123, help="random seed (default 123)")
    parser.add_argument("--overwrite", action="store_true", help="replace a finetuned model in --out")
    parser.add_argument("--threads", type=positive_int, default=None, help="BLAS threads (default: all cores)")


def add_classify_train_parser(subparsers):
    """Add `gpt classify-train` to an argparse sub-parsers object; returns the parser."""
    p = subparsers.add_parser(
        "classify-train", help="finetune a GPT as a text classifier (book chapter 6)",
        description="Replace the output head by a num_classes head, freeze all but the last "
                    "block(s), the final norm and the head (or train LoRA matrices), and train on "
                    "a CSV/TSV with columns text,label split 70/10/20 into train/val/test.")
    _add_common(p, epochs=5)
    p.add_argument("--data", required=True, metavar="FILE", help="CSV or TSV (.tsv) with a header naming text and label")
    p.add_argument("--num-classes", type=positive_int, default=None,
                   help="number of classes (default: from the labels in --data)")
    p.add_argument("--trainable-blocks", type=nonnegative_int, default=1,
                   help="how many of the last transformer blocks to train (default 1, as the book)")
    p.add_argument("--freeze-final-norm", action="store_true", help="keep the final LayerNorm frozen")
    p.add_argument("--max-length", type=positive_int, default=None,
                   help="pad/truncate texts to N tokens (default: the longest training text, at most the context)")
    p.add_argument("--train-frac", type=finite_float, default=0.7, help="training fraction (default 0.7)")
    p.add_argument("--val-frac", type=finite_float, default=0.1, help="validation fraction (default 0.1)")
    p.set_defaults(func=classify_train_command)
    return p


def add_classify_parser(subparsers):
    """Add `gpt classify` to an argparse sub-parsers object; returns the parser."""
    p = subparsers.add_parser("classify", help="classify text with a `gpt classify-train` model",
                              description="Print the predicted label and the class probabilities.")
    p.add_argument("--checkpoint", required=True, metavar="DIR", help="folder written by classify-train")
    p.add_argument("--text", required=True, action="append", help="text to classify (repeatable)")
    p.add_argument("--allow-non-finite", action="store_true",
                   help="classify even if the weights hold NaN or infinity (warns; the output is meaningless)")
    p.add_argument("--threads", type=positive_int, default=None, help="BLAS threads (default: all cores)")
    p.set_defaults(func=classify_command)
    return p


def add_instruct_train_parser(subparsers):
    """Add `gpt instruct-train` to an argparse sub-parsers object; returns the parser."""
    p = subparsers.add_parser(
        "instruct-train", help="instruction-finetune a GPT on Alpaca-style JSON (book chapter 7)",
        description="Finetune on records {instruction, input, output} split 85/10/5 (train/test/val "
                    "as the book), then write the test records with the model's answers to "
                    "DIR/test-responses.json.")
    _add_common(p, epochs=2)
    p.add_argument("--data", required=True, metavar="FILE.json", help="JSON list of instruction records")
    p.add_argument("--limit", type=positive_int, default=None,
                   help="use only the first N records (quick runs on a CPU)")
    p.add_argument("--allowed-max-length", type=positive_int, default=1024,
                   help="truncate training sequences to N tokens (default 1024, capped at the context)")
    p.add_argument("--mask-prompt", action="store_true",
                   help="leave the prompt tokens out of the loss (the book's exercise 7.2)")
    p.add_argument("--max-new-tokens", type=positive_int, default=256,
                   help="longest generated answer (default 256)")
    p.add_argument("--test-limit", type=nonnegative_int, default=None,
                   help="answer only the first N test records (default all)")
    p.set_defaults(func=instruct_train_command)
    return p


def add_finetune_parsers(subparsers) -> None:
    """Register `classify-train`, `classify` and `instruct-train` on `subparsers`."""
    add_classify_train_parser(subparsers)
    add_classify_parser(subparsers)
    add_instruct_train_parser(subparsers)


# ------------------------------------------------------------------------------ helpers
def _set_dropout(model, rate: float | None) -> None:
    if rate is None:
        return
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"--dropout must be in [0, 1), got {rate}")
    for module in model.modules():
        if isinstance(module, Dropout):
            module.p = float(rate)
    model.cfg["drop_rate"] = float(rate)


def _apply_lora(model, args) -> dict | None:
    if args.lora_rank is None:
        return None
    replace_linear_with_lora(model, args.lora_rank, args.lora_alpha,
                             scale_by_rank=args.lora_scale_by_rank, generator=np.random.default_rng(args.seed))
    return {"rank": args.lora_rank, "alpha": args.lora_alpha, "scale_by_rank": args.lora_scale_by_rank}


def _optimizer(model, args):
    parameters = [param for param in model.parameters() if param.requires_grad]
    return AdamW(parameters, lr=args.lr, weight_decay=args.weight_decay)


def _report_parameters(model) -> None:
    total, trainable = model.num_parameters(), model.num_parameters(trainable_only=True)
    print(f"parameters: {trainable:,} trainable of {total:,} ({100 * trainable / total:.2f}%)")


# ------------------------------------------------------------------------------ commands
def classify_train_command(args) -> int:
    out = prepare_output_folder(args.out, args.overwrite)
    with held_run_folder(out):  # one process per --out: a second one is refused, naming the pid
        return _classify_train(args, out)


def _classify_train(args, out: Path) -> int:
    minigrad.manual_seed(args.seed)
    model, tokenizer, description = load_base_model(args.checkpoint)
    print(f"base: {description}")
    records = read_classification_file(args.data)
    label_names = label_names_of(records)
    if args.num_classes is not None and args.num_classes != len(label_names):
        if all(name.isdigit() for name in label_names) and args.num_classes > len(label_names):
            label_names = [str(i) for i in range(args.num_classes)]  # some classes absent from the data
        else:
            raise ValueError(f"--num-classes {args.num_classes}, but {args.data} has the "
                             f"{len(label_names)} classes {label_names}")
    train_records, val_records, test_records = random_split(records, args.train_frac, args.val_frac, args.seed)
    if not train_records:
        raise ValueError(f"{args.data}: {len(records)} rows leave no training examples")
    context_length = model.cfg["context_length"]
    pad_token_id = tokenizer.eot_id
    train_ds = ClassificationDataset(train_records, tokenizer, args.max_length, pad_token_id, label_names)
    if train_ds.max_length > context_length:
        print(f"note: texts of up to {train_ds.max_length} tokens are truncated to the context length {context_length}")
        train_ds = ClassificationDataset(train_records, tokenizer, context_length, pad_token_id, label_names)
    max_length = train_ds.max_length
    val_ds = ClassificationDataset(val_records, tokenizer, max_length, pad_token_id, label_names) if val_records else []
    test_ds = ClassificationDataset(test_records, tokenizer, max_length, pad_token_id, label_names) if test_records else []
    print(f"data: {len(train_ds)} train, {len(val_ds)} val, {len(test_ds)} test; "
          f"{len(label_names)} classes {label_names}; {max_length} tokens per text")

    _set_dropout(model, args.dropout)
    add_classification_head(model, len(label_names), generator=np.random.default_rng(args.seed))
    lora = _apply_lora(model, args)
    if lora is None:
        freeze_for_classification(model, args.trainable_blocks, train_final_norm=not args.freeze_final_norm)
    _report_parameters(model)
    started = time.time()
    history = train_classifier(model, train_ds, val_ds, _optimizer(model, args), args.epochs,
                               batch_size=args.batch_size,
                               eval_freq=50 if args.eval_every is None else args.eval_every,
                               eval_iter=args.eval_iter, grad_clip=args.grad_clip, seed=args.seed)
    elapsed = time.time() - started
    accuracies = {name: calc_accuracy(dataset, model, args.batch_size) if len(dataset) else float("nan")
                  for name, dataset in (("train", train_ds), ("val", val_ds), ("test", test_ds))}
    print(f"Training completed in {elapsed / 60:.2f} minutes.")
    for name, value in accuracies.items():
        print(f"{name.capitalize()} accuracy: {value * 100:.2f}%")
    train_config = {
        "task": CLASSIFICATION_TASK, "base": str(Path(args.checkpoint).resolve()), "data": str(args.data),
        "label_names": label_names, "max_length": max_length, "pad_token_id": pad_token_id,
        "epochs": args.epochs, "lr": args.lr, "weight_decay": args.weight_decay,
        "batch_size": args.batch_size, "trainable_blocks": args.trainable_blocks, "lora": lora,
        "seed": args.seed,
    }
    metrics = {**history, "accuracy": accuracies, "elapsed": elapsed}
    folder = save_finetuned(out, model, tokenizer, train_config, metrics, lora is not None)
    print(f"saved the classifier to {folder}" + (f" (LoRA matrices: {out / 'lora.npz'})" if lora else ""))
    _what_next(f"gpt classify --checkpoint {shlex.quote(str(out))} --text \"a text to classify\"")
    return 0


def classify_command(args) -> int:
    model, tokenizer, config = load_classifier(args.checkpoint, allow_non_finite=args.allow_non_finite)
    for text in args.text:
        label, probs = classify_text(text, model, tokenizer, config.get("max_length"),
                                     config.get("pad_token_id"), config["label_names"])
        shown = ", ".join(f"{name} {p:.3f}" for name, p in zip(config["label_names"], probs))
        print(f"{label}\t({shown})")
    return 0


def instruct_train_command(args) -> int:
    out = prepare_output_folder(args.out, args.overwrite)
    with held_run_folder(out):  # one process per --out: a second one is refused, naming the pid
        return _instruct_train(args, out)


def _instruct_train(args, out: Path) -> int:
    minigrad.manual_seed(args.seed)
    data = load_instruction_data(args.data)
    if args.limit is not None:
        data = data[:args.limit]
    model, tokenizer, description = load_base_model(args.checkpoint)
    print(f"base: {description}")
    train_data, val_data, test_data = split_instruction_data(data)
    if args.test_limit is not None:
        test_data = test_data[:args.test_limit]
    context_length = model.cfg["context_length"]
    allowed = min(args.allowed_max_length, context_length)
    train_ds = InstructionDataset(train_data, tokenizer, allowed)
    val_ds = InstructionDataset(val_data, tokenizer, allowed)
    print(f"data: {len(train_data)} train, {len(val_data)} val, {len(test_data)} test records; "
          f"sequences truncated to {allowed} tokens")

    _set_dropout(model, args.dropout)
    lora = _apply_lora(model, args)
    _report_parameters(model)
    options = {"pad_token_id": tokenizer.eot_id, "allowed_max_length": allowed, "mask_prompt": args.mask_prompt}
    if len(val_ds):
        print(f"Training loss: {calc_instruct_loss(train_ds, model, args.batch_size, args.eval_iter, **options):.3f}, "
              f"Validation loss: {calc_instruct_loss(val_ds, model, args.batch_size, args.eval_iter, **options):.3f}")
    started = time.time()
    history = train_instruct(model, train_ds, val_ds, _optimizer(model, args), args.epochs,
                             batch_size=args.batch_size,
                             eval_freq=5 if args.eval_every is None else args.eval_every,
                             eval_iter=args.eval_iter, seed=args.seed, grad_clip=args.grad_clip,
                             tokenizer=tokenizer, start_context=format_input(val_data[0]) if val_data else None,
                             **options)
    elapsed = time.time() - started
    print(f"Training completed in {elapsed / 60:.2f} minutes.")
    train_config = {
        "task": INSTRUCTION_TASK, "base": str(Path(args.checkpoint).resolve()), "data": str(args.data),
        "records": len(data), "epochs": args.epochs, "lr": args.lr, "weight_decay": args.weight_decay,
        "batch_size": args.batch_size, "allowed_max_length": allowed, "mask_prompt": args.mask_prompt,
        "lora": lora, "seed": args.seed,
    }
    folder = save_finetuned(out, model, tokenizer, train_config, {**history, "elapsed": elapsed}, lora is not None)
    print(f"saved the model to {folder}")
    responses_path = out / "test-responses.json"
    generate_test_responses(model, tokenizer, test_data, responses_path, args.max_new_tokens,
                            eos_id=tokenizer.eot_id, log=print)
    print(f"wrote {len(test_data)} test responses to {responses_path}")
    prompt = format_input({"instruction": "Rewrite the sentence in passive voice.", "input": "The chef cooks the meal."})
    _what_next(f"gpt generate --checkpoint {shlex.quote(str(out))} --prompt {shlex.quote(prompt + RESPONSE_HEADER)}",
               f"less {shlex.quote(str(responses_path))}      # the test split's answers")
    return 0


def main(argv=None) -> int:
    """Run one finetuning command on its own (`python -m gpt.cli.finetune classify ...`)."""
    parser = argparse.ArgumentParser(prog="gpt", description="finetuning commands", allow_abbrev=False)
    add_finetune_parsers(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, OSError, TrainingError) as error:  # CheckpointError is a ValueError
        print(f"gpt {args.command}: error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
