"""A training run's metrics.jsonl as the page's charts, for whatever keys the records hold.

Every number in a record becomes a series over `step`: nested dicts join their keys with '.',
lists index with [i]. Numbers that differ only by an index (`layers[3].grad_norm`,
`trf_blocks.3.att.W_query.weight.grad_norm`) share one chart with a line per index; the losses
share the first chart. Charts are grouped into sections by their first two keys when the first
is a dict (`diagnostics.layers`, `diagnostics.params`, as `gpt train --diagnostics N` writes).
Histogram-like data (a key containing "histogram", or lists longer than MAX_LIST) is skipped
and counted: a line per bin says nothing.
"""
from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np

METRICS_FILE = "metrics.jsonl"
MAX_POINTS = 2000   # points per line kept (evenly thinned beyond)
MAX_CHARTS = 150
MAX_LIST = 32
MAIN_SECTION = "metrics"


def read_metrics(run_dir: Path, stored: list) -> tuple[list, str | None]:
    """metrics.jsonl's records (lines that are not JSON objects skipped, and counted in the note);
    the checkpoint's stored records when the file is absent."""
    path = Path(run_dir) / METRICS_FILE
    if not path.is_file():
        return stored, (f"no {METRICS_FILE} in {run_dir}: drawn from the checkpoint's records" if stored else None)
    records, bad = [], 0
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.strip():
                try:
                    record = json.loads(line)
                except ValueError:
                    record = None
                if isinstance(record, dict):
                    records.append(record)
                else:
                    bad += 1
    return records, (f"{bad} line(s) of {path} are not JSON records and were skipped" if bad else None)


def _flatten(value, path: str, out: list, skipped: set) -> None:
    """(path, number) pairs of a JSON value: dict keys joined by '.', list items as [i]."""
    if isinstance(value, bool):
        return
    if isinstance(value, (int, float)):
        if math.isfinite(value):
            out.append((path, float(value)))
    elif isinstance(value, dict):
        for key, item in value.items():
            child = f"{path}.{key}" if path else str(key)
            if "histogram" in str(key).lower():
                skipped.add(child)
            else:
                _flatten(item, child, out, skipped)
    elif isinstance(value, list):
        if len(value) > MAX_LIST:
            skipped.add(path)
            return
        for index, item in enumerate(value):
            _flatten(item, f"{path}[{index}]", out, skipped)


def _chart_of(path: str, evaluated: bool) -> tuple[str, str, str]:
    """(section, chart title, line label) of one flattened path."""
    parts = path.split(".", 2)
    if len(parts) == 3:  # "diagnostics.layers.x" or "diagnostics.layers[3].x": section diagnostics.layers
        second = re.sub(r"\[\d+\]", "", parts[1])
        section = f"{parts[0]}.{second}"
        rest = f"{parts[1]}.{parts[2]}" if parts[1] != second else parts[2]
    else:
        section, rest = MAIN_SECTION, path
    indices = re.findall(r"\d+", rest)
    if indices:
        return section, re.sub(r"\d+", "#", rest), ",".join(indices)
    if section == MAIN_SECTION and "loss" in path:
        return section, "loss", f"{path} (at evaluation)" if evaluated and not path.startswith("val") else path
    return section, rest, rest


def training_data(records: list) -> dict | None:
    """{"sections": [{"name", "charts": [{"title", "series": [{"label", "points"}]}]}], "records",
    "skipped"} for a run's records, or None when they hold no numbers."""
    series: dict[tuple, dict[str, list]] = {}
    skipped: set = set()
    for number, record in enumerate(records):
        if not isinstance(record, dict):
            continue
        step = record.get("step", number)
        if isinstance(step, bool) or not isinstance(step, (int, float)):
            step = number
        evaluated = any(str(key).startswith("val") for key in record)  # an evaluation record
        pairs: list = []
        for key, value in record.items():
            if key != "step":
                _flatten(value, str(key), pairs, skipped)
        for path, value in pairs:
            section, title, label = _chart_of(path, evaluated)
            series.setdefault((section, title), {}).setdefault(label, []).append([step, float(f"{value:.6g}")])
    if not series:
        return None
    sections: dict[str, list] = {}
    for section, title in series:  # sections in order of first appearance, the run's own first
        sections.setdefault(section, [])
    order = sorted(series, key=lambda key: (key[0] != MAIN_SECTION, list(sections).index(key[0]),
                                            key[1] != "loss", "#" not in key[1], key[1]))
    for key in order[:MAX_CHARTS]:
        lines = []
        for label, points in series[key].items():
            if len(points) > MAX_POINTS:
                keep = np.unique(np.linspace(0, len(points) - 1, MAX_POINTS).astype(int))
                points = [points[i] for i in keep]
            lines.append({"label": label, "points": points})
        sections[key[0]].append({"title": key[1], "series": lines})
    return {"sections": [{"name": name, "charts": charts} for name, charts in sections.items() if charts],
            "records": len(records), "dropped_charts": max(0, len(order) - MAX_CHARTS),
            "skipped": sorted({re.sub(r"\d+", "#", path) for path in skipped})}
