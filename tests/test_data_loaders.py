"""Decoding and the FracAtlas / MURA loaders on generated fixtures (exact layouts, bad files)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from PIL import Image, ImageFile

from bench.testing import fixtures
from bench.data.decode import SkippedImage, decode_image, decode_resized_uint8
from bench.data.fracatlas import duplicate_groups, load_fracatlas
from bench.data.mura import load_mura
from bench.errors import BenchError


@pytest.fixture(scope="module")
def fa(tmp_path_factory):
    root = tmp_path_factory.mktemp("fa") / "fracatlas"
    info = fixtures.make_fracatlas(root, n=40, seed=3, bad_files=True)
    return root, info


@pytest.fixture(scope="module")
def mura(tmp_path_factory):
    parent = tmp_path_factory.mktemp("mura")
    info = fixtures.make_mura(parent, n_patients=8, seed=1, bad_files=True)
    return parent, info


# ----------------------------------------------------------------------------- decoding
def _save(img: Image.Image, path, **kw):
    img.save(path, **kw)
    return path


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA", "P", "LA", "1", "I", "F"])
def test_every_mode_decodes_to_one_gray_float_format(tmp_path, mode):
    gray = np.tile(np.arange(0, 256, 4, dtype=np.uint8), (8, 1))  # 8 x 64 ramp
    base = Image.fromarray(gray, mode="L")
    if mode == "I":
        img = Image.fromarray(gray.astype(np.int32) * 257, mode="I")
    elif mode == "F":
        img = Image.fromarray(gray.astype(np.float32) / 255.0, mode="F")
    elif mode == "1":
        img = base.point(lambda v: 255 if v >= 128 else 0).convert("1")
    else:
        img = base.convert(mode)
    path = _save(img, tmp_path / f"x_{mode}.{'tiff' if mode in ('F', 'I') else 'png'}")
    out = decode_image(path)
    assert out.array.dtype == np.float32 and out.array.shape == (8, 64)
    assert not out.truncated
    assert 0.0 <= out.array.min() and out.array.max() <= 1.0
    expected = (gray >= 128).astype(np.float32) if mode == "1" else gray / 255.0
    tol = 0.02 if mode == "P" else 1e-3  # palette quantisation
    np.testing.assert_allclose(out.array, expected, atol=tol)


def test_rgb_uses_luminance_not_first_channel(tmp_path):
    arr = np.zeros((4, 4, 3), dtype=np.uint8)
    arr[..., 1] = 200  # pure green
    out = decode_image(_save(Image.fromarray(arr, "RGB"), tmp_path / "g.png"))
    # ITU-R 601: L = 0.587 * G
    assert out.array[0, 0] == pytest.approx(round(0.587 * 200) / 255, abs=1 / 255)


def test_sixteen_bit_png_divides_by_65535(tmp_path):
    arr = np.array([[0, 257, 32768, 65535]], dtype=np.uint16)
    path = _save(Image.fromarray(arr), tmp_path / "d16.png")
    assert Image.open(path).mode.startswith("I")
    out = decode_image(path)
    np.testing.assert_allclose(out.array, arr / 65535.0, rtol=0, atol=1e-6)
    # big-endian 16-bit too
    be = Image.frombytes("I;16B", (4, 1), arr.astype(">u2").tobytes())
    np.testing.assert_allclose(decode_image(_save(be, tmp_path / "be.tiff")).array, arr / 65535.0, atol=1e-6)


def test_exif_rotation_is_applied_against_known_array(fa):
    root, info = fa
    ex = info["exif"]
    path = next(root.glob(f"images/*/{ex['image_id']}"))
    stored = np.asarray(Image.open(path).convert("L"))
    assert stored.shape == ex["displayed"].shape[::-1]  # stored rotated, EXIF tag 6
    out = decode_image(path)
    assert out.array.shape == ex["displayed"].shape
    diff = np.abs(out.array * 255 - ex["displayed"].astype(np.float32))
    assert diff.mean() < 3  # JPEG noise only; the unrotated image would not even have this shape
    # the fracture box (displayed frame) covers the dark crack
    boxes = load_fracatlas(root)[0].set_index("image_id").loc[ex["image_id"], "boxes"]
    cx, cy, w, h = boxes[0]
    H, W = out.array.shape
    patch = out.array[int((cy - h / 2) * H):int((cy + h / 2) * H) + 1, int((cx - w / 2) * W):int((cx + w / 2) * W) + 1]
    assert patch.min() < 0.1 and patch.max() > 0.85


def test_truncated_policies_and_global_flag_restored(fa):
    root, info = fa
    path = next(root.glob(f"images/*/{info['truncated'][0]}"))
    with pytest.raises(OSError, match="truncated"):  # strict Pillow cannot read it
        Image.open(path).load()
    out = decode_image(path, truncated="load")
    assert out.truncated and out.array.shape == (120, 100)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
    with pytest.raises(SkippedImage):
        decode_image(path, truncated="skip")
    with pytest.raises(BenchError, match=r"truncated.*data\.truncated=load") as exc:
        decode_image(path, truncated="error")
    assert str(path) in str(exc.value) and "\n" not in str(exc.value)
    arr, trunc = decode_resized_uint8(path, 32, "load")
    assert arr.shape == (32, 32) and arr.dtype == np.uint8 and trunc


def test_unreadable_and_missing_files_name_the_file(tmp_path):
    bad = tmp_path / "notanimage.jpg"
    bad.write_bytes(b"hello, I am text")
    with pytest.raises(BenchError, match="notanimage.jpg"):
        decode_image(bad)
    with pytest.raises(BenchError, match="missing.png.*not found"):
        decode_image(tmp_path / "missing.png")


def test_resize_of_sixteen_bit_uses_full_range(tmp_path):
    arr = np.full((50, 40), 65535, dtype=np.uint16)
    arr[:, :20] = 0
    small, _ = decode_resized_uint8(_save(Image.fromarray(arr), tmp_path / "h.png"), 8)
    assert small[:, 0].tolist() == [0] * 8 and small[:, -1].tolist() == [255] * 8


# ----------------------------------------------------------------------------- FracAtlas
def test_fracatlas_fixture_table_conflict_and_duplicates(fa):
    root, info = fa
    table, meta = load_fracatlas(root)
    assert len(table) == info["n_images"] == 41
    assert list(table.columns[:3]) == ["image_id", "path", "label"]
    assert meta["classes"] == ["non_fractured", "fractured"] and meta["positive_index"] == 1
    assert meta["label_conflicts"] == [{"image_id": info["conflict"], "folder": 1, "csv": 0}]
    # folder labels count the conflicted image as fractured, CSV labels do not
    assert int(table["label"].sum()) == info["fractured_folder"]
    csv_table, _ = load_fracatlas(root, label_source="csv")
    assert int(csv_table["label"].sum()) == info["fractured_folder"] - 1
    groups, dups = duplicate_groups(table)
    assert dups == info["duplicates"]
    assert groups[table["image_id"] == dups[0][1]].iloc[0] == dups[0][0]
    # boxes: fractured images have one, non-fractured none
    n_boxes = table["boxes"].map(len)
    assert (n_boxes[table["fractured_folder"] == 1] == 1).all() and (n_boxes[table["fractured_folder"] == 0] == 0).all()
    assert all(0 < v <= 1 for b in table["boxes"] for box in b for v in box)


def test_fracatlas_region_task(fa):
    root, _ = fa
    table, meta = load_fracatlas(root, task="region")
    assert meta["classes"] == ["hand", "leg", "hip", "shoulder", "mixed"] and meta["positive_index"] is None
    assert (table["label"] == table["region"].map(meta["classes"].index)).all()
    assert set(table["region"]) == set(meta["classes"])


def test_fracatlas_wrong_layout_names_the_path(tmp_path, fa):
    root, _ = fa
    copy = tmp_path / "fa"
    shutil.copytree(root, copy)
    shutil.rmtree(copy / "images" / "Non_fractured")
    with pytest.raises(BenchError, match=r"images/Non_fractured: missing: expected dataset\.csv") as exc:
        load_fracatlas(copy)
    assert "\n" not in str(exc.value)
    with pytest.raises(BenchError, match="not found"):
        load_fracatlas(tmp_path / "nowhere")


def test_fracatlas_missing_image_and_bad_region_row(tmp_path, fa):
    root, info = fa
    copy = tmp_path / "fa"
    shutil.copytree(root, copy)
    victim = next(copy.glob("images/Fractured/*.jpg"))
    victim.unlink()
    with pytest.raises(BenchError, match=f"{victim.name} is listed but not found"):
        load_fracatlas(copy)
    shutil.copyfile(root / "images" / "Fractured" / victim.name, victim)
    lines = (copy / "dataset.csv").read_text().splitlines()
    cells = lines[1].split(",")
    cells[1:6] = ["0"] * 5  # no region flag at all
    lines[1] = ",".join(cells)
    (copy / "dataset.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(BenchError, match=f"row {cells[0]} has no single region flag"):
        load_fracatlas(copy)


def test_fracatlas_image_not_in_csv_is_reported(tmp_path, fa):
    root, _ = fa
    copy = tmp_path / "fa"
    shutil.copytree(root, copy)
    extra = copy / "images" / "Non_fractured" / "IMG9999999.jpg"
    shutil.copyfile(next(copy.glob("images/Non_fractured/*.jpg")), extra)
    table, meta = load_fracatlas(copy)
    assert meta["images_not_in_csv"] == ["IMG9999999.jpg"]
    assert "IMG9999999.jpg" not in set(table["image_id"])


# ----------------------------------------------------------------------------- MURA
def test_mura_header_crlf_conflict_and_labels(mura):
    parent, info = mura
    raw = (parent / "MURA-v1.1" / "train_image_paths.csv").read_bytes()
    assert raw.startswith(b"Img_Path\r\n")  # the fixture really has a header and CRLF
    table, meta = load_mura(parent)
    assert len(table) == info["n_images"]
    assert (table["body_part"] == "XR_HAND").all()  # the XR_WRIST study is filtered out
    assert meta["classes"] == ["normal", "abnormal"] and meta["positive_index"] == 1
    assert (table["label"] == table["study_id"].str.endswith("_positive").astype(int)).all()
    assert [c["study_id"] for c in meta["label_conflicts"]] == info["conflicts"]
    assert set(table["official_split"]) == {"train", "valid"}
    assert table["image_id"].str.startswith("MURA-v1.1/").all()
    assert (table["patient_id"] == table["image_id"].str.split("/").str[3]).all()
    # MURA-v1.1 itself works as root too
    again, _ = load_mura(parent / "MURA-v1.1")
    assert again["image_id"].tolist() == table["image_id"].tolist()
    # all parts
    every, _ = load_mura(parent, body_part="all")
    assert set(every["body_part"]) == {"XR_HAND", "XR_WRIST"}


def test_mura_sixteen_bit_png_scaled(mura):
    parent, info = mura
    table, _ = load_mura(parent)
    sixteen = info["sixteen_bit"]
    path = table.set_index("image_id").loc[sixteen["image_id"], "path"]
    assert Image.open(path).mode == "I;16"
    np.testing.assert_allclose(decode_image(path).array, sixteen["uint8"] / 255.0, atol=1e-6)


def test_mura_missing_image_and_wrong_root(tmp_path, mura):
    parent, _ = mura
    copy = tmp_path / "m"
    shutil.copytree(parent, copy)
    victim = sorted((copy / "MURA-v1.1" / "valid").rglob("*.png"))[0]
    victim.unlink()
    with pytest.raises(BenchError, match=f"{victim.name}: listed in valid_image_paths.csv line \\d+ but missing"):
        load_mura(copy)
    with pytest.raises(BenchError, match="no MURA-v1.1 folder here"):
        load_mura(tmp_path)


def test_mura_plain_csv_without_header(tmp_path):
    info = fixtures.make_mura(tmp_path, n_patients=4, seed=2, bad_files=False)
    assert not (tmp_path / "MURA-v1.1" / "train_image_paths.csv").read_bytes().startswith(b"Img")
    table, meta = load_mura(tmp_path)
    assert len(table) == info["n_images"] and meta["label_conflicts"] == []


def test_fixture_refuses_to_overwrite_a_foreign_folder(tmp_path):
    (tmp_path / "precious.txt").write_text("x")
    with pytest.raises(BenchError, match="not a generated fixture"):
        fixtures.make_fracatlas(tmp_path, n=10)
    assert (tmp_path / "precious.txt").exists()


def test_fixture_is_deterministic(tmp_path):
    a = fixtures.make_fracatlas(tmp_path / "a", n=12, seed=5)
    b = fixtures.make_fracatlas(tmp_path / "b", n=12, seed=5)
    assert a["truncated"] == b["truncated"] and a["conflict"] == b["conflict"]
    for f in sorted((tmp_path / "a").rglob("*")):
        if f.is_file():
            assert f.read_bytes() == (tmp_path / "b" / f.relative_to(tmp_path / "a")).read_bytes(), f
    frac_split = (tmp_path / "a" / "Utilities" / "Fracture Split" / "test.csv").read_bytes()
    assert frac_split.startswith(b"image_id\r\n")
