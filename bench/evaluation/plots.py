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
