"""Test and validation metrics, computed with torchmetrics from class probabilities.

Binary tasks report precision/recall/specificity/F1 for the positive class (fractured or
abnormal), ROC-AUC, average precision (AUPRC), sensitivity at 90%/95% specificity, Brier score
and ECE on its probability; multi-class tasks report macro averages (one-vs-rest), per-class
accuracy, multi-class Brier and top-label ECE. Undefined values are None. Checked against
scikit-learn in tests/test_metrics.py and tests/test_evaluation_metrics.py.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
import torchmetrics
import torchmetrics.functional.classification as tmf

from bench.record import prob_columns


#: Equal-width bins of the expected calibration error (ECE), L1 norm.
ECE_BINS = 15
#: Specificity targets of ``sensitivity_at_spec<NN>`` (binary tasks).
SPEC_TARGETS = {"sensitivity_at_spec90": 0.90, "sensitivity_at_spec95": 0.95}
#: Scalars of :func:`compute_metrics` that can pick a checkpoint (``monitor.metric=val/<name>``).
MONITORABLE = ("accuracy", "precision", "recall", "specificity", "f1", "auroc", "kappa")
#: Every scalar validation logs once an epoch as ``val/<name>`` (besides ``val/loss``).
VAL_LOGGED = MONITORABLE + ("auprc", "balanced_accuracy", "brier", "ece")
#: The validation metrics a run may monitor: ``val/loss`` and the monitorable scalars.
VAL_METRICS = ("val/loss", *(f"val/{name}" for name in MONITORABLE))


def _finite(value) -> float | None:
    """A float, or None where the value is undefined (0/0, NaN): records store null, never 0."""
    if value is None:
        return None
    v = float(value)
    return v if math.isfinite(v) else None


def _ratio(num: int, den: int) -> float | None:
    return None if den == 0 else num / den


def compute_metrics(
    probs: torch.Tensor | np.ndarray,
    labels: torch.Tensor | np.ndarray,
    positive_index: int | None = 1,
    class_names: Sequence[str] | None = None,
    threshold: float | None = None,
) -> dict:
    """All headline metrics from probabilities [N, C] and integer labels [N].

    ``positive_index`` selects the positive class for binary tasks; pass None for multi-class.
    Binary predictions are the argmax (the 0.5 rule) unless ``threshold`` is given: then an
    image is positive when its positive-class probability is >= threshold (the ROC's rule).
    Undefined values (0/0: precision with no predicted positive, AUROC on one class, ...) are
    None, never 0 and never a crash.
    """
    probs64 = np.array(probs, dtype=np.float64)  # a copy: pandas arrays are read-only
    probs = torch.as_tensor(probs64.astype(np.float32))
    labels = torch.as_tensor(np.array(labels, dtype=np.int64))
    n, num_classes = probs.shape
    binary = num_classes == 2 and positive_index is not None
    if threshold is not None and not binary:
        raise ValueError("a decision threshold applies to binary tasks only (multi-class uses the argmax)")
    preds = probs.argmax(dim=1)
    if threshold is not None:
        # Compared in float64: a threshold taken from float64 scores must call exactly those scores.
        pos_pred = torch.as_tensor(probs64[:, positive_index] >= float(threshold))
        preds = torch.where(pos_pred, positive_index, 1 - positive_index)
    out: dict = {"n": int(n)}
    if n == 0:
        return out
    out["accuracy"] = float((preds == labels).float().mean())
    cm = tmf.multiclass_confusion_matrix(preds, labels, num_classes=num_classes)
    out["confusion_matrix"] = cm.tolist()
    present = sorted(set(labels.tolist()))
    per_class_recall = tmf.multiclass_recall(preds, labels, num_classes=num_classes, average=None)
    # scikit-learn's definition: mean recall over the classes present in the labels.
    out["balanced_accuracy"] = float(np.mean([float(per_class_recall[c]) for c in present]))
    if binary:
        pos = positive_index
        target = (labels == pos).long()
        pred_pos = (preds == pos).long()
        score = probs[:, pos].contiguous()
        tp = int(((pred_pos == 1) & (target == 1)).sum())
        fp = int(((pred_pos == 1) & (target == 0)).sum())
        fn = int(((pred_pos == 0) & (target == 1)).sum())
        tn = int(((pred_pos == 0) & (target == 0)).sum())
        both = len(present) == 2
        # torchmetrics returns 0 for 0/0; those cases are undefined, so they are None here.
        out["precision"] = _finite(tmf.binary_precision(pred_pos, target)) if tp + fp else None
        out["recall"] = _finite(tmf.binary_recall(pred_pos, target)) if tp + fn else None
        out["specificity"] = _finite(tmf.binary_specificity(pred_pos, target)) if tn + fp else None
        out["f1"] = _finite(tmf.binary_f1_score(pred_pos, target)) if 2 * tp + fp + fn else None
        out["auroc"] = _finite(tmf.binary_auroc(score, target)) if both else None
        out["kappa"] = _finite(tmf.binary_cohen_kappa(pred_pos, target))
        out["auprc"] = _finite(tmf.binary_average_precision(score, target)) if tp + fn else None
        for key, spec in SPEC_TARGETS.items():
            out[key] = _finite(tmf.binary_sensitivity_at_specificity(score, target, min_specificity=spec)[0]) if both else None
        out["brier"] = float(((score - target.float()) ** 2).mean())  # torchmetrics has no Brier score
        out["ece"] = _finite(tmf.binary_calibration_error(score, target, n_bins=ECE_BINS, norm="l1"))
    else:
        kw = dict(num_classes=num_classes, average="macro")
        out["precision"] = _finite(tmf.multiclass_precision(preds, labels, **kw))
        out["recall"] = _finite(tmf.multiclass_recall(preds, labels, **kw))
        out["specificity"] = _finite(tmf.multiclass_specificity(preds, labels, **kw))
        out["f1"] = _finite(tmf.multiclass_f1_score(preds, labels, **kw))
        # One-vs-rest AUC / AP are undefined for a class absent from the labels: average the defined ones.
        per_class_auc = tmf.multiclass_auroc(probs, labels, num_classes=num_classes, average=None)
        per_class_ap = tmf.multiclass_average_precision(probs, labels, num_classes=num_classes, average=None)
        several = len(present) > 1
        out["auroc"] = float(np.mean([float(per_class_auc[c]) for c in present])) if several else None
        out["kappa"] = _finite(tmf.multiclass_cohen_kappa(preds, labels, num_classes=num_classes))
        out["auprc"] = float(np.mean([float(per_class_ap[c]) for c in present])) if several else None
        onehot = torch.nn.functional.one_hot(labels, num_classes).float()
        out["brier"] = float(((probs - onehot) ** 2).sum(dim=1).mean())  # torchmetrics has no Brier score
        out["ece"] = _finite(tmf.multiclass_calibration_error(probs, labels, num_classes=num_classes, n_bins=ECE_BINS, norm="l1"))
        names = list(class_names) if class_names else [str(c) for c in range(num_classes)]
        out["per_class_accuracy"] = {
            names[c]: (float(per_class_recall[c]) if c in present else None) for c in range(num_classes)
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
    prob_cols = prob_columns(class_names)
    grouped = predictions.groupby("study_id", sort=True)
    studies = grouped[prob_cols].mean()
    first = grouped[["patient_id", "label", "split"]].first()
    if (grouped["label"].nunique() > 1).any():
        bad = grouped["label"].nunique()
        raise ValueError(f"study with mixed image labels: {bad[bad > 1].index[0]}")
    out = first.join(studies).reset_index()
    out["pred"] = out[prob_cols].to_numpy().argmax(axis=1)
    return out[["study_id", "patient_id", "split", "label", "pred", *prob_cols]]
