"""Flags as people expect: no silent abbreviations, a "did you mean" with the command's own usage,
`--learning-rate` for `--lr`, underscores read as hyphens, a default on every help line, bad values
exit 2, and the README's command reference lists exactly the flags each parser has."""
from __future__ import annotations

import argparse
import re

import pytest
from conftest import PROJECT_ROOT

from gpt.cli import build_parser, main, parse


@pytest.fixture(scope="module")
def parser():
    return build_parser()


def usage_error(capsys, argv) -> str:
    with pytest.raises(SystemExit) as caught:
        parse(build_parser(), argv)
    assert caught.value.code == 2
    return capsys.readouterr().err


def test_no_abbreviations_and_a_suggestion_with_the_commands_usage(capsys):
    err = usage_error(capsys, ["train", "--out", "x", "--max-step", "3"])
    assert "unrecognized arguments: --max-step 3 (did you mean --max-steps?)" in err
    assert err.startswith("usage: gpt train") and err.count("\n") > 2
    err = usage_error(capsys, ["generate", "--checkpoint", "x", "--tmperature", "1"])
    assert err.startswith("usage: gpt generate") and "did you mean --temperature?" in err
    err = usage_error(capsys, ["classify-train", "--checkpoint", "b", "--data", "d", "--out", "o", "--epoch", "2"])
    assert err.startswith("usage: gpt classify-train") and "did you mean --epochs?" in err


def test_every_parser_refuses_abbreviations(parser):
    assert parser.allow_abbrev is False
    assert all(sub.allow_abbrev is False for sub in parser.commands.values())


def test_learning_rate_spellings(parser):
    for flag in ("--lr", "--learning-rate", "--learning_rate"):
        assert parse(parser, ["train", "--out", "x", flag, "3e-4"]).lr == 3e-4
        assert parse(parser, ["classify-train", "--checkpoint", "b", "--data", "d", "--out", "o", flag, "1e-5"]).lr == 1e-5
    assert parse(parser, ["train", "--out", "x", "--max_steps=7"]).max_steps == 7
    assert parse(parser, ["generate", "--checkpoint", "x", "--prompt=a_b --c_d"]).prompt == "a_b --c_d"  # values stay


def test_every_help_line_shows_its_default(parser):
    for name, sub in parser.commands.items():
        formatter = sub._get_formatter()
        for action in sub._actions:
            if (not action.option_strings or action.required or action.nargs == 0
                    or isinstance(action, argparse._HelpAction)):
                continue
            text = action.help if action.default is argparse.SUPPRESS else formatter._get_help_string(action)
            assert "default" in text, f"gpt {name} {action.option_strings[0]}: {text!r}"


@pytest.mark.parametrize("argv", [
    ["generate", "--checkpoint", "x", "--top-p", "2"],
    ["generate", "--checkpoint", "x", "--temperature", "-1"],
    ["generate", "--checkpoint", "x", "--top-k", "0"],
    ["train", "--out", "x", "--lr", "nan"],
    ["train", "--out", "x", "--max-steps", "0"],
    ["eval", "--checkpoint", "x", "--batch-size", "many"],
    ["classify-train", "--checkpoint", "b", "--data", "d", "--out", "o", "--lr", "-1"],
])
def test_bad_values_exit_2_with_one_error_line(capsys, argv):
    with pytest.raises(SystemExit) as caught:
        main(argv)
    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert len([line for line in err.splitlines() if ": error: " in line]) == 1


def readme_commands() -> dict[str, set[str]]:
    """The command reference table of README.md: command -> the flags its first cell names."""
    text = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    table = text[text.index("## Command reference"):]
    table = table[:table.index("\n## ")]
    rows = re.findall(r"^\| `gpt ([a-z-]+)([^`]*)` \|", table, flags=re.M)
    return {name: set(re.findall(r"--[a-z][a-z0-9-]*", rest)) for name, rest in rows}


def test_the_readme_command_reference_matches_the_parsers(parser):
    documented = readme_commands()
    assert set(documented) == set(parser.commands), "commands in the README table vs the parser"
    for name, sub in parser.commands.items():
        primary, spellings = set(), set()
        for action in sub._actions:
            longs = [flag for flag in action.option_strings if flag.startswith("--") and flag != "--help"]
            if longs:
                primary.add(longs[0])
                spellings.update(longs)
        assert primary <= documented[name], f"gpt {name}: not in the README: {sorted(primary - documented[name])}"
        assert documented[name] <= spellings, f"gpt {name}: not a flag: {sorted(documented[name] - spellings)}"
