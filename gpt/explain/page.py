"""The HTML page: static/page.html with static/page.css and the static/*.js files inlined, and
the data as one JSON script element. Nothing is fetched when the page opens (no network, no
CDN): it works offline from a double-click.
"""
from __future__ import annotations

import html
import json
import os
import re
from importlib import resources
from pathlib import Path

SCRIPTS = ("core.js", "attention.js", "lens.js", "distribution.js", "internals.js", "training.js", "main.js")


def static_text(name: str) -> str:
    """One file of gpt/explain/static/ (package data: see pyproject's [tool.setuptools.package-data])."""
    return resources.files("gpt.explain").joinpath("static", name).read_text(encoding="utf-8")


def embedded_json(data: dict) -> str:
    """JSON that is safe inside <script>: ASCII only, and no '</' that could close the element."""
    text = json.dumps(data, ensure_ascii=True, separators=(",", ":"), allow_nan=False)
    return text.replace("</", "<\\/").replace("<!--", "<\\!--")


def render_page(data: dict) -> str:
    """The whole page as one string."""
    template = static_text("page.html")
    script = "\n".join(static_text(name) for name in SCRIPTS)
    parts = {"__TITLE__": html.escape(data.get("title", "gpt explain")), "__STYLE__": static_text("page.css"),
             "__SCRIPT__": script, "__DATA__": embedded_json(data)}
    found = re.findall("|".join(parts), template)
    if sorted(found) != sorted(parts):
        raise RuntimeError(f"explain: the page template should hold each of {sorted(parts)} once, has {found}")
    return re.sub("|".join(parts), lambda match: parts[match.group(0)], template)  # one pass


def write_page(text: str, out) -> Path:
    """Write the page to `out` (atomically: a temporary file beside it, then renamed)."""
    out = Path(out).expanduser()
    folder = out.parent if str(out.parent) else Path(".")
    if out.is_dir():
        raise IsADirectoryError(f"--out {out} is a folder; give a file name such as {out / 'explain.html'}")
    if not folder.is_dir():
        raise FileNotFoundError(f"--out {out}: the folder {folder} does not exist (create it first)")
    temporary = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    try:
        temporary.write_text(text, encoding="utf-8")
        os.replace(temporary, out)
    finally:
        if temporary.exists():
            temporary.unlink()
    return out
