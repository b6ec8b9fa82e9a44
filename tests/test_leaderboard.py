"""Leaderboard rendering from generated run records: values read back from the Markdown and CSV,
skipped/duplicate runs listed, incremental renders byte-identical to fresh ones, escaping, CLI."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from bench.cli.leaderboard import main as cli_main
from bench.errors import BenchError
from bench.leaderboard import render_leaderboard
from bench.leaderboard.collect import CACHE_FILE, collect
from bench.testing.synthetic import make_run

EVIL = "<script>alert(1)</script>"
N = 160  # images per generated run: small, so the tests stay fast


def _md_rows(md: str) -> list[list[str]]:
    rows = []
    for line in md.splitlines():
        if line.startswith("| ") and not line.startswith("| Rank"):
            rows.append([c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]])
    return rows


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.name != CACHE_FILE}


@pytest.fixture()
def runs(tmp_path: Path) -> Path:
    root = tmp_path / "bench_runs"
    for s, auc in zip(range(3), (0.80, 0.85, 0.90)):
        make_run(root, "fracatlas_binary", "resnet18", s, skill=1.5, n_images=N, metrics={"auroc": auc})
    for s, auc in zip(range(2), (0.70, 0.74)):
        make_run(root, "fracatlas_binary", "vgg16", s, skill=0.3, n_images=N, metrics={"auroc": auc})
    make_run(root, "fracatlas_binary", EVIL, 0, skill=0.2, n_images=N, metrics={"auroc": 0.60})
    return root


def test_known_metrics_read_back_from_markdown_and_csv(runs: Path, tmp_path: Path):
    out = tmp_path / "lb"
    res = render_leaderboard([runs], out, n_resamples=300)
    csv = pd.read_csv(out / "fracatlas_binary.csv")
    ours = csv[csv["source"] == "this benchmark"].set_index("model")
    assert list(ours.index) == ["resnet18", "vgg16", EVIL]  # ranked by mean ROC-AUC
    assert ours.loc["resnet18", "test_auroc_mean"] == pytest.approx(0.85)
    assert ours.loc["resnet18", "test_auroc_std"] == pytest.approx(0.05)
    assert ours.loc["resnet18", "n_seeds"] == 3 and ours.loc["resnet18", "seeds"] == "0,1,2"
    assert ours.loc["vgg16", "test_auroc_mean"] == pytest.approx(0.72)
    assert list(ours["rank"]) == [1, 2, 3]
    assert bool(ours.loc["resnet18", "is_best"]) and not ours.loc[["vgg16", EVIL], "is_best"].any()
    # the reference run's CI comes from its predictions.csv (not from the overridden record value)
    ref = runs / ours.loc["resnet18", "ref_run_id"] / "predictions.csv"
    p = pd.read_csv(ref)
    p = p[p["split"] == "test"]
    auc = skm.roc_auc_score(p["label"], p["prob_fractured"])
    assert ours.loc["resnet18", "ref_ci_auroc_value"] == pytest.approx(auc)
    assert ours.loc["resnet18", "ref_ci_auroc_low"] < auc < ours.loc["resnet18", "ref_ci_auroc_high"]
    # literature rows: present, marked, never ranked
    lit = csv[csv["source"] != "this benchmark"].set_index("model")
    assert lit.loc["YOLOv8m", "test_accuracy_mean"] == pytest.approx(0.83)
    assert lit.loc["YOLOv8m", "test_precision_mean"] == pytest.approx(0.87)
    assert lit.loc["YOLOv8m", "source"] == "reported elsewhere: seed 002 Table V"
    assert lit["rank"].isna().all() and not lit["is_best"].fillna(False).astype(bool).any()

    md = (out / "fracatlas_binary.md").read_text()
    rows = {r[1].rstrip(" ★≈↓"): r for r in _md_rows(md)}
    r = rows["resnet18"]
    assert r[0] == "1" and r[4] == "3" and r[5] == "0.850 ± 0.050"
    assert re.fullmatch(r"0\.\d{3} \[0\.\d{3}, (0\.\d{3}|1\.000)\]", r[6])
    assert rows["vgg16"][5] == "0.720 ± 0.028"
    assert rows["YOLOv8m"][0] == "" and "**reported elsewhere**" in rows["YOLOv8m"][2]
    assert rows["YOLOv8m"][9] == "0.830"  # accuracy column
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in md and EVIL not in md
    assert len(res.collection.runs) == 6 and not res.collection.skipped


def test_vgg_is_significantly_worse_and_other_split_is_not_comparable(runs: Path, tmp_path: Path):
    make_run(runs, "fracatlas_binary", "convnext", 0, skill=1.4, n_images=N, split_seed=9, metrics={"auroc": 0.5})
    render_leaderboard([runs], tmp_path / "lb", n_resamples=200)
    csv = pd.read_csv(tmp_path / "lb" / "fracatlas_binary.csv").set_index("model")
    assert csv.loc["convnext", "vs_best"].startswith("not comparable")
    assert np.isnan(csv.loc["convnext", "p_vs_best"])
    # skill 0.3 vs 1.5 on the same 40-odd test images: DeLong finds the difference
    assert csv.loc["vgg16", "vs_best"] == "significantly worse"
    assert csv.loc["vgg16", "p_vs_best"] < 0.05
    assert csv.loc["vgg16", "pair_runs"].endswith("s0__" + csv.loc["resnet18", "ref_run_id"].split("__s0__")[1])
    assert csv.loc["vgg16", "p_delong"] == csv.loc["vgg16", "p_vs_best"]


def test_incomplete_corrupt_duplicate_runs_are_listed(runs: Path, tmp_path: Path):
    (runs / "crashed_run").mkdir()
    (runs / "crashed_run" / "config.yaml").write_text("model: x\n")
    bad = make_run(runs, "fracatlas_binary", "badjson", 0, n_images=N)
    (bad / "record.json").write_text('{"status": "complete", "run_id": ')
    running = make_run(runs, "fracatlas_binary", "running", 0, n_images=N)
    rec = json.loads((running / "record.json").read_text())
    rec["status"] = "running"
    (running / "record.json").write_text(json.dumps(rec))
    # a second node's copy of one run, two levels down
    node = tmp_path / "node2" / "bench_runs"
    node.mkdir(parents=True)
    first = sorted(p for p in runs.iterdir() if p.name.startswith("fracatlas_binary__resnet18__s0"))[0]
    shutil.copytree(first, node / first.name)
    out = tmp_path / "lb"
    res = render_leaderboard([runs, tmp_path / "node2"], out, n_resamples=200)
    reasons = {Path(s["path"]).name: s["reason"] for s in res.collection.skipped}
    assert reasons["crashed_run"] == "incomplete: no record.json"
    assert reasons[bad.name].startswith("corrupt record.json")
    assert reasons[running.name] == "incomplete: status='running'"
    assert len(res.collection.duplicates) == 1
    dup = res.collection.duplicates[0]
    assert dup["run_id"] == first.name and {dup["path"], dup["kept"]} == {
        f"{runs}/{first.name}", f"{tmp_path / 'node2'}/bench_runs/{first.name}"}
    report = (out / "report.md").read_text()
    for name in ("crashed_run", bad.name, running.name):
        assert name.replace("_", "\\_") in report
    assert "## Duplicates" in report
    runs_csv = pd.read_csv(out / "runs.csv")
    assert len(runs_csv) == 6 and runs_csv["run_id"].is_unique
    # the choice of the kept copy does not depend on the order of --runs
    res2 = render_leaderboard([tmp_path / "node2", runs], tmp_path / "lb2", n_resamples=200)
    assert res2.collection.duplicates[0]["kept"] == dup["kept"]


def test_incremental_render_equals_fresh_render(runs: Path, tmp_path: Path):
    inc = tmp_path / "inc"
    first = render_leaderboard([runs], inc, n_resamples=200)
    assert first.collection.parsed == 6 and first.ci_computed == 6
    make_run(runs, "fracatlas_binary", "densenet121", 0, skill=1.0, n_images=N)
    make_run(runs, "fracatlas_region", "resnet18", 0, skill=1.0, n_images=N, explain=True)
    second = render_leaderboard([runs], inc, n_resamples=200)
    assert second.collection.parsed == 2 and second.collection.cached == 6
    assert second.ci_computed == 2  # only the new runs were bootstrapped
    fresh = render_leaderboard([runs], tmp_path / "fresh", n_resamples=200, use_cache=False)
    assert fresh.collection.parsed == 8
    a, b = _tree(inc), _tree(tmp_path / "fresh")
    assert sorted(a) == sorted(b)
    assert all(a[k] == b[k] for k in a), [k for k in a if a[k] != b[k]]
    # a run that disappears also disappears from an incremental render
    gone = next(p for p in runs.iterdir() if p.name.startswith("fracatlas_region__"))
    shutil.rmtree(gone)
    render_leaderboard([runs], inc, n_resamples=200)
    assert not (inc / "fracatlas_region.md").exists()
    assert not any("fracatlas_region" in p.name for p in (inc / "runs").iterdir())
    # same input again: nothing changes
    again = render_leaderboard([runs], inc, n_resamples=200)
    assert again.written == 0 and again.collection.parsed == 0


def test_site_escapes_names_and_uses_safe_file_names(runs: Path, tmp_path: Path):
    out = tmp_path / "lb"
    render_leaderboard([runs], out, n_resamples=200)
    html = (out / "index.html").read_text()
    assert EVIL not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "http://" not in html and "https://" not in html  # nothing loaded from the internet
    pages = sorted((out / "runs").glob("*.html"))
    assert len(pages) == 6
    assert all(re.fullmatch(r"[A-Za-z0-9._-]+", p.name) for p in pages)
    evil_page = next(p for p in pages if "script" in p.name)
    assert EVIL not in evil_page.read_text() and "&lt;script&gt;" in evil_page.read_text()
    # images copied into the site, linked relatively
    assert any((out / "runs").rglob("*roc.png"))
    assert 'src="' in evil_page.read_text() and 'src="/' not in evil_page.read_text()


def test_study_level_and_explain_columns(tmp_path: Path):
    root = tmp_path / "runs"
    d = make_run(root, "mura_hand", "resnet18", 0, n_images=300, explain=True, skill=1.5)
    make_run(root, "mura_hand", "vgg16", 0, n_images=300, skill=0.5)
    make_run(root, "fracatlas_region", "resnet18", 0, n_images=N)
    out = tmp_path / "lb"
    res = render_leaderboard([root], out, n_resamples=200)
    t = res.tables["mura_hand"]
    assert t.metric_split == "test_study" and t.primary == "auroc"
    csv = pd.read_csv(out / "mura_hand.csv").set_index("model")
    rec = json.loads((d / "record.json").read_text())
    assert csv.loc["resnet18", "test_study_auroc_mean"] == pytest.approx(rec["metrics"]["test_study"]["auroc"])
    assert csv.loc["resnet18", "explain_gradcam_pointing_game_mean"] == pytest.approx(0.62)  # final layer
    assert csv.loc["resnet18", "explain_gradcam_energy_mean"] == pytest.approx(0.35)
    runs_csv = pd.read_csv(out / "runs.csv")
    row = runs_csv[runs_csv["run_id"] == d.name].iloc[0]
    st = pd.read_csv(d / "predictions_study.csv")
    assert row["ci_n_units"] == st["patient_id"].nunique()  # resampled patients, not images
    assert "ResNet-101 (balanced + tuned)" in set(csv.index)
    region = pd.read_csv(out / "fracatlas_region.csv")
    assert res.tables["fracatlas_region"].primary == "f1"
    assert (region["source"] == "reported elsewhere: seed 002 Table IX").sum() == 24


def test_collect_errors_and_cli(tmp_path: Path, capsys, runs: Path):
    with pytest.raises(BenchError):
        collect([tmp_path / "missing"])
    assert cli_main(["--runs", str(tmp_path / "missing"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert cli_main(["--runs", str(runs), "--out", str(tmp_path / "o"), "--primary", "binary"]) == 2
    assert cli_main(["--runs", str(runs), "--out", str(tmp_path / "o"), "--n-resamples", "200", "--no-site"]) == 0
    out = capsys.readouterr().out
    assert "6 runs in 1 task table(s)" in out
    assert (tmp_path / "o" / "fracatlas_binary.md").is_file() and not (tmp_path / "o" / "index.html").exists()


def test_explain_scores_tolerate_shapes():
    from bench.leaderboard.collect import explain_scores
    from bench.record import upgrade_record

    # version-1 records with per-layer maps: the record's upgrade takes the final layer
    rec = {"schema_version": 1, "model": {"cam_layers": ["layer1", "layer4"]},
           "explain": {"summary": {"GradCAM++": {"pointing_game": {"layer1": 0.1, "layer4": 0.7}, "energy": 0.3},
                                   "eigencam": {"pointing_game": {"a": 0.2, "b": 0.4}, "final_layer": "a"},
                                   "broken": "not a dict", "empty": {}}}}
    got = explain_scores(upgrade_record(rec))
    assert got == {"explain_gradcam_pointing_game": 0.7, "explain_gradcam_energy": 0.3,
                   "explain_eigencam_pointing_game": 0.2}
    assert explain_scores({}) == {} and explain_scores({"explain": {"summary": [1, 2]}}) == {}
    # the shape bench.explain writes (bench/explain/run.py), including a skipped method
    written = {"explain": {"summary": {
        "gradcam": {"pointing_game": 0.5, "energy": 0.25, "iou": 0.125, "n": 8, "final_layer": "layer4"},
        "eigencam": {"pointing_game": None, "energy": None, "iou": None, "n": 0, "final_layer": "layer4",
                     "skipped": "no boxes"}}}}
    assert explain_scores(written) == {"explain_gradcam_pointing_game": 0.5, "explain_gradcam_energy": 0.25,
                                       "explain_gradcam_iou": 0.125, "explain_eigencam_pointing_game": None,
                                       "explain_eigencam_energy": None, "explain_eigencam_iou": None}


def test_primary_override_switches_the_paired_test(runs: Path, tmp_path: Path):
    res = render_leaderboard([runs], tmp_path / "lb", n_resamples=200, primary={"binary": "accuracy"})
    t = res.tables["fracatlas_binary"]
    assert t.primary == "accuracy" and t.test_name == "McNemar"
    csv = pd.read_csv(tmp_path / "lb" / "fracatlas_binary.csv").set_index("model")
    ours = csv[csv["source"] == "this benchmark"]
    assert list(ours["test_accuracy_mean"]) == sorted(ours["test_accuracy_mean"], reverse=True)
    tested = ours[ours["p_vs_best"].notna()]
    assert len(tested) == 2 and (tested["p_vs_best"] == tested["p_mcnemar"]).all()


def test_bad_predictions_are_a_listed_problem_not_fatal(runs: Path, tmp_path: Path):
    bad = make_run(runs, "fracatlas_binary", "badpreds", 0, n_images=N)
    (bad / "predictions.csv").write_text("image_id,split,label,pred,prob_non_fractured,prob_fractured\nx,test,zz,1,a,b\n")
    nopred = make_run(runs, "fracatlas_binary", "nopreds", 0, n_images=N)
    (nopred / "predictions.csv").unlink()
    res = render_leaderboard([runs], tmp_path / "lb", n_resamples=200)
    probs = {Path(p["path"]).name: p["reason"] for p in res.problems}
    assert bad.name in probs and "missing" in probs[nopred.name]
    csv = pd.read_csv(tmp_path / "lb" / "fracatlas_binary.csv").set_index("model")
    assert np.isnan(csv.loc["badpreds", "ref_ci_auroc_low"]) and csv.loc["nopreds", "vs_best"] == "no predictions"
    assert "## Problems" in (tmp_path / "lb" / "report.md").read_text()
