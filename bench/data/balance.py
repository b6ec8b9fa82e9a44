"""Training-set balancing. Only the train split is ever balanced; val and test stay as they are.

Policies: ``none``; ``oversample`` (minority rows repeated up to the majority count, seed 000 /
seed 002's region stage); ``downsample`` (majority rows dropped to the minority count);
``class_weight`` (all rows, inverse-frequency loss weights); ``per_class`` (every class to
``per_class`` rows: downsample above, oversample below). ``class_weight=True`` adds loss
weights to any policy (seed 000 states both).

Class weights are computed from the rows actually trained on (after resampling), so every class
carries the same total loss weight: after exact oversampling they are all 1 (the resampling
already balances), and they only act where balancing is partial. Weights computed from the
counts *before* oversampling and applied to the balanced rows would count the imbalance twice
(a 2,244 / 868 split then gives the minority 2.59x the loss of the majority).

``augment_rows``: ``all`` (the augmentation preset applies to every train row) or ``copies``
(only the rows added by oversampling are augmented, the original images are seen as they are:
seed 000's "augmentation primarily applied to fractured images", seed 002's augmented hip and
shoulder images). Each copy draws a fresh random augmentation every epoch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from bench.errors import BenchError

POLICIES = ("none", "oversample", "downsample", "class_weight", "per_class")
AUGMENT_ROWS = ("all", "copies")


@dataclass(frozen=True)
class BalancePlan:
    positions: np.ndarray  # positions into the train labels to train on, with repeats
    is_copy: np.ndarray  # bool per position: an added (oversampled) copy of an image already listed
    class_weights: torch.Tensor | None


def inverse_frequency_weights(labels: np.ndarray, num_classes: int) -> torch.Tensor:
    """w_c = N / (K * n_c) (sklearn's "balanced"); classes absent from train get weight 0."""
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=num_classes).astype(np.float64)
    w = np.where(counts > 0, counts.sum() / (num_classes * np.maximum(counts, 1)), 0.0)
    return torch.tensor(w, dtype=torch.float32)


def _resample(idx: np.ndarray, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``n`` rows from ``idx``: a subset without replacement, or every row once followed by
    copies (whole repeats plus a random rest); returns (rows, is_copy)."""
    if n <= len(idx):
        return np.sort(rng.choice(idx, size=n, replace=False)), np.zeros(n, dtype=bool)
    reps, rest = divmod(n, len(idx))
    rows = np.concatenate([np.tile(idx, reps), np.sort(rng.choice(idx, size=rest, replace=False))])
    return rows, np.arange(n) >= len(idx)


def balance_plan(
    labels: np.ndarray,
    num_classes: int,
    policy: str = "none",
    per_class: int | None = None,
    class_weight: bool = False,
    seed: int = 0,
) -> BalancePlan:
    if policy not in POLICIES:
        raise BenchError(f"data.balance.policy={policy!r}: use one of {', '.join(POLICIES)}")
    labels = np.asarray(labels, dtype=np.int64)
    if labels.size == 0:
        raise BenchError("balancing: the train split is empty: use a larger dataset or other split ratios")
    rng = np.random.default_rng(seed)
    by_class = [np.flatnonzero(labels == c) for c in range(num_classes)]
    present = [idx for idx in by_class if len(idx)]
    if policy in ("none", "class_weight"):
        out, copy = np.arange(len(labels)), np.zeros(len(labels), dtype=bool)
    else:
        if policy == "oversample":
            target = max(len(i) for i in present)
        elif policy == "downsample":
            target = min(len(i) for i in present)
        else:
            if per_class is None or int(per_class) < 1:
                raise BenchError(f"data.balance.per_class={per_class!r}: policy per_class needs a positive count")
            target = int(per_class)
        parts = [_resample(i, target, rng) for i in present]
        out = np.concatenate([p[0] for p in parts])
        copy = np.concatenate([p[1] for p in parts])
    weights = inverse_frequency_weights(labels[out], num_classes) if (policy == "class_weight" or class_weight) else None
    return BalancePlan(out.astype(np.int64), copy, weights)


def balance_indices(
    labels: np.ndarray,
    num_classes: int,
    policy: str = "none",
    per_class: int | None = None,
    class_weight: bool = False,
    seed: int = 0,
) -> tuple[np.ndarray, torch.Tensor | None]:
    """Return (positions into ``labels`` to train on, with repeats; class weights or None)."""
    plan = balance_plan(labels, num_classes, policy, per_class, class_weight, seed)
    return plan.positions, plan.class_weights
