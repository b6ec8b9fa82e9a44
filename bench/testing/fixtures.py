"""Tiny synthetic datasets in the exact FracAtlas and MURA-v1.1 layouts (tests, quickstart).

The synthetic "radiographs" are learnable: each region has its own bone shape (hand: finger
bars, leg: one long shaft, hip: femoral head + neck, shoulder: humeral head + clavicle, mixed:
hand and leg together) and a fracture is a dark crack with bright edges across the bone, inside
the YOLO box. With ``bad_files=True`` the FracAtlas fixture also has a truncated JPEG, a
byte-identical duplicate and a folder/CSV label conflict, and the MURA fixture a study whose
labeled_studies.csv label disagrees with its folder. Everything is deterministic by seed.
"""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from bench.data.fracatlas import CSV_COLUMNS, REGION_CLASSES
from bench.errors import BenchError

EXIF_ORIENTATION = 0x0112


def _canvas(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    yy = np.linspace(0, 1, h)[:, None]
    base = 0.08 + 0.06 * yy + rng.normal(0, 0.025, (h, w))
    return base * np.ones((1, w))


def _rect(img: np.ndarray, y0: float, y1: float, x0: float, x1: float, v: float = 0.75) -> None:
    h, w = img.shape
    img[int(y0 * h):max(int(y1 * h), int(y0 * h) + 1), int(x0 * w):max(int(x1 * w), int(x0 * w) + 1)] = v


def _disc(img: np.ndarray, cy: float, cx: float, r: float, v: float = 0.75) -> None:
    h, w = img.shape
    yy, xx = np.mgrid[0:h, 0:w]
    img[((yy / h - cy) ** 2 + (xx / w - cx) ** 2) < r * r] = v


def _draw_region(img: np.ndarray, region: str, rng: np.random.Generator) -> list[tuple[float, float]]:
    """Draw the bones of ``region``; return candidate crack centres (cy, cx) on bone."""
    j = lambda: rng.uniform(-0.03, 0.03)  # noqa: E731 - small per-image jitter
    if region == "hand":
        xs = [0.25, 0.4, 0.55, 0.7]
        for x in xs:
            _rect(img, 0.1 + j(), 0.55, x - 0.04, x + 0.04)
        _rect(img, 0.55, 0.85 + j(), 0.2, 0.78)
        return [(0.35, x) for x in xs] + [(0.7, 0.5)]
    if region == "leg":
        x = 0.5 + j()
        _rect(img, 0.02, 0.98, x - 0.1, x + 0.1)
        return [(0.3, x), (0.5, x), (0.7, x)]
    if region == "hip":
        _disc(img, 0.3 + j(), 0.35, 0.16)
        for t in np.linspace(0, 1, 40):
            _disc(img, 0.35 + 0.55 * t, 0.4 + 0.25 * t, 0.06)
        return [(0.6, 0.53), (0.75, 0.6)]
    if region == "shoulder":
        _disc(img, 0.4, 0.3 + j(), 0.18)
        _rect(img, 0.12, 0.2, 0.3, 0.95)
        _rect(img, 0.4, 0.98, 0.25, 0.37)
        return [(0.16, 0.7), (0.7, 0.31)]
    if region == "mixed":
        for x in (0.15, 0.27, 0.39):
            _rect(img, 0.1, 0.5, x - 0.035, x + 0.035)
        _rect(img, 0.5, 0.8, 0.1, 0.45)
        _rect(img, 0.02, 0.98, 0.65, 0.85)
        return [(0.3, 0.27), (0.5, 0.75)]
    raise ValueError(region)


def _crack(img: np.ndarray, cy: float, cx: float, rng: np.random.Generator) -> tuple[float, float, float, float]:
    """A dark oblique crack with bright edges centred at (cy, cx); returns its YOLO box."""
    h, w = img.shape
    half = 0.12
    slope = rng.uniform(-0.6, 0.6)
    thick = max(2, h // 32)
    ys, xs = [], []
    for t in np.linspace(-half, half, 80):
        y = int((cy + slope * t) * h)
        x = int((cx + t) * w)
        if 0 <= x < w:
            img[max(0, y - thick - 1):y + thick + 2, x] = np.maximum(img[max(0, y - thick - 1):y + thick + 2, x], 0.95)
            img[max(0, y - thick // 2):y + thick // 2 + 1, x] = 0.02
            ys.append(y)
            xs.append(x)
    y0, y1 = (min(ys) - thick - 2) / h, (max(ys) + thick + 2) / h
    x0, x1 = min(xs) / w, (max(xs) + 1) / w
    y0, y1, x0, x1 = max(0.0, y0), min(1.0, y1), max(0.0, x0), min(1.0, x1)
    return ((x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0)


def synthetic_radiograph(region: str, fractured: bool, size: tuple[int, int], rng: np.random.Generator):
    """(uint8 HxW image, list of YOLO boxes) in the displayed frame."""
    h, w = size
    img = _canvas(h, w, rng)
    sites = _draw_region(img, region, rng)
    boxes = []
    if fractured:
        cy, cx = sites[int(rng.integers(len(sites)))]
        boxes.append(_crack(img, cy, cx, rng))
    img = img + rng.normal(0, 0.02, img.shape)
    return (np.clip(img, 0, 1) * 255).round().astype(np.uint8), boxes


def _jpeg_bytes(arr: np.ndarray, rgb: bool, orientation: int | None = None) -> bytes:
    img = Image.fromarray(arr, mode="L")
    if orientation == 6:
        img = img.transpose(Image.Transpose.ROTATE_90)  # exif_transpose applies ROTATE_270 for tag 6
    elif orientation == 8:
        img = img.transpose(Image.Transpose.ROTATE_270)
    if rgb:
        img = img.convert("RGB")
    buf = io.BytesIO()
    kwargs = {}
    if orientation:
        exif = Image.Exif()
        exif[EXIF_ORIENTATION] = orientation
        kwargs["exif"] = exif.tobytes()
    img.save(buf, format="JPEG", quality=95, **kwargs)
    return buf.getvalue()


def _fresh_dir(out: Path, marker: str) -> None:
    if out.exists() and any(out.iterdir()):
        if not (out / marker).exists():
            raise BenchError(f"{out}: exists and is not a generated fixture: choose an empty or new --out folder")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)


def make_fracatlas(
    out: str | os.PathLike,
    n: int = 60,
    seed: int = 0,
    bad_files: bool = True,
    image_size: tuple[int, int] = (120, 100),
    fractured_fraction: float = 0.4,
) -> dict:
    """Write a FracAtlas-layout fixture with ``n`` images (plus one duplicate when bad_files).

    Returns a dict naming the special files: ``truncated``, ``duplicates``, ``conflict``, ``exif``.
    """
    out = Path(out)
    if n < 10:
        raise BenchError(f"fixture size n={n}: use at least 10 images")
    _fresh_dir(out, "images")
    rng = np.random.default_rng(seed)
    for sub in ("images/Fractured", "images/Non_fractured", "Annotations/YOLO", "Utilities/Fracture Split"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    (out / "Annotations/YOLO/labels.txt").write_text("fractured\n")
    h, w = image_size
    n_frac = max(3, int(round(n * fractured_fraction)))
    rows = []
    info: dict = {"truncated": [], "duplicates": [], "conflict": None, "exif": None}
    ids = [f"IMG{1000 + 3 * i + (i % 2):07d}.jpg" for i in range(n)]  # non-contiguous, like the real ids
    labels = np.array([1] * n_frac + [0] * (n - n_frac))
    rng.shuffle(labels)
    regions = [REGION_CLASSES[i % len(REGION_CLASSES)] for i in range(n)]
    first_frac = int(np.flatnonzero(labels == 1)[0])
    first_non = [int(i) for i in np.flatnonzero(labels == 0)]
    for i, (image_id, lab, region) in enumerate(zip(ids, labels, regions)):
        arr, boxes = synthetic_radiograph(region, bool(lab), (h, w), rng)
        orientation = 6 if (i == first_frac) else None
        data = _jpeg_bytes(arr, rgb=(i % 3 != 0), orientation=orientation)
        if orientation:
            info["exif"] = {"image_id": image_id, "displayed": arr, "orientation": orientation}
        csv_fractured = int(lab)
        if bad_files and i == first_non[0]:
            data = data[: int(len(data) * 0.6)]  # cut inside the entropy-coded scan
            info["truncated"].append(image_id)
        folder = "Fractured" if lab else "Non_fractured"
        if bad_files and lab and i != first_frac and info["conflict"] is None:
            csv_fractured = 0  # like IMG0003298.jpg: folder says fractured, CSV says not
            info["conflict"] = image_id
        (out / "images" / folder / image_id).write_bytes(data)
        (out / "Annotations/YOLO" / (Path(image_id).stem + ".txt")).write_text(
            "".join(f"0 {cx:.4f} {cy:.4f} {bw:.4f} {bh:.4f}\n" for cx, cy, bw, bh in boxes)
        )
        flags = {r: 0 for r in ("hand", "leg", "hip", "shoulder", "mixed")}
        if region == "mixed":
            flags.update(mixed=1, hand=1, leg=1)
        else:
            flags[region] = 1
        rows.append({"image_id": image_id, **flags, "hardware": int(rng.random() < 0.1), "multiscan": 0,
                     "fractured": csv_fractured, "fracture_count": len(boxes), "frontal": 1,
                     "lateral": int(rng.random() < 0.3), "oblique": 0, "_folder": int(lab)})
    if bad_files:
        # A byte-identical copy under another id (same labels), as in the real data.
        src = next(r for r in rows if r["_folder"] == 0 and r["image_id"] not in info["truncated"])
        dup_id = f"IMG{1000 + 3 * n + 5:07d}.jpg"
        shutil.copyfile(out / "images/Non_fractured" / src["image_id"], out / "images/Non_fractured" / dup_id)
        shutil.copyfile(out / "Annotations/YOLO" / (Path(src["image_id"]).stem + ".txt"),
                        out / "Annotations/YOLO" / (Path(dup_id).stem + ".txt"))
        rows.append({**src, "image_id": dup_id})
        info["duplicates"] = [sorted([src["image_id"], dup_id])]
    rows.sort(key=lambda r: r["image_id"])
    lines = [",".join(CSV_COLUMNS)] + [",".join(str(r[c]) for c in CSV_COLUMNS) for r in rows]
    (out / "dataset.csv").write_text("\n".join(lines) + "\n")
    # The official detection split covers fractured images only; CRLF and header as released.
    frac_ids = sorted(i for i, lab in zip(ids, labels) if lab)
    cut1, cut2 = int(len(frac_ids) * 0.8), int(len(frac_ids) * 0.9)
    for name, part in (("train", frac_ids[:cut1]), ("valid", frac_ids[cut1:cut2]), ("test", frac_ids[cut2:])):
        (out / "Utilities/Fracture Split" / f"{name}.csv").write_bytes(("image_id\r\n" + "".join(f"{i}\r\n" for i in part)).encode())
    info["n_images"] = len(rows)
    info["fractured_folder"] = int(labels.sum())
    return info


def make_mura(
    out: str | os.PathLike,
    n_patients: int = 16,
    seed: int = 0,
    bad_files: bool = True,
    image_size: tuple[int, int] = (112, 96),
    csv_header: bool | None = None,
    crlf: bool | None = None,
) -> dict:
    """Write ``out/MURA-v1.1/`` with XR_HAND patients (and one XR_WRIST study to filter out).

    About a quarter of the patients are in ``valid``. Images are PNG: mostly L, some RGB and
    one 16-bit (``I;16``). ``csv_header``/``crlf`` default to ``bad_files``.
    """
    out = Path(out)
    if n_patients < 4:
        raise BenchError(f"fixture size n={n_patients}: use at least 4 patients")
    csv_header = bad_files if csv_header is None else csv_header
    crlf = bad_files if crlf is None else crlf
    _fresh_dir(out, "MURA-v1.1")
    rng = np.random.default_rng(seed)
    mura = out / "MURA-v1.1"
    paths = {"train": [], "valid": []}
    studies = {"train": [], "valid": []}
    info: dict = {"sixteen_bit": None, "conflicts": [], "n_images": 0}
    h, w = image_size
    k = 0
    n_valid = max(1, n_patients // 4)
    for p in range(n_patients + 1):
        part = "XR_WRIST" if p == n_patients else "XR_HAND"
        split = "valid" if p < n_valid else "train"
        patient = f"patient{(11000 if split == 'valid' else 100) + p:05d}"
        for s in range(1, 1 + (1 if part == "XR_WRIST" else int(rng.integers(1, 3)))):
            positive = bool(rng.random() < 0.45)
            study = f"MURA-v1.1/{split}/{part}/{patient}/study{s}_{'positive' if positive else 'negative'}"
            csv_label = int(positive)
            if bad_files and not info["conflicts"] and split == "train" and part == "XR_HAND":
                csv_label = 1 - csv_label
                info["conflicts"].append(study)
            studies[split].append(f"{study}/,{csv_label}")
            (out / study).mkdir(parents=True, exist_ok=True)
            for m in range(1, 1 + int(rng.integers(1, 4))):
                arr, _ = synthetic_radiograph("hand", positive, (h, w), rng)
                rel = f"{study}/image{m}.png"
                if info["sixteen_bit"] is None and part == "XR_HAND":
                    # 16-bit PNG with the full 0..65535 range (x257 maps 255 -> 65535 exactly).
                    Image.fromarray(arr.astype(np.uint16) * 257).save(out / rel)
                    info["sixteen_bit"] = {"image_id": rel, "uint8": arr}
                elif k % 4 == 1:
                    Image.fromarray(arr, mode="L").convert("RGB").save(out / rel)
                else:
                    Image.fromarray(arr, mode="L").save(out / rel)
                paths[split].append(rel)
                k += 1
                if part == "XR_HAND":
                    info["n_images"] += 1
    nl = "\r\n" if crlf else "\n"
    for split in ("train", "valid"):
        head_p = "Img_Path" + nl if csv_header else ""
        head_s = "Img_Path,Label" + nl if csv_header else ""
        (mura / f"{split}_image_paths.csv").write_bytes((head_p + "".join(x + nl for x in paths[split])).encode())
        (mura / f"{split}_labeled_studies.csv").write_bytes((head_s + "".join(x + nl for x in studies[split])).encode())
    return info
