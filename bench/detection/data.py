"""FracAtlas fracture boxes for Ultralytics: the two protocols, the link tree, label checks.

* ``set1``: the dataset's official detection split, ``Utilities/Fracture Split/{train,valid,test}.csv``
  (fractured images only; the dataset paper's and seed 002's Set 1).
* ``set2``: every image, non-fractured ones as background (empty label), split by the harness's
  own grouped (byte-identical duplicates together), stratified (fractured / not) splitter.

Ultralytics is never given the dataset's own paths: its scan re-encodes JPEGs that do not end in
FFD9 and ``os.replace``-s them at the given path, and it writes ``labels.cache`` beside the labels
(FIELD_NOTES). It gets a tree of per-file symlinks in the run folder
(``images/<split>/<id>`` -> the image, ``labels/<split>/<stem>.txt`` -> ``Annotations/YOLO/<stem>.txt``;
``labels.txt`` there is a class list, not a label file), so a repair replaces only a link.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from bench.errors import BenchError

__all__ = ["PROTOCOLS", "load_detection_table", "build_link_tree", "files_digest", "check_labels",
           "yolo_boxes_pixels", "image_sizes"]

PROTOCOLS = ("set1", "set2")
OFFICIAL_SPLIT_DIR = "Utilities/Fracture Split"
OFFICIAL_NAMES = {"train": "train", "valid": "val", "test": "test"}
COCO_JSON = "Annotations/COCO JSON/COCO_fracture_masks.json"
CLASS_NAMES = ["fracture"]


def _read_official(root: Path) -> dict[str, str]:
    split_of: dict[str, str] = {}
    for fname, split in OFFICIAL_NAMES.items():
        path = root / OFFICIAL_SPLIT_DIR / f"{fname}.csv"
        if not path.is_file():
            raise BenchError(f"{path}: missing: data.protocol=set1 needs the official detection split "
                             f"({OFFICIAL_SPLIT_DIR}/train.csv, valid.csv, test.csv); use data.protocol=set2 otherwise")
        ids = pd.read_csv(path, dtype=str, keep_default_na=False)
        if "image_id" not in ids.columns:
            raise BenchError(f"{path}: no 'image_id' header: expected the released split file (header image_id)")
        for image_id in ids["image_id"].str.strip():
            if not image_id:
                continue
            if image_id in split_of:
                raise BenchError(f"{path}: {image_id} is also in the {split_of[image_id]} split: one split per image")
            split_of[image_id] = split
    return split_of


def load_detection_table(root: str | os.PathLike, protocol: str = "set1", split: dict | None = None,
                         split_seed: int = 0, split_file: str | None = None, truncated: str = "load") -> tuple[pd.DataFrame, dict]:
    """``(table, report)``: one row per image used (``image_id, path, label_path, split, group,
    region, fractured, boxes, width, height``) and the data report (counts, problems, leakage)."""
    from bench.data.decode import SkippedImage, UnreadableImage, decode_image
    from bench.data.fracatlas import duplicate_groups, load_fracatlas
    from bench.data.splits import check_leakage, make_split, read_split

    if protocol not in PROTOCOLS:
        raise BenchError(f"data.protocol={protocol!r}: use set1 (official split, fractured only) or set2 (all images, harness split)")
    root = Path(root).expanduser().resolve()
    table, info = load_fracatlas(root, task="binary", label_source="folder")
    table = table.rename(columns={"fractured_folder": "fractured"})
    table["label"] = table["fractured"].astype("int64")
    report: dict = {"dataset": "fracatlas", "root": str(root), "task": "detection", "protocol": protocol,
                    "label_conflicts": info.get("label_conflicts", []), "images_not_in_csv": info.get("images_not_in_csv", [])}
    if protocol == "set1":
        split_of = _read_official(root)
        unknown = sorted(set(split_of) - set(table["image_id"]))
        if unknown:
            raise BenchError(f"{root / OFFICIAL_SPLIT_DIR}: {unknown[0]} is not an image of the dataset "
                             f"({len(unknown)} unknown): the split belongs to another copy of FracAtlas")
        frac_ids = set(table.loc[table["fractured"] == 1, "image_id"])
        report["official_split_not_fractured"] = sorted(i for i in split_of if i not in frac_ids)
        report["fractured_not_in_official_split"] = sorted(frac_ids - set(split_of))
        table = table[table["image_id"].isin(split_of)].copy()
        table["split"] = table["image_id"].map(split_of)
    groups, dups = duplicate_groups(table)
    table["group"] = groups
    if protocol == "set2":
        if split_file:
            table = read_split(split_file, table)
        else:
            split = split or {}
            table["split"] = make_split(table, method=split.get("method", "ratio"), ratios=split.get("ratios", (0.72, 0.18, 0.10)),
                                        n_folds=split.get("n_folds", 5), fold=split.get("fold", 0),
                                        val_fraction=split.get("val_fraction", 0.1), seed=int(split_seed))
    elif split_file:
        raise BenchError("data.split_file is for data.protocol=set2: set1 is the official split")
    # Sizes in the displayed frame (EXIF applied), and the decode policy for truncated files.
    truncated_ids, skipped, unreadable, sizes = [], [], [], []
    keep = np.ones(len(table), dtype=bool)
    for k, (image_id, path) in enumerate(zip(table["image_id"], table["path"])):
        try:
            dec = decode_image(path, truncated=truncated)
        except SkippedImage:
            skipped.append(image_id)
            keep[k] = False
            sizes.append((0, 0))
            continue
        except UnreadableImage as exc:
            unreadable.append({"image_id": image_id, "error": str(exc)})
            keep[k] = False
            sizes.append((0, 0))
            continue
        if dec.truncated:
            truncated_ids.append(image_id)
        h, w = dec.array.shape[:2]
        sizes.append((w, h))
    table["width"] = [s[0] for s in sizes]
    table["height"] = [s[1] for s in sizes]
    table = table[keep].copy()
    table["label_path"] = [str(root / "Annotations" / "YOLO" / (Path(i).stem + ".txt")) for i in table["image_id"]]
    table["n_boxes"] = table["boxes"].map(len)
    table = table.sort_values("image_id", kind="stable").reset_index(drop=True)
    report.update({
        "n_images": int(len(table)),
        "truncated_policy": truncated, "truncated": sorted(truncated_ids), "skipped": sorted(skipped), "unreadable": unreadable,
        "duplicate_groups": [list(g) for g in dups],
        "leakage": check_leakage(table),
        "per_split": {s: {"images": int((table["split"] == s).sum()),
                          "fractured": int(((table["split"] == s) & (table["fractured"] == 1)).sum()),
                          "boxes": int(table.loc[table["split"] == s, "n_boxes"].sum())} for s in ("train", "val", "test")},
        "per_region": {r: {s: {"images": int(((part["split"] == s)).sum()), "boxes": int(part.loc[part["split"] == s, "n_boxes"].sum())}
                           for s in ("train", "val", "test")} for r, part in table.groupby("region", sort=True)},
    })
    bad_boxes = [i for i, bx in zip(table["image_id"], table["boxes"]) if any(not (0 < b[2] <= 1 and 0 < b[3] <= 1) for b in bx)]
    report["boxes_out_of_range"] = bad_boxes
    report["fractured_without_boxes"] = sorted(table.loc[(table["fractured"] == 1) & (table["n_boxes"] == 0), "image_id"])
    return table, report


def image_sizes(table: pd.DataFrame) -> dict[str, tuple[int, int]]:
    return {i: (int(w), int(h)) for i, w, h in zip(table["image_id"], table["width"], table["height"])}


def build_link_tree(table: pd.DataFrame, out: str | os.PathLike, regions: bool = True) -> dict:
    """The Ultralytics dataset: ``out/images/<split>/``, ``out/labels/<split>/`` of symlinks, a
    ``data.yaml`` per evaluation set. Rebuilt from scratch (a stale repair or cache never survives).

    Returns ``{"root", "yaml": {name: path}}``: ``main`` (train/val/test) and, with ``regions``,
    ``<split>_<region>`` whose ``val`` is that region's image list.
    """
    out = Path(out)
    if out.exists():
        shutil.rmtree(out)
    yamls: dict[str, str] = {}
    for split, part in table.groupby("split", sort=True):
        (out / "images" / split).mkdir(parents=True, exist_ok=True)
        (out / "labels" / split).mkdir(parents=True, exist_ok=True)
        for image_id, path, label in zip(part["image_id"], part["path"], part["label_path"]):
            os.symlink(path, out / "images" / split / image_id)
            if Path(label).is_file():
                os.symlink(label, out / "labels" / split / (Path(image_id).stem + ".txt"))
    splits = {s: str(out / "images" / s) for s in ("train", "val", "test") if (out / "images" / s).is_dir()}
    if "train" not in splits or "val" not in splits:
        raise BenchError("detection data: the split has no train or no val images; check data.protocol / data.split")
    names = {i: n for i, n in enumerate(CLASS_NAMES)}

    def _yaml(name: str, spec: dict) -> None:
        path = out / f"data_{name}.yaml"
        # JSON is valid YAML: no YAML writer needed, paths quoted safely.
        path.write_text(json.dumps({"path": str(out), **spec, "names": names}, indent=1) + "\n")
        yamls[name] = str(path)

    _yaml("main", {"train": splits["train"], "val": splits["val"], **({"test": splits["test"]} if "test" in splits else {})})
    if regions:
        (out / "lists").mkdir(exist_ok=True)
        for (split, region), part in table.groupby(["split", "region"], sort=True):
            if split == "train":
                continue
            lst = out / "lists" / f"{split}_{region}.txt"
            lst.write_text("".join(f"{out / 'images' / split / i}\n" for i in part["image_id"]))
            _yaml(f"{split}_{region}", {"train": splits["train"], "val": str(lst)})
    return {"root": str(out), "yaml": yamls}


def files_digest(paths) -> str:
    """SHA-256 over the sorted (path, SHA-256 of content) pairs of ``paths`` (missing: 'missing')."""
    from bench.data.fracatlas import file_sha256

    h = hashlib.sha256()
    for p in sorted(set(map(str, paths))):
        h.update(p.encode() + b"\0" + (file_sha256(p) if os.path.isfile(p) else "missing").encode() + b"\n")
    return h.hexdigest()


def tree_changes(tree_root: str | os.PathLike) -> list[str]:
    """Image ids whose link Ultralytics replaced by a file (its in-place 'repair')."""
    root = Path(tree_root) / "images"
    return sorted(p.name for p in root.rglob("*") if p.is_file() and not p.is_symlink()) if root.is_dir() else []


def yolo_boxes_pixels(boxes, width: int, height: int) -> np.ndarray:
    """Normalised ``(cx, cy, w, h)`` -> pixel ``[x1, y1, x2, y2]``, shape ``[N, 4]``."""
    b = np.asarray(boxes, dtype=float).reshape(-1, 4)
    return np.stack([(b[:, 0] - b[:, 2] / 2) * width, (b[:, 1] - b[:, 3] / 2) * height,
                     (b[:, 0] + b[:, 2] / 2) * width, (b[:, 1] + b[:, 3] / 2) * height], axis=1)


def _iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = lambda z: (z[:, 2] - z[:, 0]) * (z[:, 3] - z[:, 1])  # noqa: E731
    return inter / np.maximum(area(a)[:, None] + area(b)[None, :] - inter, 1e-12)


def check_labels(root: str | os.PathLike, table: pd.DataFrame | None = None, min_iou: float = 0.5) -> dict:
    """YOLO boxes vs the COCO JSON of the release: per image, the boxes are matched one to one
    (Hungarian, on IoU in pixels of the COCO image size) and every disagreement is listed."""
    from scipy.optimize import linear_sum_assignment

    from bench.data.fracatlas import _read_boxes

    root = Path(root)
    path = root / COCO_JSON
    if not path.is_file():
        return {"skipped": f"{COCO_JSON} not found"}
    try:
        coco = json.loads(path.read_text(encoding="utf-8"))
        images = {im["id"]: im for im in coco["images"]}
        anns: dict = {}
        for a in coco["annotations"]:
            anns.setdefault(a["image_id"], []).append(a["bbox"])
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise BenchError(f"{path}: not a COCO detection file ({type(exc).__name__}: {exc}): restore the released JSON") from None
    ids = set(table["image_id"]) if table is not None else None
    out = {"coco_images": len(images), "coco_instances": sum(len(v) for v in anns.values()), "yolo_instances": 0,
           "images_compared": 0, "min_iou": min_iou, "worst_iou": None, "disagreements": []}
    seen = set()
    worst = 1.0
    for img_id, im in sorted(images.items(), key=lambda kv: kv[1]["file_name"]):
        name = Path(im["file_name"]).name
        if ids is not None and name not in ids:
            continue
        seen.add(name)
        w, h = float(im["width"]), float(im["height"])
        coco_b = np.array([[x, y, x + bw, y + bh] for x, y, bw, bh in anns.get(img_id, [])]).reshape(-1, 4)
        yolo_b = yolo_boxes_pixels(_read_boxes(root / "Annotations" / "YOLO" / (Path(name).stem + ".txt")), w, h)
        out["yolo_instances"] += len(yolo_b)
        out["images_compared"] += 1
        iou = _iou_matrix(yolo_b, coco_b)
        if len(yolo_b) != len(coco_b):
            out["disagreements"].append({"image_id": name, "kind": "count", "yolo": len(yolo_b), "coco": len(coco_b)})
        if iou.size:
            r, c = linear_sum_assignment(-iou)
            for i, j in zip(r, c):
                worst = min(worst, float(iou[i, j]))
                if iou[i, j] < min_iou:
                    out["disagreements"].append({"image_id": name, "kind": "box", "iou": round(float(iou[i, j]), 4),
                                                 "yolo_xyxy": [round(v, 1) for v in yolo_b[i]], "coco_xyxy": [round(v, 1) for v in coco_b[j]]})
    out["worst_iou"] = None if out["images_compared"] == 0 else round(worst, 4)
    if table is not None:
        boxed = set(table.loc[table["n_boxes"] > 0, "image_id"]) if "n_boxes" in table.columns else set()
        for name in sorted(boxed - seen):
            out["disagreements"].append({"image_id": name, "kind": "missing_in_coco"})
    out["n_disagreements"] = len(out["disagreements"])
    return out
