"""The makemore MLP and the digits CNN examples learn (short runs of the real scripts)."""
from __future__ import annotations

import importlib.util
import math

import pytest

from conftest import PROJECT_ROOT


def load_example(name: str):
    spec = importlib.util.spec_from_file_location(name, PROJECT_ROOT / "examples" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_makemore_mlp_learns_and_samples(capsys):
    result = load_example("makemore_mlp").main(["--steps", "400"])
    assert result["val"] < math.log(27) - 0.5  # well below uniform guessing (3.30)
    assert len(result["samples"]) == 12 and all(set(w) <= set("abcdefghijklmnopqrstuvwxyz") for w in result["samples"])
    assert "samples:" in capsys.readouterr().out


def test_cnn_digits_learns_one_epoch():
    pytest.importorskip("sklearn", reason="examples/cnn_digits.py needs the 'examples' extra (scikit-learn)")
    result = load_example("cnn_digits").main(["--epochs", "1"])
    assert result["test_accuracy"] > 0.85
