"""The `gpt` command line (also `python -m gpt`): train, generate, eval, plot, and more.

    gpt train --out runs/default                 # the main job: default corpus, model, tokenizer
    gpt generate --checkpoint runs/default --prompt "The for statement"
    gpt eval --checkpoint runs/default
    gpt plot runs/default                        # runs/default/loss.png (needs matplotlib)

The console script (`gpt = "gpt.cli:main"`) imports this module and calls `main`. It is kept
light on purpose (it imports `os` and `sys` alone, both already loaded by Python, and `import
gpt` imports nothing: gpt/__init__.py is lazy), so that Ctrl-C handling is in place 1-3 ms after
our first line runs (0.6-1 ms with a bytecode cache): NumPy, minigrad and every command are
imported by `main`, inside its `try`, from gpt/cli/dispatch.py (the parser and the command
groups; `gpt.cli.build_parser` and the other names it defines are still reachable from here,
imported on first use).

Exit codes: 0 success, 1 an error in the input (message, no traceback; set GPT_DEBUG=1 for
the traceback), 2 a usage error (argparse), 130 interrupted by Ctrl-C.
"""
import os
import sys

EXIT_ERROR, EXIT_USAGE, EXIT_INTERRUPTED = 1, 2, 130


class HeldInterrupt:
    """Ctrl-C during start-up (importing the command line, building the parser, parsing): noted,
    and raised as KeyboardInterrupt when the command starts (`release`).

    Raised at once, the KeyboardInterrupt could land inside C code that an import runs, which
    may turn it into another error: CPython's PyCapsule_Import, as NumPy's C extension uses it,
    reports "ImportError: PyCapsule_Import could not import module 'datetime'" (a traceback), and
    the parser takes an ImportError for a command that is not installed (the Ctrl-C lost). So the
    first SIGINT only sets `requested`; a second one stops at once (nothing is open yet). Only
    where Python's own Ctrl-C handling is in force: in the main thread, unless SIGINT is ignored
    or handled by the program that calls main."""

    def __init__(self, signal):
        self.signal = signal  # the module (imported by main, after its `try`)
        self.requested = False
        self.installed = False

    def _handler(self, signum, frame):
        if self.requested:
            sys.stderr.write("\ngpt: interrupted\n")
            sys.stderr.flush()
            os._exit(EXIT_INTERRUPTED)
        self.requested = True

    def hold(self) -> "HeldInterrupt":
        if self.signal.getsignal(self.signal.SIGINT) is self.signal.default_int_handler:
            try:
                self.signal.signal(self.signal.SIGINT, self._handler)
                self.installed = True
            except ValueError:  # not the main thread: signals go to the main thread, not here
                pass
        return self

    def restore(self) -> None:
        """Python's own handler again (a SIGINT from now on raises KeyboardInterrupt)."""
        if self.installed:
            self.installed = False
            self.signal.signal(self.signal.SIGINT, self.signal.default_int_handler)

    def release(self) -> None:
        """The command starts: restore, and raise the Ctrl-C that came during start-up, if any."""
        self.restore()
        if self.requested:
            self.requested = False
            raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    """Run `gpt ARGS`; returns the exit code (the console script exits with it).

    Ctrl-C at any point from here on (importing, parsing, loading, training) is one line and
    exit 130; an error is one line of at most MAX_MESSAGE characters and exit 1."""
    held = None
    try:
        import signal  # here, not at the top: importing it takes about 1 ms, before any `try`
        held = HeldInterrupt(signal).hold()
        # Our one import inside a function (tests/test_layout.py allows exactly this one): the
        # heavy part of the command line, imported once Ctrl-C is handled.
        import gpt.cli.dispatch as dispatch
        return dispatch.run(argv, start_up=held)  # releases `held` as the command starts
    except KeyboardInterrupt:  # before run's own handling (which names the command) is in place
        print("\ngpt: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        if held is not None:
            held.restore()  # (after a usage error, --help, or a Ctrl-C before the command)


def __getattr__(name: str):
    """`gpt.cli.build_parser`, `gpt.cli.GROUPS`, ...: the names of gpt/cli/dispatch.py, imported on
    first use (PEP 562), so that importing gpt.cli stays light."""
    # Not for dunder probes by tools, nor for `dispatch` itself: while it is being imported, the
    # import system asks for gpt.cli.dispatch (and its submodules) here before binding them.
    if name.startswith("__") or name == "dispatch":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import gpt.cli.dispatch as dispatch  # the same allowed import as in main
    try:
        return getattr(dispatch, name)
    except AttributeError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
