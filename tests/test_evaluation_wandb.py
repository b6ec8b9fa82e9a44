"""W&B holds what the record holds: the logger that training builds (``run._loggers``) gets the
record's test metrics, operating point, flags and plots; the offline ``.wandb`` file is read back
with wandb's own protobuf schema (``wandb.proto.wandb_internal_pb2.Record``); a second session
for the same run id (a resumed run) writes into the same W&B run id."""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir

from bench.evaluation.calibration import reliability_bins
from bench.evaluation.metrics import compute_metrics
from bench.evaluation.operating import operating_point
from bench.evaluation.plots import plot_reliability
from bench.evaluation.wandb_results import log_results, results_for_wandb, wandb_run_id

CONF = Path(__file__).resolve().parents[1] / "conf"
CLASSES = ["non_fractured", "fractured"]


def _wandb_records(path: Path):
    """The records of a .wandb file. wandb 0.31 ships no Python reader of its own log, so this is
    the LevelDB log format it writes (7-byte file header, 32 KiB blocks, crc32/length/type record
    headers), each record checked against its CRC and parsed with wandb's protobuf schema."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    ident, magic, version = struct.unpack("<4sHB", data[:7])
    assert ident == b":W&B" and version == 0, (ident, magic, version)
    pos, pending = 7, b""
    while pos + 7 <= len(data):
        left = 32768 - pos % 32768
        if left < 7:  # block trailer: padding
            pos += left
            continue
        crc, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if length == 0 and kind == 0:
            break
        chunk = data[pos + 7:pos + 7 + length]
        assert zlib.crc32(chunk, zlib.crc32(bytes([kind]))) & 0xFFFFFFFF == crc, f"bad CRC at {pos}"
        pos += 7 + length
        pending += chunk
        if kind in (1, 4):  # FULL or LAST
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            pending = b""
            yield record


def _read_run(run_dir: Path) -> tuple[str, dict, dict]:
    """(W&B run id, summary {key: value}, config {key: value}) of one offline run folder."""
    (path,) = run_dir.glob("*.wandb")
    run_id, summary, config = None, {}, {}
    for rec in _wandb_records(path):
        kind = rec.WhichOneof("record_type")
        if kind == "run":
            run_id = rec.run.run_id
        elif kind == "summary":
            for item in rec.summary.update:
                summary[item.key or "/".join(item.nested_key)] = json.loads(item.value_json)
        elif kind == "config":
            for item in rec.config.update:
                config[item.key or "/".join(item.nested_key)] = json.loads(item.value_json)
    return run_id, summary, config


def _record(tmp_path: Path, run_id: str, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, 120)
    p1 = np.clip(0.3 + 0.4 * labels + rng.normal(0, 0.2, 120), 0.01, 0.99)
    probs = np.column_stack([1 - p1, p1])
    val, test = slice(0, 60), slice(60, 120)
    entry, at = operating_point({"rule": "youden"}, probs[val], labels[val], probs[test], labels[test], 1, CLASSES)
    metrics = {"val": compute_metrics(probs[val], labels[val], 1, CLASSES), "test": compute_metrics(probs[test], labels[test], 1, CLASSES),
               "test_operating": at}
    plot_reliability(reliability_bins(probs[test], labels[test], 1), tmp_path / "plots" / "reliability.png", metrics["test"]["ece"], True)
    return {"run_id": run_id, "task": {"name": "tiny_fracatlas", "kind": "binary"}, "protocol": {"image_size": 64, "monitor": "val/auroc"},
            "metrics": metrics, "operating_point": entry, "flags": ["near_chance_val_auroc"],
            "files": {"plots": {"reliability": "plots/reliability.png"}}}


def _session(cfg, run_dir: Path, run_id: str, record: dict) -> None:
    import wandb

    from bench.training.run import _loggers

    loggers = _loggers(cfg, run_dir, run_id, {})
    try:
        log_results(loggers, record, run_dir)
    finally:
        wandb.finish()
        wandb.teardown()  # finish() returns before wandb-core has flushed the offline file


@pytest.mark.slow  # two W&B sessions: about 20 s on an idle 2-core machine
def test_offline_wandb_file_holds_the_record_and_a_resumed_run_continues_it(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="train", overrides=["logger=wandb", "tags=[unit]"])
    run_id = "tiny_fracatlas__resnet18__s0__0123abcd"
    run_dir = tmp_path / run_id
    first = _record(run_dir, run_id, seed=0)
    _session(cfg, run_dir, run_id, first)
    (one,) = sorted((run_dir / "wandb").glob("offline-run-*"))
    wid, summary, config = _read_run(one)
    assert wid == wandb_run_id(run_id) == run_id
    expected = results_for_wandb(first)
    for key in ("test/auroc", "test/auprc", "test/ece", "test/brier", "test/sensitivity_at_spec90",
                "test_operating/recall", "test_operating/specificity", "test_operating/ci/sensitivity/low",
                "operating_point/threshold", "operating_point/validation/recall"):
        assert summary[key] == pytest.approx(expected[key]), key
    assert summary["test/auroc"] == pytest.approx(first["metrics"]["test"]["auroc"])
    assert summary["flags"] == ["near_chance_val_auroc"]
    assert summary["plots/reliability/_type"] == "image-file"  # a wandb.Image
    assert config["record"]["protocol"] == first["protocol"] and config["record"]["run_id"] == run_id

    # The same run id again (training resumed after an interruption): the same W&B run.
    second = _record(run_dir, run_id, seed=1)
    _session(cfg, run_dir, run_id, second)
    runs = sorted((run_dir / "wandb").glob("offline-run-*"))
    assert len(runs) == 2  # W&B offline keeps one folder per session; `wandb sync` merges by id
    wid2, summary2, _ = _read_run(next(r for r in runs if r != one))
    assert wid2 == wid
    assert summary2["test/auroc"] == pytest.approx(second["metrics"]["test"]["auroc"])


def test_wandb_ids_are_valid_and_a_function_of_the_run_id():
    assert wandb_run_id("fracatlas_binary__resnet18__s0__1a2b3c4d") == "fracatlas_binary__resnet18__s0__1a2b3c4d"
    long = "x" * 80 + "/odd:name"
    wid = wandb_run_id(long)
    assert wid == wandb_run_id(long) and len(wid) <= 64 and all(c.isalnum() or c in "-_." for c in wid)
    assert wandb_run_id(long) != wandb_run_id(long + "2")
