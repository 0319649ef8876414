"""`gpt explain`: one self-contained HTML page showing what a model does with a prompt.

    gpt explain --checkpoint runs/default --prompt "The for statement" --out explain.html
    gpt explain --checkpoint gpt2/124M --prompt "Every effort moves you" --max-new-tokens 20 --seed 1

The page holds the prompt's tokens, attention maps per layer and head, the logit lens,
next-token distributions (recomputed in the page for any temperature / top-k / top-p), residual
norms, MLP statistics and, for a `gpt train` run, its metrics; it fetches nothing (gpt/explain/).
"""
from __future__ import annotations

import argparse

from ..explain import explain
from .common import Command, UserError, finite_float, nonnegative_int, positive_int


def add_explain_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, metavar="DIR",
                        help="a run folder of `gpt train`, its checkpoint/ folder, or a GPT-2 folder "
                             "(OpenAI's or Hugging Face's layout)")
    parser.add_argument("--prompt", required=True, metavar="TEXT",
                        help="the text to look at (cropped to the context; empty: <|endoftext|>)")
    parser.add_argument("--out", default="explain.html", metavar="FILE.html",
                        help="the page to write (default: explain.html in the current folder)")
    parser.add_argument("--max-new-tokens", type=nonnegative_int, default=10,
                        help="tokens generated after the prompt, each shown with its distribution (default: 10)")
    parser.add_argument("--temperature", type=finite_float, default=0.8,
                        help="as `gpt generate`: 0 greedy (default: 0.8); the page's controls start here")
    parser.add_argument("--top-k", type=positive_int, default=None, help="as `gpt generate`")
    parser.add_argument("--top-p", type=finite_float, default=None, help="as `gpt generate`")
    parser.add_argument("--seed", type=int, default=None,
                        help="seed of the sampling: the same seed gives `gpt generate`'s tokens")
    parser.add_argument("--tokenizer-path", metavar="PATH", default=None,
                        help="GPT-2's tokenizer files, for a run trained with --tokenizer gpt2")
    parser.add_argument("--threads", type=positive_int, default=None, help="BLAS threads (default: all cores)")


def run_explain(args) -> int:
    if args.temperature < 0:
        raise UserError(f"--temperature must be >= 0, got {args.temperature}")
    if args.top_p is not None and not 0 < args.top_p <= 1:
        raise UserError(f"--top-p must be in (0, 1], got {args.top_p}")
    result = explain(args.checkpoint, args.prompt, out=args.out, max_new_tokens=args.max_new_tokens,
                     temperature=args.temperature, top_k=args.top_k, top_p=args.top_p, seed=args.seed,
                     tokenizer_path=args.tokenizer_path)
    for note in result.notes:
        print(f"note: {note}")
    print(f"wrote {result.path} ({result.size_bytes / 1e6:.2f} MB) in {result.seconds:.1f} s")
    return 0


COMMANDS = [Command("explain", "write one HTML page showing what the model does with a prompt "
                    "(attention, logit lens, next-token distributions, training curves)",
                    add_explain_arguments, run_explain)]
