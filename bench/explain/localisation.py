"""Localisation scores of heatmaps against ground-truth boxes (FracAtlas fracture boxes).

Maps are ``[..., H, W]`` tensors (or arrays) covering the whole square-resized radiograph, so a
normalised YOLO box ``(cx, cy, w, h)`` maps directly onto them. A pixel belongs to a box when its
centre ``((j + 0.5) / W, (i + 0.5) / H)`` lies inside the box (edges included).

* ``pointing_game``: hit when a global maximum of the map lies inside the union of the boxes,
  widened by ``margin`` (a fraction of the image side, default 0) on every side.
* ``energy``: sum of the map inside the union of the boxes / sum of the map (0 for an all-zero map).
* ``iou``: IoU of the thresholded map with the union of the boxes. The map is "on" where it is
  ``>= threshold * max`` (default 0.5) and > 0, or, with ``top_percent``, on its top
  ``top_percent`` % pixels (ties at the cut included).

A constant map (max == min: e.g. a Grad-CAM whose gradients are all negative) has no maximum to
point with: it scores a miss, energy 0 when it is all zero, and is flagged ``degenerate``.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from bench.errors import BenchError

__all__ = ["boxes_mask", "pointing_game", "energy", "iou", "localisation_scores"]

Box = Sequence[float]


def boxes_mask(boxes: Sequence[Box], height: int, width: int, margin: float = 0.0,
               device: torch.device | str | None = None) -> torch.Tensor:
    """Bool ``[H, W]``: the union of the normalised ``(cx, cy, w, h)`` boxes (widened by margin)."""
    ys = (torch.arange(height, device=device, dtype=torch.float64) + 0.5) / height
    xs = (torch.arange(width, device=device, dtype=torch.float64) + 0.5) / width
    mask = torch.zeros(height, width, dtype=torch.bool, device=device)
    for box in boxes:
        if len(box) != 4:
            raise BenchError(f"box {box!r}: expected 4 numbers (cx, cy, w, h), normalised")
        cx, cy, w, h = (float(v) for v in box)
        if w <= 0 or h <= 0:
            continue
        inside_y = (ys >= cy - h / 2 - margin) & (ys <= cy + h / 2 + margin)
        inside_x = (xs >= cx - w / 2 - margin) & (xs <= cx + w / 2 + margin)
        mask |= inside_y[:, None] & inside_x[None, :]
    return mask


def _t(maps) -> torch.Tensor:
    return maps if isinstance(maps, torch.Tensor) else torch.as_tensor(np.asarray(maps))


def _degenerate(flat: torch.Tensor) -> torch.Tensor:
    return (flat.amax(-1) - flat.amin(-1)) <= 1e-8


def pointing_game(maps, mask: torch.Tensor) -> torch.Tensor:
    """Bool ``[...]``: a global maximum of each map lies inside ``mask`` (constant map: miss)."""
    flat = _t(maps).flatten(-2).float()
    m = mask.to(flat.device).flatten()
    top = flat.amax(-1, keepdim=True)
    inside = flat.masked_fill(~m, float("-inf")).amax(-1, keepdim=True)
    return ((inside >= top).squeeze(-1)) & ~_degenerate(flat)


def energy(maps, mask: torch.Tensor) -> torch.Tensor:
    """Float ``[...]``: fraction of the map's sum inside ``mask`` (maps must be >= 0)."""
    flat = _t(maps).flatten(-2).double()
    m = mask.to(flat.device).flatten()
    total = flat.sum(-1)
    inside = (flat * m).sum(-1)
    return torch.where(total > 0, inside / total.clamp_min(1e-300), torch.zeros_like(total))


def iou(maps, mask: torch.Tensor, threshold: float = 0.5, top_percent: float | None = None) -> torch.Tensor:
    """Float ``[...]``: IoU of the thresholded map with ``mask`` (see the module docstring)."""
    flat = _t(maps).flatten(-2).float()
    m = mask.to(flat.device).flatten()
    if top_percent is not None:
        if not 0 < top_percent <= 100:
            raise BenchError(f"iou top_percent={top_percent}: use a percentage in (0, 100]")
        k = max(1, int(round(flat.shape[-1] * top_percent / 100)))
        cut = flat.topk(k, dim=-1).values[..., -1:]
        on = flat >= cut
    else:
        if not 0 <= threshold <= 1:
            raise BenchError(f"iou threshold={threshold}: use a fraction of the map's max in [0, 1]")
        on = flat >= threshold * flat.amax(-1, keepdim=True)
    on &= flat > 0
    inter = (on & m).sum(-1).double()
    union = (on | m).sum(-1).double()
    return torch.where(union > 0, inter / union.clamp_min(1), torch.zeros_like(union))


def localisation_scores(maps, mask: torch.Tensor, threshold: float = 0.5,
                        top_percent: float | None = None, margin_mask: torch.Tensor | None = None) -> dict:
    """All scores for maps ``[..., H, W]`` against one image's mask: numpy arrays ``[...]``.

    ``margin_mask`` (the boxes widened by the pointing margin) is used for the pointing game only.
    """
    maps = _t(maps)
    flat = maps.flatten(-2)
    return {
        "pointing_game": pointing_game(maps, mask if margin_mask is None else margin_mask).cpu().numpy(),
        "energy": energy(maps, mask).cpu().numpy(),
        "iou": iou(maps, mask, threshold, top_percent).cpu().numpy(),
        "degenerate": _degenerate(flat.float()).cpu().numpy(),
    }
