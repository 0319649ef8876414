"""`gpt download gpt2-small|gpt2-medium|gpt2-large|gpt2-xl`: fetch OpenAI's GPT-2 files.

The same files, from the same place, as the book's `gpt_download.py` (chapter 5.5):
`{base}/{124M,355M,774M,1558M}/{checkpoint, encoder.json, hparams.json,
model.ckpt.data-00000-of-00001, model.ckpt.index, model.ckpt.meta, vocab.bpe}` into
`{dir}/{size}` (default `gpt2/124M`, the book's folder), with the standard library only:

- each file is streamed into `<name>.part` and renamed into place once complete, so a
  finished name is always a whole file;
- an interrupted download resumes from the `.part` file with an HTTP Range request (a server
  that ignores Range just sends everything again);
- the byte count is checked against Content-Length / Content-Range; a file already present
  is kept when its size matches the server's;
- without a network it says which files to put where (no traceback), and exits with 1.

Mounting: `download_main(argv)` runs it as a program; `add_download_parser(subparsers)`
adds the `download` sub-command to an argparse CLI (its handler is `args.func(args)`).
"""
from __future__ import annotations

import argparse
import http.client
import os
import re
import socket
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from .errors import WeightsError
from .gpt2 import read_gpt2_weights

BASE_URL = "https://openaipublic.blob.core.windows.net/gpt-2/models"
MODEL_SIZES = {"gpt2-small": "124M", "gpt2-medium": "355M", "gpt2-large": "774M", "gpt2-xl": "1558M"}
HF_REPOS = {"124M": "openai-community/gpt2", "355M": "openai-community/gpt2-medium",  # the Hugging Face
            "774M": "openai-community/gpt2-large", "1558M": "openai-community/gpt2-xl"}  # copy of each size
APPROX_BYTES = {"124M": 498e6, "355M": 1.42e9, "774M": 3.10e9, "1558M": 6.23e9}
FILENAMES = ["checkpoint", "encoder.json", "hparams.json", "model.ckpt.data-00000-of-00001",
             "model.ckpt.index", "model.ckpt.meta", "vocab.bpe"]
CHUNK_BYTES = 1 << 20
NETWORK_ERRORS = (urllib.error.URLError, http.client.HTTPException, ConnectionError, TimeoutError,
                  socket.timeout, OSError)


class DownloadError(Exception):
    """A file could not be fetched completely (the message says which and why)."""


def _model_size(name: str) -> str:
    key = name.strip().lower()
    if key in MODEL_SIZES:
        return MODEL_SIZES[key]
    for size in MODEL_SIZES.values():
        if key == size.lower():
            return size
    raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODEL_SIZES)} "
                     f"(or {', '.join(MODEL_SIZES.values())})")


def _human(n_bytes: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n_bytes < 1000 or unit == "GB":
            return f"{n_bytes:.0f} {unit}" if unit == "B" else f"{n_bytes:.1f} {unit}"
        n_bytes /= 1000
    return f"{n_bytes:.1f} GB"


def remote_size(url: str, timeout: float) -> int | None:
    """Content-Length of `url` from a HEAD request (None when the server does not say)."""
    request = urllib.request.Request(url, method="HEAD")
    with urllib.request.urlopen(request, timeout=timeout) as response:
        length = response.headers.get("Content-Length")
    return int(length) if length is not None and length.isdigit() else None


def download_file(url: str, dest: str | os.PathLike, timeout: float = 30.0, report=None) -> str:
    """Fetch `url` into `dest` (via `dest.part`, resumed if present); returns what happened:
    "up to date", "downloaded" or "resumed". Raises DownloadError or a network error."""
    dest = Path(dest)
    part = dest.with_name(dest.name + ".part")
    if dest.is_file():
        try:
            expected = remote_size(url, timeout)
        except NETWORK_ERRORS:
            return "present (not checked: server unreachable)"
        if expected is None or expected == dest.stat().st_size:
            return "up to date"
        dest.unlink()  # a different file (older release, or a broken copy): fetch it again
    start = part.stat().st_size if part.is_file() else 0
    headers = {"Range": f"bytes={start}-"} if start else {}
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as error:
        if error.code == 416 and start:  # nothing after `start`: the .part may already be whole
            expected = remote_size(url, timeout)
            if expected == start:
                os.replace(part, dest)
                return "resumed"
            part.unlink()
            return download_file(url, dest, timeout, report)
        raise DownloadError(f"{url}: HTTP {error.code} {error.reason}") from None
    with response:
        if start and response.status == 206:
            match = re.match(r"bytes (\d+)-(\d+)/(\d+|\*)", response.headers.get("Content-Range", ""))
            if not match or int(match.group(1)) != start:
                raise DownloadError(f"{url}: the server answered Range bytes={start}- with "
                                    f"Content-Range {response.headers.get('Content-Range')!r}")
            total = int(match.group(3)) if match.group(3) != "*" else None
            mode, done = "ab", start
        else:  # 200: the whole file (also when the server ignores Range)
            length = response.headers.get("Content-Length")
            total = int(length) if length is not None and length.isdigit() else None
            mode, done = "wb", 0
        resumed_from = done
        with open(part, mode) as handle:
            while True:
                chunk = response.read(CHUNK_BYTES)
                if not chunk:
                    break
                handle.write(chunk)
                done += len(chunk)
                if report:
                    report(dest.name, done, total)
    if total is not None and done != total:
        raise DownloadError(f"{url}: got {done} of {total} bytes (connection cut?); "
                            f"the partial file {part} is kept, run the command again to resume")
    os.replace(part, dest)
    return "resumed" if resumed_from else "downloaded"


def _progress_printer(stream):
    last = [0.0]

    def report(name: str, done: int, total: int | None) -> None:
        now = time.monotonic()
        if not stream.isatty() or (now - last[0] < 0.2 and done != total):
            return
        last[0] = now
        of = f" / {_human(total)}" if total else ""
        stream.write(f"\r  {name:32s} {_human(done)}{of}   ")
        stream.flush()
    return report


def offline_help(model: str, size: str, folder: Path, base_url: str) -> str:
    """What to do without a network: which files to place where."""
    files = "\n".join(f"    {name:34s} <- {base_url}/{size}/{name}" for name in FILENAMES)
    return (f"To use {model} ({size}) offline, get these files some other way and put them in {folder}/:\n"
            f"{files}\n"
            f"  (about {_human(APPROX_BYTES[size])} in all; checkpoint and model.ckpt.meta are optional)\n"
            f"or use a Hugging Face copy of the model: a folder with config.json, model.safetensors,\n"
            f"vocab.json and merges.txt (https://huggingface.co/{HF_REPOS[size]}).\n"
            f"Either folder then works with: gpt generate --checkpoint FOLDER\n"
            f"Partial downloads are kept as *.part files: run the same command again to resume.")


def _remove_if_empty(folders: list[Path]) -> None:
    """Remove the folders a failed download made, deepest first, as long as they are empty
    (a partial *.part file is kept, to resume from)."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            return


def run_download(model: str, directory: str | os.PathLike = "gpt2", base_url: str = BASE_URL,
                 timeout: float = 30.0, verify: bool = False, stream=None) -> int:
    """Download `model` into `directory/<size>`; returns a process exit code (0 ok, 1 failed)."""
    stream = stream if stream is not None else sys.stderr
    try:
        size = _model_size(model)
    except ValueError as error:
        print(f"gpt download: {error}", file=stream)
        return 2
    folder = Path(directory).expanduser() / size
    base_url = base_url.rstrip("/")
    report = _progress_printer(stream)
    current = f"{base_url}/{size}/"
    newline = "\n" if stream.isatty() else ""  # end a progress line
    created = [parent for parent in (folder, *folder.parents) if not parent.exists()]  # deepest first
    try:
        folder.mkdir(parents=True, exist_ok=True)
        print(f"gpt download: {model} ({size}) from {base_url}/{size}/ into {folder}/", file=stream)
        for name in FILENAMES:
            url = f"{base_url}/{size}/{name}"
            current = url
            status = download_file(url, folder / name, timeout=timeout, report=report)
            if stream.isatty():
                stream.write("\r" + " " * 79 + "\r")  # clear the progress line
            print(f"  {name:32s} {_human((folder / name).stat().st_size):>10s}  {status}", file=stream)
    except KeyboardInterrupt:
        _remove_if_empty(created)
        print(f"{newline}gpt download: interrupted; run the same command again to resume.", file=stream)
        return 130
    except (DownloadError, *NETWORK_ERRORS) as error:
        reason = getattr(error, "reason", None) or error
        _remove_if_empty(created)
        print(f"{newline}gpt download: could not download {model}: {reason}\n  (while fetching {current})\n"
              f"{offline_help(model, size, folder, base_url)}", file=stream)
        return 1
    try:
        cfg, _, _ = read_gpt2_weights(folder)  # checks every tensor's CRC-32C
    except (WeightsError, OSError) as error:
        print(f"gpt download: the files in {folder} are damaged: {error}\n"
              f"Delete them and run the command again.", file=stream)
        return 1
    print(f"gpt download: {model} ready ({cfg['n_layers']} layers, emb_dim {cfg['emb_dim']}); "
          f"use it with: gpt generate --checkpoint {folder}", file=stream)
    return 0


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help=f"which GPT-2: {', '.join(MODEL_SIZES)} ({', '.join(MODEL_SIZES.values())})")
    parser.add_argument("--dir", default="gpt2", help="models folder; files go into DIR/<size>, "
                        "e.g. gpt2/124M as in the book (default: gpt2)")
    parser.add_argument("--base-url", default=BASE_URL, help=f"where the files are (default: {BASE_URL})")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for the server (default: 30)")
    parser.add_argument("--verify", action="store_true",
                        help="kept for old scripts: every tensor's CRC-32C is always checked after downloading")


def _run_args(args: argparse.Namespace) -> int:
    return run_download(args.model, args.dir, args.base_url, args.timeout, args.verify)


def add_download_parser(subparsers) -> argparse.ArgumentParser:
    """Add `download` to an argparse sub-command set; the handler is `args.func(args) -> exit code`."""
    parser = subparsers.add_parser(
        "download", help="download OpenAI's GPT-2 weights (the book's gpt_download.py files)",
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_arguments(parser)
    parser.set_defaults(func=_run_args)
    return parser


def download_main(argv: list[str] | None = None) -> int:
    """`python -m gpt.weights.download gpt2-small [--dir DIR] [--base-url URL]`; returns the exit code."""
    parser = argparse.ArgumentParser(prog="gpt download", description=__doc__.split("\n\n")[0], allow_abbrev=False)
    _add_arguments(parser)
    return _run_args(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(download_main())
