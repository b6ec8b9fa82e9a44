"""The bad-input corpus: each broken dataset a careful user could hand the harness, and the exact
outcome (listed and left out, decoded, or a one-line error naming the file) -- never a traceback.

Every case starts from a fresh copy of a small generated FracAtlas or MURA layout
(``bench.testing.fixtures``) and breaks one thing.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench.data import FractureDataModule
from bench.data.decode import decode_image
from bench.errors import BenchError
from bench.testing import fixtures

N_FA = 30  # generated FracAtlas images: 12 fractured, 18 not, 6 per region


def write_png_bomb(path: Path, width: int = 20000, height: int = 20000) -> None:
    """A valid 1-bit grayscale PNG of width x height (about 50 kB for 20000 x 20000).

    Written chunk by chunk because Pillow would first allocate the whole image (400 MB here).
    """
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    z = zlib.compressobj(9)
    row = b"\x00" * (1 + (width + 7) // 8)  # filter byte + packed bits
    idat = b"".join(z.compress(row) for _ in range(height)) + z.flush()
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0))
                     + chunk(b"IDAT", idat) + chunk(b"IEND", b""))


def _gray(seed: int = 3, shape=(120, 100)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]]
    return np.clip(40 + 150 * (xx / shape[1]) + 30 * np.sin(yy / 7) + rng.normal(0, 3, shape), 0, 255).astype(np.uint8)


def _encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


@pytest.fixture(scope="module")
def fa_base(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("bad_fa") / "fracatlas"
    fixtures.make_fracatlas(root, n=N_FA, seed=1, bad_files=False)
    return root


@pytest.fixture(scope="module")
def mura_base(tmp_path_factory) -> tuple[Path, dict]:
    parent = tmp_path_factory.mktemp("bad_mura") / "mura"
    info = fixtures.make_mura(parent, n_patients=10, seed=1, bad_files=False)
    return parent, info


@pytest.fixture()
def fa(fa_base, tmp_path) -> Path:
    root = tmp_path / "data" / "fracatlas"
    shutil.copytree(fa_base, root)
    return root


@pytest.fixture()
def mura(mura_base, tmp_path) -> Path:
    parent = tmp_path / "data" / "mura"
    shutil.copytree(mura_base[0], parent)
    return parent


def _victim(root: Path, folder: str = "Non_fractured") -> Path:
    return sorted((root / "images" / folder).iterdir())[0]


def _setup(root: Path, tmp_path: Path, dataset: str = "fracatlas", **kw) -> FractureDataModule:
    args = dict(dataset=dataset, root=str(root), task="binary" if dataset == "fracatlas" else "abnormal",
                image_size=16, batch_size=4, cache_dir=str(tmp_path / "cache"), decode_workers=2)
    args.update(kw)
    dm = FractureDataModule(**args)
    dm.setup()
    return dm


def _one_line_error(fn) -> str:
    with pytest.raises(BenchError) as exc:
        fn()
    msg = str(exc.value)
    assert "\n" not in msg, msg
    return msg


def _rewrite_csv(root: Path, edit) -> None:
    path = root / "dataset.csv"
    lines = path.read_text().splitlines()
    path.write_bytes(edit(lines))


# ----------------------------------------------------------------------------- image files
IMAGE_CASES = ["decompression_bomb", "zero_byte", "text_as_jpg"]


@pytest.mark.parametrize("case", IMAGE_CASES)
def test_unreadable_image_is_listed_with_its_reason(case, fa, tmp_path):
    victim = _victim(fa)
    if case == "decompression_bomb":
        write_png_bomb(victim)  # 400,000,000 pixels: over twice Pillow's default limit
        reason, needle = "too_many_pixels", "400000000 pixels is over data.max_image_pixels=89478485"
    elif case == "zero_byte":
        victim.write_bytes(b"")
        reason, needle = "not_an_image", "cannot identify image file"
    else:
        victim.write_text("This is a radiology report, not a JPEG.\n")
        reason, needle = "not_an_image", "cannot identify image file"
    dm = _setup(fa, tmp_path)
    r = dm.report
    assert [(u["image_id"], u["reason"]) for u in r["unreadable"]] == [(victim.name, reason)]
    assert needle in r["unreadable"][0]["error"] and str(victim) in r["unreadable"][0]["error"]
    assert r["unreadable_by_reason"] == {reason: 1}
    assert r["n_images"] == N_FA - 1 and victim.name not in set(dm.table["image_id"])
    assert r["truncated"] == [] and r["skipped"] == [] and r["symlinks_refused"] == []


def test_max_image_pixels_is_a_setting_and_each_limit_has_its_own_cache(fa, tmp_path):
    victim = _victim(fa)
    victim.write_bytes(_encode(Image.fromarray(_gray(shape=(200, 200))), "JPEG", quality=90))
    dm = _setup(fa, tmp_path, max_image_pixels=20_000)  # the other images are 120 x 100 = 12,000
    assert [(u["image_id"], u["reason"]) for u in dm.report["unreadable"]] == [(victim.name, "too_many_pixels")]
    assert "200x200 = 40000 pixels is over data.max_image_pixels=20000" in dm.report["unreadable"][0]["error"]
    assert dm.report["max_image_pixels"] == 20_000
    again = _setup(fa, tmp_path)  # same cache folder, default limit: the verdict is not reused
    assert again.report["unreadable"] == [] and again.report["n_images"] == N_FA
    for bad in (0, -4, 2.5, "many", True):
        msg = _one_line_error(lambda: FractureDataModule(root=str(fa), max_image_pixels=bad))
        assert msg.startswith(f"data.max_image_pixels={bad!r}: give a positive whole number")


@pytest.mark.parametrize("policy", ["load", "skip", "error"])
def test_truncated_jpeg_follows_the_policy(policy, fa, tmp_path):
    victim = _victim(fa)
    data = victim.read_bytes()
    victim.write_bytes(data[: int(len(data) * 0.6)])
    if policy == "error":
        msg = _one_line_error(lambda: _setup(fa, tmp_path, truncated=policy))
        assert msg.startswith(f"{victim}: image file is truncated: set data.truncated=load")
        return
    dm = _setup(fa, tmp_path, truncated=policy)
    r = dm.report
    assert r["unreadable"] == []
    if policy == "load":
        assert r["truncated"] == [victim.name] and r["skipped"] == [] and r["n_images"] == N_FA
        assert bool(dm.table.set_index("image_id").loc[victim.name, "truncated"])
    else:
        assert r["skipped"] == [victim.name] and r["truncated"] == [] and r["n_images"] == N_FA - 1


@pytest.mark.parametrize("case", ["cmyk_jpeg", "png_as_jpg"])
def test_readable_oddities_decode_to_the_right_pixels(case, fa, tmp_path):
    victim = _victim(fa)
    gray = _gray()
    if case == "cmyk_jpeg":
        img = Image.fromarray(gray).convert("CMYK")
        victim.write_bytes(_encode(img, "JPEG", quality=95))
        assert Image.open(victim).mode == "CMYK"
    else:
        victim.write_bytes(_encode(Image.fromarray(gray), "PNG"))
        assert Image.open(victim).format == "PNG"
    dm = _setup(fa, tmp_path)
    assert dm.report["unreadable"] == [] and dm.report["n_images"] == N_FA
    decoded = decode_image(victim).array
    if case == "png_as_jpg":  # lossless: exactly the source pixels
        np.testing.assert_array_equal(decoded, gray.astype(np.float32) / 255)
    else:  # JPEG-lossy, and C/M/Y of a gray image carry its inverse
        assert decoded.shape == gray.shape and np.abs(decoded - gray / 255).mean() < 0.02


def test_sixteen_bit_png_uses_its_full_range(mura, mura_base, tmp_path):
    info = mura_base[1]
    rel = info["sixteen_bit"]["image_id"]
    assert Image.open(mura / rel).mode.startswith("I")
    np.testing.assert_allclose(decode_image(mura / rel).array, info["sixteen_bit"]["uint8"] / 255.0, atol=1e-6)
    dm = _setup(mura, tmp_path, dataset="mura")
    assert dm.report["unreadable"] == [] and rel in set(dm.table["image_id"])


# ----------------------------------------------------------------------------- CSV files
def _table_summary(dm: FractureDataModule) -> list[tuple]:
    cols = ["image_id", "label"] + (["region"] if "region" in dm.table.columns else ["study_id"])
    return sorted(map(tuple, dm.table[cols].astype(str).to_numpy().tolist()))


@pytest.mark.parametrize("case", ["crlf", "bom", "bom_crlf"])
def test_fracatlas_csv_line_endings_and_bom_read_the_same(case, fa, fa_base, tmp_path):
    ref = _setup(fa_base, tmp_path / "ref")
    nl = "\r\n" if "crlf" in case else "\n"
    bom = b"\xef\xbb\xbf" if "bom" in case else b""
    _rewrite_csv(fa, lambda lines: bom + nl.join(lines).encode() + nl.encode())
    dm = _setup(fa, tmp_path)
    assert _table_summary(dm) == _table_summary(ref) and dm.split_hash == ref.split_hash


def test_fracatlas_csv_missing_column_is_named(fa, tmp_path):
    def drop_mixed(lines):
        cols = lines[0].split(",")
        k = cols.index("mixed")
        return ("\n".join(",".join(f for j, f in enumerate(line.split(",")) if j != k) for line in lines) + "\n").encode()

    _rewrite_csv(fa, drop_mixed)
    msg = _one_line_error(lambda: _setup(fa, tmp_path))
    assert msg.startswith(f"{fa / 'dataset.csv'}: missing columns ['mixed']: expected header image_id,hand,")


def test_fracatlas_csv_duplicate_rows_are_named(fa, tmp_path):
    _rewrite_csv(fa, lambda lines: ("\n".join(lines + [lines[3]]) + "\n").encode())
    dup = (fa / "dataset.csv").read_text().splitlines()[3].split(",")[0]
    msg = _one_line_error(lambda: _setup(fa, tmp_path))
    assert msg == f"{fa / 'dataset.csv'}: image_id {dup} appears more than once: keep one row per image"


@pytest.mark.parametrize("value, shown", [("x", "is 'x'"), ("", "is empty"), ("inf", "is 'inf'"), ("0.5", "is '0.5'")])
def test_fracatlas_csv_flag_that_is_not_a_count_is_named(value, shown, fa, tmp_path):
    def edit(lines):
        cols = lines[1].split(",")
        cols[1] = value  # the "hand" flag of the first row
        return ("\n".join([lines[0], ",".join(cols)] + lines[2:]) + "\n").encode()

    _rewrite_csv(fa, edit)
    first = (fa / "dataset.csv").read_text().splitlines()[1].split(",")[0]
    msg = _one_line_error(lambda: _setup(fa, tmp_path))
    assert msg == f"{fa / 'dataset.csv'}: row for {first}: column hand {shown}: fill in 0/1 flags (a count for fracture_count)"


@pytest.mark.parametrize("bad_id", ["../../escape.jpg", "../fracatlas/images/Fractured/x.jpg", "..", "sub/x.jpg"])
def test_fracatlas_ids_with_folders_never_leave_the_root(bad_id, fa, tmp_path):
    escape = fa.parent.parent / "escape.jpg"  # a real image where ../../escape.jpg would lead
    escape.write_bytes(_encode(Image.fromarray(_gray()), "JPEG"))
    victim = _victim(fa).name
    _rewrite_csv(fa, lambda lines: ("\n".join(line.replace(victim, bad_id) for line in lines) + "\n").encode())
    msg = _one_line_error(lambda: _setup(fa, tmp_path))
    assert msg.startswith(f"{fa / 'dataset.csv'}: image_id {bad_id!r} is not a plain file name (no folders, no '..')")


def _mura_csv(parent: Path, name: str) -> Path:
    return parent / "MURA-v1.1" / name


def test_mura_csv_bom_and_crlf_read_the_same(mura, mura_base, tmp_path):
    ref = _setup(mura_base[0], tmp_path / "ref", dataset="mura")
    for name in ("train_image_paths.csv", "valid_image_paths.csv", "train_labeled_studies.csv", "valid_labeled_studies.csv"):
        p = _mura_csv(mura, name)
        p.write_bytes(b"\xef\xbb\xbf" + "\r\n".join(p.read_text().splitlines()).encode() + b"\r\n")
    dm = _setup(mura, tmp_path, dataset="mura")
    assert _table_summary(dm) == _table_summary(ref) and dm.split_hash == ref.split_hash


@pytest.mark.parametrize("tail", ["../../../../../escape.png", "..", "sub/../../image1.png"])
def test_mura_paths_with_dotdot_never_leave_the_root(tail, mura, tmp_path):
    (mura.parent / "escape.png").write_bytes(_encode(Image.fromarray(_gray()), "PNG"))
    p = _mura_csv(mura, "train_image_paths.csv")
    lines = p.read_text().splitlines()
    study = lines[0].rsplit("/", 1)[0]
    p.write_text("\n".join(lines + [f"{study}/{tail}"]) + "\n")
    msg = _one_line_error(lambda: _setup(mura, tmp_path, dataset="mura"))
    assert msg.startswith(f"{p}:{len(lines) + 1}: '{study}/{tail}' is not MURA-v1.1/<split>/XR_*/patientN/studyK_<label>/imageN.png")


def test_mura_duplicate_line_and_missing_column_are_named(mura, tmp_path):
    p = _mura_csv(mura, "train_image_paths.csv")
    lines = p.read_text().splitlines()
    p.write_text("\n".join(lines + [lines[0]]) + "\n")
    msg = _one_line_error(lambda: _setup(mura, tmp_path, dataset="mura"))
    assert msg == f"{mura / 'MURA-v1.1'}: {lines[0]} is listed twice in the *_image_paths.csv files: remove the duplicate line"
    p.write_text("\n".join(lines) + "\n")
    s = _mura_csv(mura, "valid_labeled_studies.csv")
    studies = s.read_text().splitlines()
    s.write_text("\n".join([studies[0].split(",")[0]] + studies[1:]) + "\n")  # label column missing
    msg = _one_line_error(lambda: _setup(mura, tmp_path, dataset="mura"))
    assert msg.startswith(f"{s}:1: expected 'MURA-v1.1/<split>/XR_*/patientN/studyK_<positive|negative>/,<0|1>'")


# ----------------------------------------------------------------------------- symlinks
@pytest.fixture()
def linked_out(fa, tmp_path) -> tuple[Path, Path, Path]:
    victim = _victim(fa)
    outside = tmp_path / "elsewhere" / "private.jpg"
    outside.parent.mkdir()
    shutil.move(victim, outside)
    os.symlink(outside, victim)
    return fa, victim, outside


def test_symlink_out_of_the_root_is_refused_and_named(linked_out, tmp_path):
    root, victim, outside = linked_out
    dm = _setup(root, tmp_path)
    r = dm.report
    assert r["symlink_policy"] == "refuse"
    assert r["symlinks_refused"] == [{"image_id": victim.name, "target": str(outside.resolve())}]
    assert r["symlinks_followed"] == [] and r["unreadable"] == []
    assert victim.name not in set(dm.table["image_id"]) and r["n_images"] == N_FA - 1
    msg = _one_line_error(lambda: _setup(root, tmp_path, symlinks="error"))
    assert msg.startswith(f"{victim}: resolves to {outside.resolve()}, outside the dataset root {root.resolve()} "
                          f"(data.symlinks=error)")
    followed = _setup(root, tmp_path, symlinks="follow")
    assert followed.report["symlinks_followed"] == [{"image_id": victim.name, "target": str(outside.resolve())}]
    assert victim.name in set(followed.table["image_id"]) and followed.report["n_images"] == N_FA
    assert dm.data_fingerprint != followed.data_fingerprint
    msg = _one_line_error(lambda: FractureDataModule(root=str(root), symlinks="maybe"))
    assert msg == "data.symlinks='maybe' is not a policy: use one of refuse, error, follow"


def test_symlink_inside_the_root_is_an_ordinary_file(fa, tmp_path):
    victim, other = sorted((fa / "images" / "Non_fractured").iterdir())[:2]
    victim.unlink()
    os.symlink(os.path.relpath(other, victim.parent), victim)
    dm = _setup(fa, tmp_path)
    assert dm.report["symlinks_refused"] == [] and dm.report["n_images"] == N_FA
    assert sorted([victim.name, other.name]) in dm.report["duplicate_groups"]  # same bytes now


def test_label_file_linked_out_of_the_root_is_an_error(fa, tmp_path):
    outside = tmp_path / "dataset.csv"
    shutil.move(fa / "dataset.csv", outside)
    os.symlink(outside, fa / "dataset.csv")
    msg = _one_line_error(lambda: _setup(fa, tmp_path))
    assert msg.startswith(f"{fa / 'dataset.csv'}: resolves to {outside}, outside the dataset root")
    assert _setup(fa, tmp_path, symlinks="follow").report["n_images"] == N_FA


def test_mura_image_linked_out_of_the_root_is_refused(mura, tmp_path):
    rel = sorted(_mura_csv(mura, "train_image_paths.csv").read_text().splitlines())[0]
    outside = tmp_path / "outside.png"
    shutil.move(mura / rel, outside)
    os.symlink(outside, mura / rel)
    dm = _setup(mura, tmp_path, dataset="mura")
    assert dm.report["symlinks_refused"] == [{"image_id": rel, "target": str(outside)}]
    assert rel not in set(dm.table["image_id"])


# ----------------------------------------------------------------------------- empty classes
def _drop_rows(root: Path, keep) -> None:
    lines = (root / "dataset.csv").read_text().splitlines()
    cols = lines[0].split(",")
    kept = [lines[0]]
    for line in lines[1:]:
        row = dict(zip(cols, line.split(",")))
        if keep(row):
            kept.append(line)
        else:
            for folder in ("Fractured", "Non_fractured"):
                (root / "images" / folder / row["image_id"]).unlink(missing_ok=True)
    (root / "dataset.csv").write_text("\n".join(kept) + "\n")


def test_empty_region_class_is_a_one_line_error(fa, tmp_path):
    _drop_rows(fa, lambda row: row["shoulder"] != "1")
    msg = _one_line_error(lambda: _setup(fa, tmp_path, task="region"))
    assert msg.startswith(f"data.task=region: class 'shoulder' has no images in {fa} (classes: hand, leg, hip, shoulder, mixed)")
    assert not (tmp_path / "cache" / "decoded").exists()  # found before decoding anything


def test_class_emptied_by_unreadable_files_is_a_one_line_error(fa, tmp_path):
    for p in (fa / "images" / "Fractured").iterdir():
        p.write_bytes(b"")
    msg = _one_line_error(lambda: _setup(fa, tmp_path))
    assert msg.startswith(f"data.task=binary: class 'fractured' has no images in {fa} after leaving out 12 unreadable/skipped files")


def test_mura_without_abnormal_studies_is_a_one_line_error(mura, tmp_path):
    for name in ("train_image_paths.csv", "valid_image_paths.csv"):
        p = _mura_csv(mura, name)
        p.write_text("\n".join(x for x in p.read_text().splitlines() if "_positive" not in x) + "\n")
    msg = _one_line_error(lambda: _setup(mura, tmp_path, dataset="mura"))
    assert msg.startswith("data.task=abnormal: class 'abnormal' has no images in")


def test_subgroup_present_in_one_split_only_is_fine(fa, tmp_path):
    shoulders = []
    _drop_rows(fa, lambda row: row["shoulder"] != "1" or (not shoulders and not shoulders.append(row["image_id"])))
    dm = _setup(fa, tmp_path)  # binary task: region is a subgroup, not a class
    part = dm.table[dm.table["region"] == "shoulder"]
    assert part["image_id"].tolist() == shoulders and part["split"].nunique() == 1
    assert dm.report["per_region"]["shoulder"] == {"non_fractured": 1 - int(part["label"].iloc[0]),
                                                   "fractured": int(part["label"].iloc[0])}


# ----------------------------------------------------------------------------- the CLIs
def test_bench_check_lists_bad_files_without_traceback(linked_out, tmp_path, capsys):
    from bench.cli.check import main

    root, victim, _ = linked_out
    bomb = sorted((root / "images" / "Fractured").iterdir())[0]
    write_png_bomb(bomb)
    rc = main(["fracatlas", "--root", str(root), "--image-size", "16", "--json", str(tmp_path / "r.json")])
    out = capsys.readouterr()
    assert rc == 0 and "Traceback" not in out.out + out.err
    text = " ".join(out.out.split())  # rich wraps long lines
    assert "unreadable files: 1 (too_many_pixels: 1)" in text and f"{bomb.name} too_many_pixels:" in text
    assert "symlinks out of the root (refused, left out; data.symlinks=refuse): 1" in text
    assert f"{victim.name} -> " in text
    report = json.loads((tmp_path / "r.json").read_text())
    assert f"data fingerprint (sha256, {report['fingerprint']['n_files']} files" in text
    assert report["fingerprint"]["digest"] in text


def test_bench_check_empty_class_exits_2_with_one_line(fa, tmp_path, capsys):
    from bench.cli.check import main

    _drop_rows(fa, lambda row: row["hip"] != "1")
    rc = main(["fracatlas", "--root", str(fa), "--task", "region", "--image-size", "16"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and err.startswith("error: --task=region: class 'hip' has no images")


@pytest.mark.slow
def test_bench_train_records_the_bomb_as_unreadable_and_stops_on_an_empty_class(fa_base, tmp_path):

    data = tmp_path / "data"
    shutil.copytree(fa_base, data / "fracatlas")
    bomb = _victim(data / "fracatlas")
    write_png_bomb(bomb)
    base = [sys.executable, "-m", "bench.cli.train", f"paths.root_dir={tmp_path}", f"paths.runs_dir={tmp_path}/runs",
            f"paths.cache_dir={tmp_path}/cache", f"paths.data_dir={data}", "model=resnet18",
            "image_size=32", "trainer.max_epochs=1", "callbacks=none", "logger=none", "measure_latency=false",
            "trainer.enable_progress_bar=false", "data.batch_size=8"]
    env = {**os.environ, "WANDB_MODE": "offline"}
    proc = subprocess.run(base + ["data=fracatlas_binary"], cwd=tmp_path, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    (report_path,) = (tmp_path / "runs").glob("*/data_report.json")
    report = json.loads(report_path.read_text())
    assert [(u["image_id"], u["reason"]) for u in report["unreadable"]] == [(bomb.name, "too_many_pixels")]
    _drop_rows(data / "fracatlas", lambda row: row["leg"] != "1")
    proc = subprocess.run(base + ["data=fracatlas_region"], cwd=tmp_path, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[0].startswith("error: data.task=region: class 'leg' has no images")


def test_text_as_jpg_is_not_an_image_after_ultralytics_is_imported(tmp_path):
    """Importing ultralytics patches Image.open (a HEIF-plugin fallback that fails offline): our
    decoder keeps Pillow's own, so a text file stays 'not an image', not a ModuleNotFoundError."""
    import ultralytics.utils.patches  # noqa: F401  (applies the patch)

    from bench.data.decode import decode_image

    bad = tmp_path / "notes.jpg"
    bad.write_text("not an image")
    with pytest.raises(Exception) as info:
        decode_image(bad, "load")
    assert "ModuleNotFoundError" not in repr(info.value) and "pi_heif" not in str(info.value)
