"""examples/inspect_backward.py: the graphs are written, the hooks print every gradient they
watch, and detect_anomaly finds the injected NaN at the example's own line."""
from __future__ import annotations

import importlib.util
import shutil

from conftest import PROJECT_ROOT


def test_inspect_backward_draws_prints_hooks_and_finds_the_nan(tmp_path, capsys):
    path = PROJECT_ROOT / "examples" / "inspect_backward.py"
    spec = importlib.util.spec_from_file_location("inspect_backward", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main(["--out", str(tmp_path)])
    suffix = ".svg" if shutil.which("dot") else ".dot"  # the DOT text without Graphviz
    assert (tmp_path / f"mlp_step{suffix}").stat().st_size > 500
    assert "|grad|" in (tmp_path / f"mlp_step_grads{suffix}").read_text()
    out = capsys.readouterr().out
    assert out.count("d loss / d tanh output  (16, 8)") == 3  # one per backward, hooked each forward
    assert "d loss / d 0.weight     (8, 4)" in out and "d loss / d 2.weight     (1, 8)" in out
    assert "layer 2 (Linear): |grad_output|" in out and "|grad_input| = None" in out
    line = next(i for i, text in enumerate(path.read_text().splitlines(), 1)
                if "features = inputs.abs().sqrt()" in text)
    assert "the backward of 'sqrt' (output shape (16, 4)) returned inf" in out
    assert f"{path}:{line}" in out
