"""The added metrics (AUPRC, balanced accuracy, Brier, ECE, sensitivity at specificity) against
scikit-learn where it has them, else against short independent implementations written here;
undefined values are None; the reliability bins agree with the ECE."""

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, balanced_accuracy_score, brier_score_loss
from sklearn.preprocessing import label_binarize

from bench.evaluation.calibration import ece_from_bins, reliability_bins
from bench.evaluation.metrics import compute_metrics


def _probs(rng, n, c, labels, signal=0.4):
    p = np.exp(rng.normal(size=(n, c)))
    p /= p.sum(1, keepdims=True)
    p[np.arange(n), labels] += rng.uniform(0, signal, size=n)
    return p / p.sum(1, keepdims=True)


def _ece_oracle(conf, outcome, n_bins=15):
    """ECE by its textbook definition: equal-width bins [k/B, (k+1)/B), |accuracy - confidence|
    weighted by the bin's share of the items."""
    total = 0.0
    for k in range(n_bins):
        lo, hi = k / n_bins, (k + 1) / n_bins
        sel = (conf >= lo) & (conf < hi)
        if sel.any():
            total += sel.mean() * abs(outcome[sel].mean() - conf[sel].mean())
    return total


def _sens_at_spec_oracle(score, positive, target):
    """Every threshold of the ROC (each distinct score, plus one above all): the highest
    sensitivity among the thresholds whose specificity reaches the target."""
    best = 0.0
    for t in np.concatenate([np.unique(score), [np.inf]]):
        called = score >= t
        spec = (~called & ~positive).sum() / (~positive).sum()
        sens = (called & positive).sum() / positive.sum()
        if spec >= target - 1e-12:
            best = max(best, sens)
    return best


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("positive_index", [1, 0])
def test_binary_added_metrics_match_sklearn_and_oracles(seed, positive_index):
    rng = np.random.default_rng(seed)
    n = 211
    labels = (rng.random(n) < 0.3).astype(int)  # imbalanced, like FracAtlas
    probs = _probs(rng, n, 2, labels)
    m = compute_metrics(probs, labels, positive_index=positive_index)
    positive = labels == positive_index
    score = probs[:, positive_index]
    assert m["auprc"] == pytest.approx(average_precision_score(positive, score), abs=1e-6)
    assert m["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(labels, probs.argmax(1)), abs=1e-6)
    assert m["brier"] == pytest.approx(brier_score_loss(positive, score), abs=1e-6)
    assert m["ece"] == pytest.approx(_ece_oracle(score, positive.astype(float)), abs=1e-5)
    assert m["sensitivity_at_spec90"] == pytest.approx(_sens_at_spec_oracle(score, positive, 0.90), abs=1e-6)
    assert m["sensitivity_at_spec95"] == pytest.approx(_sens_at_spec_oracle(score, positive, 0.95), abs=1e-6)
    assert m["sensitivity_at_spec95"] <= m["sensitivity_at_spec90"]


def test_multiclass_added_metrics_match_sklearn_and_oracle():
    rng = np.random.default_rng(5)
    n, c = 260, 5
    labels = rng.integers(0, c, size=n)
    probs = _probs(rng, n, c, labels, signal=0.6)
    m = compute_metrics(probs, labels, positive_index=None, class_names=list("abcde"))
    onehot = label_binarize(labels, classes=list(range(c)))
    assert m["auprc"] == pytest.approx(average_precision_score(onehot, probs, average="macro"), abs=1e-6)
    assert m["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(labels, probs.argmax(1)), abs=1e-6)
    assert m["brier"] == pytest.approx(brier_score_loss(labels, probs), abs=1e-6)
    top = probs.max(1)
    assert m["ece"] == pytest.approx(_ece_oracle(top, (probs.argmax(1) == labels).astype(float)), abs=1e-5)
    assert "sensitivity_at_spec90" not in m and "sensitivity_at_spec95" not in m


def test_all_negative_predictor_has_undefined_precision_not_zero():
    # The degenerate model: every image called negative (confusion 337/0/72/0).
    labels = np.array([0] * 337 + [1] * 72)
    probs = np.tile([0.9, 0.1], (409, 1))
    m = compute_metrics(probs, labels, positive_index=1)
    assert m["confusion_matrix"] == [[337, 0], [72, 0]]
    assert m["precision"] is None  # 0 / 0
    assert m["recall"] == 0.0 and m["specificity"] == 1.0
    assert m["f1"] == 0.0  # 2TP / (2TP + FP + FN) = 0 / 72: defined
    assert m["balanced_accuracy"] == pytest.approx(0.5)
    assert m["auroc"] == pytest.approx(0.5)


def test_all_negative_labels_leave_recall_auroc_auprc_undefined():
    rng = np.random.default_rng(1)
    labels = np.zeros(40, dtype=int)
    probs = _probs(rng, 40, 2, labels)
    m = compute_metrics(probs, labels, positive_index=1)
    for key in ("recall", "auroc", "auprc", "sensitivity_at_spec90", "sensitivity_at_spec95"):
        assert m[key] is None, key
    assert m["specificity"] is not None and m["brier"] is not None


def test_threshold_rule_is_greater_or_equal_on_the_positive_probability():
    probs = np.array([[0.7, 0.3], [0.6, 0.4], [0.2, 0.8], [0.75, 0.25]])
    labels = np.array([1, 0, 1, 0])
    m = compute_metrics(probs, labels, positive_index=1, threshold=0.3)
    assert m["confusion_matrix"] == [[1, 1], [0, 2]]  # 0.3 and 0.4 and 0.8 are called positive
    assert m["recall"] == 1.0 and m["specificity"] == 0.5
    assert compute_metrics(probs, labels, positive_index=1)["confusion_matrix"] == [[2, 0], [1, 1]]


@pytest.mark.parametrize("binary", [True, False])
def test_reliability_bins_reproduce_the_recorded_ece(binary):
    rng = np.random.default_rng(9)
    c = 2 if binary else 4
    labels = rng.integers(0, c, size=300)
    probs = _probs(rng, 300, c, labels)
    pos = 1 if binary else None
    bins = reliability_bins(probs, labels, pos)
    assert len(bins) == 15 and sum(b["count"] for b in bins) == 300
    assert ece_from_bins(bins) == pytest.approx(compute_metrics(probs, labels, pos)["ece"], abs=1e-5)
