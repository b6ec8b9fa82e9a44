"""Getting the data: download FracAtlas (pinned, verified, resumable, unpacked atomically) and
verify a local MURA copy against its own CSVs (MURA's licence forbids downloading it for the user).

The FracAtlas release facts are kept in ONE place (``FRACATLAS_RELEASE``). They come from other
projects' loaders and could not be checked from the machine this was written on (no route to
figshare): ``--url`` / ``--sha256`` / ``--size`` override them for a mirror or a corrected release.

Downloading is ``requests`` (redirects, streaming, Range); the resume bookkeeping and figshare's
"202 Accepted, try again" answer are the only hand-written parts, because no library handles that
answer and resumable downloads into a named partial file together.
"""

from __future__ import annotations

import csv
import hashlib
import os
import shutil
import tempfile
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.errors import BenchError


@dataclass(frozen=True)
class Release:
    name: str
    url: str
    size: int | None
    sha256: str | None
    source: str


# figshare record 10.6084/m9.figshare.22363012, file 65518038 (reported elsewhere; see module doc).
FRACATLAS_RELEASE = Release(
    name="FracAtlas.zip",
    url="https://figshare.com/ndownloader/files/65518038",
    size=338_436_460,
    sha256="b67ec2d290a022b3dcf47f78e9a37f7edcc80592c0571f439355bf00bd9f0e23",
    source="figshare record 10.6084/m9.figshare.22363012, file 65518038 (size and SHA-256 as reported by "
           "other projects' loaders, not checked by this project)",
)
MANUAL_STEPS = (
    "manual steps: download FracAtlas.zip from https://doi.org/10.6084/m9.figshare.22363012 in a browser, "
    "then run `bench-fetch fracatlas --out DIR --from-file FracAtlas.zip` (it verifies and unpacks it)"
)
CHUNK = 1 << 16  # small enough that a broken-off response keeps most of what arrived


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def download(url: str, part: Path, *, size: int | None = None, timeout: float = 10.0, retries_202: int = 5,
             progress: Callable[[int, int | None], None] | None = None) -> Path:
    """Download ``url`` into ``part``, resuming from its current length with an HTTP Range request."""
    import requests

    part.parent.mkdir(parents=True, exist_ok=True)
    for attempt in range(retries_202 + 1):
        have = part.stat().st_size if part.is_file() else 0
        if size is not None and have == size:
            return part
        headers = {"Range": f"bytes={have}-"} if have else {}
        try:
            resp = requests.get(url, headers=headers, stream=True, timeout=timeout, allow_redirects=True)
        except requests.exceptions.ConnectionError as exc:
            raise BenchError(f"cannot reach {url} ({type(exc).__name__}): no network? {MANUAL_STEPS}") from None
        except requests.exceptions.Timeout:
            raise BenchError(f"{url} did not answer within {timeout:.0f} s; {MANUAL_STEPS}") from None
        with resp:
            if resp.status_code == 202:  # figshare prepares the file first: wait and ask again
                time.sleep(min(float(resp.headers.get("Retry-After", 1) or 1), 30.0))
                continue
            if resp.status_code == 416 and have:  # nothing left to send: the partial file is whole
                return part
            if resp.status_code not in (200, 206):
                raise BenchError(f"{url} answered HTTP {resp.status_code}; check --url, or {MANUAL_STEPS}")
            mode = "ab" if resp.status_code == 206 else "wb"  # 200: the server ignored Range; start over
            done = have if mode == "ab" else 0
            total = size or (done + int(resp.headers["Content-Length"]) if "Content-Length" in resp.headers else None)
            with open(part, mode) as fh:
                try:
                    for block in resp.iter_content(1 << 14):
                        fh.write(block)
                        done += len(block)
                        if progress:
                            progress(done, total)
                except requests.exceptions.RequestException as exc:
                    raise BenchError(f"download of {url} broke off at {done} bytes ({type(exc).__name__}); "
                                     f"run the same command again to resume from {part}") from None
            if size is not None and done < size:
                raise BenchError(f"download of {url} stopped at {done} of {size} bytes; run the same command "
                                 f"again to resume from {part}")
            return part
    raise BenchError(f"{url} kept answering 202 Accepted ({retries_202 + 1} tries); try again later, or {MANUAL_STEPS}")


def verify(path: Path, *, size: int | None, sha256: str | None) -> None:
    actual = path.stat().st_size
    if size is not None and actual != size:
        raise BenchError(f"{path}: {actual} bytes, expected {size}: truncated or another file; delete it and "
                         f"fetch again (or give --size for a different release)")
    if sha256:
        digest = _sha256(path)
        if digest != sha256.lower():
            raise BenchError(f"{path}: SHA-256 {digest} does not match the pinned {sha256}: a corrupt or modified "
                             f"download; delete it and fetch again (or give --sha256 for a mirror you trust)")


def unpack_fracatlas(archive: Path, out_dir: Path) -> Path:
    """Unpack into ``out_dir/fracatlas`` atomically: a temporary folder beside it, renamed when whole."""
    target = out_dir / "fracatlas"
    if target.exists():
        raise BenchError(f"{target} already exists; remove it or choose another --out")
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".fracatlas.", dir=out_dir))
    try:
        with zipfile.ZipFile(archive) as zf:
            for member in zf.infolist():
                dest = (tmp / member.filename).resolve()
                if not dest.is_relative_to(tmp.resolve()):  # a zip-slip entry ("../x")
                    raise BenchError(f"{archive}: entry {member.filename!r} points outside the archive's folder; refused")
            zf.extractall(tmp)
        roots = [p.parent for p in tmp.rglob("dataset.csv")]
        if not roots:
            raise BenchError(f"{archive}: no dataset.csv inside: not a FracAtlas release")
        os.replace(min(roots, key=lambda p: len(p.parts)), target)
    except zipfile.BadZipFile:
        raise BenchError(f"{archive}: not a readable zip archive; delete it and fetch again") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def fetch_fracatlas(out_dir: Path, cache_dir: Path, *, release: Release = FRACATLAS_RELEASE, from_file: Path | None = None,
                    timeout: float = 10.0, progress: Callable[[int, int | None], None] | None = None) -> Path:
    """Download (or take ``from_file``), verify, unpack; nothing lands in ``out_dir`` unless all pass."""
    if (out_dir / "fracatlas").exists():
        raise BenchError(f"{out_dir / 'fracatlas'} already exists; remove it or choose another --out")
    if from_file is not None:
        archive = Path(from_file)
        if not archive.is_file():
            raise BenchError(f"--from-file {archive}: no such file")
    else:
        key = (release.sha256 or hashlib.sha256(release.url.encode()).hexdigest())[:16]
        archive = cache_dir / "downloads" / f"{release.name}.{key}.part"
        download(release.url, archive, size=release.size, timeout=timeout, progress=progress)
    try:
        verify(archive, size=release.size, sha256=release.sha256)
    except BenchError:
        if from_file is None:
            archive.unlink(missing_ok=True)  # a wrong download is never resumed
        raise
    return unpack_fracatlas(archive, out_dir)


# MURA v1.1 totals as reported (FIELD_NOTES; the MURA paper and a benchmark card): images / studies.
MURA_TOTALS = {"train": (36_808, 13_457), "valid": (3_197, 1_199)}
MURA_HAND = {"train": (5_543, 2_018), "valid": (460, 167)}


def verify_mura(root: Path) -> dict:
    """Check a local MURA-v1.1 copy against its own CSVs; returns a report (problems listed, not raised)."""
    mura = root / "MURA-v1.1" if (root / "MURA-v1.1").is_dir() else root
    if not (mura / "train_image_paths.csv").is_file():
        raise BenchError(f"{root}: no MURA-v1.1/train_image_paths.csv; give the folder that contains MURA-v1.1/")
    base = mura.parent
    report: dict = {"root": str(mura), "splits": {}, "missing": [], "unlisted": [], "label_conflicts": [], "totals": []}
    for split in ("train", "valid"):
        images = _csv_rows(mura / f"{split}_image_paths.csv")
        studies = _csv_rows(mura / f"{split}_labeled_studies.csv")
        listed = {r[0].strip() for r in images if r and r[0].strip()}
        for row in studies:
            if len(row) < 2:
                continue
            folder, label = row[0].strip().rstrip("/"), row[1].strip()
            suffix = folder.rsplit("_", 1)[-1]
            expect = {"positive": "1", "negative": "0"}.get(suffix)
            if expect is not None and label != expect:
                report["label_conflicts"].append(f"{folder}: CSV label {label}, folder says {suffix}")
        report["missing"] += sorted(p for p in listed if not (base / p).is_file())
        on_disk = {str(p.relative_to(base)) for p in (mura / split).rglob("*.png")} if (mura / split).is_dir() else set()
        report["unlisted"] += sorted(on_disk - listed)
        hand = sum(1 for p in listed if "/XR_HAND/" in p)
        hand_studies = sum(1 for r in studies if r and "/XR_HAND/" in r[0])
        report["splits"][split] = {"images": len(listed), "studies": len(studies), "images_on_disk": len(on_disk),
                                   "hand_images": hand, "hand_studies": hand_studies}
        for what, (n_img, n_std), got in (("all", MURA_TOTALS[split], (len(listed), len(studies))),
                                          ("XR_HAND", MURA_HAND[split], (hand, hand_studies))):
            if got != (n_img, n_std):
                report["totals"].append(f"{split} {what}: {got[0]} images / {got[1]} studies listed; "
                                        f"published {n_img} / {n_std}")
    report["ok"] = not (report["missing"] or report["unlisted"] or report["label_conflicts"])
    return report


def _csv_rows(path: Path) -> list[list[str]]:
    if not path.is_file():
        raise BenchError(f"{path}: missing; a MURA-v1.1 copy has train/valid _image_paths.csv and _labeled_studies.csv")
    with open(path, newline="", encoding="utf-8-sig") as fh:
        rows = [r for r in csv.reader(fh) if r]
    if rows and not rows[0][0].startswith("MURA-v1.1/"):  # an optional header line (copies add one)
        rows = rows[1:]
    return rows
