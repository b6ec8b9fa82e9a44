"""MURA v1.1 loader (one body part). Labels are per study: every image inherits its study's label.

``root`` may be ``MURA-v1.1`` itself or the folder containing it; CSV paths are relative to the
folder that contains ``MURA-v1.1`` (docs: ../shared/data/MURA_LAYOUT.md). Public copies of the CSVs
sometimes add a header line, a BOM or CRLF: all are tolerated. An image path must stay inside
``MURA-v1.1/`` (no ``..``); files that resolve outside it follow ``data.symlinks``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pandas as pd

from bench.data.symlinks import RootGuard, check_metadata_file, check_policy, screen_images
from bench.errors import BenchError

CLASSES = ["normal", "abnormal"]
PREFIX = "MURA-v1.1/"
_IMAGE_NAME_RE = re.compile(r"[^/\\\0]+\.(?:png|jpe?g)", re.IGNORECASE)
_STUDY_RE = re.compile(r"^(?P<study>MURA-v1\.1/(?P<split>train|valid)/(?P<part>XR_[A-Z]+)/(?P<patient>patient\d+)/study\d+_(?P<suffix>positive|negative))/?$")


def _resolve_root(root: str | os.PathLike) -> tuple[Path, Path]:
    """Return (parent folder that contains MURA-v1.1, the MURA-v1.1 folder)."""
    root = Path(root).expanduser().resolve()
    if root.name == "MURA-v1.1" and root.is_dir():
        return root.parent, root
    if (root / "MURA-v1.1").is_dir():
        return root, root / "MURA-v1.1"
    raise BenchError(
        f"{root}: no MURA-v1.1 folder here: point data.root at MURA-v1.1/ or the folder that contains it "
        f"(expected MURA-v1.1/train_image_paths.csv, train/XR_HAND/patientNNNNN/studyK_positive/...)"
    )


def _read_lines(path: Path, mura: Path | None = None, symlinks: str = "follow") -> list[tuple[int, list[str]]]:
    """Non-empty CSV lines as (line number, fields); a first line that is not a MURA path is a header."""
    if not path.is_file():
        raise BenchError(f"{path}: missing: a MURA-v1.1 release has train/valid _image_paths.csv and _labeled_studies.csv")
    if mura is not None:
        check_metadata_file(path, mura, symlinks)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise BenchError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}): restore the original MURA CSV") from None
    out = []
    for n, line in enumerate(text.splitlines(), 1):  # splitlines drops \r\n too
        line = line.strip()
        if not line:
            continue
        fields = [f.strip().strip('"') for f in line.split(",")]
        if not out and not fields[0].startswith(PREFIX):
            continue  # optional header line (e.g. "Img_Path" or "Img_Path,Label")
        if not fields[0].startswith(PREFIX):
            raise BenchError(f"{path}:{n}: {fields[0]!r} does not start with {PREFIX}: is this an original MURA CSV?")
        out.append((n, fields))
    return out


def load_mura(root: str | os.PathLike, body_part: str | None = "XR_HAND", symlinks: str = "refuse") -> tuple[pd.DataFrame, dict]:
    """Return ``(table, info)`` for one body part (``None`` or ``"all"``: every part)."""
    check_policy(symlinks)
    parent, mura = _resolve_root(root)
    want = None if body_part in (None, "", "all", "ALL") else str(body_part).upper()
    if want is not None and not re.fullmatch(r"XR_[A-Z]+", want):
        raise BenchError(f"data.body_part={body_part!r}: use a MURA folder name such as XR_HAND, or all")

    rows = []
    conflicts = []
    study_labels: dict[str, int] = {}
    for split in ("train", "valid"):
        studies_csv = mura / f"{split}_labeled_studies.csv"
        for n, fields in _read_lines(studies_csv, mura, symlinks):
            m = _STUDY_RE.match(fields[0])
            if m is None or len(fields) < 2 or fields[1] not in ("0", "1"):
                raise BenchError(f"{studies_csv}:{n}: expected 'MURA-v1.1/<split>/XR_*/patientN/studyK_<positive|negative>/,<0|1>'")
            if want is not None and m["part"] != want:
                continue
            study_labels[m["study"]] = int(fields[1])

        paths_csv = mura / f"{split}_image_paths.csv"
        for n, fields in _read_lines(paths_csv, mura, symlinks):
            rel = fields[0]
            study_dir, _, name = rel.rpartition("/")
            m = _STUDY_RE.match(study_dir)
            if m is None or not _IMAGE_NAME_RE.fullmatch(name):
                raise BenchError(f"{paths_csv}:{n}: {rel!r} is not MURA-v1.1/<split>/XR_*/patientN/studyK_<label>/imageN.png")
            if want is not None and m["part"] != want:
                continue
            if m["split"] != split:
                raise BenchError(f"{paths_csv}:{n}: {rel} is listed under {split} but lives in {m['split']}/")
            path = parent / rel
            if not path.is_file():
                raise BenchError(f"{path}: listed in {paths_csv.name} line {n} but missing: restore the image or use the original CSV")
            rows.append({
                "image_id": rel,
                "path": str(path),
                "label": 1 if m["suffix"] == "positive" else 0,
                "study_id": m["study"],
                "patient_id": m["patient"],
                "body_part": m["part"],
                "official_split": split,
            })

    if not rows:
        raise BenchError(f"{mura}: no images for body part {want or 'all'} in the *_image_paths.csv files")
    keep, refused, followed = screen_images([r["path"] for r in rows], [r["image_id"] for r in rows], RootGuard(mura), symlinks)
    rows = [r for r, k in zip(rows, keep) if k]
    if not rows:
        raise BenchError(f"{mura}: every image resolves outside MURA-v1.1 (data.symlinks={symlinks}), "
                         f"e.g. {refused[0]['image_id']} -> {refused[0]['target']}: copy the images in or set data.symlinks=follow")
    table = pd.DataFrame(rows)
    dup = table["image_id"][table["image_id"].duplicated()]
    if not dup.empty:
        raise BenchError(f"{mura}: {dup.iloc[0]} is listed twice in the *_image_paths.csv files: remove the duplicate line")
    # Study folder suffix vs labeled_studies.csv: report every disagreement (folder wins).
    for study, folder_label in table.groupby("study_id")["label"].first().items():
        csv_label = study_labels.get(study)
        if csv_label is not None and csv_label != folder_label:
            conflicts.append({"study_id": study, "folder": int(folder_label), "csv": int(csv_label)})
    studies_without_label = sorted(set(table["study_id"]) - set(study_labels))
    table = table.sort_values("image_id", kind="stable").reset_index(drop=True)
    table["label"] = table["label"].astype("int64")
    info = {
        "dataset": "mura",
        "root": str(parent),
        "task": "abnormal",
        "body_part": want or "all",
        "classes": list(CLASSES),
        "positive_index": 1,
        "label_conflicts": conflicts,
        "studies_without_csv_label": studies_without_label,
        "symlink_policy": symlinks,
        "symlinks_refused": refused,
        "symlinks_followed": followed,
    }
    return table, info
