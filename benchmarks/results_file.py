"""Write one benchmark's section of a markdown results file (benchmarks/RESULTS.md), keeping the rest.

Each writer owns the lines between its two markers, HTML comments that a markdown viewer hides:

    <!-- begin: python -m benchmarks -->
    ... replaced by each `python -m benchmarks --markdown PATH` ...
    <!-- end: python -m benchmarks -->

`python -m benchmarks.kernels --markdown PATH` owns "python -m benchmarks.kernels" the same
way. Everything outside a writer's markers (the title, notes written by hand, the other
writers' sections) is kept as it is. A file without the writer's markers gets the marked
section appended at its end (a new file: just the section), so nothing is ever dropped.
"""
from __future__ import annotations

from pathlib import Path


def markers(name: str) -> tuple[str, str]:
    """The begin and end marker lines of section `name`."""
    return f"<!-- begin: {name} -->", f"<!-- end: {name} -->"


def replace_section(document: str, name: str, body: str) -> str:
    """`document` with section `name`'s lines replaced by `body` (appended when not marked yet).

    Refuses (ValueError naming the section) a document whose markers are unpaired or out of
    order, rather than guess which lines are the writer's.
    """
    begin, end = markers(name)
    lines = document.splitlines()
    starts = [i for i, line in enumerate(lines) if line.strip() == begin]
    stops = [i for i, line in enumerate(lines) if line.strip() == end]
    section = [begin, "", *body.strip("\n").splitlines(), "", end]  # blank lines: markdown blocks end
    if not starts and not stops:
        gap = [""] if lines and lines[-1].strip() else []
        return "\n".join(lines + gap + section) + "\n"
    if len(starts) != 1 or len(stops) != 1 or stops[0] < starts[0]:
        raise ValueError(f"results file: the markers of section {name!r} must appear once each, "
                         f"{begin!r} before {end!r}; found {len(starts)} begin and {len(stops)} end")
    return "\n".join(lines[:starts[0]] + section + lines[stops[0] + 1:]) + "\n"


def write_section(path, name: str, body: str) -> None:
    """Replace section `name` of the markdown file at `path` by `body` (the file is created if absent)."""
    path = Path(path)
    document = path.read_text(encoding="utf-8") if path.exists() else ""
    path.write_text(replace_section(document, name, body), encoding="utf-8")
