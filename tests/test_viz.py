"""minigrad.viz: the DOT text has one node per op and leaf with the right labels and edges in
the direction data flows; freed graphs, gradient norms, rendering through Graphviz."""
from __future__ import annotations

import re
import shutil

import numpy as np
import pytest

import minigrad as mg
from minigrad import Tensor, nn, viz


def _parse(dot: str):
    """{node id: label} and the set of (source label, target label) edges."""
    labels = dict(re.findall(r'^\s+(\w+) \[label="((?:[^"\\]|\\.)*)"', dot, flags=re.M))
    edges = {(labels[a], labels[b]) for a, b in re.findall(r"^\s+(\w+) -> (\w+);", dot, flags=re.M)}
    return labels, edges


def _mlp_loss():
    model = nn.Sequential(nn.Linear(3, 4, generator=np.random.default_rng(0)), nn.ReLU(),
                          nn.Linear(4, 1, generator=np.random.default_rng(1)))
    x = Tensor(np.ones((2, 3), dtype=np.float32))
    return model, (model(x) * 2.0).sum()


def test_to_dot_has_one_node_per_op_and_leaf_and_data_flow_edges():
    model, loss = _mlp_loss()
    labels, edges = _parse(viz.to_dot(loss, dict(model.named_parameters())))
    assert sorted(labels.values()) == sorted([
        "sum\\n()", "mul\\n(2, 1)", "2", "linear\\n(2, 1)", "relu\\n(2, 4)", "linear\\n(2, 4)",
        "0.weight\\n(4, 3)", "0.bias\\n(4,)", "2.weight\\n(1, 4)", "2.bias\\n(1,)", "input\\n(2, 3)"])
    assert edges == {
        ("input\\n(2, 3)", "linear\\n(2, 4)"), ("0.weight\\n(4, 3)", "linear\\n(2, 4)"),
        ("0.bias\\n(4,)", "linear\\n(2, 4)"), ("linear\\n(2, 4)", "relu\\n(2, 4)"),
        ("relu\\n(2, 4)", "linear\\n(2, 1)"), ("2.weight\\n(1, 4)", "linear\\n(2, 1)"),
        ("2.bias\\n(1,)", "linear\\n(2, 1)"), ("linear\\n(2, 1)", "mul\\n(2, 1)"),
        ("2", "mul\\n(2, 1)"), ("mul\\n(2, 1)", "sum\\n()")}
    dot = viz.to_dot(loss)
    assert re.search(r'label="sum\\n\(\)".*peripheries="2"', dot)  # the root is marked
    assert "leaf\\n(4, 3)" in dot  # without names, parameters are "leaf"


def test_a_tensor_used_twice_gets_one_node():
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    labels, edges = _parse(viz.to_dot((x * x).sum(), {"x": x}))
    assert sorted(labels.values()) == ["mul\\n(2,)", "sum\\n()", "x\\n(2,)"]
    assert edges == {("x\\n(2,)", "mul\\n(2,)"), ("mul\\n(2,)", "sum\\n()")}


def test_show_grads_after_retain_graph_and_freed_graph_error():
    model, loss = _mlp_loss()
    loss.backward(retain_graph=True)
    dot = viz.to_dot(loss, dict(model.named_parameters()), show_grads=True)
    norm = np.linalg.norm(model[0].weight.grad)
    assert f"0.weight\\n(4, 3)\\n|grad| {norm:.3g}" in dot
    model, loss = _mlp_loss()
    loss.backward()
    with pytest.raises(RuntimeError, match="already freed by backward.*retain_graph=True"):
        viz.to_dot(loss)
    with pytest.raises(TypeError, match="expected a Tensor"):
        viz.to_dot(np.ones(2))
    with pytest.raises(ValueError, match="collapse must be a positive int"):
        viz.to_dot(Tensor(1.0), collapse=0)


def test_missing_graphviz_names_the_package(monkeypatch, tmp_path):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    _, loss = _mlp_loss()
    with pytest.raises(viz.GraphvizMissing, match="apt-get install graphviz.*conda install"):
        viz.draw(loss, tmp_path / "g.svg")
    assert viz.draw(loss, tmp_path / "g.dot").read_text().startswith("digraph")  # no dot needed
    with pytest.raises(ValueError, match="use a .svg, .png, .pdf or .dot suffix"):
        viz.draw(loss, tmp_path / "g.jpeg")


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")
def test_draw_renders_svg_and_png_and_the_notebook_repr(tmp_path):
    model, loss = _mlp_loss()
    svg = viz.draw(loss, tmp_path / "g.svg", dict(model.named_parameters()))
    assert "<svg" in svg.read_text() and "0.weight" in svg.read_text()
    png = viz.draw(loss, tmp_path / "g.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert viz.graph(loss)._repr_svg_().lstrip().startswith("<?xml")


def test_collapse_draws_each_recorded_module_as_one_box():
    model, _ = _mlp_loss()
    x = Tensor(np.ones((2, 3), dtype=np.float32))
    with viz.record_modules(model):
        loss = (model(x) * 2.0).sum()
    assert all(m._hooks is None or m._hooks.empty() for m in model.modules())  # hooks removed
    labels, edges = _parse(viz.to_dot(loss, dict(model.named_parameters()), collapse=1))
    assert sorted(labels.values()) == sorted(["sum\\n()", "mul\\n(2, 1)", "2", "input\\n(2, 3)",
                                              "0\\n1 op, 2 leaves", "1\\n1 op", "2\\n1 op, 2 leaves"])
    assert edges == {("input\\n(2, 3)", "0\\n1 op, 2 leaves"), ("0\\n1 op, 2 leaves", "1\\n1 op"),
                     ("1\\n1 op", "2\\n1 op, 2 leaves"), ("2\\n1 op, 2 leaves", "mul\\n(2, 1)"),
                     ("2", "mul\\n(2, 1)"), ("mul\\n(2, 1)", "sum\\n()")}
    outside = (model(x) * 2.0).sum()  # outside the block: no module paths, nothing collapsed
    assert "box3d" not in viz.to_dot(outside, collapse=1)
