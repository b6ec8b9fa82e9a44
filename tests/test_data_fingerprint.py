"""The dataset fingerprint: same bytes -> same digest wherever the copy lives; any edited or
re-encoded file -> another digest; a second run hashes nothing."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
from pathlib import Path

import pytest
from PIL import Image

from bench.data import FractureDataModule
from bench.data.fingerprint import FORMAT, file_digests, fingerprint_files, index_path
from bench.errors import BenchError
from bench.testing import fixtures


@pytest.fixture(scope="module")
def fa_base(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("fp") / "fracatlas"
    fixtures.make_fracatlas(root, n=24, seed=2, bad_files=True)
    return root


@pytest.fixture()
def fa(fa_base, tmp_path) -> Path:
    root = tmp_path / "copy1" / "fracatlas"
    shutil.copytree(fa_base, root)
    return root


def _dm(root: Path, cache: Path, **kw) -> FractureDataModule:
    return FractureDataModule(dataset="fracatlas", root=str(root), image_size=16, cache_dir=str(cache), decode_workers=2, **kw)


def _fp(root: Path, cache: Path, **kw) -> str:
    return _dm(root, cache, **kw).compute_data_fingerprint()


def test_fingerprint_is_the_documented_manifest_hash(fa, tmp_path):
    dm = _dm(fa, tmp_path / "cache")
    dm.setup()
    # Oracle: the manifest of docs/data.md built by hand with hashlib from the files on disk.
    files = sorted([p for p in (fa / "images").rglob("*.jpg")] + [fa / "dataset.csv"]
                   + [p for p in (fa / "Annotations" / "YOLO").glob("IMG*.txt")])
    lines = "".join(f"{p.relative_to(fa).as_posix()}\t{p.stat().st_size}\t{hashlib.sha256(p.read_bytes()).hexdigest()}\n"
                    for p in sorted(files, key=lambda p: p.relative_to(fa).as_posix()))
    assert dm.data_fingerprint == hashlib.sha256((FORMAT + "\n" + lines).encode()).hexdigest()
    fp = dm.report["fingerprint"]
    assert fp["digest"] == dm.data_fingerprint and fp["algorithm"] == "sha256"
    assert fp["n_files"] == len(files) and fp["n_bytes"] == sum(p.stat().st_size for p in files)
    json.dumps(dm.report)


def test_copy_elsewhere_is_the_same_data_and_the_second_run_hashes_nothing(fa, tmp_path):
    first = _dm(fa, tmp_path / "cache")
    first.setup()
    # the images were hashed once, for the duplicate check; the fingerprint added the label files
    assert first.report["fingerprint"]["hashed_now"] == first.report["fingerprint"]["n_files"] - len(first.table)
    again = _dm(fa, tmp_path / "cache")
    again.setup()
    assert again.data_fingerprint == first.data_fingerprint and again.report["fingerprint"]["hashed_now"] == 0
    other = tmp_path / "mnt" / "shared" / "FracAtlas-copy"
    shutil.copytree(fa, other)  # new paths and mtimes, same bytes
    assert _fp(other, tmp_path / "cache") == first.data_fingerprint
    assert _fp(other, tmp_path / "other-cache") == first.data_fingerprint
    # a touched file (new mtime, same bytes) is hashed again and changes nothing
    victim = next((fa / "images" / "Fractured").iterdir())
    os.utime(victim, ns=(victim.stat().st_atime_ns, victim.stat().st_mtime_ns + 10**9))
    assert _fp(fa, tmp_path / "cache") == first.data_fingerprint
    entries = json.loads(index_path(tmp_path / "cache", fa).read_text())["entries"]
    assert entries[str(victim)][:2] == [victim.stat().st_size, victim.stat().st_mtime_ns]  # re-hashed


def _reencode(path: Path, quality: int) -> None:
    img = Image.open(path)
    img.load()
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=quality)
    path.write_bytes(buf.getvalue())


@pytest.mark.parametrize("edit", ["one_byte", "reencoded", "resized", "csv_flag", "box_file", "renamed_folder_label"])
def test_an_edited_copy_is_other_data(edit, fa, tmp_path):
    before = _fp(fa, tmp_path / "cache")
    victim = sorted((fa / "images" / "Non_fractured").iterdir())[1]
    if edit == "one_byte":
        data = bytearray(victim.read_bytes())
        data[len(data) // 2] ^= 0x01
        victim.write_bytes(bytes(data))
    elif edit == "reencoded":  # the full-size release vs a re-saved copy
        _reencode(victim, quality=70)
    elif edit == "resized":
        img = Image.open(victim)
        img.resize((img.width // 2, img.height // 2)).save(victim, format="JPEG", quality=95)
    elif edit == "csv_flag":
        csv = fa / "dataset.csv"
        lines = csv.read_text().splitlines()
        cols = lines[1].split(",")
        cols[7] = "1" if cols[7] == "0" else "0"  # hardware flag: no effect on the labels, still other data
        csv.write_text("\n".join([lines[0], ",".join(cols)] + lines[2:]) + "\n")
    elif edit == "box_file":
        box = next(p for p in (fa / "Annotations" / "YOLO").glob("IMG*.txt") if p.read_text())
        box.write_text(box.read_text().replace("0 0.", "0 0.0", 1))
    else:  # same bytes, other label folder: the relative path is part of the identity
        shutil.move(victim, fa / "images" / "Fractured" / victim.name)
    assert _fp(fa, tmp_path / "cache") != before


def test_selection_is_part_of_the_fingerprint_and_nothing_is_decoded(fa, tmp_path):
    full = _dm(fa, tmp_path / "cache")
    digest = full.compute_data_fingerprint()
    assert not (tmp_path / "cache" / "decoded").exists()  # hashing only, no decode
    limited = _dm(fa, tmp_path / "cache", limit_per_class=5)
    assert limited.compute_data_fingerprint() != digest
    assert limited.fingerprint.hashed_now == 0  # its files were hashed for the duplicate check already
    full.setup()
    assert full.data_fingerprint == digest  # setup reuses the selection


def test_file_digests_match_hashlib_and_the_cache_stays_out_of_the_data(fa, tmp_path):
    paths = sorted(str(p) for p in (fa / "images").rglob("*.jpg"))
    digests, sizes, hashed = file_digests(paths, tmp_path / "cache", fa)
    assert digests == [hashlib.sha256(Path(p).read_bytes()).hexdigest() for p in paths]
    assert sizes == [os.path.getsize(p) for p in paths] and hashed == len(paths)
    where = index_path(tmp_path / "cache", fa)
    assert where.is_file() and where.is_relative_to(tmp_path / "cache")
    assert file_digests(paths, tmp_path / "cache", fa)[2] == 0
    with pytest.raises(BenchError, match="is inside the dataset root"):
        file_digests(paths, fa / "cache", fa)
    # a corrupt digest cache is rebuilt, not trusted
    where.write_text("{not json")
    assert file_digests(paths, tmp_path / "cache", fa)[0] == digests
    with pytest.raises(BenchError, match="not under the dataset root"):
        fingerprint_files([str(tmp_path / "elsewhere.jpg")], fa, tmp_path / "cache")
