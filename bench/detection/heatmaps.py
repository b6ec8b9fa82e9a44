"""Heatmaps against detectors (seed 002 Fig. 6 as numbers): for the same test images, a
classifier's per-layer pointing game and energy against the ground-truth boxes and against a
detector's boxes, and the detector's own hit rate, in one table.

Maps come from the explain stage (``<run>/explain/heatmaps.npz``, square maps over the whole
resized radiograph, so normalised boxes map straight onto them); scores are
``bench.explain.localisation``'s own. Boxes come from a detection run's ``detections.csv`` /
``ground_truth.csv`` / ``images.csv`` (pixels of the displayed image, normalised here).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from bench.errors import BenchError

__all__ = ["localisation_vs_boxes", "heatmaps_vs_detector", "detector_boxes"]

Box = tuple[float, float, float, float]


def _normalised(df: pd.DataFrame, sizes: dict) -> dict[str, list[Box]]:
    out: dict[str, list[Box]] = {}
    for r in df.itertuples():
        w, h = sizes[r.image_id]
        out.setdefault(r.image_id, []).append((((r.x1 + r.x2) / 2) / w, ((r.y1 + r.y2) / 2) / h, (r.x2 - r.x1) / w, (r.y2 - r.y1) / h))
    return out


def detector_boxes(det_run_dir: str | os.PathLike, score_threshold: float = 0.25, splits=("test",)) -> tuple[dict, dict, dict]:
    """``(detector boxes, ground-truth boxes, top-box score)`` per image id, normalised ``(cx, cy, w, h)``,
    for the detection run's images of ``splits``; detector boxes are those scoring >= ``score_threshold``."""
    d = Path(det_run_dir)
    for f in ("detections.csv", "ground_truth.csv", "images.csv"):
        if not (d / f).is_file():
            raise BenchError(f"{d / f}: missing; give a finished detection run (data=fracatlas_detection)")
    images = pd.read_csv(d / "images.csv", dtype={"image_id": str})
    images = images[images["split"].isin(list(splits))]
    sizes = {i: (w, h) for i, w, h in zip(images["image_id"], images["width"], images["height"])}
    det = pd.read_csv(d / "detections.csv", dtype={"image_id": str})
    det = det[det["image_id"].isin(sizes)]
    gt = pd.read_csv(d / "ground_truth.csv", dtype={"image_id": str})
    gt = gt[gt["image_id"].isin(sizes)]
    top = det.sort_values("score", ascending=False, kind="stable").drop_duplicates("image_id")
    top = top[top["score"] >= score_threshold]
    kept = det[det["score"] >= score_threshold]
    return _normalised(kept, sizes), _normalised(gt, sizes), {i: b[0] for i, b in _normalised(top, sizes).items()}


def _box_iou(a: Box, b: Box) -> float:
    ax1, ay1, ax2, ay2 = a[0] - a[2] / 2, a[1] - a[3] / 2, a[0] + a[2] / 2, a[1] + a[3] / 2
    bx1, by1, bx2, by2 = b[0] - b[2] / 2, b[1] - b[3] / 2, b[0] + b[2] / 2, b[1] + b[3] / 2
    iw, ih = max(0.0, min(ax2, bx2) - max(ax1, bx1)), max(0.0, min(ay2, by2) - max(ay1, by1))
    inter = iw * ih
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


def localisation_vs_boxes(maps: dict[str, np.ndarray], layers: list[str], image_ids: list[str],
                          gt_boxes: dict[str, list[Box]], det_boxes: dict[str, list[Box]],
                          det_top: dict[str, Box] | None = None, margin: float = 0.0) -> pd.DataFrame:
    """One row per (method, layer): pointing game and energy against ``gt_boxes`` and against
    ``det_boxes`` (normalised ``(cx, cy, w, h)`` per image id), over the images that have ground
    truth; ``*_det`` over those the detector also boxed. A last row ``method="detector"`` gives the
    detector's own hit rate: its top box's centre inside the ground truth (``pointing_game_gt``)
    and its top box's IoU >= 0.5 with a ground-truth box (``iou50_hit``)."""
    import torch

    from bench.explain.localisation import boxes_mask, energy, pointing_game

    pos = {i: k for k, i in enumerate(image_ids)}
    use = [i for i in image_ids if gt_boxes.get(i)]
    rows = []
    for method, arr in maps.items():
        arr = np.asarray(arr, dtype=np.float32)
        h, w = arr.shape[-2:]
        acc = {("gt", li): [] for li in range(len(layers))} | {("det", li): [] for li in range(len(layers))}
        for i in use:
            m = torch.from_numpy(arr[pos[i]])  # [L, h, w]
            for kind, boxes in (("gt", gt_boxes.get(i)), ("det", det_boxes.get(i))):
                if not boxes:
                    continue
                mask = boxes_mask(boxes, h, w)
                pg = pointing_game(m, boxes_mask(boxes, h, w, margin=margin) if margin else mask).numpy()
                en = energy(m, mask).numpy()
                for li in range(len(layers)):
                    acc[(kind, li)].append((float(pg[li]), float(en[li])))
        for li, layer in enumerate(layers):
            g, dd = acc[("gt", li)], acc[("det", li)]
            rows.append({"method": method, "layer": layer, "layer_index": li,
                         "pointing_game_gt": np.mean([x[0] for x in g]) if g else None,
                         "energy_gt": np.mean([x[1] for x in g]) if g else None, "n_gt": len(g),
                         "pointing_game_det": np.mean([x[0] for x in dd]) if dd else None,
                         "energy_det": np.mean([x[1] for x in dd]) if dd else None, "n_det": len(dd)})
    det_top = det_top or {}
    hits, iou_hits = [], []
    for i in use:
        top = det_top.get(i)
        if top is None:
            hits.append(0.0)
            iou_hits.append(0.0)
            continue
        mask = boxes_mask(gt_boxes[i], 1000, 1000)
        cx, cy = min(int(top[0] * 1000), 999), min(int(top[1] * 1000), 999)
        hits.append(float(mask[cy, cx]))
        iou_hits.append(float(max(_box_iou(top, b) for b in gt_boxes[i]) >= 0.5))
    rows.append({"method": "detector", "layer": "top box", "layer_index": None,
                 "pointing_game_gt": np.mean(hits) if hits else None, "energy_gt": None, "n_gt": len(hits),
                 "pointing_game_det": None, "energy_det": None, "n_det": int(sum(1 for i in use if i in det_top)),
                 "iou50_hit": np.mean(iou_hits) if iou_hits else None})
    return pd.DataFrame(rows)


def heatmaps_vs_detector(cls_run_dir: str | os.PathLike, det_run_dir: str | os.PathLike, score_threshold: float = 0.25,
                         splits=("test",), margin: float = 0.0) -> pd.DataFrame:
    """The table for a classification run that was explained and a detection run: the images
    both cover (the explain stage's images that are in the detection run's ``splits``)."""
    npz = Path(cls_run_dir) / "explain" / "heatmaps.npz"
    if not npz.is_file():
        raise BenchError(f"{npz}: missing; run bench-explain on {cls_run_dir} first")
    with np.load(npz, allow_pickle=False) as z:
        ids = [str(i) for i in z["image_ids"]]
        layers = [str(x) for x in z["layers"]]
        methods = [str(m) for m in z["methods"]]
        maps = {m: z[m] for m in methods}
    det, gt, top = detector_boxes(det_run_dir, score_threshold, splits)
    common = [i for i in ids if i in gt]
    if not common:
        raise BenchError(f"{cls_run_dir} and {det_run_dir}: no explained image is among the detection run's {'/'.join(splits)} "
                         f"images with boxes; explain more images (explain.n_images) or use splits=('val', 'test')")
    table = localisation_vs_boxes(maps, layers, ids, {i: gt[i] for i in common}, det, top, margin)
    table.attrs["image_ids"] = common
    return table
