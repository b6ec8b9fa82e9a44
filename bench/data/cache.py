"""Decoded-image cache: decode + resize each file once, reuse across epochs, runs and seeds.

Store: ``<cache_dir>/decoded/<root-hash>_s<size>_<policy>/`` holding ``index.json`` and a uint8
memmap ``images-<token>.u8`` of shape N x S x S. An entry is keyed by the file's absolute path,
byte size and mtime_ns: a changed file re-decodes alone; a new size or truncated policy is
another store (so is a ``max_image_pixels`` other than Pillow's default). ``index.json`` is the commit point (data file first, then the index, both by
``os.replace``) and updates hold an ``fcntl`` lock, so two processes building at once are safe.
The cache never lives inside the data root: datasets are read-only.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import secrets
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from bench.data.decode import (
    DEFAULT_MAX_IMAGE_PIXELS,
    TRUNCATED_POLICIES,
    SkippedImage,
    TruncatedImageError,
    UnreadableImage,
    check_max_image_pixels,
    decode_resized_uint8,
)
from bench.errors import BenchError
from bench.record import atomic_write_json

INDEX_VERSION = 1


@dataclass
class CacheResult:
    images: np.ndarray  # uint8 memmap, N_store x S x S (read-only)
    rows: np.ndarray  # int64 per requested path: row in ``images``, -1 when skipped/unreadable
    truncated: list[str] = field(default_factory=list)  # paths decoded leniently
    skipped: list[str] = field(default_factory=list)  # paths left out (policy skip)
    unreadable: list[tuple[str, str]] = field(default_factory=list)  # (path, message)
    reasons: dict[str, str] = field(default_factory=dict)  # unreadable path -> short reason code
    n_decoded: int = 0  # files decoded by this call (0 when everything was cached)
    store: Path | None = None


def _inside(child: Path, parent: Path) -> bool:
    try:
        child.relative_to(parent)
        return True
    except ValueError:
        return False


def cache_location(cache_dir: str | os.PathLike, root: str | os.PathLike) -> tuple[Path, Path, str]:
    """Resolved cache folder and dataset root, and a short tag of the root, after checking that the
    cache is not inside the (read-only) dataset. Every cache keyed by dataset root starts here."""
    cache_dir = Path(cache_dir).expanduser().resolve()
    root = Path(root).expanduser().resolve()
    if _inside(cache_dir, root):
        raise BenchError(
            f"data.cache_dir={cache_dir} is inside the dataset root {root}: datasets are read-only, "
            f"choose a cache_dir outside it (e.g. paths.cache_dir)"
        )
    return cache_dir, root, hashlib.sha256(str(root).encode()).hexdigest()[:12]


def store_dir(cache_dir: str | os.PathLike, root: str | os.PathLike, size: int, truncated: str,
              max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS) -> Path:
    cache_dir, root, tag = cache_location(cache_dir, root)
    # The default limit keeps the historic store name; another limit can change which files are readable.
    limit = "" if int(max_image_pixels) == DEFAULT_MAX_IMAGE_PIXELS else f"_p{int(max_image_pixels)}"
    return cache_dir / "decoded" / f"{root.name or 'root'}-{tag}_s{int(size)}_{truncated}{limit}"


@contextmanager
def _locked(directory: Path, shared: bool = False) -> Iterator[None]:
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".lock", "a+") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _read_index(directory: Path, size: int) -> dict:
    try:
        index = json.loads((directory / "index.json").read_text(encoding="utf-8"))
        if index.get("version") != INDEX_VERSION or index.get("size") != size:
            return {"entries": {}, "data": None, "n": 0}
        if index.get("data") and not (directory / index["data"]).is_file():
            return {"entries": {}, "data": None, "n": 0}
        return index
    except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
        return {"entries": {}, "data": None, "n": 0}


def _open_images(directory: Path, index: dict, size: int) -> np.ndarray:
    n = int(index.get("n", 0))
    if n == 0 or not index.get("data"):
        return np.zeros((0, size, size), dtype=np.uint8)
    return np.memmap(directory / index["data"], dtype=np.uint8, mode="r", shape=(n, size, size))


def _fingerprint(path: str) -> list[int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [int(st.st_size), int(st.st_mtime_ns)]


def _decode_one(args: tuple[str, int, str, int]) -> tuple[str, np.ndarray | None, bool, str | None]:
    """(status, array, truncated, reason); status is 'ok', 'skipped' or an error message."""
    path, size, truncated, max_pixels = args
    try:
        arr, was_truncated = decode_resized_uint8(path, size, truncated, max_pixels)
        return "ok", arr, was_truncated, None
    except SkippedImage:
        return "skipped", None, True, None
    except TruncatedImageError:
        raise  # policy "error": stop the whole build
    except UnreadableImage as exc:
        return str(exc), None, False, exc.reason
    except BenchError as exc:
        return str(exc), None, False, "unreadable"


def build_cache(
    paths: list[str],
    cache_dir: str | os.PathLike,
    root: str | os.PathLike,
    size: int,
    truncated: str = "load",
    workers: int | None = None,
    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
) -> CacheResult:
    """Return cached ``size`` x ``size`` uint8 images for ``paths``, decoding only what changed.

    With policy ``error`` the first truncated file raises; unreadable files are returned in
    ``unreadable`` for the caller to report (or raise).
    """
    if truncated not in TRUNCATED_POLICIES:
        raise BenchError(f"data.truncated={truncated!r} is not a policy: use one of {', '.join(TRUNCATED_POLICIES)}")
    size = int(size)
    max_image_pixels = check_max_image_pixels(max_image_pixels)
    directory = store_dir(cache_dir, root, size, truncated, max_image_pixels)
    paths = [str(Path(p).resolve()) for p in paths]
    prints = [_fingerprint(p) for p in paths]

    def lookup(index: dict) -> list[str]:
        entries = index["entries"]
        return [p for p, fp in zip(paths, prints) if entries.get(p, {}).get("fp") != fp]

    # Shared lock while reading: a writer unlinks the old data file only under the exclusive lock.
    with _locked(directory, shared=True):
        index = _read_index(directory, size)
        todo = lookup(index)
        images = _open_images(directory, index, size) if not todo else None
    n_decoded = 0
    if todo:
        with _locked(directory):
            index = _read_index(directory, size)  # another process may have built it meanwhile
            todo = lookup(index)
            if todo:
                fp_of = dict(zip(paths, prints))
                index = _update_store(directory, index, todo, size, truncated, workers, fp_of, max_image_pixels)
                n_decoded = len(todo)
            images = _open_images(directory, index, size)
    result = CacheResult(images=images, rows=np.full(len(paths), -1, dtype=np.int64), n_decoded=n_decoded, store=directory)
    for k, p in enumerate(paths):
        e = index["entries"][p]
        status = e["status"]
        if status == "ok":
            result.rows[k] = e["row"]
            if e["truncated"]:
                result.truncated.append(p)
        elif status == "skipped":
            result.skipped.append(p)
        else:
            result.unreadable.append((p, status))
            result.reasons[p] = e.get("reason") or "unreadable"
    return result


def _update_store(directory: Path, index: dict, todo: list[str], size: int, truncated: str, workers: int | None,
                  fp_of: dict[str, list[int] | None], max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS) -> dict:
    """Decode ``todo``, copy still-valid entries, write a new data file then index.json."""
    old = _open_images(directory, index, size)
    # Keep entries whose files are unchanged (other selections of the same root use them too).
    keep = {}
    todo_set = set(todo)  # a list here made this loop quadratic (40,000 MURA files)
    for p, e in index["entries"].items():
        if p in todo_set:
            continue
        if e.get("fp") == _fingerprint(p):
            keep[p] = e
    kept_ok = [(p, e) for p, e in keep.items() if e["status"] == "ok"]
    workers = workers or min(8, os.cpu_count() or 2)
    # Decode first into memory per item; the memmap is written once we know how many are ok.
    with ThreadPoolExecutor(max_workers=workers) as ex:  # Pillow releases the GIL while decoding
        results = list(ex.map(_decode_one, [(p, size, truncated, max_pixels) for p in todo], chunksize=16))
    n_new = sum(1 for s, *_ in results if s == "ok")
    n = len(kept_ok) + n_new
    token = secrets.token_hex(6)
    data_name = f"images-{token}.u8"
    tmp = directory / f".{data_name}.tmp"
    entries: dict = {}
    try:
        if n:
            out = np.memmap(tmp, dtype=np.uint8, mode="w+", shape=(n, size, size))
            row = 0
            for p, e in kept_ok:
                out[row] = old[e["row"]]
                entries[p] = {**e, "row": row}
                row += 1
            for p, (status, arr, was_truncated, _) in zip(todo, results):
                if status == "ok":
                    out[row] = arr
                    entries[p] = {"fp": fp_of[p], "status": "ok", "row": row, "truncated": bool(was_truncated)}
                    row += 1
            out.flush()
            del out
            os.replace(tmp, directory / data_name)
        for p, e in keep.items():
            if e["status"] != "ok":
                entries[p] = e
        for p, (status, _, was_truncated, reason) in zip(todo, results):
            if status != "ok":
                entries[p] = {"fp": fp_of[p], "status": status, "row": -1, "truncated": bool(was_truncated),
                              "reason": reason}
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    new_index = {"version": INDEX_VERSION, "size": size, "truncated": truncated, "n": n,
                 "data": data_name if n else None, "entries": entries}
    atomic_write_json(directory / "index.json", new_index)
    # Old data file: readers that memmapped it keep their mapping after unlink (POSIX).
    if index.get("data") and index["data"] != new_index["data"]:
        (directory / index["data"]).unlink(missing_ok=True)
    return new_index
