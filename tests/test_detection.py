"""Detection task, in-process parts (seconds): protocols and splits, the link tree, the YOLO-vs-COCO
label check, metrics recomputed independently (torchmetrics vs Ultralytics' own metric code),
the bootstrap, heatmaps against boxes, the leaderboard tables. End-to-end runs through
bench-train: tests/test_detection_train.py."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench.detection.data import build_link_tree, check_labels, load_detection_table
from bench.detection.fixtures import make_detection_fixture
from bench.errors import BenchError


@pytest.fixture(scope="module")
def fixture_root(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("det") / "fracatlas"
    info = make_detection_fixture(root)
    return root, info


def test_set1_is_the_official_split(fixture_root):
    root, info = fixture_root
    table, report = load_detection_table(root, "set1")
    official = {}
    for name, split in (("train", "train"), ("valid", "val"), ("test", "test")):
        lines = (root / "Utilities/Fracture Split" / f"{name}.csv").read_bytes().decode().split("\r\n")
        official.update({i: split for i in lines[1:] if i})
    assert dict(zip(table["image_id"], table["split"])) == official
    assert (table["fractured"] == 1).all() and (table["n_boxes"] > 0).all()
    assert report["per_split"]["train"]["images"] == sum(s == "train" for s in official.values())
    # Sizes are the displayed (EXIF-applied) ones: the rotated fixture image is 100 wide, 120 high.
    exif = table.set_index("image_id").loc[info["exif"]["image_id"]]
    assert (exif["width"], exif["height"]) == (info["exif"]["displayed"].shape[1], info["exif"]["displayed"].shape[0])


def test_set2_keeps_background_and_duplicates_on_one_side(fixture_root):
    root, info = fixture_root
    table, report = load_detection_table(root, "set2", split={"method": "ratio", "ratios": [0.6, 0.2, 0.2]}, split_seed=3)
    assert len(table) == info["n_images"]  # every image, the truncated one decoded leniently
    assert report["truncated"] == info["truncated"]
    assert (table["n_boxes"] == 0).sum() == info["n_images"] - info["fractured_folder"]
    assert table.groupby("group")["split"].nunique().max() == 1
    dup = info["duplicates"][0]
    assert table.set_index("image_id").loc[dup, "split"].nunique() == 1
    assert report["leakage"]["ok"]
    # Stratified: every split has fractured and background images.
    for split in ("train", "val", "test"):
        part = table[table["split"] == split]
        assert 0 < part["fractured"].sum() < len(part)
    with pytest.raises(BenchError, match="set1 is the official split"):
        load_detection_table(root, "set1", split_file=str(root / "x.csv"))
    with pytest.raises(BenchError, match="data.protocol='set3'"):
        load_detection_table(root, "set3")


def test_truncated_policies(fixture_root):
    root, info = fixture_root
    table, report = load_detection_table(root, "set2", truncated="skip")
    assert info["truncated"][0] not in set(table["image_id"]) and report["skipped"] == info["truncated"]
    with pytest.raises(BenchError, match="truncated"):
        load_detection_table(root, "set2", truncated="error")


def test_link_tree_points_into_the_dataset_and_never_at_labels_txt(fixture_root, tmp_path):
    root, _ = fixture_root
    table, _ = load_detection_table(root, "set1")
    tree = build_link_tree(table, tmp_path / "yolo_data")
    images = sorted((tmp_path / "yolo_data/images").rglob("*.jpg"))
    labels = sorted((tmp_path / "yolo_data/labels").rglob("*.txt"))
    assert len(images) == len(labels) == len(table)
    assert all(p.is_symlink() for p in images + labels)
    targets = {os.readlink(p) for p in images}
    assert targets == set(table["path"])
    assert all(Path(os.readlink(p)).parent == root / "Annotations" / "YOLO" for p in labels)
    assert not any(Path(os.readlink(p)).name == "labels.txt" for p in labels)
    main = json.loads(Path(tree["yaml"]["main"]).read_text())
    assert main["names"] == {"0": "fracture"} and Path(main["val"]) == tmp_path / "yolo_data/images/val"
    # Per-region lists name the link paths, never the dataset's.
    for key, path in tree["yaml"].items():
        if key != "main":
            lst = Path(json.loads(Path(path).read_text())["val"]).read_text().split()
            assert lst and all(x.startswith(str(tmp_path / "yolo_data/images")) for x in lst)


def test_label_check_finds_the_moved_coco_box(fixture_root):
    root, info = fixture_root
    table, _ = load_detection_table(root, "set1")
    res = check_labels(root, table)
    assert res["coco_instances"] == res["yolo_instances"] == int(table["n_boxes"].sum())
    assert [(d["image_id"], d["kind"]) for d in res["disagreements"]] == [(info["coco_moved"], "box")]
    assert res["disagreements"][0]["iou"] < 0.5


@pytest.mark.realdata
def test_real_fracatlas_set1_and_labels(fracatlas_root):
    table, report = load_detection_table(fracatlas_root, "set1")
    assert report["per_split"]["train"]["images"] == 574 and report["per_split"]["val"]["images"] == 82
    assert report["per_split"]["test"]["images"] == 61
    res = check_labels(fracatlas_root, table)
    assert (res["coco_images"], res["coco_instances"], res["yolo_instances"]) == (717, 922, 922)
    assert res["n_disagreements"] == 0 and res["worst_iou"] > 0.99


# ------------------------------------------------------------------------- metrics


def _synthetic(n_images=40, seed=0):
    rng = np.random.default_rng(seed)
    gt, det = [], []
    for i in range(n_images):
        for _ in range(int(rng.integers(0, 3))):
            x, y = rng.uniform(0, 300, 2)
            w, h = rng.uniform(20, 80, 2)
            gt.append({"image_id": f"i{i}", "x1": x, "y1": y, "x2": x + w, "y2": y + h})
            if rng.random() < 0.8:
                j = rng.normal(0, 5, 4)
                det.append({"image_id": f"i{i}", "x1": x + j[0], "y1": y + j[1], "x2": x + w + j[2], "y2": y + h + j[3],
                            "score": float(rng.uniform(0.2, 1))})
        for _ in range(int(rng.integers(0, 3))):
            x, y = rng.uniform(0, 300, 2)
            det.append({"image_id": f"i{i}", "x1": x, "y1": y, "x2": x + 40, "y2": y + 40, "score": float(rng.uniform(0, 0.8))})
    return pd.DataFrame(det), pd.DataFrame(gt), [f"i{i}" for i in range(n_images)]


def _ultralytics_map(det, gt, ids):
    """Ultralytics' own matching (DetectionValidator) and AP (DetMetrics) on the same boxes."""
    import torch
    from ultralytics.models.yolo.detect import DetectionValidator
    from ultralytics.utils.metrics import DetMetrics

    v = DetectionValidator()
    metrics = DetMetrics(names={0: "fracture"})
    for i in ids:
        d, g = det[det["image_id"] == i], gt[gt["image_id"] == i]
        preds = {"bboxes": torch.tensor(d[["x1", "y1", "x2", "y2"]].to_numpy(), dtype=torch.float32).reshape(-1, 4),
                 "cls": torch.zeros(len(d)), "conf": torch.tensor(d["score"].to_numpy(), dtype=torch.float32)}
        batch = {"bboxes": torch.tensor(g[["x1", "y1", "x2", "y2"]].to_numpy(), dtype=torch.float32).reshape(-1, 4),
                 "cls": torch.zeros(len(g))}
        metrics.update_stats({**v._process_batch(preds, batch), "target_cls": np.zeros(len(g)), "target_img": np.unique(np.zeros(len(g))),
                              "conf": preds["conf"].numpy(), "pred_cls": np.zeros(len(d)), "im_name": i})
    metrics.process()
    return {"map50": float(metrics.box.map50), "map50_95": float(metrics.box.map)}


# Ultralytics integrates an interpolated PR curve and matches predictions to boxes its own way;
# torchmetrics (pycocotools) averages 101 recall points and matches greedily by score. Measured
# here on six synthetic sets: |difference| <= 0.0011 (mAP@0.5), <= 0.0019 (mAP@0.5:0.95).
MAP_TOLERANCE = 0.01


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_torchmetrics_agrees_with_ultralytics_metric_code(seed):
    from bench.detection.metrics import ap50_from_matches, image_matches, torchmetrics_map

    det, gt, ids = _synthetic(seed=seed)
    ours = torchmetrics_map(det, gt, ids)
    theirs = _ultralytics_map(det, gt, ids)
    assert 0.2 < theirs["map50"] < 0.95  # a non-trivial value to agree on
    assert abs(ours["map50"] - theirs["map50"]) < MAP_TOLERANCE
    assert abs(ours["map50_95"] - theirs["map50_95"]) < MAP_TOLERANCE
    # The bootstrap's fast AP is COCO's own at IoU 0.5.
    assert ap50_from_matches(image_matches(det, gt, ids)) == pytest.approx(ours["map50"], abs=1e-6)


def test_bootstrap_interval_brackets_the_point_and_shrinks_with_more_images():
    from bench.detection.metrics import bootstrap_map50

    det, gt, ids = _synthetic(n_images=30, seed=4)
    small = bootstrap_map50(det, gt, ids, n_resamples=300)
    det2, gt2, ids2 = _synthetic(n_images=300, seed=4)
    big = bootstrap_map50(det2, gt2, ids2, n_resamples=300)
    for b in (small, big):
        assert b["low"] <= b["map50"] <= b["high"]
    assert big["high"] - big["low"] < small["high"] - small["low"]


# ------------------------------------------------------------------------- heatmaps vs detectors


def test_localisation_against_gt_and_detector_boxes():
    from bench.detection.heatmaps import localisation_vs_boxes

    # Two layers, two images: layer 0 peaks in the top-left quarter, layer 1 in the bottom-right.
    maps = np.zeros((2, 2, 20, 20), dtype=np.float32)
    maps[:, 0, 2:5, 2:5] = 1.0
    maps[:, 1, 15:18, 15:18] = 1.0
    gt = {"a": [(0.175, 0.175, 0.2, 0.2)], "b": [(0.175, 0.175, 0.2, 0.2)]}  # top-left
    det = {"a": [(0.825, 0.825, 0.2, 0.2)]}  # the detector boxed the bottom-right on image a only
    top = {"a": (0.825, 0.825, 0.2, 0.2), "b": (0.18, 0.18, 0.2, 0.2)}
    table = localisation_vs_boxes({"eigencam": maps}, ["l0", "l1"], ["a", "b"], gt, det, top)
    l0, l1, d = table.iloc[0], table.iloc[1], table.iloc[2]
    assert (l0["pointing_game_gt"], l0["energy_gt"], l0["n_gt"]) == (1.0, 1.0, 2)
    assert (l0["pointing_game_det"], l0["n_det"]) == (0.0, 1)
    assert (l1["pointing_game_gt"], l1["pointing_game_det"], l1["energy_det"]) == (0.0, 1.0, 1.0)
    assert d["method"] == "detector" and d["pointing_game_gt"] == 0.5 and d["iou50_hit"] == 0.5


# ------------------------------------------------------------------------- leaderboard


def _fake_detection_run(root: Path, seed: int, det: pd.DataFrame, gt: pd.DataFrame, ids: list[str], map50: float) -> None:
    from bench.record import write_record

    run = root / f"fracatlas_detection__yolov8n_det__s{seed}__abc"
    run.mkdir(parents=True)
    det.assign(split="test").to_csv(run / "detections.csv", index=False)
    gt.assign(split="test").to_csv(run / "ground_truth.csv", index=False)
    pd.DataFrame({"image_id": ids, "split": "test", "region": "hand", "width": 400, "height": 400, "n_boxes": 1}).to_csv(run / "images.csv", index=False)
    m = {"precision": 0.5, "recall": 0.4, "map50": map50, "map50_95": map50 / 2, "n_images": len(ids)}
    write_record(run, {"run_id": run.name, "task": {"name": "fracatlas_detection", "kind": "detection", "protocol": "set1"},
                       "protocol": {"detection_protocol": "set1", "image_size": 160, "epochs": 3, "pretrained": False},
                       "model": {"name": "yolov8n_det"}, "seed": seed, "metrics": {"val": m, "test": m},
                       "subgroups": {"region": {"test": {"hand": {"n_images": len(ids), "n_boxes": len(ids), "map50": map50,
                                                                  "precision": 0.5, "recall": 0.4}}}}})


def test_detection_leaderboard_tables(tmp_path):
    from bench.detection.leaderboard import detection_tables, render

    for seed in (0, 1):
        det, gt, ids = _synthetic(seed=seed)
        _fake_detection_run(tmp_path / "runs", seed, det, gt, ids, map50=0.4 + 0.1 * seed)
    tables = detection_tables([tmp_path / "runs"], n_resamples=200)
    set1 = tables["set1"]
    ours = set1[set1["source"] == "this harness"].iloc[0]
    assert ours["seeds"] == 2 and ours["test_map50"] == f"0.450 ± {np.std([0.4, 0.5], ddof=1):.3f}"
    lo, hi = (float(x) for x in ours["test_map50_ci95"].strip("[]").split(","))
    assert 0 < lo < hi < 1
    reported = set1[set1["source"].str.startswith("reported elsewhere")]
    assert len(reported) == 6 and (reported["test_map50"] == "").all()
    assert "0.595" in set(reported["val_map50"]) and "0.562" in set(reported["val_map50"])
    assert len(tables["set2"]) == 4 and set(tables["set2"]["val_map50"]) == {"0.502", "0.538", "0.513", "0.477"}
    regions = tables["regions"]
    assert set(regions.loc[regions["source"] != "this harness", "region"]) == {"hip", "hand", "shoulder", "leg"}
    written = render([tmp_path / "runs"], tmp_path / "lb", n_resamples=50)
    md = Path(written["set1"]).read_text()
    assert "| yolov8n_det |" in md and "CC BY 4.0" in md


def test_heatmaps_vs_detector_reads_explain_and_detection_files(tmp_path):
    """The file-level entry: explain's heatmaps.npz (as bench.explain writes it) + a detection run."""
    from bench.detection.heatmaps import heatmaps_vs_detector

    ids = ["IMG1.jpg", "IMG2.jpg", "IMG3.jpg"]
    maps = np.zeros((3, 2, 28, 28), dtype=np.float16)
    maps[:, 0, 3, 3] = 1.0   # layer 0 peaks top-left
    maps[:, 1, 24, 24] = 1.0  # layer 1 peaks bottom-right
    (tmp_path / "cls" / "explain").mkdir(parents=True)
    np.savez_compressed(tmp_path / "cls/explain/heatmaps.npz", image_ids=np.array(ids), layers=np.array(["a", "b"]),
                        methods=np.array(["eigencam"]), eigencam=maps)
    det_dir = tmp_path / "det"
    det_dir.mkdir()
    # 200x100 images (wide): GT top-left on IMG1/IMG2; IMG3 is not in the detection run's test split.
    pd.DataFrame({"image_id": ["IMG1.jpg", "IMG2.jpg", "IMG3.jpg"], "split": ["test", "test", "val"], "region": "hand",
                  "width": 200, "height": 100, "n_boxes": 1}).to_csv(det_dir / "images.csv", index=False)
    pd.DataFrame({"image_id": ["IMG1.jpg", "IMG2.jpg", "IMG3.jpg"], "split": ["test", "test", "val"],
                  "x1": 0.0, "y1": 0.0, "x2": 40.0, "y2": 30.0}).to_csv(det_dir / "ground_truth.csv", index=False)
    pd.DataFrame({"image_id": ["IMG1.jpg", "IMG1.jpg", "IMG2.jpg"], "split": "test",
                  "x1": [150.0, 0.0, 5.0], "y1": [70.0, 0.0, 5.0], "x2": [200.0, 40.0, 40.0], "y2": [100.0, 30.0, 30.0],
                  "score": [0.9, 0.1, 0.2]}).to_csv(det_dir / "detections.csv", index=False)
    table = heatmaps_vs_detector(tmp_path / "cls", det_dir, score_threshold=0.25)
    assert table.attrs["image_ids"] == ["IMG1.jpg", "IMG2.jpg"]
    a, b, d = (table.iloc[k] for k in range(3))
    assert (a["pointing_game_gt"], b["pointing_game_gt"], a["n_gt"]) == (1.0, 0.0, 2)
    # Only IMG1's 0.9 box (bottom-right) passes the threshold: layer b points into it.
    assert (a["n_det"], a["pointing_game_det"], b["pointing_game_det"]) == (1, 0.0, 1.0)
    assert d["method"] == "detector" and d["pointing_game_gt"] == 0.0 and d["n_det"] == 1
    with pytest.raises(BenchError, match="run bench-explain"):
        heatmaps_vs_detector(tmp_path / "nothing", det_dir)


@pytest.mark.realdata
@pytest.mark.slow
def test_real_fracatlas_set2_split_is_grouped_and_stratified(fracatlas_root):
    table, report = load_detection_table(fracatlas_root, "set2")
    assert len(table) == 4083 and report["leakage"]["ok"] and report["duplicate_groups"]
    assert table.groupby("group")["split"].nunique().max() == 1
    assert len(report["truncated"]) == 59  # decoded leniently (data.truncated=load), and reported
    frac = table.groupby("split")["fractured"].mean()
    assert (frac - 717 / 4083).abs().max() < 0.01


def test_bench_explain_detector_flag_writes_the_table(tmp_path, capsys):
    """bench-explain RUN --no-cams --detector DET: the same table as the function, as a CSV in the
    run's explain folder, and one line naming it."""
    from bench.cli.explain import main
    from bench.detection.heatmaps import heatmaps_vs_detector

    ids = ["IMG1.jpg", "IMG2.jpg"]
    maps = np.zeros((2, 2, 28, 28), dtype=np.float16)
    maps[:, 0, 3, 3] = 1.0
    maps[:, 1, 24, 24] = 1.0
    (tmp_path / "cls" / "explain").mkdir(parents=True)
    np.savez_compressed(tmp_path / "cls/explain/heatmaps.npz", image_ids=np.array(ids), layers=np.array(["a", "b"]),
                        methods=np.array(["eigencam"]), eigencam=maps)
    det_dir = tmp_path / "det"
    det_dir.mkdir()
    pd.DataFrame({"image_id": ids, "split": "test", "region": "hand", "width": 200, "height": 100,
                  "n_boxes": 1}).to_csv(det_dir / "images.csv", index=False)
    pd.DataFrame({"image_id": ids, "split": "test", "x1": 0.0, "y1": 0.0, "x2": 40.0, "y2": 30.0}).to_csv(
        det_dir / "ground_truth.csv", index=False)
    pd.DataFrame({"image_id": ids, "split": "test", "x1": [150.0, 0.0], "y1": [70.0, 0.0], "x2": [200.0, 40.0],
                  "y2": [100.0, 30.0], "score": [0.9, 0.8]}).to_csv(det_dir / "detections.csv", index=False)
    assert main([str(tmp_path / "cls"), "--no-cams", "--detector", str(det_dir)]) == 0
    out = capsys.readouterr().out.strip().splitlines()[-1]
    written = pd.read_csv(tmp_path / "cls/explain/heatmaps_vs_detector.csv")
    want = heatmaps_vs_detector(tmp_path / "cls", det_dir)
    pd.testing.assert_frame_equal(written, want.reset_index(drop=True), check_dtype=False)
    # final layer b peaks bottom-right: GT boxes top-left (0/2), detector boxes: IMG1 bottom-right, IMG2 top-left (1/2)
    assert "2 images" in out and "eigencam 0.00/0.50" in out and "in a ground-truth box: 0.50" in out
    assert main([str(tmp_path / "cls"), "--no-cams", "--detector", str(tmp_path / "nothing")]) == 2
