"""Evaluation plots written into the run record (matplotlib, Agg backend, PNG)."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.metrics import roc_curve  # noqa: E402

from bench.record import atomic_write_bytes  # noqa: E402


def save_figure(fig, path: Path, dpi: int = 110) -> None:
    """PNG written atomically (a reader never sees half a file), figure closed."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def plot_roc(probs: np.ndarray, labels: np.ndarray, class_names: Sequence[str], positive_index: int | None, path: Path, title: str = "") -> None:
    fig, ax = plt.subplots(figsize=(4.2, 4.0))
    classes = [positive_index] if (len(class_names) == 2 and positive_index is not None) else range(len(class_names))
    for c in classes:
        target = (labels == c).astype(int)
        if target.min() == target.max():
            continue  # one class only: the curve is undefined
        fpr, tpr, _ = roc_curve(target, probs[:, c])
        ax.plot(fpr, tpr, label=str(class_names[c]))
    ax.plot([0, 1], [0, 1], "--", color="grey", linewidth=0.8)
    ax.set(xlabel="False positive rate", ylabel="True positive rate", title=title or "ROC (test)", xlim=(0, 1), ylim=(0, 1.01))
    ax.legend(loc="lower right", fontsize=8)
    save_figure(fig, path)


def plot_confusion(cm: Sequence[Sequence[int]], class_names: Sequence[str], path: Path, title: str = "") -> None:
    cm = np.asarray(cm)
    k = len(class_names)
    fig, ax = plt.subplots(figsize=(1.2 + 0.9 * k, 1.0 + 0.8 * k))
    ax.imshow(cm, cmap="Blues")
    for i in range(k):
        for j in range(k):
            ax.text(j, i, int(cm[i, j]), ha="center", va="center", color="black" if cm[i, j] < cm.max() * 0.6 else "white")
    ax.set_xticks(range(k), class_names, rotation=30, ha="right")
    ax.set_yticks(range(k), class_names)
    ax.set(xlabel="Predicted", ylabel="True", title=title or "Confusion matrix (test)")
    save_figure(fig, path)


def plot_learning_curves(history: pd.DataFrame, path: Path, monitor: str) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.2))
    for col in ("train_loss", "val_loss"):
        if col in history and history[col].notna().any():
            axes[0].plot(history["epoch"], history[col], marker="o", label=col)
    axes[0].set(xlabel="epoch", ylabel="loss", title="Loss")
    axes[0].legend(fontsize=8)
    key = monitor.replace("/", "_")
    for col in dict.fromkeys([key, "val_accuracy", "val_auroc"]):
        if col in history and col != "val_loss" and history[col].notna().any():
            axes[1].plot(history["epoch"], history[col], marker="o", label=col)
    axes[1].set(xlabel="epoch", title="Validation")
    axes[1].legend(fontsize=8)
    save_figure(fig, path)


def plot_reliability(bins: list[dict], path: Path, ece: float | None, binary: bool, title: str = "") -> None:
    """Reliability diagram (observed rate against mean predicted probability per bin) with the
    bin counts below; ``bins`` from ``bench.evaluation.calibration.reliability_bins``."""
    fig, (ax, axn) = plt.subplots(2, 1, figsize=(4.2, 5.0), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    width = bins[0]["high"] - bins[0]["low"] if bins else 1.0
    full = [b for b in bins if b["count"]]
    ax.bar([b["low"] for b in full], [b["observed"] for b in full], width=width, align="edge",
           edgecolor="black", linewidth=0.5, color="#4c72b0", label="observed")
    ax.plot([b["confidence"] for b in full], [b["observed"] for b in full], "o", color="#dd8452", markersize=3, label="bin mean")
    ax.plot([0, 1], [0, 1], "--", color="grey", linewidth=0.8, label="perfect calibration")
    ylabel = "Observed positive rate" if binary else "Top-label accuracy"
    ece_text = "ECE n/a" if ece is None else f"ECE {ece:.3f} ({len(bins)} bins)"
    ax.set(ylabel=ylabel, xlim=(0, 1), ylim=(0, 1.01), title=(title or "Reliability (test)") + f"\n{ece_text}")
    ax.legend(loc="upper left", fontsize=7)
    axn.bar([b["low"] for b in bins], [b["count"] for b in bins], width=width, align="edge", color="grey")
    axn.set(xlabel="Predicted probability (positive class)" if binary else "Top-label confidence", ylabel="images")
    save_figure(fig, path)
