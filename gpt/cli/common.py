"""What every command group of the `gpt` command line shares: the Command record, the user
error, the exit codes and the argument types.

A command group is one module of gpt/cli/ with a list `COMMANDS` of `Command(name, help,
add_arguments, run)`: `add_arguments(parser)` adds its flags, `run(args)` runs it and returns
the exit code. gpt/cli/__init__.py lists the groups.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Callable

from ..data.registry import check_tokenizer_name

EXIT_ERROR, EXIT_USAGE, EXIT_INTERRUPTED = 1, 2, 130


@dataclass
class Command:
    name: str
    help: str
    add_arguments: Callable  # (parser) -> None: adds the command's flags
    run: Callable            # (args) -> int: runs it, returns the exit code


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


def seed(text: str) -> int:
    """--seed: NumPy's seeds are 0 .. 2**32 - 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer seed, got {text!r}") from None
    if not 0 <= value < 2 ** 32:
        raise argparse.ArgumentTypeError(f"expected a seed between 0 and 2**32 - 1, got {value}")
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
    """--tokenizer: a name of gpt.data.registry's TOKENIZER_KINDS ("bytes", "gpt2", "bpe:N")."""
    try:
        return check_tokenizer_name(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
