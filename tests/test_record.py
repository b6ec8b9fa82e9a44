"""The run record as code (bench/record.py): validated reads, refused bad writes, kept unknown
keys, version-1 records upgraded, and docs/run_record.md held equal to the code."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest

from bench.errors import BenchError
from bench.record import (
    RECORD_FILE,
    SCHEMA_VERSION,
    Record,
    field_table,
    load_record,
    parse_record,
    read_record,
    update_record,
    write_record,
)

DOC = Path(__file__).resolve().parents[1] / "docs" / "run_record.md"

# A version-1 record as bench-train and the old synthetic generator wrote them (trimmed): no
# task.kind, explain scores per layer.
V1 = {
    "schema_version": 1, "status": "complete", "run_id": "fracatlas_region__resnet18__s0__1a2b3c4d",
    "created_at": "2026-11-23T01:02:03+00:00",
    "task": {"name": "fracatlas_region", "dataset": "fracatlas",
             "classes": ["hand", "hip", "leg", "mixed", "shoulder"], "positive_index": None},
    "protocol": {"experiment": "default", "image_size": 224},
    "model": {"name": "resnet18", "family": "timm", "cam_layers": ["layer3", "layer4"], "params": 11177538},
    "seed": 0,
    "metrics": {"test": {"accuracy": 0.5, "auroc": 0.7, "n": 10, "confusion_matrix": [[1, 0], [0, 1]]}},
    "explain": {"summary": {"gradcam": {"pointing_game": {"layer3": 0.41, "layer4": 0.62}, "energy": 0.3}}},
}


def _minimal(**sections) -> dict:
    return {"run_id": "t__m__s0__00000000", "task": {"name": "t"}, "model": {"name": "m"}, **sections}


def _write_raw(run_dir: Path, obj) -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / RECORD_FILE).write_text(json.dumps(obj))
    return run_dir / RECORD_FILE


def test_written_record_reads_back_typed_with_version_and_status(tmp_path):
    write_record(tmp_path, _minimal(metrics={"test": {"auroc": 0.75, "n": 40}}, flags=["constant_predictions"]))
    rec = load_record(tmp_path)
    assert isinstance(rec, Record)
    assert rec.schema_version == SCHEMA_VERSION == 2 and rec.status == "complete"
    assert rec.metrics.test.auroc == 0.75 and rec.metrics.test.n == 40 and rec.flags == ["constant_predictions"]
    assert rec.task.kind == "binary"  # the default when a writer leaves it out
    on_disk = json.loads((tmp_path / RECORD_FILE).read_text())
    assert "kind" not in on_disk["task"], "defaults are not written into the file"


def test_unknown_keys_survive_read_modify_write(tmp_path):
    write_record(tmp_path, _minimal(future_section={"a": [1, 2]}, task={"name": "t", "new_key": "x"},
                                    metrics={"test": {"auroc": 0.5, "auprc": 0.4, "per_age": {"old": 0.3}}}))
    update_record(tmp_path, explain={"summary": {"gradcam": {"pointing_game": 0.5, "final_layer": "l4"}}})
    rec = read_record(tmp_path)
    assert rec["future_section"] == {"a": [1, 2]} and rec["task"]["new_key"] == "x"
    assert rec["metrics"]["test"]["auprc"] == 0.4 and rec["metrics"]["test"]["per_age"] == {"old": 0.3}
    assert rec["explain"]["summary"]["gradcam"]["pointing_game"] == 0.5


def test_sections_being_added_by_other_stages_validate(tmp_path):
    write_record(tmp_path, _minimal(
        task={"name": "t", "kind": "multiclass", "classes": ["a", "b", "c"]},
        operating_point={"threshold": 0.3, "rule": "youden"},
        metrics={"val": {"auroc": 0.8}, "test": {"auroc": 0.7}, "test_operating": {"recall": 0.9}},
        subgroups={"region": {"hand": {"auroc": 0.6}}}, flags=[],
        data={"root": "/d", "fingerprint": "ab" * 32, "generated": True},
        best={"monitor": "val/auroc", "mode": "max", "epoch": 2, "score": 0.8, "tie_break": "lowest val/loss"}))
    rec = load_record(tmp_path)
    assert rec.metrics.test_operating.recall == 0.9 and rec.data.fingerprint == "ab" * 32
    assert rec.best.tie_break == "lowest val/loss" and rec.operating_point["threshold"] == 0.3


def test_detection_records_need_detection_metrics(tmp_path):
    det = {"name": "fracatlas_detection", "kind": "detection", "classes": ["fracture"]}
    write_record(tmp_path, _minimal(task=det, metrics={"test": {"precision": 0.5, "recall": 0.4, "map50": 0.3, "map50_95": 0.1}}))
    assert load_record(tmp_path).metrics.test.map50_95 == 0.1
    with pytest.raises(BenchError, match=r"task.kind=detection but metrics.test has no map50, map50_95"):
        write_record(tmp_path / "bad", _minimal(task=det, metrics={"test": {"precision": 0.5, "recall": 0.4}}))


def test_bad_record_is_refused_on_write_and_one_line_on_read(tmp_path):
    with pytest.raises(BenchError) as err:
        write_record(tmp_path / "w", _minimal(task={"name": "t", "kind": "segmentation"}))
    assert "task.kind" in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "w" / RECORD_FILE).exists(), "nothing is written for a bad record"

    path = _write_raw(tmp_path / "r", {**_minimal(seed="zero"), "status": "complete", "schema_version": 2})
    for read in (load_record, read_record):
        with pytest.raises(BenchError) as err:
            read(tmp_path / "r")
        msg = str(err.value)
        assert msg.startswith(f"{path}: invalid run record: seed:") and "\n" not in msg


def test_missing_incomplete_and_corrupt_records(tmp_path):
    _write_raw(tmp_path / "running", {**_minimal(), "status": "running"})
    (tmp_path / "torn").mkdir()
    (tmp_path / "torn" / RECORD_FILE).write_text('{"run_id": "x", "sta')
    for d in ("absent", "running", "torn"):
        assert read_record(tmp_path / d) is None
        with pytest.raises(BenchError, match="no complete run record"):
            load_record(tmp_path / d)
    with pytest.raises(BenchError, match="no complete run record"):
        update_record(tmp_path / "absent", explain={})


def test_a_newer_schema_version_is_refused_with_the_fix(tmp_path):
    _write_raw(tmp_path, {**_minimal(), "status": "complete", "schema_version": SCHEMA_VERSION + 1})
    with pytest.raises(BenchError, match="newer than this bench.*upgrade fracture-bench"):
        load_record(tmp_path)


def test_version_1_records_are_upgraded_never_rejected(tmp_path):
    _write_raw(tmp_path, V1)
    rec = load_record(tmp_path)
    assert rec.schema_version == SCHEMA_VERSION
    assert rec.task.kind == "multiclass"  # five classes
    summary = rec.explain.summary["gradcam"]
    assert summary.pointing_game == 0.62 and summary.final_layer == "layer4" and summary.energy == 0.3
    assert rec.metrics.test.auroc == 0.7 and rec.model.params == 11177538
    # Rewriting (an explain stage adding its section) stores it in the current version.
    update_record(tmp_path, tags=["rewritten"])
    assert json.loads((tmp_path / RECORD_FILE).read_text())["schema_version"] == SCHEMA_VERSION


def test_nan_metrics_are_written_as_written(tmp_path):
    write_record(tmp_path, _minimal(metrics={"test": {"auroc": float("nan")}}))
    assert "NaN" in (tmp_path / RECORD_FILE).read_text()
    assert math.isnan(load_record(tmp_path).metrics.test.auroc)


def test_docs_field_table_is_the_code():
    text = DOC.read_text(encoding="utf-8")
    table = re.search(r"<!-- field table: begin -->\n(.*?)\n<!-- field table: end -->", text, re.S)
    assert table, "docs/run_record.md lost its field table markers"
    assert table.group(1) == field_table(), \
        "docs/run_record.md field table is stale: paste the output of python -c \"import bench.record as r; print(r.field_table())\""
    assert f"(schema version {SCHEMA_VERSION})" in text.splitlines()[0]


def test_docs_example_record_is_a_valid_record():
    text = DOC.read_text(encoding="utf-8")
    example = json.loads(re.search(r"## `record.json`\n\n```json\n(.*?)\n```", text, re.S).group(1))
    rec = parse_record(example, "docs/run_record.md")
    assert rec.schema_version == SCHEMA_VERSION
    documented = set(example)
    typed = set(Record.model_fields)
    assert typed <= documented, f"top-level keys missing from the docs example: {sorted(typed - documented)}"
