"""The run record: the one contract between training and everything that reads its results.

A run directory is complete when ``record.json`` exists in it with ``"status": "complete"``.
``record.json`` is always written last and atomically (temp file + ``os.replace``), so a crashed
or killed run never looks complete. Schema: ``docs/run_record.md``.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1
_UMASK = os.umask(0)
os.umask(_UMASK)
RECORD_FILE = "record.json"


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` so readers see the old file or the new one, never half of it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp makes 0600 files; records on shared storage must be readable like any other file.
        os.fchmod(fd, 0o666 & ~_UMASK)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def _json_default(obj: Any) -> Any:
    # numpy scalars/arrays and paths appear in metrics and configs.
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def read_record(run_dir: str | os.PathLike) -> dict | None:
    """The record of a complete run, or None when the run is missing, incomplete or corrupt."""
    path = Path(run_dir) / RECORD_FILE
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, NotADirectoryError, json.JSONDecodeError, UnicodeDecodeError):
        return None
    if not isinstance(record, dict) or record.get("status") != "complete":
        return None
    return record


def is_complete(run_dir: str | os.PathLike) -> bool:
    return read_record(run_dir) is not None


def write_record(run_dir: str | os.PathLike, record: dict) -> Path:
    """Mark a run complete: call this after every other file of the run is in place."""
    record = dict(record)
    record.setdefault("schema_version", SCHEMA_VERSION)
    record["status"] = "complete"
    path = Path(run_dir) / RECORD_FILE
    atomic_write_json(path, record)
    return path


def update_record(run_dir: str | os.PathLike, **sections: Any) -> dict:
    """Add or replace top-level sections of a complete record (e.g. ``explain``), atomically."""
    record = read_record(run_dir)
    if record is None:
        raise FileNotFoundError(f"{Path(run_dir) / RECORD_FILE}: no complete run record here")
    record.update(sections)
    write_record(run_dir, record)
    return record
