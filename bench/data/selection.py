"""Which files a training run reads, and their fingerprint, without torch or Lightning.

``FractureDataModule._select`` loads the dataset's table (its registered loader), applies
``limit_per_class`` and fingerprints the files of that selection; the fingerprint is part of the run
id. ``bench-train --plan`` (``bench.sweep.plan``) needs the same fingerprint for every job of a
sweep in seconds, and the datamodule module loads Lightning on import (15-25 s on two cores), so
the selection rule and the data config -> loader mapping are here, for both.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from bench.data.fingerprint import Fingerprint, dataset_files, fingerprint_files
from bench.data.registry import LoadRequest, get_dataset


def limit_per_class(table: pd.DataFrame, limit: int | None) -> pd.DataFrame:
    """At most ``limit`` rows per label, the same ones for every seed (a hash of the image id
    orders them): every seed of a smoke sweep sees the same images. ``None``/0: all rows."""
    if not limit:
        return table
    key = table["image_id"].map(lambda s: hashlib.sha1(s.encode()).hexdigest())
    order = table.assign(_k=key).sort_values(["label", "_k"], kind="stable")
    keep = order.groupby("label", sort=False).head(int(limit)).index
    return table.loc[sorted(keep)].reset_index(drop=True)


def limit_and_fingerprint(dataset: str, table: pd.DataFrame, info: dict, limit: int | None, cache_dir: Path,
                          decode_workers: int | None) -> tuple[pd.DataFrame, Fingerprint]:
    """A loaded table with ``limit_per_class`` applied, and the fingerprint of the files that
    selection reads: the one rule of the run (``FractureDataModule._select``) and the plan."""
    table = limit_per_class(table, limit)
    return table, fingerprint_files(dataset_files(dataset, table, info), info["root"], cache_dir, decode_workers)


# The data config keys the selection and so the fingerprint depend on (not seed, split, batch size...).
SELECTION_KEYS = ("dataset", "root", "task", "label_source", "body_part", "options", "symlinks", "limit_per_class",
                  "cache_dir")


def _limit(value: Any) -> int | None:
    return None if value in (None, "", 0) else int(value)


def selected_fingerprint(data: Mapping) -> Fingerprint:
    """The fingerprint a run of data config ``data`` (``cfg.data``, resolved) records: its dataset
    loaded with the config's task, options and symlink policy, ``limit_per_class`` applied. Reads
    the table and label files and stats the images; an image is hashed (read, never decoded) only
    when the digest cache (``<cache_dir>/fingerprint``) does not know it yet."""
    root = Path(os.path.expanduser(str(data["root"])))
    cache_dir = Path(os.path.expanduser(str(data.get("cache_dir", ".cache/fracture-bench"))))
    options = {"label_source": data.get("label_source", "folder"), "body_part": data.get("body_part", "XR_HAND"),
               **dict(data.get("options") or {})}
    source = get_dataset(str(data["dataset"]))
    loaded = source.load(LoadRequest(root=root, task=str(data["task"]), symlinks=str(data.get("symlinks", "refuse")),
                                     cache_dir=cache_dir, decode_workers=data.get("decode_workers"), options=options))
    _, fingerprint = limit_and_fingerprint(str(data["dataset"]), loaded.table, loaded.info,
                                           _limit(data.get("limit_per_class")), cache_dir, data.get("decode_workers"))
    return fingerprint
