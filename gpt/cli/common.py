"""What every command group of the `gpt` command line shares: the Command record, the user
error, the exit codes (defined in gpt/cli/__init__.py) and the argument types.

A command group is one module of gpt/cli/ with a list `COMMANDS` of `Command(name, help,
add_arguments, run)`: `add_arguments(parser)` adds its flags, `run(args)` runs it and returns
the exit code. gpt/cli/dispatch.py lists the groups.
"""
from __future__ import annotations

import argparse
import difflib
import shlex
from dataclasses import dataclass
from typing import Callable

from ..data.registry import check_tokenizer_name
from . import EXIT_ERROR, EXIT_INTERRUPTED, EXIT_USAGE  # noqa: F401 (the exit codes, for the command groups)


@dataclass
class Command:
    name: str
    help: str
    add_arguments: Callable  # (parser) -> None: adds the command's flags
    run: Callable            # (args) -> int: runs it, returns the exit code


class UserError(Exception):
    """An error whose message is all the user needs (printed without a traceback)."""


def what_next(*commands: str) -> str:
    """The lines a command ends with: what to run next, ready to paste."""
    return "next:\n" + "\n".join(f"  {command}" for command in commands)


# ------------------------------------------------------------------------------ the parser class
class HelpWithDefaults(argparse.HelpFormatter):
    """Every option's help line ends with its default (unless it already says it): `(default: 8)`,
    `(default: none)`; on/off switches and required options have none to show."""

    def _get_help_string(self, action):
        text = action.help or ""
        if (not action.option_strings or action.required or action.default is argparse.SUPPRESS
                or action.nargs == 0 or "default" in text.lower() or text == argparse.SUPPRESS):
            return text
        default = "none" if action.default is None else "%(default)s"
        return f"{text} (default: {default})".lstrip()


class Parser(argparse.ArgumentParser):
    """argparse without abbreviations (`--max-step` is not `--max-steps`), with defaults in the
    help, and a "did you mean" for a mistyped flag (see unrecognized); sub-parsers are of this class too."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        kwargs.setdefault("formatter_class", HelpWithDefaults)
        super().__init__(*args, **kwargs)

    def option_names(self) -> list[str]:
        return [name for action in self._actions for name in action.option_strings]

    def unrecognized(self, extras: list[str]) -> str:
        """'unrecognized arguments: --max-step (did you mean --max-steps?)'."""
        flags = [item.split("=", 1)[0] for item in extras if item.startswith("-")]
        hints = []
        for flag in flags:
            close = difflib.get_close_matches(flag, self.option_names(), n=1, cutoff=0.6)
            if close:
                hints.append(f"did you mean {close[0]}?" if len(flags) == 1 else f"{flag}: did you mean {close[0]}?")
        return f"unrecognized arguments: {' '.join(extras)}" + (f" ({'; '.join(hints)})" if hints else "")


def quoted(text) -> str:
    """`text` as one shell word (a path with spaces stays one argument when pasted)."""
    return shlex.quote(str(text))


def normalize_flag_spelling(argv: list[str]) -> list[str]:
    """`--learning_rate` -> `--learning-rate`: underscores in a flag's name (before any `=`) read
    as hyphens, as many tools accept; values and everything after `--` are left alone."""
    out, rest = [], False
    for item in argv:
        if item == "--":
            rest = True
        if not rest and item.startswith("--") and "_" in item.split("=", 1)[0]:
            name, sep, value = item.partition("=")
            item = name.replace("_", "-") + sep + value
        out.append(item)
    return out


# ------------------------------------------------------------------------------ argument types
def _int_at_least(text: str, low: int, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"expected {what}, got {value}")
    return value


def positive_int(text: str) -> int:
    return _int_at_least(text, 1, "a positive integer")


def nonnegative_int(text: str) -> int:
    return _int_at_least(text, 0, "an integer >= 0")


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


def nonnegative_float(text: str) -> float:
    value = finite_float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}")
    return value


def positive_float(text: str) -> float:
    value = finite_float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}")
    return value


def probability(text: str) -> float:
    """--top-p: a share of the probability mass, in (0, 1]."""
    value = finite_float(text)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], got {text!r}")
    return value


def tokenizer_name(text: str) -> str:
    """--tokenizer: a name of gpt.data.registry's TOKENIZER_KINDS ("bytes", "gpt2", "bpe:N")."""
    try:
        return check_tokenizer_name(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
