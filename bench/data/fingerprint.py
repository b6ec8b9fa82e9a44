"""Dataset fingerprint: which bytes a run read, as one hex digest (part of the run's identity).

Over the files a run reads after selection (``limit_per_class``, symlink refusals): the images
and the dataset's label files (FracAtlas: ``dataset.csv`` and the selected images' YOLO files;
MURA: its four CSVs). Each contributes ``relative path, byte size, SHA-256 of the content``, so a
copy of the dataset elsewhere has the same fingerprint while an edited or re-encoded copy (the
full-size release vs the 512 px copy) has another. Unreadable files count like any other: what
a run does with them follows from their bytes and the config.

Hashing every file once is the cost; the per-file digests are remembered in
``<cache_dir>/fingerprint/<root name>-<hash of root path>.json``, keyed by the file's absolute
path, byte size and mtime_ns (like the decoded cache), so a second run only stats the files.
The cache never lives inside the data root. SHA-256 because it is the fastest of hashlib's
digests on this CPU (SHA extensions: ~1.3 GB/s vs ~0.6 GB/s for BLAKE2b) and the one the
duplicate check already uses, which then reads its digests from the same cache.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from bench.data.cache import _locked, cache_location
from bench.data.fracatlas import file_sha256
from bench.data.registry import get_dataset
from bench.errors import BenchError
from bench.record import atomic_write_json

ALGORITHM = "sha256"
FORMAT = "fracture-bench data fingerprint v1"  # first line of the hashed manifest
INDEX_VERSION = 1


@dataclass(frozen=True)
class Fingerprint:
    digest: str  # hex SHA-256 of the manifest (one line per file, sorted by relative path)
    n_files: int
    n_bytes: int
    hashed_now: int  # files whose content this call hashed (0 when the cache knew them all)
    seconds: float

    def as_report(self) -> dict:
        return {"digest": self.digest, "algorithm": ALGORITHM, "n_files": self.n_files, "n_bytes": self.n_bytes,
                "hashed_now": self.hashed_now, "seconds": round(self.seconds, 3)}


def index_path(cache_dir: str | os.PathLike, root: str | os.PathLike) -> Path:
    cache_dir, root, tag = cache_location(cache_dir, root)
    return cache_dir / "fingerprint" / f"{root.name or 'root'}-{tag}.json"


def _read_index(path: Path) -> dict:
    try:
        index = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
        return {}
    if not isinstance(index, dict) or index.get("version") != INDEX_VERSION or not isinstance(index.get("entries"), dict):
        return {}
    return index["entries"]


def _stat(path: str) -> tuple[int, int]:
    try:
        st = os.stat(path)
    except OSError as exc:
        raise BenchError(f"{path}: cannot read ({exc.strerror}): check the dataset files") from None
    return int(st.st_size), int(st.st_mtime_ns)


def file_digests(paths: list[str], cache_dir: str | os.PathLike, root: str | os.PathLike,
                 workers: int | None = None) -> tuple[list[str], list[int], int]:
    """(SHA-256 per path, byte size per path, number hashed now), via the per-root digest cache."""
    where = index_path(cache_dir, root)
    keys = [p if os.path.isabs(p) else os.path.abspath(p) for p in map(str, paths)]
    stats = [_stat(p) for p in keys]

    def missing(entries: dict) -> list[int]:
        return [i for i, (k, st) in enumerate(zip(keys, stats))
                if not (isinstance(e := entries.get(k), list) and len(e) == 3 and e[:2] == list(st))]

    entries = _read_index(where)  # written atomically: a reader never sees half a file
    todo = missing(entries)
    hashed_now = 0
    if todo:
        with _locked(where.parent):
            entries = _read_index(where)  # another process may have hashed them meanwhile
            todo = missing(entries)
            if todo:
                if (workers or 1) == 1:
                    # Default: one thread. Measured on FracAtlas (8 kB files, 2 cores): 2 threads took
                    # twice as long as 1 (GIL hand-offs per small read); threads pay off on network storage.
                    digests = [file_sha256(keys[i]) for i in todo]
                else:
                    with ThreadPoolExecutor(max_workers=workers) as ex:
                        digests = list(ex.map(file_sha256, [keys[i] for i in todo], chunksize=32))
                for i, d in zip(todo, digests):
                    entries[keys[i]] = [stats[i][0], stats[i][1], d]
                atomic_write_json(where, {"version": INDEX_VERSION, "algorithm": ALGORITHM, "root": str(Path(root).resolve()),
                                          "entries": entries})
                hashed_now = len(todo)
    return [entries[k][2] for k in keys], [st[0] for st in stats], hashed_now


def fingerprint_files(paths: list[str], root: str | os.PathLike, cache_dir: str | os.PathLike,
                      workers: int | None = None) -> Fingerprint:
    """The fingerprint of ``paths`` (each under ``root``; names are taken relative to it)."""
    start = time.perf_counter()
    # Names relative to the root, links not resolved (the name the run used). String operations:
    # pathlib was 80% of a warm 8,000-file fingerprint.
    base = os.path.abspath(root).rstrip(os.sep) + os.sep
    by_rel: dict[str, str] = {}
    for p in paths:
        full = os.path.abspath(p)
        if not full.startswith(base):
            raise BenchError(f"{p}: not under the dataset root {root}: the fingerprint covers files of the root only")
        by_rel.setdefault(full[len(base):].replace(os.sep, "/"), full)  # a path given twice counts once
    rels = sorted(by_rel)
    digests, sizes, hashed_now = file_digests([by_rel[r] for r in rels], cache_dir, root, workers)
    h = hashlib.sha256((FORMAT + "\n").encode())
    for rel, d, n in zip(rels, digests, sizes):
        h.update(f"{rel}\t{n}\t{d}\n".encode("utf-8", "surrogateescape"))
    return Fingerprint(h.hexdigest(), len(rels), int(sum(sizes)), hashed_now, time.perf_counter() - start)


def dataset_files(dataset: str, table, info: dict) -> list[str]:
    """Every file a run of ``table`` reads: its images plus the label files of the dataset."""
    return [str(p) for p in table["path"]] + get_dataset(dataset).label_files(Path(info["root"]), table)
