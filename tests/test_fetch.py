"""bench-fetch against a real HTTP server on 127.0.0.1 that the test starts: a full download through a
redirect and figshare's first "202 Accepted", a download cut off half-way and resumed with a Range
request, a wrong checksum (OUT unchanged), no server (a fast one-line error), a zip-slip archive;
and `bench-fetch mura --verify` on a MURA-layout fixture with a missing and an extra file."""

from __future__ import annotations

import hashlib
import io
import socket
import threading
import time
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from bench.cli import fetch as fetch_cli

try:
    from bench.testing.fixtures import make_fracatlas, make_mura
except ImportError:  # before the fixtures moved to bench.testing
    from bench.data.fixtures import make_fracatlas, make_mura


def _zip_of(folder: Path, top: str = "FracAtlas") -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for p in sorted(folder.rglob("*")):
            if p.is_file():
                zf.write(p, f"{top}/{p.relative_to(folder)}")
    return buf.getvalue()


class _Server:
    """Serves one payload at /file with Range support; /redirect answers 302 to /file. Knobs: answer
    202 first, cut the first full response off after ``cut`` bytes."""

    def __init__(self, payload: bytes, accepted_first: bool = False, cut: int | None = None):
        self.payload, self.accepted_first, self.cut, self.requests = payload, accepted_first, cut, []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):  # keep pytest output clean
                pass

            def do_GET(self):
                server.requests.append((self.path, self.headers.get("Range")))
                if self.path == "/redirect":
                    self.send_response(302)
                    self.send_header("Location", "/file")
                    self.end_headers()
                    return
                if server.accepted_first:
                    server.accepted_first = False
                    self.send_response(202)
                    self.send_header("Retry-After", "0")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                start = 0
                rng = self.headers.get("Range")
                if rng:
                    start = int(rng.split("=")[1].split("-")[0])
                body = server.payload[start:]
                self.send_response(206 if rng else 200)
                if rng:
                    self.send_header("Content-Range", f"bytes {start}-{len(server.payload) - 1}/{len(server.payload)}")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if server.cut is not None and not rng:
                    self.wfile.write(body[: server.cut])
                    self.wfile.flush()
                    server.cut = None
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def release_zip(tmp_path_factory) -> bytes:
    root = tmp_path_factory.mktemp("fixture") / "fracatlas"
    make_fracatlas(root, n=24, seed=0, bad_files=False)
    return _zip_of(root)


def _one_error(err: str) -> str:
    """The error is one line, the last one printed (progress lines may come before it)."""
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert lines and lines[-1].startswith("error: ") and sum(ln.startswith("error:") for ln in lines) == 1, err
    return lines[-1]


def _args(server: _Server, out: Path, cache: Path, payload: bytes, path: str = "/redirect", sha: str | None = None,
          check: bool = False):
    return ["fracatlas", "--out", str(out), "--cache-dir", str(cache), "--url", f"{server.url}{path}",
            "--sha256", sha or hashlib.sha256(payload).hexdigest(), "--size", str(len(payload))] + ([] if check else ["--no-check"])


def test_full_download_through_redirect_and_202(tmp_path, release_zip, capsys):
    with _Server(release_zip, accepted_first=True) as srv:
        rc = fetch_cli.main(_args(srv, tmp_path / "data", tmp_path / "cache", release_zip, check=True))
    assert rc == 0, capsys.readouterr().err
    target = tmp_path / "data" / "fracatlas"
    assert (target / "dataset.csv").is_file()
    assert len(list((target / "images").rglob("*.jpg"))) == 24
    assert [p for p, _ in srv.requests].count("/redirect") >= 2  # 202 answered, then asked again
    assert [p.name for p in (tmp_path / "data").iterdir()] == ["fracatlas"]  # no temporary folder left
    out = capsys.readouterr().out
    assert "images=24" in out and "leakage across splits" in out  # the data check's report followed
    assert out.rstrip().splitlines()[-1].startswith(f"done: FracAtlas is in {target}")


def test_cut_off_download_resumes_with_range(tmp_path, release_zip, capsys):
    half = len(release_zip) // 2
    with _Server(release_zip, cut=half) as srv:
        rc1 = fetch_cli.main(_args(srv, tmp_path / "data", tmp_path / "cache", release_zip, path="/file"))
        err = capsys.readouterr().err
        assert rc1 == 2 and "again to resume" in _one_error(err)
        assert not (tmp_path / "data" / "fracatlas").exists()
        parts = list((tmp_path / "cache" / "downloads").glob("*.part"))
        assert len(parts) == 1 and 0 < parts[0].stat().st_size < len(release_zip)
        have = parts[0].stat().st_size
        rc2 = fetch_cli.main(_args(srv, tmp_path / "data", tmp_path / "cache", release_zip, path="/file"))
    assert rc2 == 0
    assert srv.requests[-1] == ("/file", f"bytes={have}-")
    assert (tmp_path / "data" / "fracatlas" / "dataset.csv").is_file()


def test_wrong_checksum_leaves_out_unchanged(tmp_path, release_zip, capsys):
    out = tmp_path / "data"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with _Server(release_zip) as srv:
        rc = fetch_cli.main(_args(srv, out, tmp_path / "cache", release_zip, sha="0" * 64))
    err = _one_error(capsys.readouterr().err)
    assert rc == 2 and "SHA-256" in err
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]
    assert not list((tmp_path / "cache" / "downloads").glob("*.part"))  # a bad download is not resumed


def test_no_server_fails_fast_with_manual_steps(tmp_path, capsys):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    t = time.perf_counter()
    rc = fetch_cli.main(["fracatlas", "--out", str(tmp_path / "d"), "--cache-dir", str(tmp_path / "c"),
                         "--url", f"http://127.0.0.1:{port}/x", "--sha256", "0" * 64, "--no-check"])
    err = _one_error(capsys.readouterr().err)
    assert rc == 2 and time.perf_counter() - t < 5
    assert "cannot reach" in err and "manual steps" in err
    assert not (tmp_path / "d").exists()


def test_zip_slip_archive_is_refused(tmp_path, capsys):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("FracAtlas/dataset.csv", "image_id\n")
        zf.writestr("../../escaped.txt", "x")
    archive = tmp_path / "evil.zip"
    archive.write_bytes(buf.getvalue())
    rc = fetch_cli.main(["fracatlas", "--out", str(tmp_path / "d"), "--from-file", str(archive),
                         "--sha256", hashlib.sha256(buf.getvalue()).hexdigest(), "--size", str(len(buf.getvalue())),
                         "--no-check"])
    assert rc == 2 and "outside" in capsys.readouterr().err
    assert not (tmp_path.parent / "escaped.txt").exists() and not (tmp_path / "escaped.txt").exists()
    assert not (tmp_path / "d" / "fracatlas").exists()


def test_mura_verify_reports_missing_and_extra(tmp_path, capsys):
    make_mura(tmp_path, n_patients=6, seed=0, bad_files=False)
    mura = tmp_path / "MURA-v1.1"
    listed = (mura / "train_image_paths.csv").read_text().split()
    gone = tmp_path / listed[0]
    gone.unlink()
    extra = gone.parent / "image99.png"
    extra.write_bytes(b"\x89PNG")
    assert fetch_cli.main(["mura", "--verify", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert f"listed but missing: 1\n  {listed[0]}" in out
    assert f"on disk but not listed: 1\n  {extra.relative_to(tmp_path)}" in out
    extra.unlink()
    make_mura(tmp_path / "clean", n_patients=6, seed=0, bad_files=False)
    capsys.readouterr()
    assert fetch_cli.main(["mura", "--verify", str(tmp_path / "clean")]) == 0
    assert "matches its CSVs" in capsys.readouterr().out
