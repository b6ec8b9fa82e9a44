"""Detection metrics recomputed from a run's files (``detections.csv`` + ``ground_truth.csv``),
independently of Ultralytics, and a bootstrap interval of mAP@0.5 over test images.

* :func:`torchmetrics_map`: torchmetrics' ``MeanAveragePrecision`` (pycocotools backend), the
  reference recomputation recorded beside Ultralytics' own numbers.
* :func:`bootstrap_map50`: a percentile bootstrap over images. One resample = one AP; thousands
  of torchmetrics calls would take minutes, so matches are computed once (COCO's greedy rule at
  IoU 0.5) and each resample only re-ranks them (hand-written for speed; checked against
  torchmetrics in the tests).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["torchmetrics_map", "ap50_from_matches", "image_matches", "bootstrap_map50"]

BOX = ["x1", "y1", "x2", "y2"]


def _per_image(df: pd.DataFrame, ids) -> dict:
    groups = {k: g for k, g in df.groupby("image_id", sort=False)} if len(df) else {}
    return {i: groups.get(i) for i in ids}


def torchmetrics_map(detections: pd.DataFrame, ground_truth: pd.DataFrame, image_ids) -> dict:
    """``{"map50", "map50_95"}`` over ``image_ids`` (images without boxes count as background)."""
    import torch
    from torchmetrics.detection import MeanAveragePrecision

    # Ultralytics keeps up to 300 boxes per image, COCO 100. pycocotools' summary reads mAP@0.5
    # at the last threshold (300, as Ultralytics) but mAP@0.5:0.95 at 100 (COCO's rule), always.
    metric = MeanAveragePrecision(box_format="xyxy", iou_type="bbox", backend="pycocotools", max_detection_thresholds=[1, 100, 300])
    det = _per_image(detections, image_ids)
    gt = _per_image(ground_truth, image_ids)
    preds, targets = [], []
    for i in image_ids:
        d, g = det[i], gt[i]
        preds.append({"boxes": torch.tensor(d[BOX].to_numpy(), dtype=torch.float64).reshape(-1, 4) if d is not None else torch.zeros(0, 4),
                      "scores": torch.tensor(d["score"].to_numpy(), dtype=torch.float64) if d is not None else torch.zeros(0),
                      "labels": torch.zeros(0 if d is None else len(d), dtype=torch.long)})
        targets.append({"boxes": torch.tensor(g[BOX].to_numpy(), dtype=torch.float64).reshape(-1, 4) if g is not None else torch.zeros(0, 4),
                        "labels": torch.zeros(0 if g is None else len(g), dtype=torch.long)})
    metric.update(preds, targets)
    res = metric.compute()
    # torchmetrics reports -1 where COCO's AP is undefined (no box at all): None here.
    return {k: (None if float(res[src]) < 0 else float(res[src])) for k, src in (("map50", "map_50"), ("map50_95", "map"))}


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = lambda z: (z[:, 2] - z[:, 0]) * (z[:, 3] - z[:, 1])  # noqa: E731
    return inter / np.maximum(area(a)[:, None] + area(b)[None, :] - inter, 1e-12)


def image_matches(detections: pd.DataFrame, ground_truth: pd.DataFrame, image_ids, iou: float = 0.5,
                  max_det: int = 300) -> list[tuple[np.ndarray, np.ndarray, int]]:
    """Per image: (scores, true-positive flags, number of boxes), COCO's greedy matching by score."""
    det = _per_image(detections, image_ids)
    gt = _per_image(ground_truth, image_ids)
    out = []
    for i in image_ids:
        d, g = det[i], gt[i]
        n_gt = 0 if g is None else len(g)
        if d is None or len(d) == 0:
            out.append((np.zeros(0), np.zeros(0, dtype=bool), n_gt))
            continue
        d = d.sort_values("score", ascending=False, kind="stable").head(max_det)
        scores = d["score"].to_numpy(dtype=float)
        tp = np.zeros(len(d), dtype=bool)
        if n_gt:
            ious = _iou(d[BOX].to_numpy(dtype=float), g[BOX].to_numpy(dtype=float))
            taken = np.zeros(n_gt, dtype=bool)
            for k in range(len(d)):
                cand = np.where(~taken, ious[k], -1.0)
                j = int(np.argmax(cand))
                if cand[j] >= iou:
                    taken[j], tp[k] = True, True
        out.append((scores, tp, n_gt))
    return out


def ap50_from_matches(matches) -> float:
    """COCO-style AP (101-point interpolated precision) from per-image matches."""
    n_gt = sum(m[2] for m in matches)
    if n_gt == 0:
        return float("nan")
    scores = np.concatenate([m[0] for m in matches]) if matches else np.zeros(0)
    tp = np.concatenate([m[1] for m in matches]) if matches else np.zeros(0, dtype=bool)
    if len(scores) == 0:
        return 0.0
    order = np.argsort(-scores, kind="mergesort")
    tp = tp[order]
    ctp = np.cumsum(tp)
    cfp = np.cumsum(~tp)
    recall = ctp / n_gt
    precision = ctp / np.maximum(ctp + cfp, 1e-12)
    precision = np.maximum.accumulate(precision[::-1])[::-1]  # monotone envelope
    grid = np.linspace(0, 1, 101)
    idx = np.searchsorted(recall, grid, side="left")
    return float(np.mean(np.where(idx < len(precision), precision[np.minimum(idx, len(precision) - 1)], 0.0)))


def bootstrap_map50(detections: pd.DataFrame, ground_truth: pd.DataFrame, image_ids, n_resamples: int = 2000,
                    confidence: float = 0.95, seed: int = 0) -> dict:
    """Percentile bootstrap of AP@0.5 over images: ``{"map50", "low", "high", "n_images"}``."""
    image_ids = list(image_ids)
    matches = image_matches(detections, ground_truth, image_ids)
    point = ap50_from_matches(matches)
    rng = np.random.default_rng(seed)
    n = len(matches)
    values = []
    for _ in range(int(n_resamples)):
        pick = rng.integers(0, n, n)
        v = ap50_from_matches([matches[k] for k in pick])
        if np.isfinite(v):
            values.append(v)
    alpha = (1 - confidence) / 2
    low, high = (np.quantile(values, [alpha, 1 - alpha]) if values else (np.nan, np.nan))
    return {"map50": point, "low": float(low), "high": float(high), "n_images": n, "n_resamples": int(n_resamples),
            "confidence": confidence}
