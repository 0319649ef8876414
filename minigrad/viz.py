"""Draw the graph behind a tensor: every op and leaf, and how data flows between them (what
micrograd's `draw_dot` and torchviz do), as Graphviz DOT text, an SVG/PNG file, or a picture
in a notebook.

    loss = model(x).sum()
    params = dict(model.named_parameters())
    print(viz.to_dot(loss, params))                  # DOT text
    viz.draw(loss, "graph.svg", params)              # needs Graphviz's `dot` program
    viz.graph(loss, params)                          # in Jupyter: shown as SVG

Nodes: one box per op (its name and output shape), one ellipse per leaf: a parameter (named
from `params`, e.g. `dict(model.named_parameters())`), another tensor that requires grad, or a
constant input (grey). Edges point the way data flows, from inputs to the op that reads them;
the tensor drawn was computed by the op with the double outline.

When to draw: backward frees the graph (each node drops its inputs as soon as it ran), so
draw before `backward()`, or after `backward(retain_graph=True)`. With `show_grads=True` each
leaf (and each non-leaf that called `retain_grad()`) also shows the L2 norm of its `.grad`:
draw after a `backward(retain_graph=True)`.

Large graphs (a GPT step has hundreds of ops): ops created inside `with
viz.record_modules(model):` carry the dotted path of the module that created them, and
`collapse=N` draws each module at depth N of that path (2 for `trf_blocks.0`) as one box with
its number of ops.

Graphviz is a separate program, not a Python package: `apt-get install graphviz` (Debian,
Ubuntu) or `conda install -c conda-forge graphviz`. Only `draw` and `_repr_svg_` need it.
"""
from __future__ import annotations

import contextlib
import shutil
import subprocess
from pathlib import Path

import numpy as np

from .autograd.anomaly import node_annotators
from .tensor import Tensor

GRAPHVIZ_HINT = ("Graphviz's `dot` program was not found on PATH: install the Debian/Ubuntu "
                 "package `graphviz` (apt-get install graphviz) or the conda package "
                 "(conda install -c conda-forge graphviz); to_dot() needs neither")


class GraphvizMissing(RuntimeError):
    """Graphviz's `dot` is not installed; the message names the package to install."""


def _quote(text: str) -> str:
    return '"' + str(text).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _shape(tensor: Tensor) -> str:
    return "(" + ", ".join(str(n) for n in tensor.shape) + ")" if tensor.ndim != 1 else f"({tensor.shape[0]},)"


def _walk(root: Tensor) -> list:
    """Every tensor reachable from `root` through recorded ops, root first (iterative)."""
    if not isinstance(root, Tensor):
        raise TypeError(f"viz: expected a Tensor, got {type(root).__name__}")
    order, seen, stack = [], {id(root)}, [root]
    while stack:
        tensor = stack.pop()
        order.append(tensor)
        ctx = tensor._ctx
        if ctx is None:
            continue
        if ctx.parents is None:
            raise RuntimeError(
                f"viz: the graph through a '{ctx.name}' node was already freed by backward(); "
                f"draw before backward(), or call backward(retain_graph=True) first")
        for parent in ctx.parents:
            if id(parent) not in seen:
                seen.add(id(parent))
                stack.append(parent)
    return order


def _grad_line(tensor: Tensor) -> str:
    if tensor.grad is None:
        return "\ngrad: none"
    return f"\n|grad| {float(np.linalg.norm(np.asarray(tensor.grad, dtype=np.float64))):.3g}"


def _leaf_node(tensor: Tensor, names: dict, show_grads: bool) -> tuple[str, dict]:
    name = names.get(id(tensor))
    if name is not None:
        label, fill = f"{name}\n{_shape(tensor)}", "lightblue"
    elif tensor.requires_grad:
        label, fill = f"leaf\n{_shape(tensor)}", "lightblue"
    elif tensor.numel() == 1:
        label, fill = f"{tensor.data.item():.4g}", "lightgrey"
    else:
        label, fill = f"input\n{_shape(tensor)}", "lightgrey"
    if show_grads and tensor.requires_grad:
        label += _grad_line(tensor)
    return label, {"shape": "ellipse", "style": "filled", "fillcolor": fill}


@contextlib.contextmanager
def record_modules(model):
    """Inside the block, every op created while a submodule of `model` runs records that
    module's dotted path as `ctx.module_path` (the innermost one), for `collapse=`.

    Uses forward pre-hooks and forward hooks on every submodule, removed at the end; ops of
    the model's own forward (outside any submodule) get no path and are drawn one by one."""
    stack, handles = [], []

    def annotate(ctx):
        if stack:
            ctx.module_path = stack[-1]

    def enter(name):
        def hook(module, args):
            stack.append(name)
        return hook

    def leave(module, args, output):
        stack.pop()

    for name, module in model.named_modules():
        if name:
            handles.append(module.register_forward_pre_hook(enter(name)))
            handles.append(module.register_forward_hook(leave))
    node_annotators.append(annotate)
    try:
        yield
    finally:
        node_annotators.remove(annotate)
        for handle in handles:
            handle.remove()


def _groups(tensors, collapse) -> dict:
    """id(tensor) -> group name (module path cut to depth `collapse`) for collapsed tensors:
    ops created inside a module, and the parameters and scalars only one group reads."""
    groups = {}
    for tensor in tensors:
        path = getattr(tensor._ctx, "module_path", None) if tensor._ctx is not None else None
        if path:
            groups[id(tensor)] = ".".join(path.split(".")[:collapse])
    readers = {}
    for tensor in tensors:
        if tensor._ctx is not None:
            for parent in tensor._ctx.parents:
                # parameters and scalar constants fold into their module; data stays visible
                if parent._ctx is None and (parent.requires_grad or parent.size == 1):
                    readers.setdefault(id(parent), set()).add(groups.get(id(tensor)))
    for leaf_id, reader_groups in readers.items():
        if len(reader_groups) == 1 and None not in reader_groups:
            groups[leaf_id] = next(iter(reader_groups))
    return groups


def to_dot(root: Tensor, params: dict | None = None, show_grads: bool = False,
           collapse: int | None = None) -> str:
    """Graphviz DOT text for the graph that computed `root`.

    params: name -> Tensor (e.g. `dict(model.named_parameters())`) to label leaves by name.
    show_grads: add each leaf's gradient norm (after `backward(retain_graph=True)`).
    collapse: draw the ops of each module at this depth of the dotted module path as one box
      (needs the ops created under `record_modules(model)`), with the parameters only it reads.
    Raises RuntimeError when the graph was freed by an earlier backward.
    """
    if collapse is not None and (isinstance(collapse, bool) or not isinstance(collapse, int)
                                 or collapse < 1):
        raise ValueError(f"to_dot: collapse must be a positive int (a module depth), got {collapse!r}")
    names = {id(tensor): name for name, tensor in (params or {}).items()}
    tensors = _walk(root)
    grouped = _groups(tensors, collapse) if collapse else {}
    node_ids, lines, groups = {}, [], {}  # groups: name -> [node id, ops, leaves]
    for tensor in tensors:  # one node per tensor (or per collapsed module)
        group = grouped.get(id(tensor))
        if group is not None:
            if group not in groups:
                groups[group] = [f"g{len(groups)}", 0, 0]
            groups[group][1 if tensor._ctx is not None else 2] += 1
            node_ids[id(tensor)] = groups[group][0]
            continue
        node = f"n{len(lines)}"  # one line per drawn node so far
        node_ids[id(tensor)] = node
        if tensor._ctx is None:
            label, attrs = _leaf_node(tensor, names, show_grads)
        else:
            label = f"{tensor._ctx.name}\n{_shape(tensor)}"
            if show_grads and tensor.grad is not None:
                label += _grad_line(tensor)
            attrs = {"shape": "box", "style": "rounded"}
        if tensor is root:
            attrs["peripheries"] = "2"
        attrs_text = ", ".join(f"{key}={_quote(value)}" for key, value in attrs.items())
        lines.append(f"  {node} [label={_quote(label)}, {attrs_text}];")
    for group, (node, ops, leaves) in groups.items():
        label = _quote(f"{group}\n{ops} op{'s' * (ops != 1)}"
                       + (f", {leaves} lea{'ves' if leaves != 1 else 'f'}" if leaves else ""))
        lines.append(f"  {node} [label={label}, shape=box3d, style=filled, fillcolor=lightyellow];")
    edges = []
    seen_edges = set()
    for tensor in reversed(tensors):  # inputs before outputs: edges in data-flow order
        if tensor._ctx is None:
            continue
        target = node_ids[id(tensor)]
        for parent in tensor._ctx.parents:
            source = node_ids[id(parent)]
            if source != target and (source, target) not in seen_edges:
                seen_edges.add((source, target))
                edges.append(f"  {source} -> {target};")
    return "\n".join(["digraph minigrad {", '  rankdir="LR";',
                      '  node [fontname="Helvetica", fontsize=11];'] + lines + edges + ["}"]) + "\n"


def _run_dot(source: str, fmt: str) -> bytes:
    executable = shutil.which("dot")
    if executable is None:
        raise GraphvizMissing(GRAPHVIZ_HINT)
    result = subprocess.run([executable, f"-T{fmt}"], input=source.encode(), capture_output=True)
    if result.returncode != 0:
        raise RuntimeError(f"viz: Graphviz's dot failed ({result.returncode}): "
                           f"{result.stderr.decode(errors='replace').strip()}")
    return result.stdout


class Graph:
    """A drawn graph: `.source` is the DOT text; shown as SVG in Jupyter (`_repr_svg_`)."""

    def __init__(self, source: str):
        self.source = source

    def _repr_svg_(self) -> str:
        return _run_dot(self.source, "svg").decode()

    def save(self, path) -> Path:
        """Render to `path`; the format is the suffix (.svg, .png, .pdf) or .dot for the text."""
        path = Path(path)
        fmt = path.suffix.lstrip(".").lower()
        if fmt == "dot":
            path.write_text(self.source)
            return path
        if fmt not in ("svg", "png", "pdf"):
            raise ValueError(f"viz: cannot render '{path}': use a .svg, .png, .pdf or .dot suffix")
        path.write_bytes(_run_dot(self.source, fmt))
        return path

    def __repr__(self) -> str:
        return f"Graph({self.source.count(' -> ')} edges)"


def graph(root: Tensor, params: dict | None = None, show_grads: bool = False,
          collapse: int | None = None) -> Graph:
    """The graph of `root` as a `Graph` (a notebook shows it as a picture)."""
    return Graph(to_dot(root, params, show_grads=show_grads, collapse=collapse))


def draw(root: Tensor, path, params: dict | None = None, show_grads: bool = False,
         collapse: int | None = None) -> Path:
    """Render the graph of `root` to `path` (.svg, .png, .pdf; .dot writes the text).

    Needs Graphviz's `dot` (GraphvizMissing names the package otherwise). Returns the path.
    """
    return graph(root, params, show_grads=show_grads, collapse=collapse).save(path)
