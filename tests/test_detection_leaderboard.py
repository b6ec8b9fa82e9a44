"""Detection runs in `bench-leaderboard`: a detection run and a classification run go into the
results store, each gets its own table (the detection run never enters a classification table),
and the tables are parsed back from the Markdown and CSV."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from bench.cli.leaderboard import main as cli_main
from bench.detection.metrics import ap50_from_matches, image_matches
from bench.record import write_record
from bench.testing.synthetic import make_run


def _boxes(n_images: int, seed: int):
    """Ground truth (1-2 boxes per image) and detections: most boxes found with jitter and a high
    score, plus low-score false positives (some below the store's 0.001 floor)."""
    rng = np.random.default_rng(seed)
    gt, det = [], []
    for i in range(n_images):
        for _ in range(int(rng.integers(1, 3))):
            x, y = rng.uniform(0, 300, 2)
            w, h = rng.uniform(20, 80, 2)
            gt.append({"image_id": f"IMG{i:04d}.jpg", "x1": x, "y1": y, "x2": x + w, "y2": y + h})
            if rng.random() < 0.75:
                j = rng.normal(0, 4, 4)
                det.append({"image_id": f"IMG{i:04d}.jpg", "x1": x + j[0], "y1": y + j[1], "x2": x + w + j[2],
                            "y2": y + h + j[3], "score": float(rng.uniform(0.3, 1))})
        for s in (float(rng.uniform(0.01, 0.6)), 0.0004):
            x, y = rng.uniform(0, 300, 2)
            det.append({"image_id": f"IMG{i:04d}.jpg", "x1": x, "y1": y, "x2": x + 40, "y2": y + 40, "score": s})
    return pd.DataFrame(det), pd.DataFrame(gt), [f"IMG{i:04d}.jpg" for i in range(n_images)]


def _detection_run(root: Path, seed: int, n_images: int = 30) -> tuple[Path, float]:
    """A detection run folder as bench.detection.run writes it (record + the three CSVs), its test
    mAP@0.5 computed from its own files (COCO matching at IoU 0.5)."""
    det, gt, ids = _boxes(n_images, seed)
    run = root / f"fracatlas_detection__yolov8n_det__s{seed}__d0"
    run.mkdir(parents=True)
    # a val split too: the store keeps test rows only
    pd.concat([det.assign(split="test"), det.head(5).assign(split="val")]).to_csv(run / "detections.csv", index=False)
    gt.assign(split="test").to_csv(run / "ground_truth.csv", index=False)
    pd.DataFrame({"image_id": ids, "split": "test", "region": "hand", "width": 400, "height": 400,
                  "n_boxes": gt.groupby("image_id").size().reindex(ids).fillna(0).astype(int).to_numpy()}
                 ).to_csv(run / "images.csv", index=False)
    kept = det[det["score"] >= 0.001]
    map50 = float(ap50_from_matches(image_matches(kept, gt, ids)))
    m = {"precision": 0.6, "recall": 0.5 + 0.01 * seed, "map50": round(map50, 6), "map50_95": round(map50 / 2, 6),
         "n_images": n_images}
    write_record(run, {
        "schema_version": 3, "status": "complete", "run_id": run.name, "created_at": "2026-12-01T00:00:00+00:00",
        "task": {"name": "fracatlas_detection", "dataset": "fracatlas", "kind": "detection", "classes": ["fracture"],
                 "positive_index": None, "protocol": "set1"},
        "protocol": {"experiment": "default", "detection_protocol": "set1", "image_size": 64, "epochs": 2, "pretrained": False},
        "model": {"name": "yolov8n_det", "family": "yolo_det", "pretrained": False},
        "seed": seed, "split": {"sha256": "abc", "counts": {"train": 10, "val": 5, "test": n_images}},
        "metrics": {"val": m, "test": m},
        "subgroups": {"region": {"test": {"hand": {"n_images": n_images, "n_boxes": len(gt), "map50": m["map50"],
                                                   "precision": 0.6, "recall": 0.5}}}},
        "cost": {"device": "cpu"}, "tags": []})
    return run, map50


def _csv_table(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def test_bench_leaderboard_renders_detection_and_classification_tables(tmp_path: Path, capsys):
    runs = tmp_path / "bench_runs"
    maps = [_detection_run(runs, s)[1] for s in (0, 1)]
    make_run(runs, "fracatlas_binary", "resnet18", 0, skill=1.5, n_images=120, metrics={"auroc": 0.81})
    out = tmp_path / "lb"
    assert cli_main(["--runs", str(runs), "--out", str(out), "--n-resamples", "200"]) == 0
    printed = capsys.readouterr().out
    assert "detection: 2 run(s)" in printed

    # the detection table, parsed back from its CSV: our row (mean ± sd of the two seeds) and the
    # published rows in the validation columns only
    set1 = _csv_table(out / "detection_set1.csv")
    ours = set1[set1["source"] == "this harness"]
    assert list(ours["model"]) == ["yolov8n_det"] and ours.iloc[0]["seeds"] == "2"
    rounded = [round(x, 6) for x in maps]
    assert ours.iloc[0]["test_map50"] == f"{np.mean(rounded):.3f} ± {np.std(rounded, ddof=1):.3f}"
    lo, hi = (float(x) for x in ours.iloc[0]["test_map50_ci95"].strip("[]").split(","))
    assert lo < np.mean(maps) < hi and 0 <= lo < hi <= 1
    reported = set1[set1["source"].str.startswith("reported elsewhere")]
    assert len(reported) == 6 and (reported["test_map50"] == "").all() and "0.595" in set(reported["val_map50"])
    assert set(_csv_table(out / "detection_set2.csv")["source"]) == {"reported elsewhere: seed 002 (FracAtlas benchmark)"}
    regions = _csv_table(out / "detection_regions.csv")
    assert regions[regions["source"] == "this harness"][["region", "n_images"]].values.tolist() == [["hand", "30"]]

    # the same numbers in the Markdown (the table's own file and the leaderboard README)
    for md in ((out / "detection_set1.md").read_text(), (out / "README.md").read_text()):
        row = next(line for line in md.splitlines() if line.startswith("| yolov8n_det |"))
        assert ours.iloc[0]["test_map50"] in row and "CC BY 4.0" in md
    readme = (out / "README.md").read_text()
    assert readme.index("## fracatlas\\_binary") < readme.index("# Fracture detection")

    # the classification table has the classifier only; the detection run is in no classification file
    cls = _csv_table(out / "fracatlas_binary.csv")
    assert set(cls.loc[cls["source"] == "this benchmark", "model"]) == {"resnet18"}
    assert not (out / "fracatlas_detection.md").exists() and not (out / "fracatlas_detection.csv").exists()
    assert "yolov8n_det" not in set(_csv_table(out / "runs.csv")["model"])

    # the store keeps the test boxes at or above the evaluation's floor, and nothing else
    stored = sorted((out / "store").glob("fracatlas_detection*"))
    assert len(stored) == 2
    boxes = pd.read_csv(stored[0] / "detections.csv")
    assert set(boxes["split"]) == {"test"} and boxes["score"].min() >= 0.001
    assert (stored[0] / "ground_truth.csv").is_file() and (stored[0] / "images.csv").is_file()

    # the site: its own page, linked from the index, with the harness row and the definitions
    index = (out / "index.html").read_text()
    assert 'href="detection.html"' in index
    page = (out / "detection.html").read_text()
    assert re.search(r"<th scope=\"row\">yolov8n_det</th>", page) and 'id="det-columns"' in page
    assert "mean average precision at IoU 0.5" in page

    # a later render from one new classification run keeps the stored detection runs
    more = tmp_path / "more_runs"
    make_run(more, "fracatlas_binary", "vgg16", 0, skill=0.5, n_images=120, metrics={"auroc": 0.7})
    assert cli_main(["--runs", str(more), "--out", str(out), "--n-resamples", "200"]) == 0
    again = _csv_table(out / "detection_set1.csv")
    assert again[again["source"] == "this harness"]["test_map50"].tolist() == ours["test_map50"].tolist()
    assert set(_csv_table(out / "fracatlas_binary.csv").query("source == 'this benchmark'")["model"]) == {"resnet18", "vgg16"}


def test_no_detection_files_without_detection_runs(tmp_path: Path):
    runs = tmp_path / "bench_runs"
    make_run(runs, "fracatlas_binary", "resnet18", 0, skill=1.5, n_images=120)
    out = tmp_path / "lb"
    assert cli_main(["--runs", str(runs), "--out", str(out), "--n-resamples", "200"]) == 0
    assert not list(out.glob("detection*")) and 'href="detection.html"' not in (out / "index.html").read_text()
