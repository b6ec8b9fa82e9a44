"""FracAtlas loader: one row per image, labels from the image folder (default) or dataset.csv.

Layout (the dataset's own release): ``dataset.csv``, ``images/Fractured``, ``images/Non_fractured``,
``Annotations/YOLO/<stem>.txt``. Every folder/CSV label disagreement is reported (real data:
IMG0003298.jpg, which the authors confirmed is wrong in the CSV). Files that resolve outside the
root follow ``data.symlinks`` (``bench/data/symlinks.py``).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pandas as pd

from bench.data.symlinks import RootGuard, check_metadata_file, check_policy, screen_images
from bench.errors import BenchError, first_line

BINARY_CLASSES = ["non_fractured", "fractured"]
REGION_CLASSES = ["hand", "leg", "hip", "shoulder", "mixed"]
CSV_COLUMNS = [
    "image_id", "hand", "leg", "hip", "shoulder", "mixed", "hardware", "multiscan",
    "fractured", "fracture_count", "frontal", "lateral", "oblique",
]
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}
EXPECTED_LAYOUT = "expected dataset.csv, images/Fractured/ and images/Non_fractured/ (the FracAtlas release layout)"


def _check_layout(root: Path) -> None:
    if not root.is_dir():
        raise BenchError(f"{root}: FracAtlas root not found: point data.root at the folder that has dataset.csv and images/")
    for rel in ("dataset.csv", "images/Fractured", "images/Non_fractured"):
        if not (root / rel).exists():
            raise BenchError(f"{root / rel}: missing: {EXPECTED_LAYOUT}")


def annotation_path(root: Path, image_id: str) -> Path:
    return root / "Annotations" / "YOLO" / (Path(image_id).stem + ".txt")


def _read_boxes(path: Path, root: Path | RootGuard | None = None, symlinks: str = "follow") -> list[tuple[float, float, float, float]]:
    if not path.is_file():
        return []
    if root is not None:
        check_metadata_file(path, root, symlinks)
    try:
        text = path.read_text(encoding="utf-8")
    except (UnicodeDecodeError, OSError) as exc:
        raise BenchError(f"{path}: cannot read ({exc}): restore the YOLO file (text 'class cx cy w h' lines)") from None
    boxes = []
    for n, line in enumerate(text.splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 5:
            raise BenchError(f"{path}:{n}: expected 'class cx cy w h', got {line.strip()!r}: fix the YOLO file")
        try:
            boxes.append(tuple(float(v) for v in parts[1:]))
        except ValueError:
            raise BenchError(f"{path}:{n}: non-numeric box {line.strip()!r}: fix the YOLO file") from None
    return boxes


def region_of(row) -> str | None:
    """FIELD_NOTES rule: ``mixed`` when mixed==1, otherwise the single body-part flag set."""
    if int(row["mixed"]) == 1:
        return "mixed"
    set_flags = [name for name in ("hand", "leg", "hip", "shoulder") if int(row[name]) == 1]
    return set_flags[0] if len(set_flags) == 1 else None


def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _is_plain_name(image_id: str) -> bool:
    """A bare file name: no folder part, no ``..``, nothing that could leave images/<class>/."""
    return bool(image_id) and image_id not in (".", "..") and not any(c in image_id for c in "/\\\0")


def read_dataset_csv(csv_path: Path) -> pd.DataFrame:
    """dataset.csv, validated: the columns, one row per plain image id, whole-number flags."""
    try:
        csv = pd.read_csv(csv_path, dtype={"image_id": str}, encoding="utf-8-sig", keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError, ValueError, OSError) as exc:
        raise BenchError(f"{csv_path}: cannot parse ({first_line(exc)}): "
                         f"restore the original dataset.csv") from None
    csv.columns = [str(c).strip() for c in csv.columns]
    missing_cols = [c for c in CSV_COLUMNS if c not in csv.columns]
    if missing_cols:
        raise BenchError(f"{csv_path}: missing columns {missing_cols}: expected header {','.join(CSV_COLUMNS)}")
    if csv.columns.duplicated().any():
        raise BenchError(f"{csv_path}: column {csv.columns[csv.columns.duplicated()][0]!r} appears twice: "
                         f"expected header {','.join(CSV_COLUMNS)}")
    csv["image_id"] = csv["image_id"].astype(str).str.strip()
    for image_id in csv["image_id"]:
        if not _is_plain_name(image_id):
            raise BenchError(f"{csv_path}: image_id {image_id!r} is not a plain file name (no folders, no '..'): "
                             f"ids name files in images/Fractured or images/Non_fractured; fix the row")
    dup_ids = csv["image_id"][csv["image_id"].duplicated()].tolist()
    if dup_ids:
        raise BenchError(f"{csv_path}: image_id {dup_ids[0]} appears more than once: keep one row per image")
    for col in CSV_COLUMNS[1:]:
        text = csv[col].astype(str).str.strip()
        values = pd.to_numeric(text, errors="coerce")
        bad = values.isna() | ~values.between(0, 1e6) | (values != values.round())
        if bad.any():
            row = csv.loc[bad, "image_id"].iloc[0]
            what = "is empty" if text[bad].iloc[0] == "" else f"is {text[bad].iloc[0]!r}"
            raise BenchError(f"{csv_path}: row for {row}: column {col} {what}: fill in 0/1 flags (a count for fracture_count)")
        csv[col] = values.astype("int64")
    for col in ("hand", "leg", "hip", "shoulder", "mixed", "fractured"):
        bad = ~csv[col].isin([0, 1])
        if bad.any():
            raise BenchError(f"{csv_path}: row for {csv.loc[bad, 'image_id'].iloc[0]}: column {col} is "
                             f"{int(csv.loc[bad, col].iloc[0])}: use 0 or 1")
    return csv


def load_fracatlas(root: str | os.PathLike, task: str = "binary", label_source: str = "folder",
                   symlinks: str = "refuse") -> tuple[pd.DataFrame, dict]:
    """Return ``(table, info)``. ``info`` has classes, positive_index, label_conflicts, images_not_in_csv,
    symlinks_refused / symlinks_followed."""
    if task not in ("binary", "region"):
        raise BenchError(f"data.task={task!r} is not a FracAtlas task: use binary or region")
    if label_source not in ("folder", "csv"):
        raise BenchError(f"data.label_source={label_source!r}: use folder or csv")
    check_policy(symlinks)
    root = Path(root).expanduser().resolve()
    _check_layout(root)

    guard = RootGuard(root)
    csv_path = root / "dataset.csv"
    check_metadata_file(csv_path, guard, symlinks)
    csv = read_dataset_csv(csv_path)

    # Folder membership: the label source the dataset authors confirmed as correct.
    folder_label: dict[str, int] = {}
    folder_path: dict[str, Path] = {}
    for sub, lab in (("Non_fractured", 0), ("Fractured", 1)):
        for p in sorted((root / "images" / sub).iterdir()):
            if p.suffix.lower() not in IMAGE_SUFFIXES or not p.is_file():
                continue
            if p.name in folder_label:
                raise BenchError(f"{p}: {p.name} is in both images/Fractured and images/Non_fractured: keep one copy")
            folder_label[p.name] = lab
            folder_path[p.name] = p

    rows = []
    conflicts = []
    refused: list[dict] = []
    followed: list[dict] = []
    for rec in csv.to_dict("records"):
        image_id = rec["image_id"]
        if image_id not in folder_label:
            raise BenchError(
                f"{csv_path}: {image_id} is listed but not found in images/Fractured or images/Non_fractured: "
                f"restore the image or remove its row"
            )
        keep, r, f = screen_images([str(folder_path[image_id])], [image_id], guard, symlinks)
        refused += r
        followed += f
        if not keep[0]:
            continue  # never read: neither its labels nor its boxes count
        region = region_of(rec)  # a dict: a pd.Series per row was ~40% of loading FracAtlas
        if region is None:
            raise BenchError(
                f"{csv_path}: row {image_id} has no single region flag (hand/leg/hip/shoulder) and mixed=0: fix the row"
            )
        f_folder = folder_label[image_id]
        f_csv = int(rec["fractured"])
        if f_folder != f_csv:
            conflicts.append({"image_id": image_id, "folder": f_folder, "csv": f_csv})
        path = folder_path[image_id]
        rows.append({
            "image_id": image_id,
            "path": str(path),
            "fractured_folder": f_folder,
            "fractured_csv": f_csv,
            "region": region,
            "boxes": _read_boxes(annotation_path(root, image_id), guard, symlinks),
        })
    listed = set(csv["image_id"])
    not_in_csv = sorted(i for i in folder_label if i not in listed)

    if refused and not rows:
        raise BenchError(f"{root}: every image resolves outside the dataset root (data.symlinks={symlinks}), "
                         f"e.g. {refused[0]['image_id']} -> {refused[0]['target']}: copy the images in or set data.symlinks=follow")
    table = pd.DataFrame(rows)
    if table.empty:
        raise BenchError(f"{csv_path}: no images: {EXPECTED_LAYOUT}")
    if task == "binary":
        classes = list(BINARY_CLASSES)
        source = "fractured_folder" if label_source == "folder" else "fractured_csv"
        table["label"] = table[source].astype("int64")
        positive_index = 1
    else:
        classes = list(REGION_CLASSES)
        table["label"] = table["region"].map({c: i for i, c in enumerate(classes)}).astype("int64")
        positive_index = None
    table = table[["image_id", "path", "label", "fractured_folder", "fractured_csv", "region", "boxes"]]
    table = table.sort_values("image_id", kind="stable").reset_index(drop=True)
    info = {
        "dataset": "fracatlas",
        "root": str(root),
        "task": task,
        "label_source": label_source,
        "classes": classes,
        "positive_index": positive_index,
        "label_conflicts": conflicts,
        "images_not_in_csv": not_in_csv,
        "symlink_policy": symlinks,
        "symlinks_refused": refused,
        "symlinks_followed": followed,
    }
    return table, info


def duplicate_groups(table: pd.DataFrame, workers: int | None = None,
                     digests: list[str] | None = None) -> tuple[pd.Series, list[list[str]]]:
    """Group byte-identical files: returns (group per row, list of duplicate id lists).

    A group is named after its first image id (sorted), so singletons are their own id.
    ``digests`` (SHA-256 per row, e.g. from the fingerprint cache) saves reading the files again.
    """
    from concurrent.futures import ThreadPoolExecutor

    paths = table["path"].tolist()
    if digests is None:
        with ThreadPoolExecutor(max_workers=workers or min(8, (os.cpu_count() or 2))) as ex:
            digests = list(ex.map(file_sha256, paths))
    by_digest: dict[str, list[str]] = {}
    for image_id, d in zip(table["image_id"].tolist(), digests):
        by_digest.setdefault(d, []).append(image_id)
    name = {d: sorted(ids)[0] for d, ids in by_digest.items()}
    groups = pd.Series([name[d] for d in digests], index=table.index, name="group", dtype=object)
    dups = sorted(sorted(ids) for ids in by_digest.values() if len(ids) > 1)
    return groups, dups
