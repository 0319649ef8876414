"""`gpt plot DIR`: a run's train and validation loss curves as a PNG (the book's figure 5.12),
and for a run trained with `--diagnostics N` its activation/gradient statistics (diagnostics.png).

matplotlib is optional; without it the command says how to install it.
"""
from __future__ import annotations

import argparse
import sys

from ..training.plot import MatplotlibMissing, plot_diagnostics, plot_run
from .common import EXIT_ERROR, Command


def add_plot_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", metavar="DIR", help="a run folder holding metrics.jsonl")
    parser.add_argument("--out", metavar="PNG", default=None, help="image file (default: DIR/loss.png)")
    parser.add_argument("--x", choices=["step", "tokens", "examples"], default=None,
                        help="the x axis: optimizer steps, tokens seen or examples seen, as the book's figures "
                             "(default: examples for a finetuning run, else step)")
    parser.add_argument("--diagnostics-out", metavar="PNG", default=None,
                        help="image of a --diagnostics run's statistics (default: DIR/diagnostics.png)")


def run_plot(args) -> int:
    try:
        path = plot_run(args.run_dir, args.out, args.x)
        diagnostics = plot_diagnostics(args.run_dir, args.diagnostics_out)
    except MatplotlibMissing as error:
        print(f"gpt plot: {error}", file=sys.stderr)
        return EXIT_ERROR
    print(f"wrote {path}")
    if diagnostics is not None:
        print(f"wrote {diagnostics}")
    return 0


COMMANDS = [Command("plot", "draw a run's loss curves (and --diagnostics statistics) to PNGs (needs matplotlib)",
                    add_plot_arguments, run_plot)]
