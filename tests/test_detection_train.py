"""Detection runs end to end through `bench-train` on a generated FracAtlas-layout fixture
(imgsz 64, a few epochs): the record parsed back, metrics recomputed from detections.csv, the
dataset byte-identical (with a JPEG that Ultralytics "repairs" in place), no network (sockets
blocked in the subprocess), nothing in $HOME, skip when complete, resume after kill -9."""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from bench.detection.fixtures import make_detection_fixture

pytestmark = pytest.mark.slow  # each run is a real Ultralytics training (~20-90 s on 2 shared cores)

BENCH_TRAIN = [sys.executable, "-m", "bench.cli.train"]
FAST = ["data=fracatlas_detection", "model=yolov8n_det", "image_size=64", "logger=none", "data.batch_size=4"]

# Loaded by every Python process of the run (PYTHONPATH): any connection or name lookup that is
# not loopback / a Unix socket is logged and refused.
SITECUSTOMIZE = r'''
import os, socket
_LOG = os.environ["NET_ATTEMPTS_LOG"]
def _note(what):
    with open(_LOG, "a") as fh:
        fh.write(what + "\n")
def _local(address):
    host = address[0] if isinstance(address, tuple) else address
    return isinstance(address, (str, bytes)) or host in ("127.0.0.1", "::1", "localhost")
_connect, _connect_ex = socket.socket.connect, socket.socket.connect_ex
def connect(self, address):
    if not _local(address):
        _note(f"connect {address!r}")
        raise OSError("network blocked by the test")
    return _connect(self, address)
def connect_ex(self, address):
    if not _local(address):
        _note(f"connect_ex {address!r}")
        return 111
    return _connect_ex(self, address)
_getaddrinfo = socket.getaddrinfo
def getaddrinfo(host, *a, **k):
    if host not in (None, "localhost", "127.0.0.1", "::1"):
        _note(f"getaddrinfo {host!r}")
        raise socket.gaierror("name lookup blocked by the test")
    return _getaddrinfo(host, *a, **k)
socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo = connect, connect_ex, getaddrinfo
'''


def _tree_digest(root: Path) -> dict[str, str]:
    """Every file (and link) of the dataset: path -> SHA-256; any new or changed file shows."""
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_symlink():
            out[str(p.relative_to(root))] = "link:" + os.readlink(p)
        elif p.is_file():
            out[str(p.relative_to(root))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


@pytest.fixture(scope="module")
def env_dir(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("det_train")
    (base / "site").mkdir()
    (base / "site" / "sitecustomize.py").write_text(SITECUSTOMIZE)
    (base / "home").mkdir()
    info = make_detection_fixture(base / "data" / "fracatlas")
    (base / "fixture.json").write_text(json.dumps({k: v for k, v in info.items() if k != "exif"} | {"exif_id": info["exif"]["image_id"]}))
    return base


def _cmd(base: Path, *overrides: str) -> list[str]:
    flags = [o for o in overrides if o.startswith("-")]  # Hydra wants -m before the overrides
    overrides = tuple(o for o in overrides if not o.startswith("-"))
    return [*BENCH_TRAIN, *flags, f"paths.root_dir={base}", f"paths.runs_dir={base}/runs", f"paths.cache_dir={base}/cache",
            f"paths.data_dir={base}/data", *overrides]


def _env(base: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("YOLO_", "BENCH_STATE", "MPLCONFIG"))}
    return {**env, "PYTHONPATH": str(base / "site"), "NET_ATTEMPTS_LOG": str(base / "net_attempts.log"),
            "HOME": str(base / "home"), "BENCH_STATE_DIR": str(base / "state"), "WANDB_MODE": "offline", "PYTHONHASHSEED": "0"}


def _train(base: Path, *overrides: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(_cmd(base, *overrides), cwd=base, capture_output=True, text=True, timeout=900, env=_env(base))
    if check and proc.returncode != 0:
        raise AssertionError(f"bench-train failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
    return proc


@pytest.fixture(scope="module")
def detection_run(env_dir) -> tuple[Path, dict, dict, dict]:
    data = env_dir / "data" / "fracatlas"
    before = _tree_digest(data)
    _train(env_dir, *FAST, "trainer.max_epochs=2", "seed=0")
    after = _tree_digest(data)
    runs = [p.parent for p in (env_dir / "runs").glob("*/record.json")]
    assert len(runs) == 1
    return runs[0], json.loads((runs[0] / "record.json").read_text()), before, after


def test_record_parses_back_with_detection_metrics(detection_run, env_dir):
    run_dir, rec, _, _ = detection_run
    from bench.record import read_record

    assert read_record(run_dir) == rec
    assert rec["task"]["kind"] == "detection" and rec["task"]["protocol"] == "set1"
    assert rec["run_id"].startswith("fracatlas_detection__yolov8n_det__s0__") and rec["epochs_run"] == 2
    split = pd.read_csv(run_dir / "split.csv")
    for s in ("val", "test"):
        m = rec["metrics"][s]
        for key in ("precision", "recall", "map50", "map50_95"):
            assert 0.0 <= m[key] <= 1.0
        assert m["n_images"] == (split["split"] == s).sum()
        regions = rec["subgroups"]["region"][s]
        assert sum(r["n_images"] for r in regions.values()) == m["n_images"]
        assert sum(r["n_boxes"] for r in regions.values()) == m["n_boxes"]
    # Ultralytics' own training history and curves are files of the record.
    hist = pd.read_csv(run_dir / rec["files"]["history"])
    assert list(hist["epoch"]) == [1, 2]
    for rel in rec["files"]["plots"].values():
        assert (run_dir / rel).is_file()
    assert {"BoxPR_curve", "results", "test_BoxPR_curve"} <= set(rec["files"]["plots"])
    assert rec["cost"]["wall_s"]["fit"] > 0 and rec["model"]["params"] > 1_000_000
    assert json.loads((run_dir / "environment.json").read_text())["packages"]["ultralytics"]


def test_detections_are_recomputable_in_the_displayed_frame(detection_run, env_dir):
    from bench.detection.metrics import torchmetrics_map

    run_dir, rec, _, _ = detection_run
    det = pd.read_csv(run_dir / "detections.csv")
    gt = pd.read_csv(run_dir / "ground_truth.csv")
    images = pd.read_csv(run_dir / "images.csv")
    assert list(det.columns[:7]) == ["image_id", "split", "x1", "y1", "x2", "y2", "score"] and len(det) > 0
    size = images.set_index("image_id")[["width", "height"]]
    joined = det.join(size, on="image_id")
    assert (joined["x1"] >= -1e-3).all() and (joined["x2"] <= joined["width"] + 1e-3).all()
    assert (joined["y2"] <= joined["height"] + 1e-3).all()
    # The EXIF-rotated test image is 100 wide, 120 high as displayed (120 x 100 as stored): a
    # box in the stored frame could not fit; Ultralytics clips to the frame it used.
    exif_id = json.loads((env_dir / "fixture.json").read_text())["exif_id"]
    assert tuple(size.loc[exif_id]) == (100, 120)
    rows = joined[joined["image_id"] == exif_id]
    assert len(rows) and rows["y2"].max() <= 120 + 1e-3 and rows["x2"].max() <= 100 + 1e-3
    for s in ("val", "test"):
        ids = list(images.loc[images["split"] == s, "image_id"])
        again = torchmetrics_map(det[det["split"] == s], gt[gt["split"] == s], ids)
        assert again["map50"] == pytest.approx(rec["metrics"][s]["map50_torchmetrics"], abs=1e-9)
        assert abs(again["map50"] - rec["metrics"][s]["map50"]) <= 0.01  # the tolerance of tests/test_detection.py


def test_dataset_is_byte_identical_and_nothing_went_online_or_home(detection_run, env_dir):
    run_dir, rec, before, after = detection_run
    assert before == after
    assert not any(k.endswith(".cache") for k in after)
    assert rec["data"]["dataset_sha256"]["unchanged"] is True
    # The hazard was real: Ultralytics replaced the link of the JPEG that does not end in FFD9
    # (in the run's tree), and the dataset's own file is untouched.
    victim = json.loads((env_dir / "fixture.json").read_text())["no_end_marker"]
    link = run_dir / "yolo_data" / "images" / "train" / victim
    assert link.is_file() and not link.is_symlink()
    report = json.loads((run_dir / "data_report.json").read_text())
    assert report["ultralytics_rewrote_in_link_tree"] == [victim]
    assert report["label_check"]["n_disagreements"] == 1 and rec["data"]["label_disagreements"] == 1
    # Ultralytics' own scan saw exactly the split's images, none dropped as corrupt.
    for s in ("train", "val", "test"):
        assert report["ultralytics_scan"][s]["found"] == rec["split"]["counts"][s] and report["ultralytics_scan"][s]["corrupt"] == 0
    log = env_dir / "net_attempts.log"
    assert not log.exists() or log.read_text() == "", log.read_text()
    assert list((env_dir / "home").iterdir()) == []
    assert (env_dir / "state" / "ultralytics" / "Ultralytics" / "Arial.ttf").is_file()
    assert not (env_dir / "runs" / "detect").exists() and not (env_dir / "wandb").exists()


def test_complete_run_is_skipped_in_a_sweep(detection_run, env_dir):
    run_dir, rec, _, _ = detection_run
    t0 = time.perf_counter()
    proc = _train(env_dir, "-m", *FAST, "trainer.max_epochs=2", "seed=0")
    assert "is complete: skipped" in proc.stdout + proc.stderr
    assert json.loads((run_dir / "record.json").read_text())["created_at"] == rec["created_at"]
    assert time.perf_counter() - t0 < 120


def test_config_errors_are_one_line(env_dir):
    proc = _train(env_dir, "data=fracatlas_detection", "model=resnet18", check=False)
    assert proc.returncode == 2 and "error: model=resnet18: data=fracatlas_detection is a detection task" in proc.stderr


@pytest.mark.parametrize("override, message", [
    ("model.pretrained=true", "pass model.weights=/path/yolov8n.pt, or set YOLO_OFFLINE=0"),
    ("image_size=100", "multiple of 32"),
    ("data.protocol=set3", "data.protocol='set3'"),
])
def test_bad_detection_settings_fail_before_training(env_dir, monkeypatch, override, message):
    """The same checks in-process (composing the config as bench-train does): seconds, not minutes."""
    from hydra import compose, initialize_config_dir

    from bench.cli.train import CONF_DIR
    from bench.errors import BenchError
    from bench.pipeline import run_pipeline

    monkeypatch.setenv("YOLO_OFFLINE", "1")
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("train", overrides=[*_cmd(env_dir, *FAST, override)[len(BENCH_TRAIN):]])
    runs_before = sorted((env_dir / "runs").glob("*"))
    with pytest.raises(BenchError, match=re.escape(message)):
        run_pipeline(cfg)
    assert sorted((env_dir / "runs").glob("*")) == runs_before  # nothing written before the config is valid


def test_the_classification_trainer_refuses_a_detection_config(env_dir, monkeypatch):
    """bench.pipeline picks the trainer by task kind; called directly, training names the way in."""
    from hydra import compose, initialize_config_dir

    from bench.cli.train import CONF_DIR
    from bench.errors import BenchError
    from bench.training.run import run

    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("train", overrides=[*_cmd(env_dir, *FAST)[len(BENCH_TRAIN):]])
    with pytest.raises(BenchError, match=r"is a detection run: start it with bench-train"):
        run(cfg)


def _complete_zip(path: Path) -> bool:
    """A torch checkpoint (a zip) whose central directory, written last, is there."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as z:
            return bool(z.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def test_killed_run_resumes_from_ultralytics_last_pt(env_dir):
    overrides = (*FAST, "trainer.max_epochs=3", "seed=1")
    proc = subprocess.Popen(_cmd(env_dir, *overrides), cwd=env_dir, env=_env(env_dir), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    killed = False
    deadline = time.time() + 600
    try:
        while time.time() < deadline and proc.poll() is None:
            hits = list((env_dir / "runs").glob("*__s1__*/ultralytics/results.csv"))
            last = list((env_dir / "runs").glob("*__s1__*/ultralytics/weights/last.pt"))
            # last.pt is saved after the epoch's results line: kill once it is at least as new as
            # that line and complete (torch.save writes it in place: a kill mid-write leaves a
            # truncated file, which the resume refuses as corrupt). A fixed sleep raced both ways.
            if (hits and last and len(hits[0].read_text().splitlines()) == 2
                    and last[0].stat().st_mtime_ns >= hits[0].stat().st_mtime_ns and _complete_zip(last[0])):
                os.killpg(proc.pid, signal.SIGKILL)
                killed = True
                break
            time.sleep(0.1)
    finally:
        if proc.poll() is None and not killed:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert killed, "the run finished before it could be killed"
    run_dir = next((env_dir / "runs").glob("*__s1__*"))
    assert not (run_dir / "record.json").exists()
    epochs_before = len(pd.read_csv(run_dir / "ultralytics" / "results.csv"))
    assert 1 <= epochs_before < 3
    _train(env_dir, *overrides)
    rec = json.loads((run_dir / "record.json").read_text())
    assert rec["resumed_from"] == str(run_dir / "ultralytics" / "weights" / "last.pt")
    hist = pd.read_csv(run_dir / "ultralytics" / "results.csv")
    assert list(hist["epoch"]) == [1, 2, 3] and rec["epochs_run"] == 3


def test_resume_drops_history_rows_after_the_checkpoint(tmp_path):
    """A kill between Ultralytics' results line and its last.pt save: the resumed training writes
    that epoch again, so the rows after the checkpoint's epoch go first (the race above, made exact)."""
    from bench.detection.run import _trim_history

    csv = tmp_path / "results.csv"
    head = "                  epoch,            train/box_loss,  metrics/mAP50(B)\n"
    rows = ["                      1,                    1.5,            0.01\n",
            "                      2,                    1.4,            0.02\n",
            "                      3,                    1.3"]  # torn by the kill
    csv.write_text(head + "".join(rows))
    _trim_history(csv, 1)  # last.pt holds epoch 1 (Ultralytics' 0-based epoch 0)
    assert csv.read_text() == head + rows[0]
    before = csv.stat().st_mtime_ns
    _trim_history(csv, 1)
    assert csv.stat().st_mtime_ns == before  # nothing to drop: not rewritten
    _trim_history(tmp_path / "absent.csv", 1)


def test_a_last_pt_cut_short_by_a_kill_means_training_again(tmp_path):
    """Ultralytics writes last.pt in place; killed mid-write it has no zip directory: the run's
    Ultralytics folder goes and the run trains again, instead of a corrupt-file error."""
    import torch

    from bench.detection.run import _discard_incomplete_last

    ultra = tmp_path / "ultralytics"
    (ultra / "weights").mkdir(parents=True)
    torch.save({"epoch": 0, "model": None}, ultra / "weights" / "last.pt")
    assert _discard_incomplete_last(ultra) is False and (ultra / "weights" / "last.pt").is_file()
    data = (ultra / "weights" / "last.pt").read_bytes()
    (ultra / "weights" / "last.pt").write_bytes(data[: len(data) // 2])
    (ultra / "results.csv").write_text("epoch,x\n1,0.5\n")
    assert _discard_incomplete_last(ultra) is True and not ultra.exists()
