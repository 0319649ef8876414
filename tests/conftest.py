"""Shared test fixtures: the location of ../shared/data, and hypothesis settings."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = PROJECT_ROOT.parent / "shared" / "data"

# Deterministic, time-boxed property tests: the same examples on every run and machine.
settings.register_profile(
    "default",
    max_examples=30,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


@pytest.fixture(scope="session", autouse=True)
def session_cache(tmp_path_factory):
    """Tests never write the user's ~/.cache: GPT_CACHE_DIR (token caches, the GEMM figure) points
    to one temporary folder for the whole session, before any fixture of any scope runs (module
    fixtures that train through the command line too); a test may point it elsewhere."""
    folder = tmp_path_factory.mktemp("gpt-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GPT_CACHE_DIR", str(folder))
        yield folder


def shared_path(*parts: str) -> Path:
    """A path under ../shared/data, or skip the test saying which file is missing."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared data not found: {path} (tests that need ../shared/data skip without it)")
    return path


@pytest.fixture
def shared_data():
    """The ../shared/data folder (skips the test when it is absent)."""
    return shared_path()
