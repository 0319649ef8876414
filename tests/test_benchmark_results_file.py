"""benchmarks/RESULTS.md is written in sections: `python -m benchmarks --markdown` replaces only its
own marked section and `python -m benchmarks.kernels --markdown` only the kernels one, so neither
drops the other's figures nor the notes written by hand (no benchmark is run here)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # benchmarks/ is not installed

from benchmarks import __main__ as bench  # noqa: E402
from benchmarks import report as tables  # noqa: E402
from benchmarks import kernels  # noqa: E402
from benchmarks.results_file import markers, replace_section, write_section  # noqa: E402


def test_a_section_is_replaced_and_the_rest_kept():
    begin, end = markers("one")
    document = f"# Title\n\nby hand\n{begin}\nold figures\n{end}\n\n## Later notes\nkept\n"
    updated = replace_section(document, "one", "new figures\n| a | b |\n")
    assert "old figures" not in updated and "new figures\n| a | b |" in updated
    assert updated.startswith("# Title\n\nby hand\n") and updated.endswith("## Later notes\nkept\n")
    assert replace_section(updated, "one", "new figures\n| a | b |\n") == updated  # idempotent
    other = replace_section(updated, "two", "second")  # a new section goes at the end
    assert other.startswith(updated) and other.rstrip().endswith(markers("two")[1])
    assert replace_section(other, "one", "third").count("kept") == 1


def test_unpaired_markers_are_refused_naming_the_section():
    begin, end = markers("one")
    for document in (f"{begin}\nx\n", f"x\n{end}\n", f"{end}\n{begin}\n", f"{begin}\n{begin}\n{end}\n"):
        with pytest.raises(ValueError, match="markers of section 'one' must appear once each"):
            replace_section(document, "one", "y")


def test_write_section_creates_then_updates_a_file(tmp_path):
    path = tmp_path / "results.md"
    write_section(path, "one", "first")
    assert path.read_text() == f"{markers('one')[0]}\n\nfirst\n\n{markers('one')[1]}\n"
    path.write_text("# by hand\n" + path.read_text())
    write_section(path, "one", "second")
    assert path.read_text().startswith("# by hand\n") and "second" in path.read_text()
    assert "first" not in path.read_text()


def fake_report():
    result = {"config": "bench-tiny", "engine": "minigrad", "parameters": 9e5, "step_ms": 100.0,
              "tokens_per_s": 20480.0, "mfu": 0.4, "peak_rss": 2e8}
    return {"date": "today", "machine": "test", "numpy": np.__version__, "blas": None, "threads": 2,
            "drop_rate": 0.1, "seconds": 1.0, "gemm": {"peak": 2e11, "shapes": {"2048x2048x2048": 2e11}},
            "results": [result]}


def test_the_main_writer_keeps_the_kernels_section_of_results_md(tmp_path):
    committed = (ROOT / "benchmarks" / "RESULTS.md").read_text()
    for name in (bench.MARKDOWN_SECTION, kernels.MARKDOWN_SECTION):
        assert committed.count(markers(name)[0]) == 1 and committed.count(markers(name)[1]) == 1
    path = tmp_path / "RESULTS.md"
    path.write_text(committed)
    write_section(path, bench.MARKDOWN_SECTION, tables.markdown(fake_report()))
    text = path.read_text()
    assert "Machine: test, 2 threads" in text and "Machine: AMD EPYC" not in text  # replaced
    kernels_part = committed.split(markers(kernels.MARKDOWN_SECTION)[0])[1]
    preamble = committed.split(markers(bench.MARKDOWN_SECTION)[0])[0]  # title and notes
    assert kernels_part in text and text.startswith(preamble)  # kept as written
    assert text.startswith("# Benchmark results")
    # and the kernels writer replaces its section only, keeping the main one
    args = argparse.Namespace(threads=1, only=["conv2d"], markdown=str(path))
    lines = ["| kernel | shape |", "|---|---|", "| conv2d | (32, 64, 32, 32) |"]
    write_section(path, kernels.MARKDOWN_SECTION, kernels.markdown_section(lines, args))
    text = path.read_text()
    assert "`python -m benchmarks.kernels --threads 1 --only conv2d`:" in text
    assert "| conv2d | (32, 64, 32, 32) |" in text and "83-92%" not in text
    assert "Machine: test, 2 threads" in text and text.startswith(preamble)


def test_both_writers_take_the_flag_and_say_they_keep_the_rest(capsys):
    assert kernels.parse_args(["--markdown", "x.md"]).markdown == "x.md"
    assert bench.parse_args(["--markdown", "x.md"]).markdown == "x.md"
    for parse in (kernels.parse_args, bench.parse_args):
        with pytest.raises(SystemExit):
            parse(["--help"])
        assert "marked" in " ".join(capsys.readouterr().out.split())
