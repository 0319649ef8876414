"""Load OpenAI's GPT-2 (either folder layout) into the book's GPTModel, and save one back.

    model, tokenizer = gpt.load_gpt2("gpt2/124M")          # OpenAI's TensorFlow folder
    model, tokenizer = gpt.load_gpt2("hf-gpt2")            # or a Hugging Face folder
    gpt.save_gpt2(model, "my-gpt2", tokenizer)             # Hugging Face layout

The two layouts (detected from the files present, `detect_layout`):

- "openai" (what the book's `gpt_download.py` fetches): hparams.json, model.ckpt.index,
  model.ckpt.data-00000-of-00001, encoder.json, vocab.bpe (checkpoint and model.ckpt.meta are
  not needed);
- "hf" (Hugging Face): config.json, model.safetensors (or model.safetensors.index.json with
  its shards), vocab.json, merges.txt; keys with or without the `transformer.` prefix.

Weights are memory-mapped, checked against the config (every missing tensor, wrong shape
or dtype is reported with its file), mapped onto the book's names (`mapping.py`) and copied
once into the model's arrays. The output head is tied to the token embedding: one array,
so the 124M model really holds 124M parameters.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np

from minigrad.serialization import current_umask
from minigrad.untrusted import read_json_file

from ..data.registry import get_tokenizer, tokenizer_from_state
from ..model.gpt_model import GPTModel
from ..training.checkpoint_checks import check_finite_state
from .bpe_files import _write_text_atomically, write_bpe_files
from .errors import WeightsError
from .mapping import (HF_SKIPPED, book_to_hf, check_config_fits_files, check_tensors, config_from_hf,
                      config_from_hparams,
                      hf_config_from_config, hf_name_to_openai, hf_to_book, hparams_from_config,
                      openai_name_to_hf)
from .safetensors import SafeTensorsFile, save_file
from .tf_checkpoint import TFCheckpoint, resolve_prefix, write_tf_checkpoint

LAYOUT_FILES = {
    "openai": ["hparams.json", "model.ckpt.index", "model.ckpt.data-00000-of-00001",
               "encoder.json", "vocab.bpe"],
    "hf": ["config.json", "model.safetensors (or model.safetensors.index.json + shards)",
           "vocab.json", "merges.txt"],
}
TOKENIZER_STATE_FILE = "tokenizer_state.json"  # non-GPT-2 tokenizers: `Tokenizer.to_state()`
MAX_JSON_BYTES = 64 << 20  # config, hparams, index and tokenizer-state files are far smaller


# ------------------------------------------------------------------ finding and reading folders

def _folder_of(path: str | os.PathLike) -> Path:
    """The folder a path points into (a folder, a file in it, or a checkpoint prefix)."""
    path = Path(path).expanduser()
    if path.is_dir():
        return path
    if path.is_file() or Path(str(path) + ".index").is_file():
        return path.parent
    raise FileNotFoundError(f"no such GPT-2 checkpoint folder: {path}")


def detect_layout(path: str | os.PathLike) -> str | None:
    """"hf", "openai" or None for a folder (or a file inside it); "hf" wins if both are there."""
    try:
        folder = _folder_of(path)
    except FileNotFoundError:
        return None
    if (folder / "config.json").is_file() and ((folder / "model.safetensors").is_file()
                                                or (folder / "model.safetensors.index.json").is_file()):
        return "hf"
    if (folder / "hparams.json").is_file() and any(folder.glob("*.index")):
        return "openai"
    return None


def is_gpt2_folder(path: str | os.PathLike) -> bool:
    """True when `path` is (or is inside) a folder `load_gpt2` can read."""
    return detect_layout(path) is not None


def _no_layout_error(folder: Path) -> WeightsError:
    present = sorted(p.name for p in folder.iterdir())[:20] if folder.is_dir() else []
    hint = ""
    if (folder / "pytorch_model.bin").is_file():
        hint = ("\npytorch_model.bin is a torch pickle, which cannot be read without torch: download "
                "model.safetensors instead (Hugging Face hosts it next to pytorch_model.bin).")
    return WeightsError(
        f"{folder} is not a GPT-2 checkpoint folder in a known layout. Expected either\n"
        f"  OpenAI (gpt download / the book's gpt_download.py): {', '.join(LAYOUT_FILES['openai'])}\n"
        f"  Hugging Face: {', '.join(LAYOUT_FILES['hf'])}\n"
        f"found: {', '.join(present) or '(nothing)'}{hint}")


def _read_json(path: Path) -> dict:
    """A JSON object from a file of the folder; anything else is a WeightsError naming it."""
    value = read_json_file(path, WeightsError, max_bytes=MAX_JSON_BYTES)
    if not isinstance(value, dict):
        raise WeightsError(f"{path}: expected a JSON object, got a {type(value).__name__}")
    return value


def _weight_files(folder: Path, layout: str) -> list[Path]:
    """The files that hold the tensors (for the size check of `check_config_fits_files`)."""
    if layout == "hf":
        if (folder / "model.safetensors").is_file():
            return [folder / "model.safetensors"]
        weight_map = _read_json(folder / "model.safetensors.index.json").get("weight_map")
        names = set(weight_map.values()) if isinstance(weight_map, dict) else set()
        return [folder / name for name in sorted(names) if isinstance(name, str)]
    return sorted(Path(str(resolve_prefix(folder))).parent.glob(resolve_prefix(folder).name + ".data-*"))


def read_hf_tensors(folder: Path) -> dict[str, tuple[str, np.ndarray]]:
    """Bare HF name -> (file, memory-mapped array) from model.safetensors or its shards."""
    index_path = folder / "model.safetensors.index.json"
    if (folder / "model.safetensors").is_file():
        files = [folder / "model.safetensors"]
    else:
        weight_map = _read_json(index_path).get("weight_map")
        if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
            raise WeightsError(f"{index_path}: no 'weight_map' object of tensor name -> file name")
        files = [folder / name for name in sorted(set(weight_map.values()))]
        for file in files:
            if not file.is_file():
                raise WeightsError(f"{index_path} lists the shard {file.name}, which is missing from {folder}")
    tensors: dict[str, tuple[str, np.ndarray]] = {}
    for file in files:
        weights = SafeTensorsFile(file)
        for key in weights:
            name = key.removeprefix("transformer.")
            if HF_SKIPPED.match(name):
                continue  # the legacy causal-mask buffers, not weights
            if name in tensors:
                raise WeightsError(f"{file}: tensor {name!r} appears twice (as {key!r} and in "
                                   f"{tensors[name][0]}); keys must be all prefixed or all bare")
            tensors[name] = (str(file), weights[key])
    return tensors


def read_openai_tensors(folder: Path, verify_crc: bool = True) -> dict[str, tuple[str, np.ndarray]]:
    """Bare HF name -> (file, memory-mapped array) from OpenAI's TensorFlow checkpoint.

    Conv1D weights lose their leading 1: (1, in, out) -> (in, out). Names GPT-2 does not use
    are kept as they are (the checks then report them as unexpected).
    """
    checkpoint = TFCheckpoint(resolve_prefix(folder), verify_crc=verify_crc)
    tensors: dict[str, tuple[str, np.ndarray]] = {}
    for key in checkpoint:
        name = openai_name_to_hf(key)
        if name is None:
            tensors[key] = (str(checkpoint.index_path), np.zeros(0, np.float32))
            continue
        array = checkpoint[key]  # checks size (and CRC) against the data file
        if array.ndim == 3 and array.shape[0] == 1 and key.endswith("/w"):
            array = array[0]  # (1, in, out) -> (in, out), still a view
        tensors[name] = (str(checkpoint.data_path(checkpoint.entries[key].shard_id)), array)
    return tensors


def read_gpt2_weights(path: str | os.PathLike, drop_rate: float = 0.0, verify_crc: bool = True,
                      strict: bool = True) -> tuple[dict, dict[str, np.ndarray], str]:
    """(book config, book state dict of read-only memmap views, layout) for a GPT-2 folder.

    Everything is checked: the folder's layout, the config file, and every tensor's presence,
    shape and dtype (all problems in one WeightsError naming the files). `out_head.weight`
    is the same array as `tok_emb.weight` unless the checkpoint has its own `lm_head.weight`.
    """
    folder = _folder_of(path)
    layout = detect_layout(folder)
    if layout is None:
        raise _no_layout_error(folder)
    if layout == "hf":
        config = _read_json(folder / "config.json")
        cfg = config_from_hf(config, str(folder / "config.json"), drop_rate)
        check_config_fits_files(cfg, str(folder / "config.json"), _weight_files(folder, layout))
        tensors = read_hf_tensors(folder)
        if "lm_head.weight" in tensors and config.get("tie_word_embeddings", True):
            del tensors["lm_head.weight"]  # tied: the head is the embedding
    else:
        cfg = config_from_hparams(_read_json(folder / "hparams.json"), str(folder / "hparams.json"), drop_rate)
        check_config_fits_files(cfg, str(folder / "hparams.json"), _weight_files(folder, layout))
        tensors = read_openai_tensors(folder, verify_crc)
    check_tensors(tensors, cfg, strict=strict)
    if "lm_head.weight" in tensors and tensors["lm_head.weight"][1].shape != (cfg["vocab_size"], cfg["emb_dim"]):
        source, head = tensors["lm_head.weight"]
        raise WeightsError(f"{source}: tensor 'lm_head.weight' has shape {list(head.shape)}, "
                           f"expected {[cfg['vocab_size'], cfg['emb_dim']]}")
    state = hf_to_book({name: array for name, (_, array) in tensors.items()}, cfg)
    return cfg, state, layout


# ------------------------------------------------------------------ loading

def _load_tokenizer(folder: Path):
    """The folder's tokenizer: tokenizer_state.json, else GPT-2's files, else None (warned)."""
    state_file = folder / TOKENIZER_STATE_FILE
    if state_file.is_file():
        return tokenizer_from_state(_read_json(state_file), path=folder)
    for vocab, merges in (("vocab.json", "merges.txt"), ("encoder.json", "vocab.bpe")):
        if (folder / vocab).is_file() and (folder / merges).is_file():
            return get_tokenizer("gpt2", path=folder)
    warnings.warn(f"{folder}: no tokenizer files (vocab.json + merges.txt, encoder.json + vocab.bpe, "
                  f"or {TOKENIZER_STATE_FILE}); load_gpt2 returns tokenizer None", stacklevel=3)
    return None


class _NoDrawGenerator:
    """Stands in for a NumPy Generator while a model is built only to be overwritten: every
    draw is a broadcast zero (no memory, no time). Drawing 124M random numbers that the
    checkpoint replaces anyway took most of load_gpt2's time (1.5 B of them for gpt2-xl)."""

    def _zeros(self, *args, size=None, **kwargs):
        return np.broadcast_to(np.float64(0.0), () if size is None else size)

    uniform = normal = standard_normal = random = _zeros


def model_without_random_init(model_class, cfg: dict, dtype):
    """`model_class(cfg, dtype)` with its weights left at zero; afterwards the model's dropout
    layers use the default generator as usual. Falls back to a normal build if the layers
    ask the generator for something it does not imitate."""
    fake = _NoDrawGenerator()
    try:
        model = model_class(cfg, dtype=dtype, generator=fake)
    except (AttributeError, TypeError, ValueError):
        return model_class(cfg, dtype=dtype)
    for module in model.modules():
        for key, value in list(vars(module).items()):
            if value is fake:
                setattr(module, key, None)  # e.g. Dropout.generator -> the default generator
    return model


def load_gpt2(path: str | os.PathLike, dtype=np.float32, *, drop_rate: float = 0.0,
              verify_crc: bool = True, strict: bool = True, load_tokenizer: bool = True,
              allow_non_finite: bool = False):
    """(GPTModel, tokenizer) from a GPT-2 folder in OpenAI's or Hugging Face's layout.

    path: the folder (or a file in it). dtype: the model's float dtype (float32 default;
      float16/bfloat16 files are widened, float64 works for gradient checks).
    drop_rate: the model's dropout (0.0, as the book's finetuning chapters use).
    verify_crc: OpenAI layout: True (default) checks every tensor's CRC-32C (about half a
      second for 124M on 2 cores: 1.1 s of CPU in all), False none; sizes are always checked.
    strict: reject tensors that are not part of GPT-2.
    allow_non_finite: load weights holding NaN or infinity with a warning (a WeightsError otherwise).
    The model is in eval mode with its output head tied to the token embedding (unless the
    folder holds a separate `lm_head.weight` with tie_word_embeddings false). The tokenizer
    is None when the folder has no tokenizer files (a warning says so).
    """
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        raise TypeError(f"load_gpt2: dtype must be a float type, got {dtype}")
    cfg, state, _ = read_gpt2_weights(path, drop_rate=drop_rate, verify_crc=verify_crc, strict=strict)
    tied = state["out_head.weight"] is state["tok_emb.weight"]
    model = model_without_random_init(GPTModel, cfg, dtype)
    if tied:
        model.tie_weights()
    targets = model.state_dict()
    if set(targets) != set(state):
        raise WeightsError(f"GPTModel's parameter names differ from the mapped checkpoint: "
                           f"model only {sorted(set(targets) - set(state))}, checkpoint only "
                           f"{sorted(set(state) - set(targets))}")
    for name, target in targets.items():
        if tied and name == "out_head.weight":
            continue  # the same array as tok_emb.weight, filled once
        if target.shape != state[name].shape:
            raise WeightsError(f"{name}: checkpoint shape {state[name].shape}, model shape {target.shape}")
        np.copyto(target, state[name], casting="same_kind")  # reads the memory-mapped file once
    check_finite_state(model.state_dict(), f"GPT-2 weights in {_folder_of(path)}", allow_non_finite,
                       error=WeightsError)
    model.eval()
    tokenizer = _load_tokenizer(_folder_of(path)) if load_tokenizer else None
    return model, tokenizer


# ------------------------------------------------------------------ saving

def _write_json(path: Path, value: dict, indent: int = 2) -> None:
    _write_text_atomically(path, json.dumps(value, indent=indent, sort_keys=False) + "\n")


def _write_tokenizer(tokenizer, folder: Path, layout: str) -> None:
    if tokenizer is None:
        return
    if getattr(tokenizer, "name", None) == "gpt2" and hasattr(tokenizer, "encoding"):
        names = ("vocab.json", "merges.txt") if layout == "hf" else ("encoder.json", "vocab.bpe")
        write_bpe_files(tokenizer, folder, *names)
    elif hasattr(tokenizer, "to_state"):
        _write_json(folder / TOKENIZER_STATE_FILE, tokenizer.to_state(), indent=None)
    else:
        raise TypeError(f"save_gpt2: tokenizer must be a gpt Tokenizer (with to_state), got {type(tokenizer).__name__}")


def save_gpt2(model, path: str | os.PathLike, tokenizer=None, *, layout: str = "hf") -> Path:
    """Write `model` (a GPTModel) and its tokenizer as a GPT-2 folder; returns the folder.

    layout "hf" (default): config.json (like transformers' GPT2Config), model.safetensors with
      `transformer.`-prefixed float32 tensors (no lm_head when the head is tied; with
      `lm_head.weight` and tie_word_embeddings false when not), vocab.json + merges.txt.
    layout "openai": hparams.json, checkpoint, model.ckpt.index + .data-00000-of-00001,
      encoder.json + vocab.bpe (no model.ckpt.meta; loaders do not need it). This format has
      no output head, so the model must be tied.
    A model without query/key/value biases gets zero biases (GPT-2 always has them). The
    GPT-2 tokenizer is written as its two files; any other tokenizer as tokenizer_state.json.
    """
    if layout not in ("hf", "openai"):
        raise ValueError(f"save_gpt2: layout must be 'hf' or 'openai', got {layout!r}")
    cfg = dict(model.cfg)
    state = model.state_dict()
    tied = np.shares_memory(state["out_head.weight"], state["tok_emb.weight"])
    tensors = {name: np.asarray(array, dtype=np.float32) for name, array in book_to_hf(state, cfg).items()}
    target = Path(path).expanduser()
    if target.exists():  # each file is replaced atomically; a failure leaves the old ones
        _write_gpt2_files(target, cfg, tensors, tied, tokenizer, layout)
        return target
    target.parent.mkdir(parents=True, exist_ok=True)  # a new folder appears only when complete
    folder = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        folder.chmod(0o777 & ~current_umask())  # mkdtemp makes 0700
        _write_gpt2_files(folder, cfg, tensors, tied, tokenizer, layout)
        os.rename(folder, target)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return target


def _write_gpt2_files(folder: Path, cfg: dict, tensors: dict, tied: bool, tokenizer, layout: str) -> None:
    eot_id = getattr(tokenizer, "eot_id", cfg["vocab_size"] - 1)
    if layout == "hf":
        prefixed = {(name if name == "lm_head.weight" else "transformer." + name): array
                    for name, array in tensors.items()}
        save_file(prefixed, folder / "model.safetensors", metadata={"format": "pt"})
        _write_json(folder / "config.json", hf_config_from_config(cfg, tied=tied, eot_id=eot_id))
    else:
        if not tied:
            raise WeightsError("save_gpt2: OpenAI's layout has no output head (logits use wte), but this "
                               "model's out_head is not tied to tok_emb; save with layout='hf' instead")
        openai = {}
        for name, array in tensors.items():
            key = hf_name_to_openai(name)
            openai[key] = array[None] if key.endswith("/w") else array  # Conv1D: (1, in, out)
        write_tf_checkpoint(folder / "model.ckpt", openai)
        _write_json(folder / "hparams.json", hparams_from_config(cfg))
        _write_text_atomically(folder / "checkpoint", 'model_checkpoint_path: "model.ckpt"\n'
                                                      'all_model_checkpoint_paths: "model.ckpt"\n')
    _write_tokenizer(tokenizer, folder, layout)
