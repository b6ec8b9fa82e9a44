"""Seeded, stratified, group-aware splits, split files and the leakage check.

Methods (all keep every group, i.e. duplicate set or patient, on one side):

* ``ratio``: 3 ratios = train/val/test; 2 ratios = train/test, then ``val_fraction`` of train
  becomes val (seed 002's 70/30 with a validation set carved out of the 70).
* ``kfold``: ``StratifiedGroupKFold(n_folds)``; fold ``fold`` is test, ``val_fraction`` of the
  rest is val.
* ``official`` (MURA): official ``valid`` is test; ``val_fraction`` of train, by patient, is val.

Ratio splits use a greedy group allocator instead of sklearn: ``GroupShuffleSplit`` does not
stratify and ``StratifiedGroupKFold`` only gives 1/k fractions (0.72/0.18/0.10 is not one).
Groups are visited in seeded random order, biggest first, and each goes to the split that is
furthest below its target count for the group's classes: exact stratification for singletons.
"""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold

from bench.errors import BenchError
from bench.record import atomic_write_text

SPLITS = ("train", "val", "test")


def _allocate(labels: np.ndarray, groups: np.ndarray, ratios: list[float], seed: int) -> np.ndarray:
    """Assign each row to a part index (0..len(ratios)-1), groups whole, classes stratified."""
    ratios = np.asarray(ratios, dtype=float)
    ratios = ratios / ratios.sum()
    classes, label_idx = np.unique(labels, return_inverse=True)
    group_names, group_idx = np.unique(groups, return_inverse=True)
    n_groups, n_classes = len(group_names), len(classes)
    counts = np.zeros((n_groups, n_classes), dtype=np.int64)
    np.add.at(counts, (group_idx, label_idx), 1)
    target = ratios[:, None] * np.bincount(label_idx, minlength=n_classes)[None, :]
    current = np.zeros_like(target)
    rng = np.random.default_rng(seed)
    order = rng.permutation(n_groups)
    sizes = counts.sum(axis=1)
    order = order[np.argsort(-sizes[order], kind="stable")]  # big groups first, ties random
    part_of_group = np.empty(n_groups, dtype=np.int64)
    for g in order:
        v = counts[g]
        deficit = ((target - current) * v[None, :]).sum(axis=1) / v.sum()
        part = int(np.argmax(deficit))
        part_of_group[g] = part
        current[part] += v
    return part_of_group[group_idx]


def _carve_val(split: np.ndarray, labels: np.ndarray, groups: np.ndarray, val_fraction: float, seed: int) -> np.ndarray:
    if not 0.0 < val_fraction < 1.0:
        raise BenchError(f"data.split.val_fraction={val_fraction}: must be between 0 and 1 (exclusive)")
    train = np.flatnonzero(split == "train")
    parts = _allocate(labels[train], groups[train], [1.0 - val_fraction, val_fraction], seed + 1)
    out = split.copy()
    out[train[parts == 1]] = "val"
    return out


def make_split(
    table: pd.DataFrame,
    method: str = "ratio",
    ratios: list[float] | tuple[float, ...] | None = (0.72, 0.18, 0.10),
    n_folds: int = 5,
    fold: int = 0,
    val_fraction: float = 0.1,
    seed: int = 0,
) -> pd.Series:
    """Split names (``train``/``val``/``test``) per row of ``table`` (needs ``label`` and ``group``)."""
    for col in ("label", "group"):
        if col not in table.columns:
            raise BenchError(f"split: table has no {col!r} column")
    labels = table["label"].to_numpy()
    groups = table["group"].astype(str).to_numpy()
    if method == "ratio":
        ratios = [float(r) for r in (ratios or [])]
        if len(ratios) not in (2, 3) or any(r <= 0 for r in ratios) or abs(sum(ratios) - 1.0) > 1e-6:
            raise BenchError(f"data.split.ratios={ratios}: give 2 (train/test) or 3 (train/val/test) positive ratios summing to 1")
        parts = _allocate(labels, groups, ratios, seed)
        names = np.array(["train", "val", "test"] if len(ratios) == 3 else ["train", "test"], dtype=object)
        split = names[parts]
        if len(ratios) == 2:
            split = _carve_val(split, labels, groups, val_fraction, seed)
    elif method == "kfold":
        n_folds, fold = int(n_folds), int(fold)
        if n_folds < 2 or not 0 <= fold < n_folds:
            raise BenchError(f"data.split: n_folds={n_folds}, fold={fold}: need n_folds >= 2 and 0 <= fold < n_folds")
        cv = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
        split = np.full(len(table), "train", dtype=object)
        for k, (_, test_idx) in enumerate(cv.split(np.zeros(len(labels)), labels, groups)):
            if k == fold:
                split[test_idx] = "test"
        split = _carve_val(split, labels, groups, val_fraction, seed)
    elif method == "official":
        if "official_split" not in table.columns:
            raise BenchError("data.split.method=official needs a dataset with an official split (MURA); use ratio or kfold")
        split = np.where(table["official_split"].to_numpy() == "valid", "test", "train").astype(object)
        split = _carve_val(split, labels, groups, val_fraction, seed)
    else:
        raise BenchError(f"data.split.method={method!r}: use ratio, kfold or official")
    return pd.Series(split, index=table.index, name="split", dtype=object)


def split_hash(table: pd.DataFrame) -> str:
    """SHA-256 of the canonical ``image_id,split`` lines, sorted by image id."""
    pairs = sorted(zip(table["image_id"].astype(str), table["split"].astype(str)))
    text = "image_id,split\n" + "".join(f"{i},{s}\n" for i, s in pairs)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def write_split(table: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write ``image_id,split,group`` (sorted by image id) atomically."""
    out = table[["image_id", "split", "group"]].sort_values("image_id", kind="stable")
    buf = io.StringIO()
    out.to_csv(buf, index=False, lineterminator="\n")
    atomic_write_text(path, buf.getvalue())
    return Path(path)


def read_split(path: str | os.PathLike, table: pd.DataFrame) -> pd.DataFrame:
    """Apply a split file to ``table``: every table id must be in the file and vice versa."""
    path = Path(path)
    if not path.is_file():
        raise BenchError(f"{path}: split file not found: give data.split_file an existing split.csv or leave it null")
    try:
        split = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise BenchError(f"{path}: cannot parse split file ({exc}): expected columns image_id,split,group") from None
    for col in ("image_id", "split"):
        if col not in split.columns:
            raise BenchError(f"{path}: no {col!r} column: expected columns image_id,split,group")
    bad = split.loc[~split["split"].isin(SPLITS), ["image_id", "split"]]
    if not bad.empty:
        raise BenchError(f"{path}: {bad.iloc[0, 0]} has split {bad.iloc[0, 1]!r}: use train, val or test")
    dup = split["image_id"][split["image_id"].duplicated()]
    if not dup.empty:
        raise BenchError(f"{path}: {dup.iloc[0]} appears twice: one line per image")
    mapping = dict(zip(split["image_id"], split["split"]))
    ids = set(table["image_id"])
    unknown = [i for i in split["image_id"] if i not in ids]
    if unknown:
        raise BenchError(f"{path}: image {unknown[0]} is not in the dataset ({len(unknown)} unknown): the split belongs to another dataset or selection")
    missing = [i for i in table["image_id"] if i not in mapping]
    if missing:
        raise BenchError(f"{path}: image {missing[0]} of the dataset has no split ({len(missing)} missing): regenerate the split file")
    out = table.copy()
    out["split"] = out["image_id"].map(mapping).astype(object)
    return out


def check_leakage(table: pd.DataFrame, content_col: str | None = None) -> dict:
    """No group, no identical content (``content_col``), no patient in two splits."""
    result: dict = {"ok": True}
    for key, col in (("groups", "group"), ("content", content_col), ("patients", "patient_id")):
        if col is None or col not in table.columns:
            continue
        n_splits = table.groupby(col)["split"].nunique()
        across = sorted(str(v) for v in n_splits.index[n_splits > 1])
        result[f"{key}_across_splits"] = across
        if across:
            result["ok"] = False
    return result


def split_counts(table: pd.DataFrame, classes: list[str]) -> dict:
    out = {}
    for s in SPLITS:
        part = table[table["split"] == s]
        out[s] = {"total": int(len(part)), **{c: int((part["label"] == i).sum()) for i, c in enumerate(classes)}}
    return out
