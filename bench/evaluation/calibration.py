"""Reliability-diagram bins: what the ECE averages, per bin, for the plot and the record.

Binary tasks bin the positive class's probability against the observed positive rate;
multi-class tasks bin the top-label confidence against the top-label accuracy (the same
definitions as torchmetrics' ``binary_calibration_error`` / ``multiclass_calibration_error``).
"""

from __future__ import annotations

import numpy as np

from bench.evaluation.metrics import ECE_BINS


def confidence_and_outcome(probs: np.ndarray, labels: np.ndarray, positive_index: int | None) -> tuple[np.ndarray, np.ndarray]:
    """(confidence, outcome in {0, 1}) per item, as the ECE defines them for the task."""
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels)
    if probs.shape[1] == 2 and positive_index is not None:
        return probs[:, positive_index], (labels == positive_index).astype(np.float64)
    return probs.max(axis=1), (probs.argmax(axis=1) == labels).astype(np.float64)


def reliability_bins(probs: np.ndarray, labels: np.ndarray, positive_index: int | None, n_bins: int = ECE_BINS) -> list[dict]:
    """Per equal-width bin: edges, count, mean confidence, observed rate (None when empty).
    torchmetrics computes the ECE but does not expose its bins, hence these few lines."""
    conf, outcome = confidence_and_outcome(probs, labels, positive_index)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    # Bin b holds [edges[b], edges[b+1]) as in torchmetrics; a confidence of exactly 1 joins
    # the last bin (torchmetrics gives it a bin of its own).
    idx = np.clip(np.searchsorted(edges, conf, side="right") - 1, 0, n_bins - 1)
    bins = []
    for b in range(n_bins):
        sel = idx == b
        count = int(sel.sum())
        bins.append({"low": float(edges[b]), "high": float(edges[b + 1]), "count": count,
                     "confidence": float(conf[sel].mean()) if count else None,
                     "observed": float(outcome[sel].mean()) if count else None})
    return bins


def ece_from_bins(bins: list[dict]) -> float | None:
    total = sum(b["count"] for b in bins)
    if total == 0:
        return None
    return float(sum(b["count"] * abs(b["observed"] - b["confidence"]) for b in bins if b["count"]) / total)
