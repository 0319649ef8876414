"""The `gpt` command's start-up: `import gpt` and `import gpt.cli` are light (gpt's names are
imported on first use and are the same objects as before), and Ctrl-C at any moment of start-up
ends with exit code 130 and one line on stderr, never a traceback. (gpt.cli.main holds a first
Ctrl-C during start-up and raises it as the command starts, so the line names the command.)

The Ctrl-C tests start the real console script (the one pip installed for this interpreter, or
the same two lines written from pyproject.toml's entry point when it is not installed) and
`python -m gpt`, and send SIGINT while start-up runs, two ways:
- at named moments, deterministically: a test hook (a sitecustomize.py on PYTHONPATH, loaded by
  Python before any of our code) sends SIGINT to its own process at the start of one import,
  e.g. NumPy's;
- after increasing delays spread over the import time measured just before, so that signals
  also land in module bodies, C code, parsing and the command itself.
No assertion depends on timing: each delay only chooses where the signal lands; the hook does not
wait for the signal (it sends it), and the timeouts are generous and never part of a result.

What cannot be covered, and is not promised: the interpreter's own start-up before our first
line runs (Python installs its SIGINT handler, then imports `site` and the .pth files of
site-packages; a Ctrl-C there kills the process silently or prints Python's "Fatal Python error:
init_import_site" traceback), and the two small module bodies from our first line (gpt/__init__.py)
to main's `try` (gpt/cli/__init__.py, and the console script's own `sys.argv[0] = ...` line:
1-3 ms together, 0.6-1 ms with Python's bytecode cache, more on a loaded machine; a handler
installed before them would change Ctrl-C for every program that imports gpt). So the signals here start at the start of main (the hook reports the import
of gpt.cli.dispatch, the first thing main does, inside its `try`).
"""
from __future__ import annotations

import importlib
import os
import queue
import signal
import subprocess
import sys
import sysconfig
import textwrap
import threading
import time
import tomllib
from pathlib import Path

import pytest

import gpt
import gpt.cli
import gpt.cli.dispatch
from gpt.cli import main

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 180  # seconds; generous for a loaded machine, and never part of an assertion
TINY = ["--tokenizer", "bytes", "--preset", "tiny", "--batch-size", "4", "--eval-every", "1000",
        "--eval-batches", "1", "--sample-tokens", "0", "--threads", "1", "--quiet"]

# sitecustomize.py of the test hook: reports on stdout when the import of a module in
# CTRLC_REPORT starts; when that module is CTRLC_INTERRUPT, sends SIGINT to itself right there,
# CTRLC_TIMES times (delivered at once, to this thread: a Ctrl-C landing at the start of that import).
HOOK = textwrap.dedent('''
    import os, sys

    class StartUpHook:
        """First on sys.meta_path: sees the start of every import, finds nothing itself."""
        def __init__(self):
            self.report = set(filter(None, os.environ.get("CTRLC_REPORT", "").split(",")))
            self.interrupt = os.environ.get("CTRLC_INTERRUPT", "")
            self.times = int(os.environ.get("CTRLC_TIMES", "1"))

        def find_spec(self, name, path=None, target=None):
            if name in self.report:
                self.report.discard(name)
                os.write(1, f"[hook] importing {name}\\n".encode())
                if name == self.interrupt:
                    import signal
                    for _ in range(self.times):
                        signal.raise_signal(signal.SIGINT)
            return None

    sys.meta_path.insert(0, StartUpHook())
''')


@pytest.fixture(scope="module")
def hook_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("start-up-hook")
    (folder / "sitecustomize.py").write_text(HOOK)
    return folder


@pytest.fixture(scope="module")
def console_script(tmp_path_factory) -> list[str]:
    """The `gpt` console script: the installed one if this interpreter has it, else the same lines
    pip writes, for the entry point pyproject.toml declares."""
    entry = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]["gpt"]
    assert entry == "gpt.cli:main"
    installed = Path(sysconfig.get_path("scripts")) / "gpt"
    if installed.is_file() and "from gpt.cli import main" in installed.read_text(errors="replace"):
        return [str(installed)]
    script = tmp_path_factory.mktemp("console-script") / "gpt"
    script.write_text(f"#!{sys.executable}\nimport re\nimport sys\nfrom gpt.cli import main\n"
                      "if __name__ == '__main__':\n"
                      "    sys.argv[0] = re.sub(r'(-script\\.pyw|\\.exe)?$', '', sys.argv[0])\n"
                      "    sys.exit(main())\n")
    return [sys.executable, str(script)]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A tiny run, trained for one step: `gpt generate` on it runs as long as the test wants."""
    folder = tmp_path_factory.mktemp("start-up-run")
    data = folder / "text.txt"
    data.write_text("The quick brown fox jumps over the lazy dog. " * 100)
    assert main(["train", "--data", str(data), "--out", str(folder / "run"), *TINY, "--max-steps", "1"]) == 0
    return folder / "run"


def entry_command(which: str, console_script: list[str]) -> list[str]:
    return console_script if which == "console script" else [sys.executable, "-m", "gpt"]


def endless_generate(checkpoint) -> list[str]:
    """A command whose start-up (imports, parsing, loading) is followed by minutes of work."""
    return ["generate", "--checkpoint", str(checkpoint), "--num-samples", "1000000",
            "--max-new-tokens", "50", "--seed", "1", "--threads", "1"]


class Started:
    """A `gpt` process with the hook; its stdout is read by a thread (lines in a queue)."""

    def __init__(self, command, hook_dir, cwd, report="", interrupt="", times=1):
        env = {**os.environ, "PYTHONPATH": f"{hook_dir}{os.pathsep}{ROOT}", "CTRLC_REPORT": report,
               "CTRLC_INTERRUPT": interrupt, "CTRLC_TIMES": str(times), "PYTHONUNBUFFERED": "1"}
        env.pop("GPT_DEBUG", None)
        # A process started with SIGINT ignored (pytest run in the background: `pytest &`) passes
        # that on, and Python keeps ignoring it: with a handler here, the child starts with the default.
        ignored = signal.getsignal(signal.SIGINT) is signal.SIG_IGN
        if ignored:
            signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                            env=env, cwd=cwd)
        finally:
            if ignored:
                signal.signal(signal.SIGINT, signal.SIG_IGN)
        self.lines, self.stdout = queue.Queue(), []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        self.stderr_chunks = []
        self.err_reader = threading.Thread(target=lambda: self.stderr_chunks.append(self.process.stderr.read()),
                                           daemon=True)
        self.err_reader.start()

    def _read(self):
        for line in self.process.stdout:
            text = line.decode(errors="replace")
            self.stdout.append(text)
            self.lines.put(text)
        self.lines.put(None)  # end of output: the process ended

    def wait_for(self, marker: str) -> None:
        """Block until the hook reports `marker` (fails if the process ends first)."""
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=1)
            except queue.Empty:
                continue
            if line is None:
                self.process.wait(timeout=TIMEOUT)
                pytest.fail(f"the process ended (exit {self.process.returncode}) before {marker!r}: "
                            f"{b''.join(self.stderr_chunks).decode(errors='replace')[-2000:]}")
            if line.rstrip("\n") == f"[hook] importing {marker}":
                return
        self.kill()
        pytest.fail(f"no {marker!r} within {TIMEOUT} s")

    def interrupt(self, send: bool = True) -> tuple[int, str]:
        """SIGINT (unless the hook sends it), then (exit code, stderr)."""
        if send:
            self.process.send_signal(signal.SIGINT)
        try:
            code = self.process.wait(timeout=TIMEOUT)
        finally:
            self.kill()
        self.reader.join(timeout=TIMEOUT)
        self.err_reader.join(timeout=TIMEOUT)
        return code, b"".join(self.stderr_chunks).decode(errors="replace")

    def kill(self):
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def assert_one_line_and_130(code: int, err: str, expected: tuple[str, ...] = ("gpt",)) -> None:
    """Exit 130, and stderr exactly `\\n<command>: interrupted\\n` (the newline ends the ^C that
    the terminal echoes), for one of the expected command names."""
    assert "Traceback" not in err, err
    assert code == 130, err
    assert err in {f"\n{command}: interrupted\n" for command in expected}, repr(err)


# ------------------------------------------------------------------------------ light imports
def test_import_gpt_and_gpt_cli_import_nothing_heavy():
    code = ("import sys; before = set(sys.modules); import gpt, gpt.cli; from gpt.cli import main; "
            "print(sorted(set(sys.modules) - before))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=TIMEOUT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['gpt', 'gpt.cli']"  # no numpy, minigrad, argparse, subpackage


def test_every_name_of_gpt_is_the_object_of_its_module():
    for module, names in gpt._EXPORTS.items():
        source = importlib.import_module("gpt" + module)
        for name in names:
            assert getattr(gpt, name) is getattr(source, name), name
    for name in gpt._SUBPACKAGES:
        assert getattr(gpt, name) is sys.modules[f"gpt.{name}"]
    public = [name for name in dir(gpt) if not name.startswith("_")]
    assert public == sorted(gpt.__all__) and "GPTModel" in public and "training" in public
    with pytest.raises(AttributeError, match="module 'gpt' has no attribute 'GPTModle'"):
        gpt.GPTModle  # noqa: B018


def test_gpt_cli_names_are_the_dispatch_modules():
    for name in ("build_parser", "parse", "commands", "GROUPS", "EXTERNAL_COMMANDS", "STARTED_OVER",
                 "Parser", "UserError", "normalize_flag_spelling"):
        assert getattr(gpt.cli, name) is getattr(gpt.cli.dispatch, name), name
    assert gpt.cli.EXIT_INTERRUPTED == gpt.cli.common.EXIT_INTERRUPTED == 130
    with pytest.raises(AttributeError, match="module 'gpt.cli' has no attribute 'no_such_name'"):
        gpt.cli.no_such_name  # noqa: B018


FIRST_IMPORT_OF_EACH = textwrap.dedent('''
    import os, sys
    import numpy, minigrad  # not ours: imported once, before the children fork
    import gpt
    failed = []
    for module, names in [*gpt._EXPORTS.items(), ("(all)", ["*"])]:
        pid = os.fork()
        if pid == 0:  # a fresh `import gpt` whose first names come from this module
            try:
                exec(f"from gpt import {', '.join(names)}")
            except BaseException as error:
                print(f"gpt{module}: {type(error).__name__}: {error}", flush=True)
                os._exit(1)
            os._exit(0)
        if os.waitpid(pid, 0)[1] != 0:
            failed.append(module)
    print("failed:", failed)
''')


def test_each_module_of_gpt_can_be_the_first_one_imported():
    """Lazy names: no module may rely on another one having been imported before it (as the
    eager gpt/__init__.py used to guarantee)."""
    done = subprocess.run([sys.executable, "-c", FIRST_IMPORT_OF_EACH], capture_output=True, text=True,
                          timeout=TIMEOUT, env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "failed: []", done.stdout


# ------------------------------------------------------------------------------ Ctrl-C at start-up
# The imports a Ctrl-C lands in: the first thing main does (inside its try), datetime (imported
# by NumPy's C extension, which turns a KeyboardInterrupt raised there into an ImportError), our
# training code, and a command module imported while the parser is built (after main's import).
INTERRUPTED_IMPORTS = [("console script", "gpt.cli.dispatch"), ("console script", "datetime"),
                       ("console script", "gpt.training.checkpoint"), ("console script", "gpt.cli.finetune"),
                       ("python -m gpt", "datetime"), ("python -m gpt", "gpt.cli.finetune")]


@pytest.mark.parametrize("which, module", INTERRUPTED_IMPORTS)
def test_ctrl_c_at_the_start_of_an_import_of_start_up(which, module, console_script, hook_dir, checkpoint,
                                                      tmp_path):
    started = Started(entry_command(which, console_script) + endless_generate(checkpoint), hook_dir, tmp_path,
                      report=module, interrupt=module)
    started.wait_for(module)  # the hook reports the import, then sends SIGINT to its process
    code, err = started.interrupt(send=False)
    assert_one_line_and_130(code, err, expected=("gpt generate",))  # held until the command starts


def test_a_second_ctrl_c_during_the_import_stops_at_once(console_script, hook_dir, checkpoint, tmp_path):
    """The first Ctrl-C is held until the command starts; a second one ends the process there."""
    started = Started(console_script + endless_generate(checkpoint), hook_dir, tmp_path,
                      report="numpy,gpt.cli.train", interrupt="numpy", times=2)
    started.wait_for("numpy")
    code, err = started.interrupt(send=False)
    assert_one_line_and_130(code, err)
    assert "[hook] importing gpt.cli.train\n" not in started.stdout  # (imported after numpy, if ever)


def test_main_puts_back_the_sigint_handler_it_found(tmp_path, capsys):
    missing = ["eval", "--checkpoint", str(tmp_path / "none")]
    found = signal.signal(signal.SIGINT, signal.default_int_handler)  # (pytest may run with it ignored)
    try:
        assert main(missing) == 1
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # e.g. a job started with `nohup ... &`
        assert main(missing) == 1
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN  # left alone: still ignored
    finally:
        signal.signal(signal.SIGINT, found)
    results = []
    thread = threading.Thread(target=lambda: results.append(main(missing)))  # no signals off the main thread
    thread.start()
    thread.join(timeout=TIMEOUT)
    assert results == [1] and "does not exist" in capsys.readouterr().err


def import_time(tmp_path) -> float:
    """Seconds from the start of main to the end of its imports (gpt.cli.dispatch), measured now."""
    code = "import time, gpt.cli; t = time.perf_counter(); import gpt.cli.dispatch; print(time.perf_counter() - t)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=TIMEOUT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    return float(done.stdout)


@pytest.mark.parametrize("which, fractions", [("console script", (0.0, 0.2, 0.5, 0.8, 1.5)),
                                             ("python -m gpt", (0.0, 0.5, 1.5))])
def test_ctrl_c_after_increasing_delays_from_the_start_of_main(which, fractions, console_script, hook_dir,
                                                              checkpoint, tmp_path):
    """Delays from 0 to 1.5x the import time, counted from the hook's report that main started:
    the signal lands while importing, parsing, loading the checkpoint or generating."""
    duration = import_time(tmp_path)
    for fraction in fractions:
        started = Started(entry_command(which, console_script) + endless_generate(checkpoint), hook_dir,
                          tmp_path, report="gpt.cli.dispatch")
        started.wait_for("gpt.cli.dispatch")
        time.sleep(fraction * duration)
        code, err = started.interrupt()
        assert_one_line_and_130(code, err, expected=("gpt generate",))
