"""Evaluation beyond the 0.5 metrics, for one run: the validation-chosen operating point and the
test metrics at it (image and MURA study level), the reliability diagram, subgroup metrics and
degenerate-run flags. ``bench.training.run`` calls :func:`evaluate_extras` once per run."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from bench.evaluation.calibration import reliability_bins
from bench.evaluation.flags import run_flags
from bench.evaluation.metrics import aggregate_by_study
from bench.evaluation.operating import operating_point
from bench.evaluation.plots import plot_reliability
from bench.evaluation.subgroups import fracatlas_attributes, subgroup_metrics
from bench.record import prob_columns

RELIABILITY_PLOT = "plots/reliability.png"


def _probs(df: pd.DataFrame, classes: list[str]) -> np.ndarray:
    return df[prob_columns(classes)].to_numpy(dtype=np.float64)


def evaluate_extras(op_cfg: Mapping | None, preds: pd.DataFrame, metrics: dict, dm, run_dir: Path, title: str = "") -> dict:
    """Returns ``{"metrics": {test_operating, test_study_operating}, "operating_point", "flags",
    "subgroups", "plots": {"reliability": path}}`` from the val/test predictions of a run.

    ``metrics`` is the record's metrics section so far (``val``, ``test``, ``test_study``)."""
    classes = list(dm.classes)
    pos = dm.positive_index
    val, test = preds[preds["split"] == "val"], preds[preds["split"] == "test"]
    op_cfg = dict(op_cfg or {"rule": "youden"})
    extra_metrics: dict = {}
    entry, at_test = operating_point(op_cfg, _probs(val, classes), val["label"].to_numpy(), _probs(test, classes),
                                     test["label"].to_numpy(), pos, classes, level="image")
    if at_test is not None:
        extra_metrics["test_operating"] = at_test
    if getattr(dm, "study_level", False) and "study_id" in preds.columns:
        val_s, test_s = aggregate_by_study(val, classes), aggregate_by_study(test, classes)
        study_entry, study_test = operating_point(op_cfg, _probs(val_s, classes), val_s["label"].to_numpy(),
                                                  _probs(test_s, classes), test_s["label"].to_numpy(), pos, classes, level="study")
        entry["study"] = study_entry
        if study_test is not None:
            extra_metrics["test_study_operating"] = study_test
    bins = reliability_bins(_probs(test, classes), test["label"].to_numpy(), pos)
    plot_reliability(bins, Path(run_dir) / RELIABILITY_PLOT, (metrics.get("test") or {}).get("ece"),
                     binary=pos is not None and len(classes) == 2, title=title)
    subgroups: dict = {}
    if "region" in dm.table.columns:  # FracAtlas's attributes (bench/data/datasets/fracatlas.py keeps the column)
        attrs = fracatlas_attributes(dm.table, getattr(dm, "root", None))
        threshold = at_test["threshold"] if at_test is not None else None
        subgroups = subgroup_metrics(test, attrs, classes, pos, threshold=threshold)
    return {"metrics": extra_metrics, "operating_point": entry, "flags": run_flags(metrics),
            "subgroups": subgroups, "calibration": {"bins": bins},
            "plots": {"reliability": RELIABILITY_PLOT}}
