"""Subgroups partition the test set (n sums to the test n), their metrics are the metrics of the
group's rows, small groups say why they have no CI; flags catch degenerate runs."""

import numpy as np
import pandas as pd
import pytest

from bench.evaluation.flags import run_flags
from bench.evaluation.metrics import compute_metrics
from bench.evaluation.subgroups import fracatlas_attributes, subgroup_metrics, view_of

CLASSES = ["non_fractured", "fractured"]


def _fixture(tmp_path, n=180, seed=0):
    rng = np.random.default_rng(seed)
    ids = [f"IMG{i:07d}.jpg" for i in range(n)]
    regions = rng.choice(["hand", "leg", "hip", "shoulder", "mixed"], size=n, p=[0.4, 0.4, 0.08, 0.06, 0.06])
    frontal, lateral, oblique = (rng.random(n) < 0.6).astype(int), (rng.random(n) < 0.4).astype(int), (rng.random(n) < 0.1).astype(int)
    hardware = (rng.random(n) < 0.1).astype(int)
    pd.DataFrame({"image_id": ids, "hardware": hardware, "frontal": frontal, "lateral": lateral,
                  "oblique": oblique}).to_csv(tmp_path / "dataset.csv", index=False)
    table = pd.DataFrame({"image_id": ids, "region": regions})
    labels = (rng.random(n) < 0.3).astype(int)
    p1 = np.clip(0.3 + 0.3 * labels + rng.normal(0, 0.2, n), 0.01, 0.99)
    test = pd.DataFrame({"image_id": ids, "label": labels, "prob_non_fractured": 1 - p1, "prob_fractured": p1})
    return table, test, (frontal, lateral, oblique, hardware)


def test_subgroup_n_sums_to_test_n_and_metrics_are_the_groups(tmp_path):
    table, test, (frontal, lateral, oblique, hardware) = _fixture(tmp_path)
    attrs = fracatlas_attributes(table, tmp_path)
    sub = subgroup_metrics(test, attrs, CLASSES, 1, threshold=0.45)
    assert set(sub) == {"region", "view", "hardware"}
    for dim, groups in sub.items():
        assert sum(g["n"] for g in groups.values()) == len(test), dim
        assert sum(g["n_positive"] for g in groups.values()) == int(test["label"].sum()), dim
    assert set(sub["hardware"]) == {"hardware", "no_hardware"}
    assert sub["hardware"]["hardware"]["n"] == int(hardware.sum())
    n_views = frontal + lateral + oblique
    assert sub["view"]["multiple"]["n"] == int((n_views > 1).sum())
    assert sub["view"].get("unknown", {"n": 0})["n"] == int((n_views == 0).sum())
    hand = test[table["region"] == "hand"]
    expected = compute_metrics(hand[["prob_non_fractured", "prob_fractured"]].to_numpy(), hand["label"].to_numpy(), 1, CLASSES)
    assert sub["region"]["hand"]["metrics"] == expected
    assert sub["region"]["hand"]["operating"]["threshold"] == 0.45
    ci = sub["region"]["hand"]["ci"]["auroc"]
    assert ci["low"] <= expected["auroc"] <= ci["high"]


def test_small_groups_say_why_they_have_no_ci(tmp_path):
    table, test, _ = _fixture(tmp_path)
    sub = subgroup_metrics(test, fracatlas_attributes(table, tmp_path), CLASSES, 1)
    small = [g for groups in sub.values() for g in groups.values() if g["n"] < 30]
    assert small, "the fixture has small groups (hip, shoulder, hardware)"
    for g in small:
        assert g["ci"] is None and "too few" in g["note"] and f"n={g['n']}" in g["note"]


def test_view_is_one_category_per_image():
    assert view_of(1, 0, 0) == "frontal" and view_of(0, 0, 1) == "oblique"
    assert view_of(1, 1, 0) == "multiple" and view_of(0, 0, 0) == "unknown"


def test_table_columns_win_over_dataset_csv(tmp_path):
    table, _, _ = _fixture(tmp_path, n=20)
    table["view"] = "lateral"
    table["hardware"] = 1
    attrs = fracatlas_attributes(table, tmp_path)
    assert set(attrs["view"]) == {"lateral"} and set(attrs["hardware"]) == {"hardware"}


def test_constant_predictor_is_flagged():
    rng = np.random.default_rng(0)
    val_labels, test_labels = rng.integers(0, 2, 100), rng.integers(0, 2, 80)
    constant = np.tile([0.7, 0.3], (80, 1))  # every image called negative
    metrics = {"val": compute_metrics(np.tile([0.7, 0.3], (100, 1)), val_labels, 1),
               "test": compute_metrics(constant, test_labels, 1)}
    assert run_flags(metrics) == ["constant_predictions", "near_chance_val_auroc"]
    good_val = np.column_stack([1 - (0.2 + 0.6 * val_labels), 0.2 + 0.6 * val_labels])
    good_test = np.column_stack([1 - (0.2 + 0.6 * test_labels), 0.2 + 0.6 * test_labels])
    assert run_flags({"val": compute_metrics(good_val, val_labels, 1), "test": compute_metrics(good_test, test_labels, 1)}) == []
    assert run_flags({"val": compute_metrics(good_val, val_labels, 1), "test": metrics["test"]}) == ["constant_predictions"]


@pytest.mark.parametrize("auroc, flagged", [(0.55, True), (0.45, True), (0.56, False), (0.9, False)])
def test_near_chance_boundary(auroc, flagged):
    metrics = {"val": {"auroc": auroc}, "test": {"confusion_matrix": [[5, 5], [5, 5]]}}
    assert ("near_chance_val_auroc" in run_flags(metrics)) is flagged
