"""`gpt download` against a loopback HTTP server: fresh download, resume with Range after a
cut connection, servers that ignore Range, files already present, and no server at all."""
from __future__ import annotations

import argparse
import io
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from gpt.weights import read_gpt2_weights
from gpt.weights.download import FILENAMES, add_download_parser, download_main, run_download
from weights_helpers import TINY, random_gpt2_tensors, write_openai_folder


class Handler(BaseHTTPRequestHandler):
    """Serves `root` with HEAD, GET and single Range requests; can cut a body short."""
    root: Path
    ignore_range = False
    cut_after: dict[str, int] = {}  # file name -> bytes sent before the connection is dropped
    log: list[tuple[str, str, str | None]] = []

    def log_message(self, *args):  # keep pytest output clean
        pass

    def _file(self) -> Path | None:
        path = (self.root / self.path.lstrip("/")).resolve()
        return path if path.is_file() and self.root in path.parents else None

    def do_HEAD(self):
        self.log.append(("HEAD", self.path, None))
        path = self._file()
        if path is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(path.stat().st_size))
        self.end_headers()

    def do_GET(self):
        range_header = self.headers.get("Range")
        self.log.append(("GET", self.path, range_header))
        path = self._file()
        if path is None:
            self.send_error(404)
            return
        data = path.read_bytes()
        start = 0
        if range_header and not self.ignore_range:
            start = int(range_header.removeprefix("bytes=").rstrip("-"))
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        limit = self.cut_after.pop(path.name, None)
        if limit is not None:
            self.wfile.write(body[:limit])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.wfile.write(body)


@pytest.fixture
def server(tmp_path, monkeypatch):
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    root = tmp_path / "served"
    model = write_openai_folder(root / "124M", random_gpt2_tensors(seed=1, **TINY), tokenizer_state=None)
    (model / "encoder.json").write_text('{"!": 0}')
    (model / "vocab.bpe").write_text("#version: 0.2\n")
    (model / "model.ckpt.meta").write_bytes(b"\x0a\x00meta")
    assert sorted(p.name for p in model.iterdir()) == sorted(FILENAMES)
    handler = type("TestHandler", (Handler,), {"root": root.resolve(), "log": [], "cut_after": {},
                                               "ignore_range": False})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/", handler, model
    httpd.shutdown()
    httpd.server_close()


def _same_files(a: Path, b: Path) -> bool:
    return all((a / name).read_bytes() == (b / name).read_bytes() for name in FILENAMES)


def test_download_fetches_every_file_and_checks_it(server, tmp_path):
    url, handler, model = server
    out = io.StringIO()
    assert run_download("gpt2-small", tmp_path / "models", url, timeout=5, stream=out) == 0
    folder = tmp_path / "models" / "124M"
    assert _same_files(folder, model)
    assert not list(folder.glob("*.part"))
    assert "gpt generate --checkpoint" in out.getvalue()
    cfg, _, layout = read_gpt2_weights(folder)
    assert layout == "openai" and cfg["n_layers"] == TINY["n_layer"]
    assert [entry[1] for entry in handler.log if entry[0] == "GET"] == [f"/124M/{name}" for name in FILENAMES]
    handler.log.clear()  # a second run only asks for the sizes
    out = io.StringIO()
    assert run_download("124M", tmp_path / "models", url, timeout=5, stream=out) == 0
    assert {entry[0] for entry in handler.log} == {"HEAD"}
    assert out.getvalue().count("up to date") == len(FILENAMES)


def test_cut_connection_then_resume_with_range(server, tmp_path):
    url, handler, model = server
    data_name = "model.ckpt.data-00000-of-00001"
    full = (model / data_name).stat().st_size
    handler.cut_after[data_name] = 1000
    out = io.StringIO()
    assert run_download("gpt2-small", tmp_path, url, timeout=5, stream=out) == 1
    message = out.getvalue()
    assert "could not download gpt2-small" in message and "Traceback" not in message
    assert "run the same command again to resume" in message
    part = tmp_path / "124M" / (data_name + ".part")
    assert part.stat().st_size == 1000 and not (tmp_path / "124M" / data_name).exists()
    out = io.StringIO()
    assert run_download("gpt2-small", tmp_path, url, timeout=5, stream=out) == 0
    assert ("GET", f"/124M/{data_name}", "bytes=1000-") in handler.log
    assert "resumed" in out.getvalue()
    assert (tmp_path / "124M" / data_name).stat().st_size == full and not part.exists()
    assert _same_files(tmp_path / "124M", model)


def test_server_ignoring_range_restarts_the_file(server, tmp_path):
    url, handler, model = server
    handler.ignore_range = True
    folder = tmp_path / "124M"
    folder.mkdir()
    (folder / "hparams.json.part").write_bytes(b"garbage that is not a prefix")
    assert run_download("gpt2-small", tmp_path, url, timeout=5, stream=io.StringIO()) == 0
    assert _same_files(folder, model)


def test_complete_part_file_and_stale_file(server, tmp_path):
    url, handler, model = server
    folder = tmp_path / "124M"
    folder.mkdir()
    (folder / "model.ckpt.index.part").write_bytes((model / "model.ckpt.index").read_bytes())  # whole: 416
    (folder / "hparams.json").write_text('{"n_vocab": 1}')  # an older, different file
    assert run_download("gpt2-small", tmp_path, url, timeout=5, stream=io.StringIO()) == 0
    assert _same_files(folder, model)


def test_unreachable_server_explains_what_to_do(tmp_path):
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()  # nothing listens on this port now
    out = io.StringIO()
    assert run_download("gpt2-medium", tmp_path, f"http://127.0.0.1:{port}", timeout=5, stream=out) == 1
    message = out.getvalue()
    assert "could not download gpt2-medium" in message and "Traceback" not in message
    assert str(tmp_path / "355M") in message
    for name in FILENAMES:
        assert f"{name}" in message and f"http://127.0.0.1:{port}/355M/{name}" in message
    assert "model.safetensors" in message  # the Hugging Face alternative


def test_missing_file_on_server_and_unknown_model(server, tmp_path, capsys):
    url, _, model = server
    (model / "vocab.bpe").unlink()
    out = io.StringIO()
    assert run_download("gpt2-small", tmp_path, url, timeout=5, stream=out) == 1
    assert "HTTP 404" in out.getvalue()
    assert run_download("gpt2-huge", tmp_path, url, stream=out) == 2
    assert "unknown model 'gpt2-huge'" in out.getvalue()


def test_cli_mounting(server, tmp_path, capsys):
    url, _, model = server
    parser = argparse.ArgumentParser(prog="gpt")
    add_download_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["download", "gpt2-small", "--dir", str(tmp_path), "--base-url", url, "--verify"])
    assert args.func(args) == 0
    assert _same_files(tmp_path / "124M", model)
    assert download_main(["gpt2-small", "--dir", str(tmp_path), "--base-url", url]) == 0
    assert "up to date" in capsys.readouterr().err


def test_every_alias_names_the_right_hugging_face_repo_and_a_failed_download_leaves_no_folder(tmp_path):
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()  # nothing listens on this port now
    repos = {"124M": "openai-community/gpt2", "355M": "openai-community/gpt2-medium",
             "774M": "openai-community/gpt2-large", "1558M": "openai-community/gpt2-xl"}
    for alias, size in [("124M", "124M"), ("gpt2-small", "124M"), ("355M", "355M"), ("gpt2-medium", "355M"),
                        ("gpt2-large", "774M"), ("774M", "774M"), ("gpt2-xl", "1558M"), ("1558M", "1558M")]:
        out = io.StringIO()
        (tmp_path / alias).mkdir()
        models = tmp_path / alias / "models" / "gpt2"  # made by the download, so removed when it fails
        assert run_download(alias, models, f"http://127.0.0.1:{port}", timeout=5, stream=out) == 1
        assert f"https://huggingface.co/{repos[size]})" in out.getvalue(), alias
        assert not (tmp_path / alias / "models").exists() and (tmp_path / alias).is_dir()  # what existed before stays
