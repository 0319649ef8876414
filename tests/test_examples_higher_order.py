"""examples/higher_order.py runs: tanh's derivatives match their closed forms (it asserts so),
Newton's method reaches Rosenbrock's minimum, and power iteration settles on an eigenvalue."""
from __future__ import annotations

import importlib.util

from conftest import PROJECT_ROOT


def test_higher_order_example(capsys):
    spec = importlib.util.spec_from_file_location("higher_order", PROJECT_ROOT / "examples" / "higher_order.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    x, y, value = module.newton()[-1]
    assert abs(x - 1) < 1e-9 and abs(y - 1) < 1e-9 and value < 1e-15
    loss, estimates = module.top_hessian_eigenvalue(iterations=12, train_steps=60)
    assert estimates[-1] > 0 and abs(estimates[-1] - estimates[-2]) < 1e-3 * abs(estimates[-1])
    module.main(["--iterations", "3"])
    assert "d^4:" in capsys.readouterr().out
