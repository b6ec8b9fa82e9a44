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


def _md_tables(md: str) -> list[list[dict[str, str]]]:
    """Every Markdown table as a list of {header: cell} rows."""
    tables, head = [], None
    for line in md.splitlines():
        if not line.startswith("|"):
            head = None
            continue
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
        if head is None:
            head = cells
            tables.append([])
        elif not set(line) <= set("|-: "):
            tables[-1].append(dict(zip(head, cells)))
    return tables


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
    # flags: [] = the evaluation ran and found nothing (a record without the key gets them derived)
    make_run(root, "fracatlas_binary", EVIL, 0, skill=0.2, n_images=N, metrics={"auroc": 0.60}, extra={"flags": []})
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
    ours_md, lit_md = _md_tables(md)  # ours, then the literature in a table of its own
    rows = {r["Model"].rstrip(" ★⚑"): r for r in ours_md}
    r = rows["resnet18"]
    assert r["Rank"] == "1" and r["Seeds"] == "3" and r["ROC-AUC mean ± sd"] == "0.850 ± 0.050"
    assert r["vs best"] == "★ best" and r["Model"].endswith("★")
    assert re.fullmatch(r"\[0\.\d{3}, (0\.\d{3}|1\.000)\]", r["95% interval (seeds + images)"])
    assert r["Protocol"] == "default · 224 px · 30 ep · from scratch · CPU"
    assert rows["vgg16"]["ROC-AUC mean ± sd"] == "0.720 ± 0.028"
    assert "YOLOv8m" not in rows
    lit_rows = {x["Model"]: x for x in lit_md}
    assert lit_rows["YOLOv8m"]["Accuracy"] == "0.830" and "Table V" in lit_rows["YOLOv8m"]["Source"]
    assert "**Answer:** best resnet18: ROC-AUC 0.850 ± 0.050 over 3 seeds" in md
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in md and EVIL not in md
    assert len(res.collection.runs) == 6 and not res.collection.skipped and not res.ingest.skipped


def test_vgg_is_significantly_worse_and_other_split_is_not_comparable(runs: Path, tmp_path: Path):
    make_run(runs, "fracatlas_binary", "convnext", 0, skill=1.4, n_images=N, split_seed=9, metrics={"auroc": 0.5})
    render_leaderboard([runs], tmp_path / "lb", n_resamples=200)
    csv = pd.read_csv(tmp_path / "lb" / "fracatlas_binary.csv").set_index("model")
    assert csv.loc["convnext", "vs_best"].startswith("not comparable")
    assert np.isnan(csv.loc["convnext", "p_vs_best"])
    # skill 0.3 vs 1.5 on the same 40-odd test images: DeLong finds the difference
    assert csv.loc["vgg16", "vs_best"] == "significantly worse"
    assert csv.loc["vgg16", "p_vs_best"] < 0.05
    # Holm over the rows compared with the best (an independent step-down implementation)
    tested = csv[csv["p_vs_best"].notna()].sort_values("p_vs_best")
    m, running = len(tested), 0.0
    for i, (model, p) in enumerate(tested["p_vs_best"].items()):
        running = max(running, min(1.0, (m - i) * p))
        assert csv.loc[model, "p_holm"] == pytest.approx(running)
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
    reasons = {Path(s["path"]).name: s["reason"] for s in res.ingest.skipped}
    assert reasons["crashed_run"] == "incomplete: no record.json"
    assert reasons[bad.name].startswith("corrupt record.json")
    assert reasons[running.name] == "incomplete: status='running'"
    assert len(res.ingest.duplicates) == 1
    dup = res.ingest.duplicates[0]
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
    assert res2.ingest.duplicates[0]["kept"] == dup["kept"]


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
    # a run folder that disappears stays in the store; removal is explicit
    gone = next(p for p in runs.iterdir() if p.name.startswith("fracatlas_region__"))
    shutil.rmtree(gone)
    render_leaderboard([runs], inc, n_resamples=200)
    assert (inc / "fracatlas_region.md").exists()
    render_leaderboard([], inc, n_resamples=200, remove=[gone.name])
    assert not (inc / "fracatlas_region.md").exists()
    assert not any("fracatlas_region" in p.name for p in (inc / "runs").iterdir())
    assert not any("fracatlas_region" in p.name for p in (inc / "store").iterdir())
    # same input again: nothing changes
    again = render_leaderboard([runs], inc, n_resamples=200)
    assert again.written == 0 and again.collection.parsed == 0


def test_site_escapes_names_and_uses_safe_file_names(runs: Path, tmp_path: Path):
    out = tmp_path / "lb"
    render_leaderboard([runs], out, n_resamples=200)
    html = (out / "index.html").read_text()
    assert EVIL not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)  # nothing loaded from the internet
    assert not re.search(r"url\(\s*['\"]?(https?:)?//", html)
    pages = sorted((out / "runs").glob("*.html"))
    assert len(pages) == 6
    assert all(re.fullmatch(r"[A-Za-z0-9._-]+", p.name) for p in pages)
    evil_page = next(p for p in pages if "script" in p.name)
    assert EVIL not in evil_page.read_text() and "&lt;script&gt;" in evil_page.read_text()
    # images kept in the store, linked relatively
    assert any((out / "store").rglob("roc.png"))
    assert 'src="../store/' in evil_page.read_text() and 'src="/' not in evil_page.read_text()


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
    assert cli_main(["--out", str(tmp_path / "empty")]) == 2  # no store and no runs: nothing to render
    assert "nothing to render" in capsys.readouterr().err
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
    probs = {Path(p["path"]).name.rsplit("-", 1)[0]: p["reason"] for p in res.problems}  # store/<run_id>-<hash8>
    assert bad.name in probs and "missing" in probs[nopred.name]
    csv = pd.read_csv(tmp_path / "lb" / "fracatlas_binary.csv").set_index("model")
    assert np.isnan(csv.loc["badpreds", "ref_ci_auroc_low"]) and csv.loc["nopreds", "vs_best"] == "no predictions"
    assert "## Problems" in (tmp_path / "lb" / "report.md").read_text()


# --------------------------------------------------------------------------- results store


def test_second_render_from_other_runs_keeps_the_first_runs(tmp_path: Path):
    """The bug of issue 13: rendering from one new run folder lost every committed row."""
    a, b, out = tmp_path / "node_a", tmp_path / "node_b", tmp_path / "lb"
    make_run(a, "fracatlas_binary", "resnet18", 0, skill=1.5, n_images=N)
    make_run(a, "fracatlas_region", "resnet18", 0, n_images=N)
    make_run(b, "fracatlas_binary", "vgg16", 0, skill=0.5, n_images=N)
    render_leaderboard([a], out, n_resamples=200)
    shutil.rmtree(a)  # A's run folders are gone (checkpoints are never committed)
    res = render_leaderboard([b], out, n_resamples=200)
    assert res.ingest.added == [next(b.iterdir()).name]
    csv = pd.read_csv(out / "fracatlas_binary.csv")
    assert {"resnet18", "vgg16"} <= set(csv["model"])
    assert set(pd.read_csv(out / "runs.csv")["model"]) == {"resnet18", "vgg16"}
    assert (out / "fracatlas_region.md").is_file()
    # the store holds kilobytes per run: record, test predictions (with the resampling group), meta
    stored = sorted((out / "store").iterdir())
    assert len(stored) == 3
    for d in stored:
        size = sum(p.stat().st_size for p in d.rglob("*") if p.is_file())
        assert size < 100_000, (d, size)
        preds = pd.read_csv(d / "predictions.csv")
        assert "split" not in preds.columns and "group" in preds.columns
        assert not (d / "checkpoints").exists()
    # a re-render with nothing new writes nothing
    again = render_leaderboard([b], out, n_resamples=200)
    assert again.written == 0
    with pytest.raises(BenchError, match="no such run"):
        render_leaderboard([], out, remove=["not_a_run"])


def test_generated_runs_stay_out_unless_asked(tmp_path: Path):
    runs, out = tmp_path / "runs", tmp_path / "lb"
    make_run(runs, "fracatlas_binary", "resnet18", 0, n_images=N)
    make_run(runs, "fracatlas_binary", "gen_model", 0, n_images=N, extra={"data": {"generated": True}})
    res = render_leaderboard([runs], out, n_resamples=200)
    assert len(res.ingest.generated_skipped) == 1 and "gen_model" in res.ingest.generated_skipped[0]
    assert "gen_model" not in set(pd.read_csv(out / "runs.csv")["model"])
    assert "not stored (generated data" in res.summary()
    res = render_leaderboard([runs], out, n_resamples=200, include_generated=True)
    assert set(res.tables) == {"fracatlas_binary", "fracatlas_binary__generated"}
    gen = pd.read_csv(out / "fracatlas_binary__generated.csv")
    assert set(gen["model"]) == {"gen_model"} and gen["generated"].all()
    real = pd.read_csv(out / "fracatlas_binary.csv")
    assert "gen_model" not in set(real["model"])
    html = (out / "index.html").read_text()
    assert html.index('id="generated"') > html.index('id="task-fracatlas_binary"')
    assert "generated data, not a result" in (out / "README.md").read_text()


def test_flagged_run_is_marked_and_never_best(tmp_path: Path):
    runs, out = tmp_path / "runs", tmp_path / "lb"
    make_run(runs, "fracatlas_binary", "resnet18", 0, skill=1.0, n_images=N, metrics={"auroc": 0.80})
    make_run(runs, "fracatlas_binary", "allneg", 0, skill=1.0, n_images=N, metrics={"auroc": 0.95},
             extra={"flags": ["constant_predictions"]})
    res = render_leaderboard([runs], out, n_resamples=200)
    csv = pd.read_csv(out / "fracatlas_binary.csv")
    ours = csv[csv["source"] == "this benchmark"].set_index("model")
    assert bool(ours.loc["resnet18", "is_best"]) and not bool(ours.loc["allneg", "is_best"])
    assert np.isnan(ours.loc["allneg", "rank"]) and ours.loc["resnet18", "rank"] == 1
    assert ours.loc["allneg", "flags"] == "constant_predictions"
    assert list(ours.index) == ["resnet18", "allneg"]  # flagged rows last
    assert "best resnet18" in res.summary()
    md = {r["Model"]: r for r in _md_tables((out / "fracatlas_binary.md").read_text())[0]}
    assert md["allneg ⚑"]["Flags"].startswith("⚑ constant\\_predictions (1/1") and md["allneg ⚑"]["Rank"] == ""
    page = next((out / "runs").glob("*allneg*.html")).read_text()
    assert "Flagged: constant_predictions" in page


def test_old_schema_records_render_with_dashes(tmp_path: Path):
    runs, out = tmp_path / "runs", tmp_path / "lb"
    d = make_run(runs, "fracatlas_binary", "oldmodel", 0, n_images=N)
    rec = json.loads((d / "record.json").read_text())
    rec["schema_version"] = 0
    for k in ("cost", "protocol"):
        rec.pop(k)
    rec["metrics"]["test"].pop("specificity")
    (d / "record.json").write_text(json.dumps(rec))
    make_run(runs, "fracatlas_binary", "newmodel", 0, n_images=N)
    render_leaderboard([runs], out, n_resamples=200)
    md = {r["Model"].rstrip(" ★"): r for r in _md_tables((out / "fracatlas_binary.md").read_text())[0]}
    assert md["oldmodel"]["Specificity"] == "—" and md["oldmodel"]["Train img/s"] == "—"
    assert md["oldmodel"]["Protocol"] == "— · — px · — ep · from scratch · device —"
    assert md["newmodel"]["Specificity"] != "—"


def test_import_of_an_earlier_runs_csv_keeps_its_rows(tmp_path: Path, runs: Path):
    old = tmp_path / "old"
    render_leaderboard([runs], old, n_resamples=200)
    before = pd.read_csv(old / "runs.csv")
    shutil.rmtree(old / "store")  # an earlier site: runs.csv and pages only
    new = tmp_path / "new"
    new.mkdir()
    shutil.copy(old / "runs.csv", new / "runs.csv")
    render_leaderboard([], new, n_resamples=200, import_csv=new / "runs.csv")
    after = pd.read_csv(new / "runs.csv").set_index("run_id")
    assert set(after.index) == set(before["run_id"])
    for _, r in before.iterrows():
        assert after.loc[r["run_id"], "test_auroc"] == pytest.approx(r["test_auroc"])
        assert after.loc[r["run_id"], "ci_auroc_low"] == pytest.approx(r["ci_auroc_low"])  # the CI computed then
    csv = pd.read_csv(new / "fracatlas_binary.csv")
    ours = csv[csv["source"] == "this benchmark"]
    assert ours["row_ci_low"].isna().all() and ours["p_holm"].isna().all()  # not derivable: "—"


def test_mura_images_never_enter_the_store(tmp_path: Path):
    runs, out = tmp_path / "runs", tmp_path / "lb"
    make_run(runs, "mura_hand", "resnet18", 0, n_images=120, explain=True)
    make_run(runs, "fracatlas_binary", "resnet18", 0, n_images=N, explain=True)
    render_leaderboard([runs], out, n_resamples=200)
    mura = next(d for d in (out / "store").iterdir() if d.name.startswith("mura"))
    frac = next(d for d in (out / "store").iterdir() if d.name.startswith("fracatlas"))
    assert not (mura / "explain").exists() and (frac / "explain").is_dir()
    assert (mura / "predictions_study.csv").is_file()
    html = (out / "index.html").read_text()
    assert "CC BY 4.0" in html and "may not be redistributed" in html
    for page in (out / "runs").glob("*.html"):
        assert "CC BY 4.0" in page.read_text()


def test_p_values_and_undefined_values_print_as_documented():
    from bench.leaderboard.columns import fmt_p, mean_sd

    assert fmt_p(3e-7) == "< 0.0001" and fmt_p(0.0) == "< 0.0001" and fmt_p(0.01234) == "0.0123"
    assert fmt_p(float("nan")) == "—" and fmt_p(None) == "—" and mean_sd(None, None) == "—"


def test_docs_define_every_column(runs: Path, tmp_path: Path):
    res = render_leaderboard([runs], tmp_path / "lb", n_resamples=200)
    from bench.leaderboard.columns import table_columns

    docs = (Path(__file__).resolve().parents[1] / "docs" / "leaderboards.md").read_text()
    for t in res.tables.values():
        for c in table_columns(t):
            if c.key.startswith("explain_"):
                assert c.key.rsplit("_", 1)[-1] in ("game", "energy", "iou") and "pointing game" in docs
                continue
            label = re.sub(r"^(ROC-AUC|F1 \(macro\)) ", "<primary> ", c.label(t))
            assert label in docs or c.label(t) in docs, label


def test_records_without_flags_get_them_derived_by_the_evaluation_rule(tmp_path: Path):
    runs, out = tmp_path / "runs", tmp_path / "lb"
    preds = []
    d = make_run(runs, "fracatlas_binary", "allneg", 0, n_images=N)
    p = pd.read_csv(d / "predictions.csv")
    p["pred"] = 0  # predicts every image negative
    make_run(runs, "fracatlas_binary", "allneg", 0, n_images=N, predictions=p)
    make_run(runs, "fracatlas_binary", "ok", 0, skill=1.5, n_images=N)
    render_leaderboard([runs], out, n_resamples=200)
    rc = pd.read_csv(out / "runs.csv").set_index("model")
    assert rc.loc["allneg", "flags"] == "constant_predictions" and pd.isna(rc.loc["ok", "flags"])
    del preds


def test_reporting_page_shows_subgroups_and_operating_point(tmp_path: Path):
    runs, out = tmp_path / "runs", tmp_path / "lb"
    sub = {"region": {"hand": {"n": 40, "metrics": {"auroc": 0.812, "accuracy": 0.7},
                               "ci": {"auroc": {"low": 0.70, "high": 0.90}}},
                      "hip": {"n": 6, "metrics": {"auroc": None, "accuracy": 0.5}, "ci": None,
                              "note": "too few for a bootstrap CI (n=6; needs n >= 30)"}}}
    make_run(runs, "fracatlas_binary", "resnet18", 0, n_images=N, extra={
        "subgroups": sub, "operating_point": {"rule": "youden", "threshold": 0.31}, "flags": []})
    render_leaderboard([runs], out, n_resamples=200)
    page = (out / "report-fracatlas_binary.html").read_text()
    assert "0.812 [0.700, 0.900]" in page and "too few for a bootstrap CI (n=6" in page
    assert "youden" in page and "0.31" in page and "CC BY 4.0" in page


def test_render_with_cached_pair_tests_equals_fresh_render(tmp_path: Path):
    """Paired tests (best-vs-row and the compare view) partly from the cache, partly computed
    for a new row, give the same files as a render computing all of them."""
    runs = tmp_path / "bench_runs"
    for i, model in enumerate(("resnet18", "vgg16", "densenet121")):
        for s in range(2):
            make_run(runs, "fracatlas_binary", model, s, skill=0.4 + 0.4 * i, n_images=N)
    inc = tmp_path / "inc"
    render_leaderboard([runs], inc, n_resamples=200, ci_scope="none")
    make_run(runs, "fracatlas_binary", "efficientnet_b0", 0, skill=1.0, n_images=N)
    second = render_leaderboard([runs], inc, n_resamples=200, ci_scope="none")
    assert second.collection.cached == 6 and len(second.tables["fracatlas_binary"].pairs) == 6
    render_leaderboard([runs], tmp_path / "fresh", n_resamples=200, ci_scope="none", use_cache=False)
    a, b = _tree(inc), _tree(tmp_path / "fresh")
    assert sorted(a) == sorted(b)
    assert all(a[k] == b[k] for k in a), [k for k in a if a[k] != b[k]]
    p = pd.read_csv(inc / "fracatlas_binary.csv")
    assert p["p_delong"].notna().sum() == 3  # every row but the best, tested against it


_PARALLEL_RENDER = """
import sys
import bench.leaderboard.collect as collect_mod, bench.leaderboard.parallel as par, bench.leaderboard.table as table_mod
from bench.leaderboard import render_leaderboard
collect_mod.PARALLEL_MIN_RECORDS = table_mod.PARALLEL_MIN_RUNS = table_mod.PARALLEL_MIN_CIS = 0
spawned = []
real_pool = par.ProcessPoolExecutor
par.ProcessPoolExecutor = lambda *a, **k: spawned.append(1) or real_pool(*a, **k)
r = render_leaderboard([sys.argv[1]], sys.argv[2], n_resamples=200, use_cache=False)
print(len(spawned), r.collection.parsed, r.ci_computed)
"""


def test_worker_processes_render_the_same_files_as_one_process(runs: Path, tmp_path: Path, monkeypatch):
    """A cold render of many runs parses records and computes per-run CIs and row intervals in
    forked workers (bench.leaderboard.parallel); forced on for a small store, every file must be
    the same bytes as the render in one process. The parallel render runs in a fresh interpreter:
    this one may hold other threads (tqdm's monitor), beside which the pool is not forked."""
    import subprocess
    import sys

    for s in range(3, 6):
        make_run(runs, "fracatlas_binary", "vgg16", s, skill=0.3, n_images=N)
    monkeypatch.setenv("BENCH_WORKERS", "1")
    one = render_leaderboard([runs], tmp_path / "one", n_resamples=200, use_cache=False)
    env = {**__import__("os").environ, "BENCH_WORKERS": "2"}
    p = subprocess.run([sys.executable, "-c", _PARALLEL_RENDER, str(runs), str(tmp_path / "two")],
                       capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    spawned, parsed, computed = map(int, p.stdout.split()[-3:])
    if len(__import__("os").sched_getaffinity(0)) > 1:  # one core: the pool is never used
        assert spawned >= 3  # records, per-run CIs and row intervals went through workers
    assert one.collection.parsed == parsed == 9 and one.ci_computed == computed == 9
    a, b = _tree(tmp_path / "one"), _tree(tmp_path / "two")
    assert a.keys() == b.keys() and [k for k in a if a[k] != b[k]] == []


def test_ragged_or_non_numeric_predictions_name_the_file_and_line(runs: Path, tmp_path: Path):
    ragged = make_run(runs, "fracatlas_binary", "ragged", 0, n_images=N)
    lines = (ragged / "predictions.csv").read_text().splitlines()
    lines[3] += ",extra"
    (ragged / "predictions.csv").write_text("\n".join(lines) + "\n")
    blank = make_run(runs, "fracatlas_binary", "blanklines", 0, n_images=N)
    (blank / "predictions.csv").write_text((blank / "predictions.csv").read_text().replace("\n", "\n\n", 5))
    res = render_leaderboard([runs], tmp_path / "lb", n_resamples=200)
    probs = {Path(p["path"]).name.rsplit("-", 1)[0]: p["reason"] for p in res.problems}
    assert "predictions.csv: unreadable CSV (line 4 has" in probs[ragged.name]
    assert blank.name not in probs  # blank lines are skipped, as pandas does
    csv = pd.read_csv(tmp_path / "lb" / "fracatlas_binary.csv").set_index("model")
    assert csv.loc["blanklines", "ref_ci_auroc_low"] > 0 and np.isnan(csv.loc["ragged", "ref_ci_auroc_low"])


def test_run_page_localisation_shows_n_and_the_chance_baseline(tmp_path: Path):
    """bench-explain records the boxes' area share (a uniform map's energy, a random point's
    pointing game); the run page prints it beside the scores, and "—" for an older record."""
    root = tmp_path / "runs"
    explain = {"version": 1, "methods": ["eigencam"], "layers": ["layer3", "layer4"], "target": "pred", "n_images": 12,
               "summary": {"eigencam": {"pointing_game": 0.5, "energy": 0.041, "iou": 0.02, "n": 12, "final_layer": "layer4"}},
               "localisation": {"n_images": 12, "iou_threshold": 0.5, "iou_top_percent": None, "pointing_margin": 0.0,
                                "chance": {"energy": 0.00734, "pointing_game": 0.0091},
                                "degenerate_maps": {"eigencam": 1}}}
    new = make_run(root, "fracatlas_binary", "resnet18", 0, n_images=N, explain=explain)
    old_explain = json.loads(json.dumps(explain))
    del old_explain["localisation"]["chance"]
    old = make_run(root, "fracatlas_binary", "vgg16", 0, n_images=N, explain=old_explain)
    out = tmp_path / "lb"
    render_leaderboard([root], out, n_resamples=200)

    def loc_rows(run: Path) -> list[str]:
        (page,) = [p for p in (out / "runs").glob("*.html") if p.name.startswith(run.name.split("__")[1], len("fracatlas_binary__"))]
        html = page.read_text()
        section = html[html.index("<h2>Localisation"):]
        return re.findall(r"<tr><th scope=\"row\">(.*?)</tr>", section[: section.index("</table>")])

    (row,) = loc_rows(new)
    cells = re.findall(r"<td[^>]*>(.*?)</td>", row)
    assert cells[:5] == ["layer4", "12", "0.500", "0.041", "0.020"] and cells[5] == "energy 0.0073, pointing 0.0091"
    assert "1" in cells[6]  # the degenerate map is counted
    (row,) = loc_rows(old)
    assert re.findall(r"<td[^>]*>(.*?)</td>", row)[5] == "—"


def _stdlib_columns(text: str) -> dict[str, list[str]]:
    """The reference parse: the stdlib csv reader, blank lines skipped (as pandas does)."""
    import csv
    import io

    rows = [r for r in csv.reader(io.StringIO(text, newline="")) if r]
    return {h.strip(): [r[i] for r in rows[1:]] for i, h in enumerate(rows[0])}


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_prediction_csv_fast_split_parses_as_the_stdlib_reader(tmp_path: Path, newline: str):
    """Files without quotes are split on commas (fast path); quoted fields go to the csv reader."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from bench.leaderboard.collect import _read_columns

    field = st.text(alphabet=st.sampled_from(list('ab1.,"_ -')), max_size=6)

    @settings(max_examples=150, deadline=None)
    @given(st.lists(st.lists(field, min_size=3, max_size=3), min_size=1, max_size=6), st.booleans())
    def check(rows, blank):
        import csv
        import io

        buf = io.StringIO(newline="")
        csv.writer(buf, lineterminator=newline).writerows([["image_id", "label", "pred"], *rows])
        text = buf.getvalue() + (newline if blank else "")
        p = tmp_path / "predictions.csv"
        p.write_bytes(text.encode())
        assert _read_columns(p, "x") == _stdlib_columns(text)

    check()


def test_worker_pool_is_not_forked_beside_other_threads(monkeypatch):
    """bench-train renders the leaderboard at the end of a sweep with W&B or progress threads
    alive: forking then could copy a held lock, so the work runs in the process (same results)."""
    import threading

    import bench.leaderboard.parallel as par

    monkeypatch.setenv("BENCH_WORKERS", "2")
    spawned = []
    monkeypatch.setattr(par, "ProcessPoolExecutor", lambda *a, **k: spawned.append(1))
    stop = threading.Event()
    t = threading.Thread(target=stop.wait)
    t.start()
    try:
        assert par.pmap(abs, [-1, -2, 3]) == [1, 2, 3]
    finally:
        stop.set()
        t.join()
    assert spawned == []


def test_a_new_harness_version_rewrites_the_kept_pages(runs: Path, tmp_path: Path, monkeypatch):
    """Run and model pages are kept between renders when their inputs are unchanged; the harness
    version every page prints is one of those inputs."""
    import bench

    out = tmp_path / "lb"
    render_leaderboard([runs], out, n_resamples=200)
    pages = sorted(out.glob("runs/*.html")) + sorted(out.glob("models/**/*.html"))
    assert pages and all(bench.__version__ in p.read_text() for p in pages)
    monkeypatch.setattr(bench, "__version__", "99.0.0")
    render_leaderboard([runs], out, n_resamples=200)
    assert [p for p in pages if "99.0.0" not in p.read_text()] == []
