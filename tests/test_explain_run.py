"""End to end: a real `bench-train` run on the generated FracAtlas fixture, then `bench-explain`
(grids, overlays, scores, heatmaps, index and the record's explain section, parsed back)."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from bench.cli.explain import main as explain_main
from bench.record import read_record

# pytorch-grad-cam's ROAD imputer calls np.argwhere on a torch tensor (numpy 2 deprecation).
pytestmark = pytest.mark.filterwarnings("ignore:__array_wrap__:DeprecationWarning")

REPO = Path(__file__).resolve().parents[1]
PNG = b"\x89PNG\r\n\x1a\n"


def _train(tmp: Path, *overrides: str) -> Path:
    args = [sys.executable, "-m", "bench.cli.train", f"paths.root_dir={tmp}", f"paths.runs_dir={tmp}/runs",
            f"paths.cache_dir={tmp}/cache", f"paths.data_dir={tmp}/data", "image_size=64", "trainer.max_epochs=1",
            "callbacks=none", "logger=none", "measure_latency=false", "trainer.enable_progress_bar=false",
            "data.batch_size=16", *overrides]
    env = {**os.environ, "WANDB_MODE": "offline", "PYTHONHASHSEED": "0", "YOLO_OFFLINE": "1"}
    proc = subprocess.run(args, cwd=tmp, capture_output=True, text=True, timeout=900, env=env)
    if proc.returncode != 0:
        raise AssertionError(f"bench-train failed:\n{proc.stderr[-4000:]}")
    (run,) = (tmp / "runs").iterdir()
    return run


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    return _train(tmp_path_factory.mktemp("explain_run"), "data=tiny_fracatlas", "model=resnet18")


@pytest.fixture(scope="module")
def explained(run_dir) -> tuple[Path, dict]:
    from bench.explain import explain_run

    cfg = yaml.safe_load((REPO / "conf" / "explain" / "default.yaml").read_text())
    cfg.pop("enabled")
    # Every key of the config is accepted (training calls explain_run(**cfg)); small sizes for CI.
    cfg.update(n_images=8, batch_size=4, road_images=2, road_percentiles=[30, 70], device="cpu")
    return run_dir, explain_run(run_dir, **cfg)


def test_outputs_written_and_parsed_back(explained):
    run, section = explained
    rec = read_record(run)
    ex = rec["explain"]
    assert ex == json.loads(json.dumps(section))
    # All of the model's CAM layers (ResNet-18: 8 basic blocks), in execution order.
    assert ex["layers"] == rec["model"]["cam_layers"] and len(ex["layers"]) == 8
    assert ex["methods"] == ["gradcampp", "eigencam", "gradcam"]
    # The leaderboard's read shape: summary[method][score], numbers in [0, 1], final layer named.
    for m in ex["methods"]:
        s = ex["summary"][m]
        assert s["final_layer"] == ex["layers"][-1] and s["n"] >= 1
        for k in ("pointing_game", "energy", "iou"):
            assert 0.0 <= s[k] <= 1.0
        assert ex["road"]["per_method"][m]["n"] == 2
        assert ex["timings"][m]["images_per_s"] > 0

    out = run / "explain"
    index = json.loads((out / "index.json").read_text())
    z = np.load(out / "heatmaps.npz")
    n = len(index["image_ids"])
    assert n == ex["n_images"] <= 8 and list(z["image_ids"]) == index["image_ids"]
    assert list(z["layers"]) == ex["layers"] and list(z["methods"]) == ex["methods"]
    for m in ex["methods"]:
        assert z[m].shape == (n, 8, 56, 56) and z[m].dtype == np.float16
        assert 0 <= z[m].min() and z[m].max() <= 1.001

    scores = pd.read_csv(out / "scores.csv")
    # Every scored image has boxes; the record's means are the means of scores.csv.
    assert (scores["n_boxes"] > 0).all()
    per_layer = ex["localisation"]["per_layer"]
    for (m, layer), g in scores.groupby(["method", "layer"]):
        assert per_layer[m][layer]["n"] == len(g)
        for k in ("pointing_game", "energy", "iou"):
            assert per_layer[m][layer][k] == pytest.approx(g[k].mean(), abs=1e-6)
    assert len(scores) == per_layer["gradcampp"][ex["layers"][0]]["n"] * 8 * 3
    # The chance baseline: the boxes' area share per image (the same for every method and layer),
    # averaged over the scored images; the margin-grown pointing area is never smaller.
    per_image = scores.groupby("image_id")[["box_area", "pointing_area"]]
    assert (per_image.nunique() == 1).all().all()
    areas = per_image.first()
    assert ((areas["box_area"] > 0) & (areas["box_area"] < 1) & (areas["pointing_area"] >= areas["box_area"])).all()
    chance = ex["localisation"]["chance"]
    assert chance["energy"] == pytest.approx(areas["box_area"].mean(), abs=1e-6)
    assert chance["pointing_game"] == pytest.approx(areas["pointing_area"].mean(), abs=1e-6)

    # Grids and overlays for the chosen cases, all real PNGs.
    assert index["cases"], "at least the most/least confident cases"
    preds = pd.read_csv(run / "predictions.csv")
    for item in index["cases"]:
        assert item["image_id"] in set(preds["image_id"])
        assert (out / item["grid"]).read_bytes()[:8] == PNG
        for m in ex["methods"]:
            assert (out / item["overlays"][m]).read_bytes()[:8] == PNG
    assert set(ex["cases"].values()) == {i["image_id"] for i in index["cases"]}


def test_rating_sheet_via_cli(explained, tmp_path, capsys):
    run, section = explained
    sheet = tmp_path / "sheet.csv"
    assert explain_main([str(run), "--no-cams", "--export-rating-sheet", str(sheet)]) == 0
    rows = list(csv.DictReader(sheet.open()))
    assert len(rows) == len(json.loads((run / "explain" / "index.json").read_text())["cases"]) * 3
    assert all(Path(r["overlay"]).is_file() for r in rows)
    for r in rows:
        r.update(anatomical_relevance="2", fracture_site_relevance="1", attention_concentration="2",
                 clinical_interpretability="1", rater="dr_a")
    with sheet.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    assert explain_main([str(run), "--import-ratings", str(sheet)]) == 0
    hr = read_record(run)["explain"]["human_rating"]
    assert hr["overall"]["overall_mean"] == 1.5 and hr["overall"]["pct_acceptable"] == 100.0
    assert read_record(run)["explain"]["summary"] == section["summary"]


def test_cli_errors_are_one_line(run_dir, tmp_path, capsys):
    assert explain_main([str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "no complete run record" in err and "\n" not in err
    broken = tmp_path / "broken"
    shutil.copytree(run_dir, broken, ignore=shutil.ignore_patterns("*.ckpt", "explain"))
    assert explain_main([str(broken)]) == 2
    err = capsys.readouterr().err.strip()
    assert "checkpoint is missing" in err and "\n" not in err
    assert explain_main([str(run_dir), "--methods", "scorecam", "--road-images", "0"]) == 2
    assert "unknown" in capsys.readouterr().err
    if not __import__("torch").cuda.is_available():
        assert explain_main([str(run_dir), "--device", "cuda"]) == 2
        assert "CUDA is not available" in capsys.readouterr().err
    assert explain_main([str(run_dir), "--layers", "layer9", "--n-images", "1", "--road-images", "0"]) == 2
    assert "valid names" in capsys.readouterr().err


PROGRESS = re.compile(r"^(explain|explain ROAD): (\d+)/(\d+) \((images x layers x methods|images x methods)\), (\d+) s$")
FINAL = re.compile(r"^explain complete: (?P<dir>\S+) in (?P<s>\d+) s \(pointing-game hit rate per method, "
                   r"final layer (?P<layer>\S+), (?P<n>\d+) images: (?P<hits>[^;]+); (?P<road>.+)\)$")


def _progress(err: str) -> dict[str, list[tuple[int, int]]]:
    """The plain progress lines (stderr is not a terminal here), by label, as (done, total)."""
    out: dict[str, list[tuple[int, int]]] = {}
    for line in err.splitlines():
        m = PROGRESS.match(line)
        if m:
            out.setdefault(m.group(1), []).append((int(m.group(2)), int(m.group(3))))
    return out


def test_cli_default_skips_road_and_names_the_output(run_dir, tmp_path, capsys):
    """Defaults (conf and CLI): ROAD is not run and the record says so; progress counts images x
    layers x methods; the last line names the folder and the pointing-game numbers of the record."""
    assert yaml.safe_load((REPO / "conf" / "explain" / "default.yaml").read_text())["road_images"] == 0
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns("explain"))
    assert explain_main([str(copy), "--methods", "eigencam,gradcampp", "--layers", "layer3.1,layer4.1",
                         "--n-images", "5", "--batch-size", "2"]) == 0
    out, err = capsys.readouterr()
    ex = read_record(copy)["explain"]
    assert ex["road"]["skipped"].startswith("not run") and "road_s" not in ex["timings"]
    steps = _progress(err)
    assert set(steps) == {"explain"}, err  # no ROAD progress: it did not run
    total = ex["n_images"] * 2 * 2
    assert steps["explain"][0] == (0, total) and steps["explain"][-1] == (total, total)
    assert 3 <= len(steps["explain"]) <= 6  # a few lines, not one per batch
    done = [d for d, _ in steps["explain"]]
    assert done == sorted(done) and len(set(done)) == len(done)
    (last,) = out.strip().splitlines()[-1:]
    m = FINAL.match(last)
    assert m, last
    assert Path(m["dir"]) == copy / "explain" and m["layer"] == "backbone.layer4.1"
    assert int(m["n"]) == ex["summary"]["eigencam"]["n"]
    hits = dict(part.rsplit(" ", 1) for part in m["hits"].split(", "))
    assert {k: float(v) for k, v in hits.items()} == {
        k: round(ex["summary"][k]["pointing_game"], 2) for k in ("eigencam", "gradcampp")}
    assert m["road"] == "ROAD not run: --road-images N (bench-train: explain.road_images=N)"
    assert "{" not in out  # no bare dict


def test_road_opt_in_has_its_own_progress_and_numbers(run_dir, tmp_path, capsys):
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns("explain"))
    assert explain_main([str(copy), "--methods", "gradcampp", "--layers", "layer4.1", "--n-images", "3",
                         "--road-images", "2"]) == 0
    out, err = capsys.readouterr()
    ex = read_record(copy)["explain"]
    assert _progress(err)["explain ROAD"][-1] == (2, 2)
    assert ex["road"]["per_method"]["gradcampp"]["n"] == 2 and ex["timings"]["road_s"] > 0
    m = FINAL.match(out.strip().splitlines()[-1])
    assert m and m["road"] == (f"ROAD combined per method (higher is more faithful): gradcampp "
                               f"{ex['road']['per_method']['gradcampp']['road_combined']:.3f}")


def test_progress_is_a_tqdm_bar_on_a_terminal():
    from bench.explain.feedback import Progress

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    term, plain = Terminal(), io.StringIO()
    for stream in (term, plain):
        with Progress("explain", 12, "images x layers x methods", stream=stream) as bar:
            for _ in range(6):
                bar.update(2)
    frames = term.getvalue().split("\r")
    assert "explain (images x layers x methods)" in frames[-1] and "12/12" in frames[-1]
    # Not a terminal: the start, then one line per quarter (2/12 is below the first), none with a \r.
    assert [PROGRESS.match(l).group(2) for l in plain.getvalue().splitlines()] == ["0", "4", "6", "10", "12"]
    assert "\r" not in plain.getvalue()


def test_dataset_without_boxes_is_a_reported_skip(run_dir, tmp_path, monkeypatch):
    import bench.runs as runs
    from bench.explain import explain_run

    real = runs.load_run

    def no_boxes(path, device="cpu"):
        model, dm, record = real(path, device=device)
        dm.table = dm.table.drop(columns=["boxes"])
        record["task"]["dataset"] = "mura"
        return model, dm, record

    monkeypatch.setattr(runs, "load_run", no_boxes)
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns("explain"))
    ex = explain_run(copy, methods=["eigencam"], layers=["layer4.1"], n_images=3, road_images=0, device="cpu")
    assert ex["localisation"] == {"skipped": "no boxes in dataset mura"}
    assert ex["summary"]["eigencam"]["pointing_game"] is None
    assert ex["road"]["skipped"].startswith("not run") and "--road-images N" in ex["road"]["skipped"]
    assert "road_s" not in ex["timings"]  # not run: no time recorded, not a zero
    assert ex["layers"] == ["backbone.layer4.1"] and ex["n_images"] == 3
    assert read_record(copy)["explain"]["localisation"]["skipped"] == "no boxes in dataset mura"
    assert pd.read_csv(copy / "explain" / "scores.csv").empty


@pytest.mark.slow
def test_real_mura_run_reports_the_skip(tmp_path):
    from bench.explain import explain_run

    run = _train(tmp_path, "data=tiny_mura", "model=resnet18")
    ex = explain_run(run, methods=["gradcampp"], n_images=4, road_images=1, road_percentiles=[50], device="cpu")
    assert ex["localisation"] == {"skipped": "no boxes in dataset mura"}
    assert ex["road"]["per_method"]["gradcampp"]["n"] == 1 and ex["n_images"] == 4
    assert read_record(run)["explain"]["summary"]["gradcampp"]["skipped"] == "no boxes in dataset mura"


@pytest.mark.slow
def test_real_yolov8_run_explains_every_layer(tmp_path):
    from bench.explain import explain_run

    run = _train(tmp_path, "data=tiny_fracatlas", "model=yolov8n_cls")
    ex = explain_run(run, methods=["eigencam", "gradcampp"], n_images=4, road_images=0, device="cpu")
    assert ex["layers"] == read_record(run)["model"]["cam_layers"] and len(ex["layers"]) >= 9
    assert 0 <= ex["summary"]["eigencam"]["energy"] <= 1
    z = np.load(run / "explain" / "heatmaps.npz")
    assert z["eigencam"].shape[:2] == (4, len(ex["layers"]))
