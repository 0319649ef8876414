"""Parse a `gpt` command line and run its command: the parser of every command group, the exit
codes, and one line (no traceback) for an error or Ctrl-C.

gpt/cli/__init__.py imports this module inside `main`, under its Ctrl-C handling: this is where
everything heavy (NumPy, minigrad, every command group) is imported.

One module per command group (gpt/cli/train.py, generate.py, evaluate.py, plot.py, explain.py),
each with a list `COMMANDS` of `Command(name, help, add_arguments, run)` (gpt/cli/common.py); a
new group is one new module and one entry of GROUPS. Commands that live in other packages
(download, finetuning) are one line of EXTERNAL_COMMANDS: their module adds its own sub-parser;
a module that cannot be imported leaves a command that says so.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys

from minigrad import runtime
from minigrad.untrusted import MAX_MESSAGE, FileFormatError, shorten

from ..training.checkpoint import CheckpointError
from ..training.data import DataError
from ..training.errors import TrainingError
from . import evaluate, explain, generate, plot, train
from .common import (EXIT_ERROR, EXIT_INTERRUPTED, EXIT_USAGE, Command, Parser, UserError,  # noqa: F401
                     normalize_flag_spelling)

GROUPS = (train, generate, evaluate, plot, explain)  # in the order `gpt --help` lists them

# Commands owned by other modules: (name, help, module, function). The function is called with
# the argparse sub-parsers object, adds its `gpt NAME` parser and sets its handler as the
# default `func` (`args.func(args) -> exit code`), as gpt.weights.download.add_download_parser does.
EXTERNAL_COMMANDS = [
    ("download", "download OpenAI GPT-2 weights (or say which files to place where, offline)",
     "gpt.weights.download", "add_download_parser"),
    ("classify-train", "finetune a model for text classification (the book's chapter 6)",
     "gpt.cli.finetune", "add_classify_train_parser"),
    ("classify", "classify texts with a finetuned classifier",
     "gpt.cli.finetune", "add_classify_parser"),
    ("instruct-train", "finetune a model to follow instructions (the book's chapter 7)",
     "gpt.cli.finetune", "add_instruct_train_parser"),
]


# Commands that save only when done (finetuning): on Ctrl-C they say that nothing was saved.
# (`gpt train` saves on Ctrl-C and prints its --resume command itself.)
STARTED_OVER = ("gpt classify-train", "gpt instruct-train")


def commands() -> list[Command]:
    """Every command of the groups, in order."""
    return [command for group in GROUPS for command in group.COMMANDS]


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


def build_parser() -> Parser:
    """The `gpt` parser; every sub-parser is a Parser too (no abbreviations, defaults in the help)."""
    parser = Parser(
        prog="gpt", description="Train, evaluate and sample GPT models with minigrad (NumPy only).",
        epilog="Run `gpt COMMAND --help` for the options of a command.")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in commands():
        sub = subparsers.add_parser(command.name, help=command.help, description=command.help)
        command.add_arguments(sub)
        sub.set_defaults(func=command.run)
    for name, help, module_name, function_name in EXTERNAL_COMMANDS:
        if name not in {command.name for command in commands()}:
            _add_external(subparsers, name, help, module_name, function_name)
    parser.commands = subparsers.choices  # name -> its sub-parser (for its usage on a mistyped flag)
    return parser


def parse(parser: Parser, argv: list[str]) -> argparse.Namespace:
    """parse_args, except that a flag no command has is reported by its command's parser (its
    usage, and the nearest flag it has), exit 2."""
    args, extras = parser.parse_known_args(normalize_flag_spelling(argv))
    if extras:
        command = parser.commands.get(getattr(args, "command", None), parser)
        command.error(command.unrecognized(extras) if isinstance(command, Parser) else
                      f"unrecognized arguments: {' '.join(extras)}")
    return args


def _early_threads(argv: list[str]) -> None:
    """Switch minigrad's runtime on (threads, BLAS, memory reuse: minigrad.runtime), with
    --threads N applied before anything heavy runs."""
    threads = None
    for index, item in enumerate(argv):
        value = None
        if item == "--threads" and index + 1 < len(argv):
            value = argv[index + 1]
        elif item.startswith("--threads="):
            value = item.split("=", 1)[1]
        if value is not None and value.isdigit() and int(value) > 0:
            threads = int(value)
    runtime.configure(threads=threads)


def _user_errors() -> tuple:
    """What ends a command with its message alone: our errors, bad input, and the operating
    system's (a full disk, a missing or forbidden path: OSError names the path)."""
    return (UserError, CheckpointError, DataError, TrainingError, FileFormatError, ValueError, OSError)


def run(argv: list[str] | None = None, start_up=None) -> int:
    """Run `gpt ARGS` (gpt.cli.main, once this module is imported); returns the exit code.

    Ctrl-C at any point from here on (parsing, loading, training) is one line naming the command
    and exit 130; an error is one line of at most MAX_MESSAGE characters and exit 1. `start_up`:
    main's HeldInterrupt, released (a Ctrl-C held until then raised) as the command starts."""
    command = "gpt"
    try:
        argv = list(sys.argv[1:] if argv is None else argv)
        _early_threads(argv)
        parser = build_parser()
        args = parse(parser, argv)  # exits with code 2 and a usage message on bad flags
        command = f"gpt {args.command}"
        if start_up is not None:
            start_up.release()
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print(f"\n{command}: interrupted", file=sys.stderr)
        if command in STARTED_OVER:  # finetuning saves at the end only: say so, and what to run
            print(f"{command}: nothing was saved; to start over, run the same command again", file=sys.stderr)
        return EXIT_INTERRUPTED
    except _user_errors() as error:
        if os.environ.get("GPT_DEBUG"):
            raise
        print(f"{command}: error: {shorten(error, MAX_MESSAGE)}", file=sys.stderr)
        return EXIT_ERROR

