"""Checkpoint folders: everything needed to use a trained model, or to resume its training exactly.

    RUN/checkpoint/
        config.json      model config, TrainConfig, tokenizer name, step (readable JSON)
        model.npz        model.state_dict()                          (minigrad.save)
        optimizer.npz    optimizer.state_dict(): AdamW moments, step  (minigrad.save, optional)
        state.npz        step, epoch, data loader position, RNG states, metrics so far,
                         tokenizer state (a trained BPE's ranks included)  (minigrad.save)
        tokenizer.tiktoken  GPT-2's ranks, for a run with the gpt2 tokenizer (tiktoken's format):
                         the run samples offline, from any folder, with no tokenizer path
        manifest.json    size and SHA-256 of every file above: written last

Writing is atomic for the folder as a whole: the files go to a fresh `RUN/.checkpoint.tmp-PID/`,
each flushed and fsync'ed, the manifest last; then the old `checkpoint/` is renamed to
`checkpoint.old/`, the new folder renamed to `checkpoint/`, and the old one removed. A crash at
any point leaves either the old or the new checkpoint complete (`checkpoint.old/` is used when
a crash fell between the two renames). Reading checks every file against the manifest, so a
truncated or altered file is an error naming the file, never silently used.

    model, tokenizer, info = gpt.load_checkpoint("runs/default")   # the run folder or checkpoint/
"""
from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import minigrad
from minigrad.serialization import CheckpointError, file_sha256, fsync_path  # one class for minigrad and gpt
from minigrad.untrusted import loads_json, read_json_file, short_repr, shorten

from ..data.registry import tokenizer_from_state
from ..model.gpt_model import GPTModel
from .checkpoint_checks import check_finite_state, check_model_config

FORMAT = "minigrad-gpt checkpoint"
VERSION = 1
CHECKPOINT_DIR = "checkpoint"
OLD_DIR = "checkpoint.old"
MANIFEST = "manifest.json"
CONFIG_FILE = "config.json"


MAX_JSON_BYTES = 64 << 20  # config.json and manifest.json are a few KB
MODEL_STATE = "model.npz"
STATE_FILE = "state.npz"
TOKENIZER_FILE = "tokenizer.tiktoken"  # GPT-2's ranks, so a gpt2-tokenizer run needs no files elsewhere


@dataclass
class Checkpoint:
    """The parts of a checkpoint folder, as read by `read_checkpoint` (nothing built yet)."""

    path: Path                  # the checkpoint folder itself
    config: dict                # config.json: model_config, train_config, tokenizer name, step, ...
    model_state: dict           # name -> ndarray
    optimizer_state: dict | None
    state: dict                 # step, epoch, loader, rng, metrics, tokenizer, elapsed, ...
    files: tuple = ()           # the file names its manifest lists (each checked against its SHA-256)

    @property
    def model_config(self) -> dict:
        return dict(self.config["model_config"])

    @property
    def step(self) -> int:
        return int(self.state.get("step", self.config.get("step", 0)))


# ------------------------------------------------------------------------------ writing
def _write_json(path: Path, obj) -> None:
    with open(path, "w") as f:
        json.dump(obj, f, indent=1, default=_json_default)
        f.flush()
        os.fsync(f.fileno())


def _json_default(value):
    if hasattr(value, "item"):  # NumPy scalars
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON-serializable: {type(value).__name__}")


def save_checkpoint(run_dir, model, tokenizer=None, *, optimizer=None, model_config: dict | None = None,
                    train_config: dict | None = None, state: dict | None = None,
                    optimizer_state: dict | None = None) -> Path:
    """Write `run_dir/checkpoint/` atomically (see the module docstring); returns its path.

    model: a GPTModel (its `state_dict()` and `cfg` are stored).
    tokenizer: stored through `tokenizer.to_state()` (None: no tokenizer, generate needs ids).
    optimizer: its `state_dict()` is stored when given (needed to resume); or optimizer_state,
    a state dict made already (ZeRO-1 gathers it from every rank, gpt.training.zero).
    train_config: TrainConfig as a dict. state: step, epoch, loader, rng, metrics, ... (any
    structure minigrad.save accepts).
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    final, old = run_dir / CHECKPOINT_DIR, run_dir / OLD_DIR
    check_not_symlinks(run_dir)
    temporary = run_dir / f".checkpoint.tmp-{os.getpid()}"
    for stale in run_dir.glob(".checkpoint.tmp-*"):  # left by a process killed while saving
        shutil.rmtree(stale, ignore_errors=True)
    temporary.mkdir()
    try:
        state = dict(state or {})
        if tokenizer is not None:
            state["tokenizer"] = tokenizer.to_state()
            if state["tokenizer"].get("kind") == "gpt2" and hasattr(tokenizer, "tiktoken_file_bytes"):
                with open(temporary / TOKENIZER_FILE, "wb") as f:
                    f.write(tokenizer.tiktoken_file_bytes())
                    f.flush()
                    os.fsync(f.fileno())
        model_config = dict(model_config if model_config is not None else model.cfg)
        minigrad.save(model.state_dict(), temporary / "model.npz")
        if optimizer is not None:
            optimizer_state = optimizer.state_dict()
        if optimizer_state is not None:
            minigrad.save(optimizer_state, temporary / "optimizer.npz")
        minigrad.save(state, temporary / "state.npz")
        _write_json(temporary / CONFIG_FILE, {
            "format": FORMAT, "version": VERSION, "step": int(state.get("step", 0)),
            "epoch": state.get("epoch"), "model_config": model_config,
            "train_config": train_config, "tokenizer": getattr(tokenizer, "name", None),
            "weights_tied": bool(getattr(model, "weights_tied", False)),
            "saved_at": time.strftime("%Y-%m-%d %H:%M:%S"),
        })
        files = {}
        for path in sorted(temporary.iterdir()):
            files[path.name] = {"bytes": path.stat().st_size, "sha256": file_sha256(path)}
        _write_json(temporary / MANIFEST, {"format": FORMAT, "version": VERSION, "files": files})
        fsync_path(temporary)
        # swap: checkpoint -> checkpoint.old, tmp -> checkpoint, drop checkpoint.old
        if final.exists():
            if old.exists():
                shutil.rmtree(old)
            os.rename(final, old)
        os.rename(temporary, final)
        fsync_path(run_dir)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    shutil.rmtree(old, ignore_errors=True)
    return final


def check_not_symlinks(run_dir: Path) -> None:
    """A save swaps checkpoint/ and checkpoint.old/ by renaming them: a symbolic link there
    would be renamed (and its target left behind), so it is refused before anything is written."""
    for name in (CHECKPOINT_DIR, OLD_DIR):
        if (run_dir / name).is_symlink():
            raise CheckpointError(f"{run_dir / name} is a symbolic link (to {os.readlink(run_dir / name)}); "
                                  f"a run folder's {name}/ must be a real folder, as saves replace it by "
                                  f"renaming: move the run folder itself instead of linking {name}/")


# ------------------------------------------------------------------------------ reading
def _read_json_object(path: Path, what: str) -> dict:
    """A JSON object from a checkpoint file, or a CheckpointError naming the file."""
    value = read_json_file(path, CheckpointError, max_bytes=MAX_JSON_BYTES)
    if not isinstance(value, dict):
        raise CheckpointError(f"{path}: the {what} must be a JSON object, got a {type(value).__name__}")
    return value


def _looks_like_checkpoint(folder: Path) -> bool:
    """A folder written by save_checkpoint (complete or not); a Hugging Face GPT-2 folder
    also has a config.json, so that file alone counts only with this format's marker."""
    if (folder / MANIFEST).exists() or (folder / MODEL_STATE).exists():
        return True
    try:
        if (folder / CONFIG_FILE).stat().st_size > MAX_JSON_BYTES:
            return False
        config = loads_json((folder / CONFIG_FILE).read_bytes(), str(folder / CONFIG_FILE), CheckpointError)
        return isinstance(config, dict) and config.get("format") == FORMAT
    except (OSError, CheckpointError):
        return False


def is_checkpoint(path) -> bool:
    """True when `path` is a run folder with a checkpoint, or a checkpoint folder."""
    path = Path(path)
    if not path.is_dir():
        return False
    return any(_looks_like_checkpoint(folder) for folder in (path, path / CHECKPOINT_DIR, path / OLD_DIR)
               if folder.is_dir())


def find_checkpoint(path) -> Path:
    """The checkpoint folder for `path`: the folder itself, `path/checkpoint`, or (after a crash
    between the two renames of a save) `path/checkpoint.old`."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint: {path} does not exist")
    if not path.is_dir():
        raise CheckpointError(f"checkpoint: {path} is a file; give the run folder (the --out of "
                              f"`gpt train`) or its checkpoint/ folder")
    if _looks_like_checkpoint(path):
        return path
    for name in (CHECKPOINT_DIR, OLD_DIR):
        if (path / name).is_dir():
            return path / name
    temporaries = list(path.glob(".checkpoint.tmp-*"))
    hint = (" (only an unfinished save was found: the run was killed while writing its first "
            "checkpoint)" if temporaries else "")
    raise CheckpointError(f"checkpoint: no checkpoint in {path}: expected {path / CHECKPOINT_DIR}/ "
                          f"with {MANIFEST}{hint}")


def verify_checkpoint(folder) -> dict:
    """Check every file of a checkpoint folder against its manifest; returns the manifest."""
    folder = Path(folder)
    manifest_path = folder / MANIFEST
    if not manifest_path.is_file():
        raise CheckpointError(f"checkpoint {folder} is incomplete: {MANIFEST} is missing (it is "
                              f"written last, so the save did not finish)")
    manifest = _read_json_object(manifest_path, "manifest")
    if manifest.get("format") != FORMAT:
        raise CheckpointError(f"{manifest_path} is corrupt: format is {short_repr(manifest.get('format'))}, "
                              f"expected {FORMAT!r}")
    if manifest.get("version") != VERSION:
        raise CheckpointError(f"checkpoint {folder} has format version {short_repr(manifest.get('version'))}, "
                              f"this program reads version {VERSION}")
    files = manifest.get("files")
    if not isinstance(files, dict) or not all(
            isinstance(name, str) and name == Path(name).name and name not in ("", ".", "..")
            and isinstance(entry, dict) and type(entry.get("bytes")) is int and isinstance(entry.get("sha256"), str)
            for name, entry in files.items()):
        raise CheckpointError(f"{manifest_path} is corrupt: 'files' must map each file name of the folder "
                              f"to {{\"bytes\": int, \"sha256\": str}}, got {short_repr(files)}")
    for name, expected in files.items():
        path = folder / name
        if not path.is_file():
            raise CheckpointError(f"checkpoint {folder}: {name} is missing")
        size = path.stat().st_size
        if size != expected["bytes"]:
            raise CheckpointError(f"checkpoint {folder}: {name} is truncated or altered: "
                                  f"{size:,} bytes, the manifest says {expected['bytes']:,}")
        if file_sha256(path) != expected["sha256"]:
            raise CheckpointError(f"checkpoint {folder}: {name} is corrupt: its SHA-256 differs "
                                  f"from the manifest's")
    for required in (CONFIG_FILE, MODEL_STATE, STATE_FILE):
        if required not in files:
            raise CheckpointError(f"checkpoint {folder}: the manifest lists no {required}")
    return manifest


def read_checkpoint(path, with_optimizer: bool = True) -> Checkpoint:
    """Read and verify a checkpoint folder (or a run folder holding one); builds nothing."""
    folder = find_checkpoint(path)
    manifest = verify_checkpoint(folder)
    config = _read_json_object(folder / CONFIG_FILE, "checkpoint config")
    check_model_config(folder / CONFIG_FILE, folder / MODEL_STATE, config)
    try:
        model_state = minigrad.load(folder / MODEL_STATE)
        state = minigrad.load(folder / STATE_FILE)
        optimizer_state = None
        if with_optimizer and "optimizer.npz" in manifest["files"]:
            optimizer_state = minigrad.load(folder / "optimizer.npz")
    except CheckpointError:
        raise  # minigrad.load's: names the file already
    except (ValueError, OSError) as error:
        raise CheckpointError(f"checkpoint {folder} cannot be read: {shorten(error)}") from None
    for name, value in ((MODEL_STATE, model_state), (STATE_FILE, state)):
        if not isinstance(value, dict):
            raise CheckpointError(f"{folder / name} holds a {type(value).__name__}, expected a dict")
    if not all(isinstance(k, str) and isinstance(v, np.ndarray) for k, v in model_state.items()):
        raise CheckpointError(f"{folder / MODEL_STATE} must map parameter names to arrays")
    return Checkpoint(folder, config, model_state, optimizer_state, state, tuple(manifest["files"]))


def check_model_state(model, model_state: dict, where: str = "checkpoint") -> None:
    """Clear error when the stored weights do not fit `model` (names or shapes)."""
    expected = {name: np.shape(value) for name, value in model.state_dict().items()}
    found = {name: np.shape(value) for name, value in model_state.items()}
    missing = [name for name in expected if name not in found]
    unexpected = [name for name in found if name not in expected]
    wrong = [(name, found[name], shape) for name, shape in expected.items()
             if name in found and found[name] != shape]
    if missing or unexpected or wrong:
        parts = []
        if wrong:
            parts.append("shapes differ: " + "; ".join(
                f"{name} is {got} in the checkpoint, {want} in the model" for name, got, want in wrong[:4]))
        if missing:
            parts.append(f"missing from the checkpoint: {missing[:4]}")
        if unexpected:
            parts.append(f"not in the model: {unexpected[:4]}")
        raise CheckpointError(f"{where} does not fit this model ({'; '.join(parts)})")


def build_model(checkpoint: Checkpoint, dtype=np.float32, allow_non_finite: bool = False):
    """A GPTModel with the checkpoint's config and weights (in eval mode), in `dtype`
    (float32 by default; float64 for gradient checks: the stored arrays are converted)."""
    try:
        model = GPTModel(checkpoint.model_config, dtype=dtype)
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"checkpoint {checkpoint.path}: bad model config: {shorten(error)}") from None
    if checkpoint.config.get("weights_tied"):
        model.tie_weights()
    check_model_state(model, checkpoint.model_state, f"checkpoint {checkpoint.path}")
    check_finite_state(checkpoint.model_state, f"checkpoint {checkpoint.path / MODEL_STATE}", allow_non_finite)
    dtype = np.dtype(dtype)
    model.load_state_dict({name: value.astype(dtype, copy=False) if value.dtype.kind == "f" else value
                           for name, value in checkpoint.model_state.items()})
    model.eval()
    return model


def build_tokenizer(checkpoint: Checkpoint, tokenizer_path=None):
    """The tokenizer stored with the checkpoint (None when the run stored none).

    A trained BPE is rebuilt from its stored merges; GPT-2's is loaded from `tokenizer_path`,
    else from the ranks the checkpoint carries (tokenizer.tiktoken), else by the usual search
    (GPT2_TOKENIZER_DIR, tiktoken's cache), and checked to be the same vocabulary.
    """
    state = checkpoint.state.get("tokenizer")
    if state is None:
        return None
    carried = checkpoint.path / TOKENIZER_FILE
    if tokenizer_path is None and TOKENIZER_FILE in checkpoint.files and carried.is_file():
        tokenizer_path = carried  # its SHA-256 was checked against the manifest; its ranks hash below
    try:
        return tokenizer_from_state(state, path=tokenizer_path)
    except (ValueError, KeyError, TypeError) as error:
        raise CheckpointError(f"checkpoint {checkpoint.path}: the stored tokenizer cannot be "
                              f"rebuilt: {shorten(error)}") from None


def load_checkpoint(path, dtype=np.float32, tokenizer_path=None, allow_non_finite: bool = False):
    """`(model, tokenizer, info)` from a run folder or its checkpoint folder.

    tokenizer_path: where GPT-2's tokenizer files are, for a run trained with "gpt2" (default:
    GPT2_TOKENIZER_DIR or tiktoken's cache); not needed for "bytes" and trained BPEs.
    allow_non_finite: load weights holding NaN or infinity with a warning (refused otherwise).

    model: GPTModel in eval mode. tokenizer: as trained with (None if none was stored).
    info: dict with step, epoch, model_config, train_config, metrics (list of dicts), path,
    val_loss (the last evaluated, or None) and elapsed (training seconds).
    """
    checkpoint = read_checkpoint(path, with_optimizer=False)
    model = build_model(checkpoint, dtype=dtype, allow_non_finite=allow_non_finite)
    tokenizer = build_tokenizer(checkpoint, tokenizer_path)
    metrics = list(checkpoint.state.get("metrics") or [])
    val_losses = [record["val_loss"] for record in metrics if "val_loss" in record]
    info = {
        "path": str(checkpoint.path),
        "step": checkpoint.step,
        "epoch": checkpoint.state.get("epoch"),
        "model_config": checkpoint.model_config,
        "train_config": checkpoint.config.get("train_config"),
        "tokenizer": checkpoint.config.get("tokenizer"),
        "metrics": metrics,
        "val_loss": val_losses[-1] if val_losses else None,
        "elapsed": checkpoint.state.get("elapsed"),
    }
    return model, tokenizer, info
