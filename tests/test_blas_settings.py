"""minigrad.blas: OPENBLAS_THREAD_TIMEOUT is set when minigrad (or gpt) is imported before
NumPy, left alone when the user set it, and not pretended when NumPy was loaded first."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest


def run(code: str, **env) -> str:
    environment = {k: v for k, v in os.environ.items() if k != "OPENBLAS_THREAD_TIMEOUT"}
    environment.update(env)
    out = subprocess.run([sys.executable, "-c", code], env=environment, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


@pytest.mark.parametrize("package", ["minigrad", "gpt"])
def test_import_sets_the_thread_timeout_before_numpy_loads(package):
    code = f"import os, {package}; print(os.environ.get('OPENBLAS_THREAD_TIMEOUT'))"
    from minigrad.blas import THREAD_TIMEOUT

    assert run(code) == THREAD_TIMEOUT


def test_a_users_setting_is_kept():
    code = "import os, minigrad; print(os.environ.get('OPENBLAS_THREAD_TIMEOUT'))"
    assert run(code, OPENBLAS_THREAD_TIMEOUT="20") == "20"


def test_nothing_is_set_once_numpy_is_loaded():
    code = "import os, numpy, minigrad; print(os.environ.get('OPENBLAS_THREAD_TIMEOUT'))"
    assert run(code) == "None"
