"""Test metrics per subgroup (FracAtlas: region, view, hardware), each with its n.

Groups partition the test set along each dimension, so their n sum to the test n:
``region`` is the five-way region (``mixed`` = several body parts), ``view`` the one view flag
set in ``dataset.csv`` (``multiple`` when several are, ``unknown`` when none), ``hardware``
whether implants are visible. A bootstrap 95% CI (the leaderboard's resampler) is given where
the group is large enough; smaller groups carry a ``note`` instead.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from bench.evaluation.metrics import compute_metrics
from bench.evaluation.stats import PredictionSet, bootstrap_ci
from bench.record import prob_columns

#: Smallest group with a bootstrap CI; binary groups also need this many of each class.
MIN_N_FOR_CI = 30
MIN_PER_CLASS_FOR_CI = 5
N_RESAMPLES = 1000
VIEWS = ("frontal", "lateral", "oblique")
DIMENSIONS = ("region", "view", "hardware")


def view_of(frontal: int, lateral: int, oblique: int) -> str:
    flags = [v for v, f in zip(VIEWS, (frontal, lateral, oblique)) if int(f) == 1]
    return flags[0] if len(flags) == 1 else ("multiple" if flags else "unknown")


def fracatlas_attributes(table: pd.DataFrame, root: str | Path | None) -> pd.DataFrame:
    """``image_id, region, view, hardware`` per table row: from the table where it has them,
    otherwise from ``<root>/dataset.csv`` (read-only)."""
    out = table[["image_id"]].copy()
    if "region" in table.columns:
        out["region"] = table["region"].to_numpy()
    need = [c for c in ("view", "hardware") if c not in table.columns]
    for c in ("view", "hardware"):
        if c in table.columns:
            out[c] = table[c].to_numpy()
    if need and root is not None and (Path(root) / "dataset.csv").is_file():
        csv = pd.read_csv(Path(root) / "dataset.csv", dtype={"image_id": str}, encoding="utf-8-sig")
        csv.columns = [str(c).strip() for c in csv.columns]
        meta = pd.DataFrame({"image_id": csv["image_id"].astype(str)})
        if "view" in need and all(v in csv.columns for v in VIEWS):
            meta["view"] = [view_of(f, lt, o) for f, lt, o in zip(csv["frontal"], csv["lateral"], csv["oblique"])]
        if "hardware" in need and "hardware" in csv.columns:
            meta["hardware"] = csv["hardware"].astype(int).to_numpy()
        meta = meta.drop_duplicates("image_id")
        out = out.merge(meta, on="image_id", how="left")
    if "hardware" in out.columns:
        out["hardware"] = out["hardware"].map(lambda h: "unknown" if pd.isna(h) else ("hardware" if int(h) == 1 else "no_hardware"))
    if "view" in out.columns:
        out["view"] = out["view"].fillna("unknown")
    return out


def _group_entry(probs, labels, positive_index, classes, threshold) -> dict:
    n = int(len(labels))
    entry: dict = {"n": n}
    binary = positive_index is not None and probs.shape[1] == 2
    if binary:
        entry["n_positive"] = int((labels == positive_index).sum())
    entry["metrics"] = compute_metrics(probs, labels, positive_index, classes)
    if binary and threshold is not None:
        at = compute_metrics(probs, labels, positive_index, classes, threshold=threshold)
        entry["operating"] = {k: at.get(k) for k in ("threshold", "accuracy", "recall", "specificity", "precision")}
        entry["operating"]["threshold"] = float(threshold)
    counts = np.bincount(labels, minlength=probs.shape[1])
    enough = n >= MIN_N_FOR_CI and (not binary or counts.min() >= MIN_PER_CLASS_FOR_CI)
    if not enough:
        need = f"n >= {MIN_N_FOR_CI}" + (f" with >= {MIN_PER_CLASS_FOR_CI} of each class" if binary else "")
        entry["ci"] = None
        entry["note"] = f"too few for a bootstrap CI (n={n}; needs {need})"
        return entry
    ps = PredictionSet(ids=np.arange(n).astype(str), label=labels, pred=probs.argmax(1), prob=probs,
                       positive_index=positive_index if binary else 1)
    ci = bootstrap_ci(ps, "binary" if binary else "multiclass", n_resamples=N_RESAMPLES, seed=0)
    keep = ("auroc", "accuracy", "recall", "specificity") if binary else ("accuracy",)
    entry["ci"] = {k: ci[k] for k in keep if k in ci}
    return entry


def subgroup_metrics(test: pd.DataFrame, attributes: pd.DataFrame, classes: list[str], positive_index: int | None,
                     threshold: float | None = None) -> dict:
    """``{dimension: {group: {n, n_positive, metrics, operating, ci | note}}}`` over the test
    predictions (``image_id, label, prob_<class>``); dimensions missing from ``attributes`` are left out."""
    merged = test.merge(attributes, on="image_id", how="left", validate="many_to_one")
    if len(merged) != len(test):
        raise RuntimeError("subgroup attributes do not line up with the test predictions")
    prob_cols = prob_columns(classes)
    out: dict = {}
    for dim in DIMENSIONS:
        if dim not in merged.columns:
            continue
        groups = {}
        values = merged[dim].fillna("unknown").astype(str)
        for value in sorted(values.unique()):
            part = merged[values == value]
            groups[value] = _group_entry(part[prob_cols].to_numpy(dtype=np.float64), part["label"].to_numpy(dtype=np.int64),
                                         positive_index, classes, threshold)
        out[dim] = groups
    return out
