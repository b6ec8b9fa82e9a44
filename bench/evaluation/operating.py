"""Operating point: a decision threshold chosen on validation only, then applied to test.

``metrics.test`` stays at the 0.5 rule (comparable with the papers); the operating point is the
clinically meaningful threshold (STARD 2015 item 12a). Rules (config key ``operating_point``):

- ``youden``: maximise Youden's J = sensitivity + specificity - 1 on the validation ROC
  (ties: the highest threshold, i.e. the fewest positive calls);
- ``target_sensitivity``: the most specific threshold whose validation sensitivity reaches
  ``target_sensitivity`` (torchmetrics ``binary_specificity_at_sensitivity``);
- ``fixed``: ``threshold`` as given.

An image (or MURA study) is positive when its positive-class probability is >= the threshold.
Multi-class tasks keep the argmax and have no operating point.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
import torchmetrics.functional.classification as tmf

from bench.errors import BenchError
from bench.evaluation.metrics import compute_metrics
from bench.evaluation.stats import PredictionSet, bootstrap_ci

RULES = ("youden", "target_sensitivity", "fixed")
#: Bootstrap resamples of the test sensitivity / specificity CIs at the operating point.
N_RESAMPLES = 1000


def validate_config(op: Mapping | None) -> None:
    """One-line errors for a bad ``operating_point`` config, before anything is written."""
    if op is None:
        return
    rule = op.get("rule")
    if rule not in RULES:
        raise BenchError(f"operating_point.rule={rule!r}: use one of {', '.join(RULES)}")
    if rule == "target_sensitivity":
        t = op.get("target_sensitivity")
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not 0 < float(t) <= 1:
            raise BenchError(f"operating_point.target_sensitivity={t!r}: give a sensitivity in (0, 1], e.g. 0.9")
    if rule == "fixed":
        t = op.get("threshold")
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not 0 <= float(t) <= 1:
            raise BenchError(f"operating_point.threshold={t!r}: rule=fixed needs a probability in [0, 1], e.g. 0.3")


def choose_threshold(val_score: np.ndarray, val_positive: np.ndarray, rule: str = "youden",
                     target_sensitivity: float | None = None, threshold: float | None = None) -> float | None:
    """The decision threshold from validation scores and labels; None when the rule needs both
    classes and validation has one (the point is then undefined, not guessed)."""
    if rule == "fixed":
        return float(threshold)
    score = torch.as_tensor(np.array(val_score, dtype=np.float64))  # a float64 copy: the threshold is one of these scores
    target = torch.as_tensor(np.array(val_positive, dtype=np.int64))
    if target.numel() == 0 or int(target.min()) == int(target.max()):
        return None
    if rule == "youden":
        fpr, tpr, thresholds = tmf.binary_roc(score, target)
        j = (tpr - fpr).numpy()
        return float(thresholds[int(np.argmax(j))])  # argmax: first maximum = highest threshold
    if rule == "target_sensitivity":
        _, thr = tmf.binary_specificity_at_sensitivity(score, target, min_sensitivity=float(target_sensitivity))
        return float(thr)
    raise BenchError(f"operating_point.rule={rule!r}: use one of {', '.join(RULES)}")


def _sens_spec_ci(probs: np.ndarray, labels: np.ndarray, positive_index: int, threshold: float, ids=None, groups=None) -> dict:
    """Bootstrap 95% CIs of sensitivity and specificity at ``threshold`` over the test items
    (the leaderboard's resampler, so run pages and leaderboards agree)."""
    pred = np.where(probs[:, positive_index] >= threshold, positive_index, 1 - positive_index)
    n = len(labels)
    if n < 2:
        return {}
    ps = PredictionSet(ids=np.asarray(ids if ids is not None else np.arange(n)).astype(str), label=np.asarray(labels),
                       pred=pred, prob=np.asarray(probs, dtype=np.float64), positive_index=positive_index, groups=groups)
    ci = bootstrap_ci(ps, "binary", n_resamples=N_RESAMPLES, seed=0)
    n_pos = int((np.asarray(labels) == positive_index).sum())
    # A CI of an undefined proportion (no positives / no negatives) is undefined too.
    return {"sensitivity": ci.get("recall") if n_pos else None,
            "specificity": ci.get("specificity") if n - n_pos else None}


def operating_point(op_cfg: Mapping, val_probs: np.ndarray, val_labels: np.ndarray, test_probs: np.ndarray,
                    test_labels: np.ndarray, positive_index: int | None, class_names, level: str = "image") -> tuple[dict, dict | None]:
    """(the ``operating_point`` entry, test metrics at it with CIs) for one level (image / study).

    The threshold is a function of the validation predictions only; test enters afterwards."""
    if positive_index is None or val_probs.shape[1] != 2:
        return {"rule": "argmax", "threshold": None, "level": level}, None
    rule = str(op_cfg.get("rule", "youden"))
    thr = choose_threshold(val_probs[:, positive_index], np.asarray(val_labels) == positive_index, rule,
                           op_cfg.get("target_sensitivity"), op_cfg.get("threshold"))
    entry: dict = {"rule": rule, "level": level, "split": "val", "threshold": thr}
    if rule == "target_sensitivity":
        entry["target_sensitivity"] = float(op_cfg.get("target_sensitivity"))
    if thr is None:
        entry["note"] = "validation holds one class: the rule is undefined"
        return entry, None
    entry["validation"] = compute_metrics(val_probs, val_labels, positive_index, class_names, threshold=thr)
    test = compute_metrics(test_probs, test_labels, positive_index, class_names, threshold=thr)
    test["threshold"] = thr
    test["ci"] = _sens_spec_ci(np.asarray(test_probs, dtype=np.float64), np.asarray(test_labels), positive_index, thr)
    return entry, test
