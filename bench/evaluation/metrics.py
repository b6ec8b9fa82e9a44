"""Test and validation metrics, computed with torchmetrics from class probabilities.

Binary tasks report precision/recall/specificity/F1 for the positive class (fractured or
abnormal) and ROC-AUC on its probability; multi-class tasks report macro averages (one-vs-rest)
and per-class accuracy. Checked against scikit-learn in tests/test_metrics.py.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
import torchmetrics
import torchmetrics.functional.classification as tmf


def _finite(value: torch.Tensor) -> float:
    v = float(value)
    return v if math.isfinite(v) else float("nan")


def compute_metrics(
    probs: torch.Tensor | np.ndarray,
    labels: torch.Tensor | np.ndarray,
    positive_index: int | None = 1,
    class_names: Sequence[str] | None = None,
) -> dict:
    """All headline metrics from probabilities [N, C] and integer labels [N].

    ``positive_index`` selects the positive class for binary tasks; pass None for multi-class.
    Undefined values (e.g. ROC-AUC when the labels hold one class) are NaN, never a crash.
    """
    probs = torch.as_tensor(np.array(probs, dtype=np.float32))  # a copy: pandas arrays are read-only
    labels = torch.as_tensor(np.array(labels, dtype=np.int64))
    n, num_classes = probs.shape
    preds = probs.argmax(dim=1)
    out: dict = {"n": int(n)}
    if n == 0:
        return out
    out["accuracy"] = float((preds == labels).float().mean())
    cm = tmf.multiclass_confusion_matrix(preds, labels, num_classes=num_classes)
    out["confusion_matrix"] = cm.tolist()
    present = set(labels.tolist())
    if num_classes == 2 and positive_index is not None:
        pos = positive_index
        target = (labels == pos).long()
        pred_pos = (preds == pos).long()
        score = probs[:, pos]
        out["precision"] = _finite(tmf.binary_precision(pred_pos, target))
        out["recall"] = _finite(tmf.binary_recall(pred_pos, target))
        out["specificity"] = _finite(tmf.binary_specificity(pred_pos, target))
        out["f1"] = _finite(tmf.binary_f1_score(pred_pos, target))
        out["auroc"] = _finite(tmf.binary_auroc(score, target)) if len(present) == 2 else float("nan")
        out["kappa"] = _finite(tmf.binary_cohen_kappa(pred_pos, target))
    else:
        kw = dict(num_classes=num_classes, average="macro")
        out["precision"] = _finite(tmf.multiclass_precision(preds, labels, **kw))
        out["recall"] = _finite(tmf.multiclass_recall(preds, labels, **kw))
        out["specificity"] = _finite(tmf.multiclass_specificity(preds, labels, **kw))
        out["f1"] = _finite(tmf.multiclass_f1_score(preds, labels, **kw))
        # One-vs-rest AUC is undefined for a class absent from the labels: average the defined ones.
        per_class_auc = tmf.multiclass_auroc(probs, labels, num_classes=num_classes, average=None)
        defined = [float(per_class_auc[c]) for c in range(num_classes) if c in present]
        out["auroc"] = float(np.mean(defined)) if len(present) > 1 and defined else float("nan")
        out["kappa"] = _finite(tmf.multiclass_cohen_kappa(preds, labels, num_classes=num_classes))
        recalls = tmf.multiclass_recall(preds, labels, num_classes=num_classes, average=None)
        names = list(class_names) if class_names else [str(c) for c in range(num_classes)]
        out["per_class_accuracy"] = {
            names[c]: (float(recalls[c]) if c in present else float("nan")) for c in range(num_classes)
        }
    return out


class ClassificationMetrics(torchmetrics.Metric):
    """update/compute accumulator of probabilities and labels (synced across DDP ranks)."""

    full_state_update = False

    def __init__(self, num_classes: int, positive_index: int | None, class_names: Sequence[str]):
        super().__init__()
        self.num_classes = num_classes
        self.positive_index = positive_index
        self.class_names = list(class_names)
        self.add_state("probs", default=[], dist_reduce_fx="cat")
        self.add_state("labels", default=[], dist_reduce_fx="cat")

    def update(self, probs: torch.Tensor, labels: torch.Tensor) -> None:
        self.probs.append(probs.detach().float())
        self.labels.append(labels.detach())

    def compute(self) -> dict:
        probs = torchmetrics.utilities.dim_zero_cat(self.probs).cpu()
        labels = torchmetrics.utilities.dim_zero_cat(self.labels).cpu()
        return compute_metrics(probs, labels, self.positive_index, self.class_names)


def aggregate_by_study(predictions: pd.DataFrame, class_names: Sequence[str]) -> pd.DataFrame:
    """MURA protocol: a study's probability is the mean of its images' probabilities."""
    prob_cols = [f"prob_{c}" for c in class_names]
    grouped = predictions.groupby("study_id", sort=True)
    studies = grouped[prob_cols].mean()
    first = grouped[["patient_id", "label", "split"]].first()
    if (grouped["label"].nunique() > 1).any():
        bad = grouped["label"].nunique()
        raise ValueError(f"study with mixed image labels: {bad[bad > 1].index[0]}")
    out = first.join(studies).reset_index()
    out["pred"] = out[prob_cols].to_numpy().argmax(axis=1)
    return out[["study_id", "patient_id", "split", "label", "pred", *prob_cols]]
