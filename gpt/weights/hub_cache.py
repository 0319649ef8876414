"""GPT-2 already in the Hugging Face cache: `--checkpoint openai-community/gpt2` finds the files
transformers (or `huggingface-cli download`) put there, offline, without importing either.

The cache folder is $HF_HUB_CACHE, else $HF_HOME/hub, else $XDG_CACHE_HOME/huggingface/hub, else
~/.cache/huggingface/hub; a model repo `ORG/NAME` lives in `models--ORG--NAME/`, its files in
`snapshots/<revision>/` (symlinks into `blobs/`), and `refs/main` names the revision of the
main branch. The chosen snapshot must be a folder `load_gpt2` reads (config.json +
model.safetensors + vocab.json + merges.txt).
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from .gpt2 import is_gpt2_folder

HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")  # ORG/NAME


def hub_cache_dir() -> Path:
    """The Hugging Face hub cache folder (not created)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "huggingface" / "hub"


def is_hub_id(name: str) -> bool:
    """'openai-community/gpt2'-like: ORG/NAME, no '..', and not a path that exists."""
    return bool(HUB_ID.match(str(name))) and ".." not in str(name) and not os.path.exists(name)


def find_in_hub_cache(repo_id: str) -> Path | None:
    """The snapshot folder of `repo_id` in the Hugging Face cache that load_gpt2 can read: the
    revision refs/main names, else the newest readable snapshot; None when there is none."""
    repo = hub_cache_dir() / ("models--" + repo_id.replace("/", "--"))
    snapshots = repo / "snapshots"
    if not snapshots.is_dir():
        return None
    candidates = []
    try:
        main = (repo / "refs" / "main").read_text(encoding="ascii").strip()
        candidates.append(snapshots / main)
    except (OSError, UnicodeDecodeError):
        pass
    candidates += sorted((p for p in snapshots.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime, reverse=True)
    for snapshot in candidates:
        if snapshot.is_dir() and is_gpt2_folder(snapshot):
            return snapshot
    return None


def resolve_checkpoint_path(path) -> str:
    """`path` itself, or for a hub id that is not a local path, its snapshot in the Hugging Face
    cache; a hub id not in the cache is a FileNotFoundError saying where it was looked for."""
    if not is_hub_id(str(path)):
        return str(path)
    found = find_in_hub_cache(str(path))
    if found is None:
        raise FileNotFoundError(
            f"--checkpoint {path} is not a folder here, and the Hugging Face cache ({hub_cache_dir()}) holds no "
            f"readable copy of it (models--{str(path).replace('/', '--')}/snapshots/*/ with config.json, "
            f"model.safetensors, vocab.json, merges.txt). Get it with `huggingface-cli download {path} "
            f"config.json model.safetensors vocab.json merges.txt`, or `gpt download gpt2-small`.")
    return str(found)
