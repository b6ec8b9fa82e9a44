"""``bench-predict`` end to end on a run trained here (tiny FracAtlas fixture, 64 px, 1 epoch):
predictions equal the run's own test predictions, DICOM twins of a fixture image give its PNG's
probability, the PDF renders with poppler and holds each image's id, label, probability and the
statement, unreadable inputs and bad run folders are reported, never a crash."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench.cli.predict import main as predict_main

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::DeprecationWarning")]

STATEMENT_START = "Research decision support only, not a diagnosis."
POPPLER = shutil.which("pdftoppm") and shutil.which("pdftotext")
needs_poppler = pytest.mark.skipif(not POPPLER, reason="poppler-utils (pdftoppm, pdftotext) not installed")


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> tuple[Path, Path]:
    """(run folder, dataset root) of a 1-epoch ResNet-18 run on the generated fixture."""
    tmp = tmp_path_factory.mktemp("predict_run")
    args = [sys.executable, "-m", "bench.cli.train", f"paths.root_dir={tmp}", f"paths.runs_dir={tmp}/runs",
            f"paths.cache_dir={tmp}/cache", f"paths.data_dir={tmp}/data", "data=tiny_fracatlas", "model=resnet18",
            "image_size=64", "trainer.max_epochs=1", "callbacks=none", "logger=none", "measure_latency=false",
            "trainer.enable_progress_bar=false", "data.batch_size=16", "explain.enabled=false"]
    env = {**os.environ, "WANDB_MODE": "offline", "PYTHONHASHSEED": "0"}
    proc = subprocess.run(args, cwd=tmp, capture_output=True, text=True, timeout=900, env=env)
    if proc.returncode != 0:
        raise AssertionError(f"bench-train failed:\n{proc.stderr[-4000:]}")
    (run,) = (tmp / "runs").iterdir()
    return run, tmp / "cache" / "tiny_fracatlas"


def _test_images(run: Path, root: Path) -> tuple[pd.DataFrame, list[Path]]:
    preds = pd.read_csv(run / "predictions.csv", dtype={"image_id": str})
    test = preds[preds["split"] == "test"].reset_index(drop=True)
    by_name = {p.name: p for p in (root / "images").rglob("*") if p.is_file()}
    return test, [by_name[i] for i in test["image_id"]]


def _pdftext(pdf: Path) -> str:
    return subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True).stdout


def _write_dicom(path: Path, gray8: np.ndarray, photometric: str, bits: int = 16, window=None, patient=True) -> None:
    """A DX image as a modality would write it (file meta, preamble, explicit VR little endian)."""
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"  # Digital X-Ray Image, for presentation
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Modality = "DX"
    if patient:
        ds.PatientName, ds.PatientID, ds.PatientBirthDate = "Doe^Jane", "PID-73915", "19700101"
    top = 2**bits - 1
    stored = np.rint(gray8.astype(np.float64) * top / 255.0)
    if photometric == "MONOCHROME1":
        stored = top - stored  # the minimum value is white
    ds.PhotometricInterpretation = photometric
    ds.SamplesPerPixel, ds.Rows, ds.Columns = 1, gray8.shape[0], gray8.shape[1]
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, bits, bits - 1, 0
    ds.ImagerPixelSpacing = [0.143, 0.139]
    if window is not None:
        ds.WindowCenter, ds.WindowWidth = window
    ds.PixelData = stored.astype("<u2").tobytes()
    ds.save_as(str(path), enforce_file_format=True)


@pytest.fixture(scope="session")
def batch(tiny_run, tmp_path_factory):
    """One bench-predict call over the run's test images plus broken inputs of every kind."""
    run, root = tiny_run
    tmp = tmp_path_factory.mktemp("predict_batch")
    test, paths = _test_images(run, root)
    inputs = tmp / "inputs"
    inputs.mkdir()
    for p in paths:
        shutil.copy(p, inputs / p.name)
    (inputs / "notes.txt").write_text("not an image\n")
    (inputs / "empty.png").write_bytes(b"")
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = "1.2.840.10008.5.1.4.1.1.88.11", generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    sr = FileDataset(str(inputs / "report.dcm"), {}, file_meta=meta, preamble=b"\0" * 128)
    sr.Modality = "SR"
    sr.save_as(str(inputs / "report.dcm"), enforce_file_format=True)
    out = tmp / "out"
    code = predict_main([str(run), str(inputs), str(tmp / "missing.jpg"), "--out", str(out), "--workers", "2",
                         "--batch-size", "8"])
    assert code == 0
    return run, test, out


def test_predictions_equal_the_runs_test_predictions(batch):
    run, test, out = batch
    got = pd.read_csv(out / "predictions.csv", dtype={"image_id": str})
    ok = got[got["readable"]].set_index("image_id")
    assert sorted(ok.index) == sorted(test["image_id"])
    want = test.set_index("image_id").loc[ok.index]
    classes = json.loads((run / "record.json").read_text())["task"]["classes"]
    for c in classes:
        np.testing.assert_allclose(ok[f"prob_{c}"].to_numpy(), want[f"prob_{c}"].to_numpy(), atol=1e-5, rtol=0)
    # Label at 0.5 is the run's own argmax; the label at the threshold follows prob >= threshold.
    assert (ok["label_at_0.5"] == [classes[i] for i in want["pred"]]).all()
    thr = ok["threshold"].to_numpy()
    expect = np.where(ok["prob_fractured"].to_numpy() >= thr, "fractured", "non_fractured")
    assert (ok["label"].to_numpy() == expect).all()
    for rel in ok["heatmap"]:
        assert (out / rel).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_unreadable_inputs_listed_with_reasons(batch):
    _, test, out = batch
    got = pd.read_csv(out / "predictions.csv", dtype={"image_id": str}, keep_default_na=False)
    bad = got[~got["readable"]].set_index("image_id")["reason"]
    assert set(bad.index) == {"notes.txt", "empty.png", "report.dcm", "missing.jpg"}
    assert "not a readable image" in bad["notes.txt"]
    assert "without pixel data" in bad["report.dcm"]
    assert "no such file" in bad["missing.jpg"]
    assert all("\n" not in r for r in bad)  # one line each
    summary = json.loads((out / "predict_summary.json").read_text())
    assert summary["n_scored"] == len(test) and summary["n_unreadable"] == 4 and summary["images_per_s"] > 0


@needs_poppler
def test_report_renders_and_holds_each_image(batch):
    _, test, out = batch
    pdf = out / "report.pdf"
    subprocess.run(["pdftoppm", "-r", "30", "-png", str(pdf), str(out / "page")], check=True, capture_output=True)
    pages = sorted(out.glob("page-*.png"))
    assert len(pages) == 1 + len(test)  # the summary page, then one per scored image
    assert all(p.stat().st_size > 2000 for p in pages)
    text = _pdftext(pdf)
    first, *image_pages = text.split("\f")[: 1 + len(test)]
    for name in ("notes.txt", "empty.png", "report.dcm", "missing.jpg"):
        assert name in first
    assert "4 not readable" in first and STATEMENT_START in first
    got = pd.read_csv(out / "predictions.csv", dtype={"image_id": str})
    ok = got[got["readable"]].set_index("image_id")
    for page in image_pages:
        image_id = page.split()[0]
        row = ok.loc[image_id]
        assert f"predicted label {row['label']}" in " ".join(page.split())
        assert f"{row['prob_fractured']:.4f}" in page
        assert STATEMENT_START in page


def test_operating_point_and_cis_from_the_record(tiny_run, tmp_path):
    """A recorded operating point sets the label; its test sensitivity/specificity CIs reach the page."""
    run, root = tiny_run
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    rec = json.loads((copy / "record.json").read_text())
    test, paths = _test_images(run, root)
    thr = float(np.median(test["prob_fractured"]))  # half the images on each side
    rec["operating_point"] = {"rule": "fixed", "level": "image", "split": "val", "threshold": thr}
    rec["metrics"]["test_operating"] = {"recall": 0.625, "specificity": 0.8125, "threshold": thr, "n": 20,
                                        "ci": {"sensitivity": {"value": 0.625, "low": 0.3125, "high": 0.875, "method": "BCa"},
                                               "specificity": {"value": 0.8125, "low": 0.5, "high": 0.9375, "method": "BCa"}}}
    (copy / "record.json").write_text(json.dumps(rec))
    out = tmp_path / "out"
    assert predict_main([str(copy), *map(str, paths), "--out", str(out), "--no-heatmaps", "--workers", "0"]) == 0
    got = pd.read_csv(out / "predictions.csv", dtype={"image_id": str})
    assert (got["threshold"] == thr).all()
    expect = np.where(got["prob_fractured"] >= thr, "fractured", "non_fractured")
    assert (got["label"] == expect).all() and (got["label"] != got["label_at_0.5"]).any()
    if POPPLER:
        text = " ".join(_pdftext(out / "report.pdf").split())
        assert "sensitivity 62.5% (95% CI 31.2-87.5%, BCa)" in text
        assert "specificity 81.2% (95% CI 50.0-93.8%, BCa)" in text
        assert f"{thr:.4g} (fixed, chosen on val)" in text


def test_dicom_twins_give_the_pngs_probability(tiny_run, tmp_path, capsys):
    from bench.data.decode import decode_image

    run, root = tiny_run
    _, paths = _test_images(run, root)
    gray8 = np.rint(decode_image(paths[0]).array * 255).astype(np.uint8)
    from PIL import Image

    Image.fromarray(gray8, mode="L").save(tmp_path / "image.png")
    _write_dicom(tmp_path / "mono2.dcm", gray8, "MONOCHROME2")
    _write_dicom(tmp_path / "mono1.dcm", gray8, "MONOCHROME1")
    # 12-bit with a full-range window: the VOI path (apply_voi_lut) instead of the stored range.
    _write_dicom(tmp_path / "noext_windowed", gray8, "MONOCHROME2", bits=12, window=(2047.5, 4096))
    before = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in tmp_path.glob("*")}
    out = tmp_path / "out"
    inputs = [tmp_path / n for n in ("image.png", "mono2.dcm", "mono1.dcm", "noext_windowed")]
    assert predict_main([str(run), *map(str, inputs), "--out", str(out), "--workers", "0"]) == 0
    assert "images/s" in capsys.readouterr().out
    got = pd.read_csv(out / "predictions.csv", dtype={"image_id": str}).set_index("image_id")
    assert got["readable"].all()
    p_png = got.loc["image.png", "prob_fractured"]
    for name in ("mono2.dcm", "mono1.dcm", "noext_windowed"):
        assert abs(got.loc[name, "prob_fractured"] - p_png) < 1e-3, name
    assert got.loc["mono1.dcm", "dicom_photometric"] == "MONOCHROME1"
    assert got.loc["noext_windowed", "dicom_voi"] == "window"
    assert got.loc["mono2.dcm", "pixel_spacing_mm"] == "0.143 x 0.139"
    # No patient identifiers anywhere unless asked; the DICOM files are untouched.
    csv_text = (out / "predictions.csv").read_text()
    assert "Doe" not in csv_text and "PID-73915" not in csv_text and "19700101" not in csv_text
    if POPPLER:
        text = _pdftext(out / "report.pdf")
        assert "Doe" not in text and "PID-73915" not in text and "19700101" not in text
        assert "0.143 x 0.139 mm (ImagerPixelSpacing)" in " ".join(text.split())
    assert before == {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in tmp_path.glob("*") if p.name in before}
    out2 = tmp_path / "out_ids"
    assert predict_main([str(run), str(tmp_path / "mono2.dcm"), "--out", str(out2), "--workers", "0",
                         "--show-patient-ids", "--no-heatmaps"]) == 0
    assert "PID-73915" in (out2 / "predictions.csv").read_text()


def test_bad_run_folders_are_one_line_errors(tiny_run, tmp_path, capsys):
    run, root = tiny_run
    _, paths = _test_images(run, root)
    image = str(paths[0])

    def fails(run_dir: Path, *needles: str) -> None:
        assert predict_main([str(run_dir), image, "--out", str(tmp_path / "o" / run_dir.name)]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err
        for needle in needles:
            assert needle in err, err
        assert not (tmp_path / "o" / run_dir.name).exists()  # nothing written before validation

    empty = tmp_path / "empty"
    empty.mkdir()
    fails(empty, "no complete run record")
    fails(tmp_path / "nowhere", "not a run folder")
    no_ckpt = tmp_path / "no_ckpt"
    shutil.copytree(run, no_ckpt, ignore=shutil.ignore_patterns("*.ckpt"))
    fails(no_ckpt, "checkpoint is missing")
    no_cfg = tmp_path / "no_cfg"
    shutil.copytree(run, no_cfg)
    (no_cfg / "config.yaml").unlink()
    fails(no_cfg, "config.yaml", "incomplete")
    detection = tmp_path / "detection"
    shutil.copytree(run, detection)
    rec = json.loads((detection / "record.json").read_text())
    rec["task"]["kind"] = "detection"
    (detection / "record.json").write_text(json.dumps(rec))
    fails(detection, "detection")
    # An output folder inside the run would change the run: refused.
    assert predict_main([str(run), image, "--out", str(run / "predict")]) == 2
    assert "inside the run folder" in capsys.readouterr().err


def test_figure_names_of_inputs_sharing_a_file_name_stay_distinct():
    """Two folders' IMG1.jpg (and a case variant) get their own figure files, numbered in input order."""
    from bench.predict.run import _unique_name

    used: set[str] = set()
    names = [_unique_name(i, used) for i in ("IMG1.jpg", "IMG1.jpg", "img1.JPG", "IMG2.jpg")]
    assert names == ["IMG1.jpg", "IMG1__2.jpg", "img1__3.JPG", "IMG2.jpg"]
