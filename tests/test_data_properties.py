"""Property-based tests (hypothesis) of the parsers that read files a user hands us: FracAtlas's
dataset.csv, MURA's path and label CSVs, and the run-record reader. Garbage gives a one-line
``BenchError`` (or None for the record reader), never another exception; well-formed input
parses to exactly what it says."""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from bench.data.fracatlas import CSV_COLUMNS, REGION_CLASSES, load_fracatlas, read_dataset_csv
from bench.data.mura import load_mura
from bench.errors import BenchError
from bench.record import RECORD_FILE, read_record

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _one_line(exc: BenchError) -> None:
    assert "\n" not in str(exc) and str(exc)


# ----------------------------------------------------------------------------- FracAtlas
csv_garbage = st.one_of(
    st.binary(max_size=400),
    st.lists(st.lists(st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=8),
                      max_size=15), max_size=6).map(
        lambda rows: ("\n".join(",".join(r) for r in [CSV_COLUMNS] + rows) + "\n").encode()),
    # the real header with cells that are almost numbers
    st.lists(st.lists(st.sampled_from(["0", "1", "2", "-1", "", " 1", "1.0", "0.5", "nan", "inf", "x", '"1"']),
                      min_size=12, max_size=12), min_size=1, max_size=5).map(
        lambda rows: ("\n".join([",".join(CSV_COLUMNS)] + [",".join([f"IMG{i}.jpg"] + r) for i, r in enumerate(rows)]) + "\n").encode()),
)


@FAST
@given(data=csv_garbage, bom=st.booleans(), crlf=st.booleans())
def test_dataset_csv_garbage_is_a_one_line_error_or_a_clean_table(data, bom, crlf):
    if crlf:
        data = data.replace(b"\n", b"\r\n")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "dataset.csv"
        path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + data)
        try:
            csv = read_dataset_csv(path)
        except BenchError as exc:
            _one_line(exc)
            event("one-line error")
            return
        event("parsed")
    assert set(CSV_COLUMNS) <= set(csv.columns) and csv.columns.is_unique
    assert csv["image_id"].is_unique and all("/" not in i and i not in ("", ".", "..") for i in csv["image_id"])
    for col in CSV_COLUMNS[1:]:
        assert str(csv[col].dtype) == "int64" and (csv[col] >= 0).all()


row_strategy = st.tuples(
    st.sampled_from(REGION_CLASSES),  # region
    st.booleans(),  # fractured (folder)
    st.booleans(),  # CSV agrees with the folder
    st.sampled_from(["", " "]),  # stray spaces around the id
)


@FAST
@given(rows=st.lists(row_strategy, min_size=1, max_size=12), crlf=st.booleans(), bom=st.booleans(),
       task=st.sampled_from(["binary", "region"]), source=st.sampled_from(["folder", "csv"]))
def test_fracatlas_loader_reads_back_exactly_what_was_written(rows, crlf, bom, task, source):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "fa"
        for sub in ("images/Fractured", "images/Non_fractured"):
            (root / sub).mkdir(parents=True)
        lines = [",".join(CSV_COLUMNS)]
        expect = {}
        for k, (region, fractured, agree, pad) in enumerate(rows):
            image_id = f"IMG{k:07d}.jpg"
            (root / "images" / ("Fractured" if fractured else "Non_fractured") / image_id).write_bytes(b"")
            flags = {r: 0 for r in REGION_CLASSES}
            flags[region] = 1
            if region == "mixed":
                flags.update(hand=1, leg=1)
            csv_fractured = int(fractured) if agree else 1 - int(fractured)
            values = {"image_id": f"{pad}{image_id}{pad}", **flags, "hardware": 0, "multiscan": 0,
                      "fractured": csv_fractured, "fracture_count": 0, "frontal": 1, "lateral": 0, "oblique": 0}
            lines.append(",".join(str(values[c]) for c in CSV_COLUMNS))
            label = (int(fractured) if source == "folder" else csv_fractured) if task == "binary" else REGION_CLASSES.index(region)
            expect[image_id] = (label, region, None if agree else (int(fractured), csv_fractured))
        nl = "\r\n" if crlf else "\n"
        (root / "dataset.csv").write_bytes((b"\xef\xbb\xbf" if bom else b"") + (nl.join(lines) + nl).encode())
        table, info = load_fracatlas(root, task=task, label_source=source)
    got = {r.image_id: r for r in table.itertuples()}
    assert sorted(got) == sorted(expect)
    for image_id, (label, region, conflict) in expect.items():
        assert (got[image_id].label, got[image_id].region) == (label, region)
    assert sorted((c["image_id"], (c["folder"], c["csv"])) for c in info["label_conflicts"]) == \
        sorted((i, c) for i, (_, _, c) in expect.items() if c is not None)


# ----------------------------------------------------------------------------- MURA
STUDY = "MURA-v1.1/{split}/XR_HAND/patient{p:05d}/study{s}_{label}"


def valid_line(split: str):
    return st.builds(lambda p, s, label, m: f"{STUDY.format(split=split, p=p, s=s, label=label)}/image{m}.png",
                     st.integers(0, 30) if split == "train" else st.integers(40, 50), st.integers(1, 3),
                     st.sampled_from(["positive", "negative"]), st.integers(1, 3))


bad_line = st.one_of(
    st.text(alphabet="MURA-v1./_trainvlidXHNDptes0123456789positivenegative,\"' \\", max_size=70),
    st.sampled_from(["MURA-v1.1/train/XR_HAND/patient00001/study1_positive/..",
                     "MURA-v1.1/train/XR_HAND/patient00001/study1_positive/../../../../x.png",
                     "MURA-v1.1/train/XR_HAND/patient00001/study1_positive/sub/image1.png",
                     "MURA-v1.1/train/XR_HAND/patient00001/study1_positive/image1.png,extra",
                     "Img_Path", "", "MURA-v1.1/valid/XR_WRIST/patient00002/study1_negative/image1.png"]),
)


def mura_lines(split: str):
    """Mostly well-formed (unique) lines, sometimes one bad line anywhere."""
    return st.tuples(st.lists(valid_line(split), max_size=8, unique=True), st.lists(bad_line, max_size=1),
                     st.integers(0, 8)).map(lambda t: t[0][: t[2]] + t[1] + t[0][t[2]:])


@FAST
@given(train=mura_lines("train"), valid=mura_lines("valid"), bom=st.booleans(), crlf=st.booleans(), make_files=st.booleans())
def test_mura_path_csvs_parse_or_fail_in_one_line_and_never_leave_the_root(train, valid, bom, crlf, make_files):
    with tempfile.TemporaryDirectory() as tmp:
        parent = Path(tmp)
        mura = parent / "MURA-v1.1"
        mura.mkdir()
        nl = "\r\n" if crlf else "\n"
        for split, lines in (("train", train), ("valid", valid)):
            (mura / f"{split}_image_paths.csv").write_bytes((b"\xef\xbb\xbf" if bom else b"") + (nl.join(lines) + nl).encode())
            studies = sorted({ln.rsplit("/", 1)[0] + "/" for ln in lines if ln.startswith("MURA-v1.1/")})
            (mura / f"{split}_labeled_studies.csv").write_text(
                "".join(f"{s},{int('_positive' in s)}{nl}" for s in studies if re.search(r"study\d+_(positive|negative)/$", s)))
            if make_files:
                for ln in lines:
                    target = (parent / ln.split(",")[0]).resolve()
                    if ln.startswith("MURA-v1.1/") and target.suffix == ".png" and str(target).startswith(str(mura.resolve())):
                        target.parent.mkdir(parents=True, exist_ok=True)
                        target.write_bytes(b"")
        try:
            table, info = load_mura(parent)
        except BenchError as exc:
            _one_line(exc)
            event("one-line error")
            return
        event("parsed")
        for row in table.itertuples():
            assert Path(row.path).resolve().is_relative_to(mura.resolve())
            assert row.label == (1 if "_positive/" in row.image_id else 0)
            assert row.image_id.startswith(f"MURA-v1.1/{row.official_split}/XR_HAND/{row.patient_id}/")
        assert table["image_id"].is_unique and info["classes"] == ["normal", "abnormal"]


# ----------------------------------------------------------------------------- run record
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=10),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)
record_like = st.fixed_dictionaries(
    {"status": st.sampled_from(["complete", "running", None, 1])},
    optional={"schema_version": st.one_of(st.integers(-2, 9), st.text(max_size=3), st.none(), st.booleans()),
              "run_id": json_values, "metrics": json_values, "task": json_values, "model": json_values,
              "data": json_values, "split": json_values, "training": json_values, "cost": json_values},
)
record_bytes = st.one_of(
    st.binary(max_size=200),
    json_values.map(lambda v: json.dumps(v).encode()),
    record_like.map(lambda v: json.dumps(v).encode()),
    st.integers(1, 100_000).map(lambda n: b"[" * n + b"]" * n),  # deep nesting
    st.just(b'{"status": "complete", "schema_version": 3, "metrics": NaN}'),
)


@FAST
@given(data=record_bytes)
def test_read_record_never_raises_on_garbage(data):
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / RECORD_FILE).write_bytes(data)
        try:
            out = read_record(tmp)
        except BenchError as exc:  # a complete record of a bad shape: one line naming the file
            _one_line(exc)
            assert RECORD_FILE in str(exc)
            return
    assert out is None or isinstance(out, dict)
    if out is not None:
        assert out["status"] == "complete"


def test_read_record_of_missing_or_odd_paths_is_none(tmp_path):
    assert read_record(tmp_path / "nowhere") is None
    (tmp_path / "file").write_text("x")
    assert read_record(tmp_path / "file") is None  # a file where a run folder should be
    (tmp_path / "dir" / RECORD_FILE).mkdir(parents=True)
    assert read_record(tmp_path / "dir") is None  # a folder named record.json


@pytest.mark.parametrize("n", [10, 100_000])
def test_read_record_of_deeply_nested_json_is_none(tmp_path, n):
    (tmp_path / RECORD_FILE).write_bytes(b"[" * n + b"]" * n)
    assert read_record(tmp_path) is None
