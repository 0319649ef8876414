"""The layout rules of the developers' guide, checked on the source: imports inside gpt/ point
one way (no cycle, counting imports inside functions; no subpackage imports a later one), no
function-level import of our own modules, and no source file over 400 lines."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MAX_LINES = 400

# The subpackages of gpt/ in the order one batch travels: a module may import its own layer and
# the layers before it, never a later one (gpt/__init__.py and gpt/__main__.py sit on top).
LAYERS = ["data", "model", "training", "weights", "finetune", "explain", "cli"]

# Imports that may sit inside a function: optional or heavy dependencies, loaded only when used.
LAZY_ALLOWED = {"matplotlib", "mpi4py", "threadpoolctl", "pydoc_data"}
# Function-level imports of our own modules, each with its reason (not a cycle).
LAZY_OWN_ALLOWED = {
    # `python -m gpt.weights.download` runs the module as __main__: importing it from its
    # package as well would make runpy warn and load it twice.
    ("gpt.weights", "gpt.weights.download"),
    # The `gpt` console script's entry point, gpt.cli.main, imports the heavy part of the command
    # line (NumPy, minigrad, every command) inside its Ctrl-C handling, so that Ctrl-C during
    # start-up is one line and exit 130 (tests/test_start_up.py); gpt.cli's module
    # __getattr__ forwards to the same module.
    ("gpt.cli", "gpt.cli.dispatch"),
}
# Function-level imports of other modules in one module only, each with its reason: gpt.cli.main
# imports `signal` inside its Ctrl-C handling too (at the top, its import would be ~1 ms more of
# start-up before any handler).
LAZY_PAIRS_ALLOWED = {("gpt.cli", "signal")}
# Files that import our modules by name (importlib.import_module), which the AST walk below does
# not see as imports: gpt/__init__.py imports its names on first use from the table _EXPORTS,
# which lazy_exports() reads (edges of the graph like any import); gpt/cli/dispatch.py imports the
# modules of EXTERNAL_COMMANDS (other packages' commands, possibly unavailable).
IMPORT_BY_NAME_ALLOWED = {"gpt/__init__.py", "gpt/cli/dispatch.py"}
# Files over MAX_LINES that a change under way is splitting (relative paths); an entry must be
# removed once the file is short again (test_the_long_file_allowlist_is_not_stale).
LONG_FILES_ALLOWED: set[str] = set()


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def gpt_modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted((ROOT / "gpt").rglob("*.py"))}


def is_package(name: str, modules: dict) -> bool:
    return modules[name].name == "__init__.py"


def imports_of(name: str, path: Path, modules: dict):
    """(imported gpt module, line, inside a function?) for every import in `path`, and the
    names of non-gpt modules imported inside functions, with their lines."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = name if is_package(name, modules) else name.rpartition(".")[0]
    own, lazy_other = [], []

    def visit(node, in_function: bool):
        for child in ast.iter_child_nodes(node):
            inside = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            targets = []
            if isinstance(child, ast.Import):
                targets = [alias.name for alias in child.names]
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base_parts = package.split(".")[: len(package.split(".")) - (child.level - 1)]
                    base = ".".join(base_parts + ([child.module] if child.module else []))
                else:
                    base = child.module
                targets = [base] + [f"{base}.{alias.name}" for alias in child.names
                                    if f"{base}.{alias.name}" in modules]
            for target in targets:
                if target == "gpt" or target.startswith("gpt."):
                    while target not in modules:  # `from gpt.x import name`: the module gpt.x
                        target = target.rpartition(".")[0]
                    own.append((target, child.lineno, in_function))
                elif in_function:
                    lazy_other.append((target, child.lineno))
            visit(child, inside)

    visit(tree, False)
    return own, lazy_other


def lazy_exports() -> set[str]:
    """The modules gpt/__init__.py imports on first use: the keys of its table _EXPORTS (as
    absolute names) and its _SUBPACKAGES."""
    tree = ast.parse((ROOT / "gpt" / "__init__.py").read_text(encoding="utf-8"))
    tables = {node.targets[0].id: ast.literal_eval(node.value) for node in tree.body
              if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)
              and node.targets[0].id in ("_EXPORTS", "_SUBPACKAGES")}
    return {"gpt" + module for module in tables["_EXPORTS"]} | {f"gpt.{name}" for name in tables["_SUBPACKAGES"]}


def import_graph():
    modules = gpt_modules()
    graph, lazy = {name: set() for name in modules}, []
    graph["gpt"] |= lazy_exports()  # imports all the same, on first use: edges like the others
    for name, path in modules.items():
        own, lazy_other = imports_of(name, path, modules)
        for target, line, in_function in own:
            if target != name and not name.startswith(target + "."):  # (its own packages: already running)
                graph[name].add(target)
            # importing gpt.a.b first runs gpt/a/__init__.py (unless gpt.a is this module's own package)
            parent = target.rpartition(".")[0]
            while parent not in ("", "gpt") and not (name == parent or name.startswith(parent + ".")):
                graph[name].add(parent)
                parent = parent.rpartition(".")[0]
            if in_function:
                lazy.append((name, target, line))
        lazy.extend((name, target, line) for target, line in lazy_other)
    return modules, graph, lazy


def find_cycle(graph: dict) -> list | None:
    """One import cycle as a list of modules, or None (iterative depth-first search)."""
    state = {}  # 1: on the current path, 2: done
    for start in sorted(graph):
        if state.get(start):
            continue
        path, stack = [start], [iter(sorted(graph[start]))]
        state[start] = 1
        while stack:
            child = next(stack[-1], None)
            if child is None:
                state[path.pop()] = 2
                stack.pop()
            elif state.get(child) == 1:
                return path[path.index(child):] + [child]
            elif not state.get(child):
                state[child] = 1
                path.append(child)
                stack.append(iter(sorted(graph[child])))
    return None


def layer(name: str) -> int | None:
    parts = name.split(".")
    if len(parts) < 2 or parts[1] not in LAYERS:
        return None  # gpt itself, gpt.__main__: on top
    return LAYERS.index(parts[1])


def test_gpt_imports_without_cycles():
    _, graph, _ = import_graph()
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_imports_point_down_the_layers():
    _, graph, _ = import_graph()
    upward = [f"{name} imports {target}" for name, targets in graph.items() for target in targets
              if layer(name) is not None and (layer(target) is None or layer(target) > layer(name))]
    assert not upward, "imports against the order " + " < ".join(LAYERS) + ":\n" + "\n".join(upward)


def test_no_function_level_imports_except_optional_dependencies():
    modules, _, lazy = import_graph()
    bad = []
    for name, target, line in lazy:
        if target == "gpt" or target.startswith("gpt."):
            if (name, target) not in LAZY_OWN_ALLOWED:
                bad.append(f"{modules[name].relative_to(ROOT)}:{line}: imports {target} inside a function")
            continue
        if target.split(".")[0] not in LAZY_ALLOWED and (name, target) not in LAZY_PAIRS_ALLOWED:
            bad.append(f"{modules[name].relative_to(ROOT)}:{line}: imports {target} inside a function "
                       f"(move it to the top, or add an optional dependency to LAZY_ALLOWED)")
            continue
        source_line = modules[name].read_text(encoding="utf-8").splitlines()[line - 1]
        if "#" not in source_line:
            bad.append(f"{modules[name].relative_to(ROOT)}:{line}: optional import of {target} without a "
                       f"comment saying why it is imported there")
    assert not bad, "\n".join(bad)


def test_the_checker_sees_a_planted_cycle_and_a_function_level_import():
    graph = {"gpt.a": {"gpt.b"}, "gpt.b": {"gpt.c"}, "gpt.c": {"gpt.a"}, "gpt.d": set()}
    assert find_cycle(graph) == ["gpt.a", "gpt.b", "gpt.c", "gpt.a"]
    assert find_cycle({"gpt.a": {"gpt.b"}, "gpt.b": set()}) is None
    modules, graph, lazy = import_graph()
    assert "gpt.data.registry" in graph["gpt.data.corpus"]      # a top-level import is an edge
    assert "gpt.data" in graph["gpt.training.data"]              # and so is its package's __init__
    assert ("gpt.weights", "gpt.weights.download") in {(name, target) for name, target, _ in lazy}
    assert {"gpt.model.gpt_model", "gpt.training.checkpoint", "gpt.data"} <= graph["gpt"]  # gpt's lazy table
    assert ("gpt.cli", "gpt.cli.dispatch") in {(name, target) for name, target, _ in lazy}
    assert LAZY_PAIRS_ALLOWED <= {(name, target) for name, target, _ in lazy}  # (not stale)


def test_lazy_exports_name_real_modules():
    modules = gpt_modules()
    missing = sorted(lazy_exports() - set(modules))
    assert not missing, f"gpt/__init__.py's _EXPORTS names modules that do not exist: {missing}"


def test_imports_by_name_only_where_the_checker_knows_them():
    found = set()
    for path in sorted((ROOT / "gpt").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Call) and isinstance(node.func, (ast.Attribute, ast.Name))
                    and getattr(node.func, "attr", getattr(node.func, "id", None)) in ("import_module", "__import__")):
                found.add(path.relative_to(ROOT).as_posix())
    unknown = sorted(found - IMPORT_BY_NAME_ALLOWED)
    assert not unknown, f"imports by name the layout checks cannot see (import normally): {unknown}"
    assert found == IMPORT_BY_NAME_ALLOWED, f"stale IMPORT_BY_NAME_ALLOWED entries: {IMPORT_BY_NAME_ALLOWED - found}"


@pytest.mark.parametrize("folder", ["gpt", "minigrad", "benchmarks", "examples", "tests"])
def test_no_source_file_over_400_lines(folder):
    long = []
    for path in sorted((ROOT / folder).rglob("*.py")):
        relative = path.relative_to(ROOT).as_posix()
        n_lines = len(path.read_text(encoding="utf-8").splitlines())
        if n_lines > MAX_LINES and relative not in LONG_FILES_ALLOWED:
            long.append(f"{relative}: {n_lines} lines")
    assert not long, f"files over {MAX_LINES} lines (split them by job):\n" + "\n".join(long)


def test_the_long_file_allowlist_is_not_stale():
    for relative in LONG_FILES_ALLOWED:
        path = ROOT / relative
        if path.exists():  # (a split may delete the file: then its entry goes too)
            assert len(path.read_text(encoding="utf-8").splitlines()) > MAX_LINES, (
                f"{relative} is {MAX_LINES} lines or fewer now: remove it from LONG_FILES_ALLOWED")


def readme_layout() -> list[str]:
    """The folders of the README's Layout tree, as paths, in their order."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Layout\n", 1)[1]
    block = section.split("```text\n", 1)[1].split("```", 1)[0]
    folders, stack = [], []
    for line in block.splitlines():
        name = line.split()[0]
        assert name.endswith("/"), f"README Layout: {line!r} does not start with a folder"
        depth = (len(line) - len(line.lstrip(" "))) // 2
        stack[depth:] = [name.rstrip("/")]
        folders.append("/".join(stack))
    return folders


def test_readme_layout_is_true_to_the_code():
    folders = readme_layout()
    missing = [folder for folder in folders if not (ROOT / folder).is_dir()]
    assert not missing, f"the README's Layout names folders that do not exist: {missing}"
    packages = sorted(path.parent.relative_to(ROOT).as_posix()
                      for top in ("gpt", "minigrad") for path in (ROOT / top).rglob("__init__.py"))
    unlisted = [package for package in packages if package not in folders]
    assert not unlisted, f"packages missing from the README's Layout: {unlisted}"
    gpt_order = [folder.split("/")[1] for folder in folders if folder.startswith("gpt/")]
    assert gpt_order == LAYERS, "the README lists gpt/'s folders in another order than LAYERS"
