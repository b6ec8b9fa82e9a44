"""Figures: per-layer grids (seed 002 Fig. 3: columns = layers) and single overlays, GT boxes drawn.

Written through ``bench.evaluation.plots.save_figure`` (atomic) so a reader never sees half a PNG."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

__all__ = ["grid_figure", "overlay_figure", "to_display"]


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def to_display(image, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """Normalised ``[3, S, S]`` tensor/array -> RGB float ``[S, S, 3]`` in [0, 1]."""
    img = np.asarray(image.detach().cpu() if hasattr(image, "detach") else image, dtype=np.float32)
    img = img * np.asarray(std, np.float32)[:, None, None] + np.asarray(mean, np.float32)[:, None, None]
    return np.clip(img.transpose(1, 2, 0), 0, 1)


def _draw(ax, img, heat, boxes, alpha=0.45):
    s_h, s_w = img.shape[:2]
    ax.imshow(img, interpolation="bilinear")
    if heat is not None:
        ax.imshow(heat, cmap="jet", alpha=alpha, vmin=0, vmax=1, extent=(0, s_w, s_h, 0),
                  interpolation="bilinear")
    from matplotlib.patches import Rectangle

    for cx, cy, w, h in boxes or []:
        ax.add_patch(Rectangle(((cx - w / 2) * s_w, (cy - h / 2) * s_h), w * s_w, h * s_h,
                               fill=False, edgecolor="lime", linewidth=1.2))
    ax.set_xlim(0, s_w)
    ax.set_ylim(s_h, 0)
    ax.set_xticks([])
    ax.set_yticks([])


def _save(fig, path: Path) -> None:
    from bench.evaluation.plots import save_figure

    save_figure(fig, path, dpi=90)


def grid_figure(path: Path, image: np.ndarray, maps: np.ndarray, methods: Sequence[str],
                layers: Sequence[str], boxes=None, title: str = "") -> None:
    """``maps`` ``[M, L, h, w]``: one row per method, one column per layer, plus the image."""
    plt = _plt()
    n_m, n_l = maps.shape[:2]
    fig, axes = plt.subplots(n_m, n_l + 1, figsize=(1.6 * (n_l + 1), 1.75 * n_m + 0.4), squeeze=False)
    for r in range(n_m):
        _draw(axes[r, 0], image, None, boxes)
        axes[r, 0].set_ylabel(methods[r], fontsize=8)
        for c in range(n_l):
            _draw(axes[r, c + 1], image, maps[r, c].astype(np.float32), boxes)
            if r == 0:
                axes[r, c + 1].set_title(layers[c].removeprefix("backbone."), fontsize=6)
    axes[0, 0].set_title("image + boxes", fontsize=6)
    fig.suptitle(title, fontsize=8)
    _save(fig, path)


def overlay_figure(path: Path, image: np.ndarray, heat: np.ndarray, boxes=None, title: str = "") -> None:
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(6, 3.2))
    _draw(axes[0], image, None, boxes)
    _draw(axes[1], image, heat.astype(np.float32), boxes)
    fig.suptitle(title, fontsize=8)
    _save(fig, path)
