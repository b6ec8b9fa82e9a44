"""End-to-end `bench-train` runs on generated data: the run record is the contract, so parse it back."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, cohen_kappa_score, roc_auc_score

from bench.record import SCHEMA_VERSION

REPO = Path(__file__).resolve().parents[1]
BENCH_TRAIN = [sys.executable, "-m", "bench.cli.train"]
FAST = ["image_size=64", "trainer.max_epochs=2", "callbacks=none", "logger=none", "measure_latency=false",
        "trainer.enable_progress_bar=false", "data.batch_size=16"]


def _train(tmp: Path, *overrides: str, check: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
    flags = [o for o in overrides if o.startswith("-")]  # Hydra wants -m before the overrides
    overrides = tuple(o for o in overrides if not o.startswith("-"))
    args = [*BENCH_TRAIN, *flags, f"paths.root_dir={tmp}", f"paths.runs_dir={tmp}/runs", f"paths.cache_dir={tmp}/cache",
            f"paths.data_dir={tmp}/data", *overrides]
    full_env = {**os.environ, "WANDB_MODE": "offline", "PYTHONHASHSEED": "0", **(env or {})}
    proc = subprocess.run(args, cwd=tmp, capture_output=True, text=True, timeout=900, env=full_env)
    if check and proc.returncode != 0:
        raise AssertionError(f"bench-train failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
    return proc


def _records(runs: Path) -> dict[str, dict]:
    out = {}
    for rec in sorted(runs.glob("*/record.json")):
        out[rec.parent.name] = json.loads(rec.read_text())
    return out


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("train")


@pytest.fixture(scope="module")
def single_run(workdir) -> tuple[Path, dict]:
    _train(workdir, "data=tiny_fracatlas", "model=resnet18", *FAST[:3], "logger=wandb", "measure_latency=true",
           "trainer.enable_progress_bar=false", "data.batch_size=16", "seed=0")
    records = _records(workdir / "runs")
    assert len(records) == 1
    (run_id, record), = records.items()
    return workdir / "runs" / run_id, record


def test_record_is_complete_and_self_describing(single_run):
    run_dir, rec = single_run
    assert rec["status"] == "complete" and rec["schema_version"] == SCHEMA_VERSION
    assert rec["run_id"] == run_dir.name and rec["run_id"].startswith("tiny_fracatlas__resnet18__s0__")
    assert rec["task"]["classes"] == ["non_fractured", "fractured"] and rec["task"]["positive_index"] == 1
    for key in ("accuracy", "precision", "recall", "specificity", "f1", "auroc", "kappa", "confusion_matrix"):
        assert key in rec["metrics"]["test"] and key in rec["metrics"]["val"]
    assert rec["model"]["params"] > 1_000_000 and rec["model"]["gmacs"] > 0
    assert rec["model"]["cam_layers"], "CAM layers are listed for the explain stage"
    assert rec["cost"]["train_images_per_s"] > 0 and rec["cost"]["inference_ms_per_image"] > 0
    assert rec["best"]["monitor"] == "val/auroc" and 0 <= rec["best"]["epoch"] < 2
    env = json.loads((run_dir / "environment.json").read_text())
    assert env["packages"]["torch"] and env["packages"]["lightning"]
    for rel in ("config.yaml", "split.csv", "predictions.csv", "history.csv", "data_report.json",
                "checkpoints/best.ckpt", "checkpoints/last.ckpt"):
        assert (run_dir / rel).is_file(), rel
    for rel in rec["files"]["plots"].values():
        assert (run_dir / rel).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", rel
    # W&B ran offline and wrote its run files inside the run directory.
    assert list((run_dir / "wandb").glob("offline-run-*")), "expected an offline W&B run"


def test_recorded_metrics_match_sklearn_on_the_predictions_file(single_run):
    run_dir, rec = single_run
    preds = pd.read_csv(run_dir / "predictions.csv")
    split = pd.read_csv(run_dir / "split.csv")
    for name in ("val", "test"):
        part = preds[preds["split"] == name]
        assert len(part) == rec["split"]["counts"][name] == (split["split"] == name).sum()
        probs = part[["prob_non_fractured", "prob_fractured"]].to_numpy()
        assert np.allclose(probs.sum(1), 1, atol=1e-5)
        m = rec["metrics"][name]
        assert m["accuracy"] == pytest.approx(accuracy_score(part["label"], part["pred"]))
        assert m["kappa"] == pytest.approx(cohen_kappa_score(part["label"], part["pred"]), abs=1e-6)
        assert m["auroc"] == pytest.approx(roc_auc_score(part["label"], part["prob_fractured"]), abs=1e-5)
    assert set(preds["image_id"]) <= set(split["image_id"])
    hist = pd.read_csv(run_dir / "history.csv")
    assert list(hist["epoch"]) == [0, 1] and hist["train_loss"].notna().all() and hist["val_auroc"].notna().all()


def test_same_command_again_skips_the_complete_run(single_run, workdir):
    run_dir, rec = single_run
    before = (run_dir / "record.json").stat().st_mtime_ns
    proc = _train(workdir, "data=tiny_fracatlas", "model=resnet18", *FAST[:3], "logger=wandb", "measure_latency=true",
                  "trainer.enable_progress_bar=false", "data.batch_size=16", "seed=0")
    assert "skipped" in proc.stdout + proc.stderr
    assert (run_dir / "record.json").stat().st_mtime_ns == before


def test_multirun_two_backbones_two_tasks_share_splits(workdir):
    _train(workdir, "-m", "data=tiny_fracatlas,tiny_fracatlas_region", "model=resnet18,mobilenetv3_small", *FAST,
           "paths.runs_dir=" + str(workdir / "sweep"), "leaderboard.enabled=true",
           f"leaderboard.out_dir={workdir / 'board'}", "leaderboard.include_generated=true")
    records = _records(workdir / "sweep")
    assert len(records) == 4
    # leaderboard.enabled renders once at the end of the sweep, from all four records
    board = pd.read_csv(next((workdir / "board").glob("*tiny_fracatlas_region*.csv")))
    assert {"resnet18", "mobilenetv3_small"} <= set(board["model"])
    assert (workdir / "board" / "index.html").is_file()
    by_task: dict[str, set] = {}
    for rec in records.values():
        by_task.setdefault(rec["task"]["name"], set()).add(rec["split"]["sha256"])
        assert rec["sweep"]["id"], "multirun jobs record their sweep"
    assert set(by_task) == {"tiny_fracatlas", "tiny_fracatlas_region"}
    assert all(len(hashes) == 1 for hashes in by_task.values()), "every model of a task uses the identical split"
    region = next(r for r in records.values() if r["task"]["name"] == "tiny_fracatlas_region")
    assert region["task"]["classes"] == ["hand", "leg", "hip", "shoulder", "mixed"]
    assert set(region["metrics"]["test"]["per_class_accuracy"]) == set(region["task"]["classes"])


def test_mura_layout_run_reports_study_level_metrics(workdir):
    _train(workdir, "data=tiny_mura", "model=resnet18", *FAST, "trainer.max_epochs=1")
    rec = next(r for r in _records(workdir / "runs").values() if r["task"]["dataset"] == "mura")
    assert rec["task"]["study_level"] is True
    run_dir = workdir / "runs" / rec["run_id"]
    studies = pd.read_csv(run_dir / "predictions_study.csv")
    images = pd.read_csv(run_dir / "predictions.csv")
    test = images[images["split"] == "test"]
    assert len(studies) == test["study_id"].nunique() == rec["metrics"]["test_study"]["n"]
    mean = test.groupby("study_id")["prob_abnormal"].mean()
    assert np.allclose(studies.set_index("study_id").loc[mean.index, "prob_abnormal"], mean)
    # patients never straddle splits
    split = pd.read_csv(run_dir / "split.csv")
    assert split.groupby("group")["split"].nunique().max() == 1


@pytest.mark.parametrize("override,needle", [
    ("monitor.metric=test/auroc", "monitor.metric"),
    ("optim.name=sgd2", "optim.name"),
    ("size_policy=huge", "size_policy"),
    ("model=not_a_backbone", "not_a_backbone"),
    ("data.root=/nonexistent/fracatlas", "/nonexistent/fracatlas"),
])
def test_bad_settings_fail_fast_with_one_line_naming_the_key(workdir, override, needle):
    # A missing dataset is reported first, within seconds (before the heavy imports): the key
    # checks run on the generated fixture, the missing-path check on the real-data config.
    data = "data=fracatlas_binary" if override.startswith("data.root=") else "data=tiny_fracatlas"
    proc = _train(workdir, data, *FAST, override, check=False)
    assert proc.returncode != 0
    if override.startswith("model="):
        assert needle in proc.stderr  # Hydra's own message names the missing config
        return
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and needle in errors[0], proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr


def test_unknown_key_is_rejected_by_name(workdir):
    proc = _train(workdir, *FAST, "optim.lrr=0.1", check=False)
    assert proc.returncode != 0 and "lrr" in proc.stderr


@pytest.mark.realdata
@pytest.mark.slow
def test_real_fracatlas_region_beats_majority_baseline(fracatlas_root, tmp_path):
    """A small backbone on small real images learns the region task well above the majority class."""
    data_dir = fracatlas_root.parent
    proc = _train(tmp_path, "data=fracatlas_region", "model=resnet18", f"paths.data_dir={data_dir}", "image_size=64",
                  "trainer.max_epochs=3", "callbacks=none", "logger=none", "trainer.enable_progress_bar=false",
                  "data.limit_per_class=160", "data.batch_size=32", "optim.lr=2e-3", "measure_latency=false", "model.head.dense_units=0",
                  "model.head.dropout=0.1")
    rec = next(iter(_records(tmp_path / "runs").values()))
    test = rec["metrics"]["test"]
    cm = np.asarray(test["confusion_matrix"])
    majority = cm.sum(1).max() / cm.sum()
    assert test["n"] > 60  # 10% of at most 160 images per region (the whole set takes minutes on 2 cores)
    assert test["accuracy"] > majority + 0.1, (test["accuracy"], majority, proc.stdout[-500:])
    report = json.loads((tmp_path / "runs" / rec["run_id"] / "data_report.json").read_text())
    assert report  # the real data's defects are reported, not silently dropped


def test_transfer_learning_run_from_local_weights_reloads_exactly(workdir, lite0_weights):
    """Real ImageNet weights from a local file, trained through the CLI; the finished run reloads
    (load_run, as bench-explain does) and reproduces its recorded test probabilities."""
    import torch

    from bench.runs import load_run

    _train(workdir, "data=tiny_fracatlas", "model=efficientnet_lite0", "model.pretrained=true",
           f"model.weights={lite0_weights}", *FAST, "trainer.max_epochs=1", "paths.runs_dir=" + str(workdir / "tl"))
    (run_id, rec), = _records(workdir / "tl").items()
    assert rec["model"]["pretrained"] is True and rec["protocol"]["pretrained"] is True
    model, dm, record = load_run(workdir / "tl" / run_id)
    assert record["run_id"] == run_id
    probs, rows = [], []
    with torch.no_grad():
        for x, _, r in dm.dataloader("test"):
            probs.append(model(x).softmax(1))
            rows.append(r)
    probs = torch.cat(probs).numpy()
    ids = dm.table["image_id"].to_numpy()[torch.cat(rows).numpy()]
    saved = pd.read_csv(workdir / "tl" / run_id / "predictions.csv").query("split == 'test'").set_index("image_id")
    assert np.allclose(saved.loc[ids, "prob_fractured"].to_numpy(), probs[:, 1], atol=1e-5)
