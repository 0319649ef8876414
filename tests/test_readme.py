"""The README is the front door: every ```python block in it runs verbatim from the repository root.

Each block runs in its own fresh interpreter with the repository root as the working directory,
as a reader who pastes it into `python` right after cloning would. A block that reads
`../shared/data` skips (saying so) where that folder is absent.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from conftest import PROJECT_ROOT, SHARED_DATA

README = PROJECT_ROOT / "README.md"
FENCE = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)


def python_blocks() -> list[tuple[int, str]]:
    """(line number, code) of every ```python block in the README."""
    text = README.read_text(encoding="utf-8")
    return [(text.count("\n", 0, match.start()) + 1, match.group(1)) for match in FENCE.finditer(text)]


def test_the_readme_has_python_blocks():
    assert len(python_blocks()) >= 1


@pytest.mark.parametrize("line, code", python_blocks(), ids=lambda v: f"line{v}" if isinstance(v, int) else "")
def test_readme_python_block_runs_verbatim(line, code, tmp_path):
    if "../shared/data" in code and not SHARED_DATA.is_dir():
        pytest.skip(f"README block at line {line} reads ../shared/data, which is absent here")
    env = {**os.environ, "GPT_OFFLINE": "1", "MPLBACKEND": "Agg",
           "GPT_CACHE_DIR": str(tmp_path / "cache")}  # no network, no cache outside the test
    result = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, (
        f"README.md's python block at line {line} failed (exit {result.returncode}):\n"
        f"{result.stderr[-3000:]}")
