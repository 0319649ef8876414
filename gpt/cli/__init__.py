"""The `gpt` command line (also `python -m gpt`): train, generate, eval, plot, and more.

    gpt train --out runs/default                 # the main job: default corpus, model, tokenizer
    gpt generate --checkpoint runs/default --prompt "The for statement"
    gpt eval --checkpoint runs/default
    gpt plot runs/default                        # runs/default/loss.png (needs matplotlib)

Each subcommand is one registration: `register_command(name, help, add_arguments, run)` with a
function adding its flags to an argparse parser and one running it (`run(args) -> exit code`).
Commands that live in other modules (download, finetuning) are one line of EXTERNAL_COMMANDS:
their module adds its own sub-parser; a module that cannot be imported leaves a command that
says so.

Exit codes: 0 success, 1 an error in the input (message, no traceback; set GPT_DEBUG=1 for
the traceback), 2 a usage error (argparse), 130 interrupted by Ctrl-C.
"""
from __future__ import annotations

import argparse
import dataclasses
import importlib
import os
import sys
from dataclasses import dataclass
from typing import Callable

EXIT_ERROR, EXIT_USAGE, EXIT_INTERRUPTED = 1, 2, 130


@dataclass
class Command:
    name: str
    help: str
    add_arguments: Callable  # (parser) -> None: adds the command's flags
    run: Callable            # (args) -> int: runs it, returns the exit code


COMMANDS: dict[str, Command] = {}

# Commands owned by other modules: (name, help, module, function). The function is called with
# the argparse sub-parsers object, adds its `gpt NAME` parser and sets its handler as the
# default `func` (`args.func(args) -> exit code`), as gpt.weights.download.add_download_parser does.
EXTERNAL_COMMANDS = [
    ("download", "download OpenAI GPT-2 weights (or say which files to place where, offline)",
     "gpt.weights.download", "add_download_parser"),
    ("classify-train", "finetune a model for text classification (the book's chapter 6)",
     "gpt.finetune.cli", "add_classify_train_parser"),
    ("classify", "classify texts with a finetuned classifier",
     "gpt.finetune.cli", "add_classify_parser"),
    ("instruct-train", "finetune a model to follow instructions (the book's chapter 7)",
     "gpt.finetune.cli", "add_instruct_train_parser"),
]


def register_command(name: str, help: str, add_arguments: Callable, run: Callable) -> None:
    """Add a subcommand `gpt NAME` (later registrations of a name replace earlier ones)."""
    COMMANDS[name] = Command(name, help, add_arguments, run)


class UserError(Exception):
    """An error whose message is all the user needs (printed without a traceback)."""


# ------------------------------------------------------------------------------ argument types
def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def nonnegative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {value}")
    return value


def finite_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def tokenizer_name(text: str) -> str:
    key = text.strip().lower()
    if key in ("bytes", "gpt2"):
        return key
    if key.startswith("bpe:"):
        try:
            size = int(key[4:])
        except ValueError:
            size = 0
        if size >= 257:
            return key
        raise argparse.ArgumentTypeError(f"{text!r}: bpe:N needs a vocabulary size N >= 257, e.g. bpe:2048")
    raise argparse.ArgumentTypeError(f"unknown tokenizer {text!r} (choose from bytes, gpt2, bpe:N)")


# ------------------------------------------------------------------------------ train
def _default(name: str):
    from ..training.config import TrainConfig

    return {f.name: f.default for f in dataclasses.fields(TrainConfig)}[name]


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    from ..training.config import PRESETS

    S = argparse.SUPPRESS  # unset flags stay out of args: we know what the user gave (for --resume)

    def add(group, flag, help, **kwargs):
        field = flag.lstrip("-").replace("-", "_")
        default = _default(field) if field != "temperature" else None
        if default is not None and kwargs.get("action") not in ("store_true",):
            help = f"{help} (default: {default})"
        if "metavar" not in kwargs and kwargs.get("type") in (positive_int, nonnegative_int, int):
            kwargs["metavar"] = "N"
        elif "metavar" not in kwargs and kwargs.get("type") is finite_float:
            kwargs["metavar"] = "X"
        group.add_argument(flag, default=S, help=help, **kwargs)

    data = parser.add_argument_group("data")
    add(data, "--data", "text file(s) or folder(s) of .txt/.md files; default: the embedded corpus "
        "(the Python Language Reference of this CPython)", nargs="+", action="extend", metavar="PATH")
    add(data, "--tokenizer", "bytes, gpt2, or bpe:N (a BPE of N tokens trained on the data)",
        type=tokenizer_name, metavar="NAME")
    add(data, "--tokenizer-path", "gpt2: a folder with GPT-2's tokenizer files (encoder.json + vocab.bpe, or "
        "vocab.json + merges.txt; default: $GPT2_TOKENIZER_DIR or tiktoken's cache); bpe:N: a BPE saved "
        "with tokenizer.save() instead of training one", metavar="PATH")
    add(data, "--val-fraction", "share of the tokens held out for validation", type=finite_float)
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
        "6e-4, ...; else 1e-3)", type=finite_float)
    add(optim, "--min-lr", "final learning rate of the cosine schedule (default: lr/10)", type=finite_float)
    add(optim, "--warmup-steps", "linear warmup steps (at most a tenth of the run)", type=nonnegative_int)
    add(optim, "--schedule", "learning-rate schedule", choices=["cosine", "constant"])
    add(optim, "--weight-decay", "AdamW weight decay (matrices only)", type=finite_float)
    add(optim, "--beta1", "AdamW beta1", type=finite_float)
    add(optim, "--beta2", "AdamW beta2", type=finite_float)
    add(optim, "--grad-clip", "clip the gradient norm to this (0: off)", type=finite_float)
    add(optim, "--max-steps", "optimizer steps (default: the preset's budget, else one epoch)", type=positive_int)
    add(optim, "--epochs", "passes over the training data (stops at --max-steps if that comes first)",
        type=finite_float)
    add(optim, "--seed", "seed of init, dropout and shuffling", type=int)

    run = parser.add_argument_group("evaluation, logging, checkpoints")
    add(run, "--eval-every", "evaluate and print a sample every N steps", type=positive_int)
    add(run, "--eval-batches", "batches per loss estimate", type=positive_int)
    add(run, "--log-every", "a progress line every N steps", type=positive_int)
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
    add(out, "--quiet", "print nothing (metrics.jsonl is still written)", action="store_true")


def run_train(args) -> int:
    from ..training.loop import TrainConfig, train

    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    given = {key: value for key, value in vars(args).items() if key in fields}
    if "data" in given:
        given["data"] = [os.path.abspath(os.path.expanduser(path)) for path in given["data"]]
    if "tokenizer_path" in given:
        given["tokenizer_path"] = os.path.abspath(os.path.expanduser(given["tokenizer_path"]))
    given["out"] = os.path.abspath(os.path.expanduser(args.out))
    config = TrainConfig(**given)
    result = train(config, explicit=set(given))
    if result.interrupted:
        return EXIT_INTERRUPTED
    from ..training.distributed import is_main_process  # [mpi hook] only rank 0 prints

    if not config.quiet and is_main_process():
        parts = [f"done: {result.step} steps in {_duration(result.elapsed)}"]
        if result.val_loss is not None:
            parts.append(f"val loss {result.val_loss:.4f}")
        if result.checkpoint:
            parts.append(f"checkpoint {result.checkpoint}")
        print("; ".join(parts))
    return 0


def _duration(seconds: float) -> str:
    from ..training.progress import format_duration

    return format_duration(seconds)


# ------------------------------------------------------------------------------ generate
def add_generate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, metavar="DIR",
                        help="a run folder of `gpt train`, its checkpoint/ folder, or a GPT-2 folder "
                             "(OpenAI's or Hugging Face's layout)")
    parser.add_argument("--prompt", default="", metavar="TEXT", help="text to continue (default: none, "
                        "start from <|endoftext|>)")
    parser.add_argument("--max-new-tokens", type=nonnegative_int, default=100, help="(default: 100)")
    parser.add_argument("--temperature", type=finite_float, default=0.8,
                        help="0: greedy; higher: more random (default: 0.8)")
    parser.add_argument("--top-k", type=positive_int, default=None, help="sample among the k most likely tokens")
    parser.add_argument("--top-p", type=finite_float, default=None, help="nucleus sampling: the smallest set "
                        "of tokens with this much probability")
    parser.add_argument("--seed", type=int, default=None, help="seed of the sampling (same seed, same text)")
    parser.add_argument("--num-samples", type=positive_int, default=1, help="texts to generate (default: 1)")
    parser.add_argument("--no-cache", action="store_true", help="recompute the whole context at each token")
    parser.add_argument("--tokenizer-path", metavar="PATH", default=None,
                        help="GPT-2's tokenizer files, for a run trained with --tokenizer gpt2 (default: "
                             "$GPT2_TOKENIZER_DIR or tiktoken's cache)")
    parser.add_argument("--threads", type=positive_int, default=None, help="BLAS threads")


def load_any_model(path: str, tokenizer_path: str | None = None):
    """(model, tokenizer, description) from a training checkpoint or a GPT-2 weights folder."""
    from ..training import checkpoint as ckpt

    if not os.path.exists(path):
        raise FileNotFoundError(f"--checkpoint {path} does not exist")
    if ckpt.is_checkpoint(path):
        model, tokenizer, info = ckpt.load_checkpoint(path, tokenizer_path=tokenizer_path)
        return model, tokenizer, f"checkpoint {info['path']} (step {info['step']})"
    try:
        from ..weights import is_gpt2_folder, load_gpt2
    except ImportError:
        is_gpt2_folder = None
    if is_gpt2_folder is not None and is_gpt2_folder(path):
        model, tokenizer = load_gpt2(path)
        return model, tokenizer, f"GPT-2 weights in {path}"
    return ckpt.load_checkpoint(path) + ("",)  # raises the checkpoint error that says what is missing


def run_generate(args) -> int:
    import numpy as np

    from ..model.generate import generate

    model, tokenizer, description = load_any_model(args.checkpoint, args.tokenizer_path)
    if tokenizer is None:
        raise UserError(f"{description} stores no tokenizer, so a text prompt cannot be encoded")
    if args.top_p is not None and not 0 < args.top_p <= 1:
        raise UserError(f"--top-p must be in (0, 1], got {args.top_p}")
    if args.temperature < 0:
        raise UserError(f"--temperature must be >= 0, got {args.temperature}")
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


# ------------------------------------------------------------------------------ eval
def add_eval_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, metavar="DIR",
                        help="a run folder of `gpt train` (or a GPT-2 folder, with --data)")
    parser.add_argument("--data", nargs="+", action="extend", metavar="PATH",
                        help="text to evaluate on (default: the run's own validation split)")
    parser.add_argument("--tokenizer-path", metavar="PATH", default=None,
                        help="GPT-2's tokenizer files, for a run trained with --tokenizer gpt2")
    parser.add_argument("--split", choices=["val", "train"], default="val",
                        help="which split of the run's data, without --data (default: val)")
    parser.add_argument("--batch-size", type=positive_int, default=8, help="(default: 8)")
    parser.add_argument("--max-batches", type=positive_int, default=None,
                        help="evaluate this many batches of evenly spaced windows (default: all)")
    parser.add_argument("--threads", type=positive_int, default=None, help="BLAS threads")


def run_eval(args) -> int:
    from ..training.evaluate import evaluate_tokens, perplexity

    model, tokenizer, description = load_any_model(args.checkpoint, args.tokenizer_path)
    if args.data:
        if tokenizer is None:
            raise UserError(f"{description} stores no tokenizer to encode --data with")
        from ..data.corpus import tokenize_files

        token_ids = tokenize_files(args.data, tokenizer)
        what = f"{', '.join(args.data)}"
    else:
        from ..training import checkpoint as ckpt
        from ..training.data import build_data
        from ..training.config import TrainConfig

        if not ckpt.is_checkpoint(args.checkpoint):
            raise UserError(f"{args.checkpoint} is not a training run: give the text with --data")
        stored = ckpt.read_checkpoint(args.checkpoint, with_optimizer=False).config.get("train_config")
        if not stored:
            raise UserError(f"{description} has no training config: give the text with --data")
        config = TrainConfig.from_dict(stored)
        data = build_data(config, tokenizer)  # the run's text and split, with its own tokenizer
        token_ids = data.val_tokens if args.split == "val" else data.train_tokens
        what = f"the run's {args.split} split ({data.description})"
    loss, n_windows = evaluate_tokens(model, token_ids, args.batch_size, args.max_batches)
    print(f"{description}")
    print(f"data: {what}: {len(token_ids):,} tokens, {n_windows:,} windows evaluated")
    print(f"loss {loss:.4f}  perplexity {perplexity(loss):.2f}")
    return 0


# ------------------------------------------------------------------------------ plot
def add_plot_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", metavar="DIR", help="a run folder holding metrics.jsonl")
    parser.add_argument("--out", metavar="PNG", default=None, help="image file (default: DIR/loss.png)")


def run_plot(args) -> int:
    from ..training.plot import MatplotlibMissing, plot_run

    try:
        path = plot_run(args.run_dir, args.out)
    except MatplotlibMissing as error:
        print(f"gpt plot: {error}", file=sys.stderr)
        return EXIT_ERROR
    print(f"wrote {path}")
    return 0


register_command("train", "train a GPT (with no --data: the embedded corpus and default model)",
                 add_train_arguments, run_train)
register_command("generate", "generate text from a checkpoint or GPT-2 weights", add_generate_arguments,
                 run_generate)
register_command("eval", "loss and perplexity of a checkpoint on its validation split or on --data",
                 add_eval_arguments, run_eval)
register_command("plot", "draw a run's train/val loss curves to a PNG (needs matplotlib)",
                 add_plot_arguments, run_plot)


# ------------------------------------------------------------------------------ the parser
def _add_external(subparsers, name: str, help: str, module_name: str, function_name: str) -> None:
    """Let another module add `gpt NAME`; when it cannot be imported, add a stand-in that says why."""
    try:
        add_parser = getattr(importlib.import_module(module_name), function_name)
    except (ImportError, AttributeError) as error:
        reason = f"{module_name}.{function_name} is not available ({error})"

        def unavailable(args, reason=reason):
            raise UserError(f"gpt {name} is not available in this installation: {reason}")

        sub = subparsers.add_parser(name, help=help + " [unavailable]", description=help)
        sub.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
        sub.set_defaults(func=unavailable)
        return
    add_parser(subparsers)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gpt", description="Train, evaluate and sample GPT models with minigrad (NumPy only).",
        epilog="Run `gpt COMMAND --help` for the options of a command.")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in COMMANDS.values():
        sub = subparsers.add_parser(command.name, help=command.help, description=command.help)
        command.add_arguments(sub)
        sub.set_defaults(func=command.run)
    for name, help, module_name, function_name in EXTERNAL_COMMANDS:
        if name not in COMMANDS:
            _add_external(subparsers, name, help, module_name, function_name)
    return parser


def _early_threads(argv: list[str]) -> None:
    """Apply --threads before anything heavy runs (BLAS reads env vars at NumPy's import)."""
    for index, item in enumerate(argv):
        value = None
        if item == "--threads" and index + 1 < len(argv):
            value = argv[index + 1]
        elif item.startswith("--threads="):
            value = item.split("=", 1)[1]
        if value is not None and value.isdigit() and int(value) > 0:
            from ..training.threads import set_threads

            set_threads(int(value))


def _user_errors() -> tuple:
    from ..training.checkpoint import CheckpointError
    from ..training.data import DataError
    from ..training.loop import TrainingError

    return (UserError, CheckpointError, DataError, TrainingError, ValueError, FileNotFoundError,
            NotADirectoryError, IsADirectoryError, PermissionError)


def main(argv: list[str] | None = None) -> int:
    """Run `gpt ARGS`; returns the exit code (the console script exits with it)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    _early_threads(argv)
    parser = build_parser()
    args = parser.parse_args(argv)  # exits with code 2 and a usage message on bad flags
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print(f"\ngpt {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except _user_errors() as error:
        if os.environ.get("GPT_DEBUG"):
            raise
        print(f"gpt {args.command}: error: {error}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
