"""A tiny FracAtlas-layout detection fixture (tests, quickstart): the classification fixture of
``bench.data`` plus what detection needs to be tested honestly.

On top of ``make_fracatlas`` (its truncated JPEG, duplicate, EXIF-rotated image, label conflict):

* a fractured image in the official **train** split whose JPEG does not end in the end marker
  (``FFD9``, here followed by padding) but decodes: Ultralytics' dataset scan re-encodes such a file and ``os.replace``-s it at the
  path it was given (FIELD_NOTES), the hazard the link tree must contain;
* ``Annotations/COCO JSON/COCO_fracture_masks.json`` written from the YOLO boxes, with one box
  deliberately moved so the YOLO-vs-COCO label check has a disagreement to report.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

__all__ = ["make_detection_fixture"]


def _fixtures_module():
    # bench.data.fixtures may move to bench.testing (issue 10): accept either home.
    try:
        from bench.testing import fixtures  # type: ignore[attr-defined]
    except ImportError:
        from bench.data import fixtures
    return fixtures


def _split_ids(root: Path, name: str) -> list[str]:
    text = (root / "Utilities/Fracture Split" / f"{name}.csv").read_text()
    return [ln.strip() for ln in text.splitlines()[1:] if ln.strip()]


def make_detection_fixture(out: str | os.PathLike, n: int = 30, seed: int = 0,
                           image_size: tuple[int, int] = (120, 100), fractured_fraction: float = 0.7) -> dict:
    """Write the fixture under ``out``; returns ``make_fracatlas``'s info plus ``no_end_marker``
    (the image id whose JPEG lacks FFD9) and ``coco_moved`` (the image whose COCO box was moved)."""
    out = Path(out)
    info = _fixtures_module().make_fracatlas(out, n=n, seed=seed, bad_files=True, image_size=image_size,
                                             fractured_fraction=fractured_fraction)
    # The official split of the real data is 80/11/9; a tiny fixture needs more than one or two
    # val/test images for metrics to mean anything: 60/20/20, same files, CRLF as released.
    # The EXIF-rotated image goes to test, so its detections show which frame boxes are in.
    exif_id = (info.get("exif") or {}).get("image_id")
    frac = sorted(p.name for p in (out / "images/Fractured").glob("*.jpg"))
    frac = [i for i in frac if i != exif_id] + ([exif_id] if exif_id in frac else [])
    cut1, cut2 = int(len(frac) * 0.6), int(len(frac) * 0.8)
    for name, part in (("train", frac[:cut1]), ("valid", frac[cut1:cut2]), ("test", frac[cut2:])):
        (out / "Utilities/Fracture Split" / f"{name}.csv").write_bytes(("image_id\r\n" + "".join(f"{i}\r\n" for i in part)).encode())
    train = _split_ids(out, "train")
    victim = next(i for i in train if i != exif_id and i != info.get("conflict"))
    path = out / "images/Fractured" / victim
    data = path.read_bytes()
    assert data.endswith(b"\xff\xd9")
    # Bytes after the end marker (as in some real files): Pillow decodes it strictly, but the file
    # does not END in FFD9, which is all Ultralytics checks before re-encoding it in place.
    path.write_bytes(data + b"\x00" * 16)
    info["no_end_marker"] = victim

    # COCO JSON from the YOLO boxes, sizes in the displayed (EXIF-applied) frame as released.
    images, annotations = [], []
    moved = None
    for k, img_path in enumerate(sorted((out / "images/Fractured").glob("*.jpg"))):
        with Image.open(img_path) as im:
            w, h = ImageOps.exif_transpose(im).size
        images.append({"id": k, "file_name": img_path.name, "width": w, "height": h})
        label = out / "Annotations/YOLO" / (img_path.stem + ".txt")
        for line in label.read_text().splitlines():
            _, cx, cy, bw, bh = (float(v) for v in line.split())
            box = [(cx - bw / 2) * w, (cy - bh / 2) * h, bw * w, bh * h]
            if moved is None and img_path.name not in (victim, exif_id):
                box[0] = float(np.clip(box[0] + 0.5 * w, 0, w - box[2]))  # far from the YOLO box
                moved = img_path.name
            annotations.append({"id": len(annotations), "image_id": k, "category_id": 1, "bbox": [round(v, 2) for v in box],
                                "area": round(box[2] * box[3], 2), "iscrowd": 0, "segmentation": []})
    coco = {"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "fractured"}]}
    (out / "Annotations/COCO JSON").mkdir(parents=True, exist_ok=True)
    (out / "Annotations/COCO JSON/COCO_fracture_masks.json").write_text(json.dumps(coco))
    info["coco_moved"] = moved
    return info
