"""Our torchmetrics-based metrics against scikit-learn on the same predictions."""

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import (accuracy_score, cohen_kappa_score, confusion_matrix, f1_score, precision_score,
                             recall_score, roc_auc_score)

from bench.evaluation.metrics import ClassificationMetrics, aggregate_by_study, compute_metrics


def _random_probs(rng, n, c):
    logits = rng.normal(size=(n, c))
    p = np.exp(logits)
    return p / p.sum(1, keepdims=True)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("positive_index", [1, 0])
def test_binary_metrics_match_sklearn(seed, positive_index):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, size=157)
    probs = _random_probs(rng, 157, 2)
    probs[labels == 1, 1] += 0.3  # some signal so the metrics are not all 0.5
    probs /= probs.sum(1, keepdims=True)
    m = compute_metrics(probs, labels, positive_index=positive_index)
    preds = probs.argmax(1)
    y = (labels == positive_index).astype(int)
    yp = (preds == positive_index).astype(int)
    assert m["accuracy"] == pytest.approx(accuracy_score(labels, preds))
    assert m["precision"] == pytest.approx(precision_score(y, yp))
    assert m["recall"] == pytest.approx(recall_score(y, yp))
    assert m["specificity"] == pytest.approx(recall_score(1 - y, 1 - yp))
    assert m["f1"] == pytest.approx(f1_score(y, yp))
    assert m["auroc"] == pytest.approx(roc_auc_score(y, probs[:, positive_index]), abs=1e-6)
    assert m["kappa"] == pytest.approx(cohen_kappa_score(labels, preds), abs=1e-6)
    assert m["confusion_matrix"] == confusion_matrix(labels, preds, labels=[0, 1]).tolist()
    assert m["n"] == 157


def test_multiclass_metrics_match_sklearn():
    rng = np.random.default_rng(7)
    n, c = 300, 5
    labels = rng.integers(0, c, size=n)
    probs = _random_probs(rng, n, c)
    probs[np.arange(n), labels] += rng.uniform(0, 0.6, size=n)
    probs /= probs.sum(1, keepdims=True)
    names = ["hand", "leg", "hip", "shoulder", "mixed"]
    m = compute_metrics(probs, labels, positive_index=None, class_names=names)
    preds = probs.argmax(1)
    assert m["accuracy"] == pytest.approx(accuracy_score(labels, preds))
    assert m["precision"] == pytest.approx(precision_score(labels, preds, average="macro"))
    assert m["recall"] == pytest.approx(recall_score(labels, preds, average="macro"))
    assert m["f1"] == pytest.approx(f1_score(labels, preds, average="macro"))
    assert m["auroc"] == pytest.approx(roc_auc_score(labels, probs, multi_class="ovr", average="macro"), abs=1e-6)
    assert m["kappa"] == pytest.approx(cohen_kappa_score(labels, preds), abs=1e-6)
    spec = []
    cm = confusion_matrix(labels, preds)
    for k in range(c):
        tn = cm.sum() - cm[k].sum() - cm[:, k].sum() + cm[k, k]
        spec.append(tn / (cm.sum() - cm[k].sum()))
    assert m["specificity"] == pytest.approx(np.mean(spec))
    per_class = recall_score(labels, preds, average=None)
    assert m["per_class_accuracy"] == pytest.approx(dict(zip(names, per_class)))


def test_one_class_labels_give_undefined_auc_not_a_crash():
    probs = np.array([[0.2, 0.8], [0.6, 0.4]])
    m = compute_metrics(probs, np.array([1, 1]), positive_index=1)
    assert m["auroc"] is None  # undefined is null in the record, never NaN or 0
    assert m["specificity"] is None  # no negatives
    assert m["accuracy"] == 0.5


def test_update_compute_equals_one_shot():
    rng = np.random.default_rng(3)
    probs = _random_probs(rng, 64, 2)
    labels = rng.integers(0, 2, 64)
    import torch

    acc = ClassificationMetrics(2, 1, ["n", "p"])
    for i in range(0, 64, 10):
        acc.update(torch.tensor(probs[i:i + 10]), torch.tensor(labels[i:i + 10]))
    assert acc.compute() == compute_metrics(probs, labels, 1, ["n", "p"])


def test_study_aggregation_is_the_mean_of_image_probabilities():
    df = pd.DataFrame({
        "image_id": ["a1", "a2", "a3", "b1"], "split": "test", "label": [1, 1, 1, 0],
        "study_id": ["A", "A", "A", "B"], "patient_id": ["p1", "p1", "p1", "p2"],
        "prob_normal": [0.9, 0.2, 0.3, 0.7], "prob_abnormal": [0.1, 0.8, 0.7, 0.3],
    })
    s = aggregate_by_study(df, ["normal", "abnormal"]).set_index("study_id")
    assert s.loc["A", "prob_abnormal"] == pytest.approx((0.1 + 0.8 + 0.7) / 3)
    assert s.loc["A", "pred"] == 1 and s.loc["B", "pred"] == 0
    assert len(s) == 2



def test_atomic_writes_leave_normal_permissions(tmp_path):
    import stat

    from bench import record

    record.atomic_write_text(tmp_path / "a.txt", "x")
    mode = stat.S_IMODE((tmp_path / "a.txt").stat().st_mode)
    # mkstemp alone would leave 0600, unreadable for the group on shared cluster storage
    assert mode == 0o666 & ~record._UMASK
    assert (tmp_path / "a.txt").read_text() == "x"
    assert not list(tmp_path.glob(".a.txt.*.tmp")), "no temporary file is left behind"
