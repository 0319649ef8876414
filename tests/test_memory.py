"""minigrad.memory: freed large arrays are reused without page faults (Linux with glibc)."""
from __future__ import annotations

import platform
import resource

import numpy as np
import pytest

import minigrad
from minigrad import memory

glibc = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"


@pytest.mark.skipif(not glibc, reason="mallopt settings exist on Linux with glibc only")
def test_a_freed_large_array_is_reused_without_page_faults():
    assert minigrad.set_memory_reuse(True) is True
    assert memory.memory_reuse_enabled()
    size = 16 * 1024 * 1024  # 64 MB of float32: far above glibc's largest mmap threshold
    first = np.ones(size, dtype=np.float32)
    del first
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    second = np.ones(size, dtype=np.float32)  # writes every page
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    assert second[-1] == 1.0
    assert faults < 1000, f"{faults} page faults for a reused 64 MB buffer"


@pytest.mark.skipif(not glibc, reason="mallopt settings exist on Linux with glibc only")
def test_reuse_can_be_switched_off_and_on():
    try:
        assert minigrad.set_memory_reuse(False) is True
        assert not memory.memory_reuse_enabled()
    finally:
        assert minigrad.set_memory_reuse(True) is True
    assert memory.memory_reuse_enabled()


def test_import_honours_the_environment_switch():
    import subprocess
    import sys

    code = "import minigrad; print(minigrad.memory.memory_reuse_enabled())"
    env_off = {"MINIGRAD_MEMORY_REUSE": "0", "PATH": ""}
    out = subprocess.run([sys.executable, "-c", code], env=env_off, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
