"""Training-set balancing. Only the train split is ever balanced; val and test stay as they are.

Policies: ``none``; ``oversample`` (minority rows repeated up to the majority count; each copy
gets its own random augmentation, seed 000); ``downsample`` (majority rows dropped to the
minority count, seed 002); ``class_weight`` (all rows, inverse-frequency loss weights);
``per_class`` (every class to ``per_class`` rows: downsample above, oversample below, seed 002's
300 per region). ``class_weight=True`` adds loss weights to any policy (seed 000 used both).
"""

from __future__ import annotations

import numpy as np
import torch

from bench.errors import BenchError

POLICIES = ("none", "oversample", "downsample", "class_weight", "per_class")


def inverse_frequency_weights(labels: np.ndarray, num_classes: int) -> torch.Tensor:
    """w_c = N / (K * n_c) (sklearn's "balanced"); classes absent from train get weight 0."""
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=num_classes).astype(np.float64)
    w = np.where(counts > 0, counts.sum() / (num_classes * np.maximum(counts, 1)), 0.0)
    return torch.tensor(w, dtype=torch.float32)


def _resample(idx: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` rows from ``idx``: a subset without replacement, or whole copies plus a random rest."""
    if n <= len(idx):
        return np.sort(rng.choice(idx, size=n, replace=False))
    reps, rest = divmod(n, len(idx))
    return np.concatenate([np.tile(idx, reps), np.sort(rng.choice(idx, size=rest, replace=False))])


def balance_indices(
    labels: np.ndarray,
    num_classes: int,
    policy: str = "none",
    per_class: int | None = None,
    class_weight: bool = False,
    seed: int = 0,
) -> tuple[np.ndarray, torch.Tensor | None]:
    """Return (positions into ``labels`` to train on, with repeats; class weights or None)."""
    if policy not in POLICIES:
        raise BenchError(f"data.balance.policy={policy!r}: use one of {', '.join(POLICIES)}")
    labels = np.asarray(labels, dtype=np.int64)
    if labels.size == 0:
        raise BenchError("balancing: the train split is empty: use a larger dataset or other split ratios")
    rng = np.random.default_rng(seed)
    by_class = [np.flatnonzero(labels == c) for c in range(num_classes)]
    present = [idx for idx in by_class if len(idx)]
    if policy in ("none", "class_weight"):
        out = np.arange(len(labels))
    elif policy == "oversample":
        target = max(len(i) for i in present)
        out = np.concatenate([_resample(i, target, rng) for i in present])
    elif policy == "downsample":
        target = min(len(i) for i in present)
        out = np.concatenate([_resample(i, target, rng) for i in present])
    else:
        if per_class is None or int(per_class) < 1:
            raise BenchError(f"data.balance.per_class={per_class!r}: policy per_class needs a positive count")
        out = np.concatenate([_resample(i, int(per_class), rng) for i in present])
    weights = inverse_frequency_weights(labels, num_classes) if (policy == "class_weight" or class_weight) else None
    return out.astype(np.int64), weights
