"""The data report (``data_report.json`` of a run, printed by ``bench-check``): plain JSON types."""

from __future__ import annotations

import pandas as pd

from bench.data.splits import SPLITS


def _counts(labels: pd.Series, classes: list[str]) -> dict[str, int]:
    return {c: int((labels == i).sum()) for i, c in enumerate(classes)}


def _by_reason(unreadable) -> dict[str, int]:
    out: dict[str, int] = {}
    for u in unreadable:
        out[u.get("reason", "unreadable")] = out.get(u.get("reason", "unreadable"), 0) + 1
    return dict(sorted(out.items()))


def build_report(
    table: pd.DataFrame,
    classes: list[str],
    info: dict,
    *,
    truncated: list[str] = (),
    skipped: list[str] = (),
    unreadable: list[dict] = (),
    duplicate_groups: list[list[str]] = (),
    leakage: dict | None = None,
    excluded_by_limit: int = 0,
    truncated_policy: str = "load",
) -> dict:
    """Counts per class / region / split x class, problem files, label conflicts, duplicates, leakage."""
    report: dict = {
        "dataset": info.get("dataset"),
        "root": info.get("root"),
        "task": info.get("task"),
        "label_source": info.get("label_source", "folder"),
        "classes": list(classes),
        "n_images": int(len(table)),
        "per_class": _counts(table["label"], classes),
        "truncated_policy": truncated_policy,
        "truncated": sorted(truncated),
        "skipped": sorted(skipped),
        "unreadable": list(unreadable),
        "unreadable_by_reason": _by_reason(unreadable),
        "symlink_policy": info.get("symlink_policy", "refuse"),
        "symlinks_refused": list(info.get("symlinks_refused", [])),
        "symlinks_followed": list(info.get("symlinks_followed", [])),
        "label_conflicts": list(info.get("label_conflicts", [])),
        "duplicate_groups": [list(g) for g in duplicate_groups],
        "excluded_by_limit": int(excluded_by_limit),
    }
    if "images_not_in_csv" in info:
        report["images_not_in_csv"] = list(info["images_not_in_csv"])
    if "region" in table.columns:
        report["per_region"] = {
            r: _counts(part["fractured_folder"] if info.get("label_source", "folder") == "folder" else part["fractured_csv"],
                       ["non_fractured", "fractured"])
            for r, part in table.groupby("region", sort=True)
        }
    if "study_id" in table.columns:
        report["n_studies"] = int(table["study_id"].nunique())
        report["n_patients"] = int(table["patient_id"].nunique())
    if "split" in table.columns:
        report["per_split"] = {
            s: {"total": int((table["split"] == s).sum()), **_counts(table.loc[table["split"] == s, "label"], classes)}
            for s in SPLITS
        }
    if leakage is not None:
        report["leakage"] = leakage
    return report
