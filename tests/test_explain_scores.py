"""Localisation scores with known answers, layer resolution, case selection, rating sheets."""

from __future__ import annotations

import csv
import json

import pandas as pd
import pytest
import torch

from bench.errors import BenchError
from bench.explain.cases import select_cases
from bench.explain.layers import resolve_layers
from bench.explain.localisation import boxes_mask, energy, iou, localisation_scores, pointing_game
from bench.explain.rating import aggregate_ratings, export_rating_sheet, import_ratings, read_ratings
from bench.record import read_record, write_record

# 10 x 10 map; box covering pixel columns 2..4 and rows 6..7 (centres 0.25..0.45, 0.65..0.75).
BOX = (0.35, 0.70, 0.30, 0.20)


def test_boxes_mask_is_exact():
    m = boxes_mask([BOX], 10, 10)
    assert m.sum() == 6 and m[6:8, 2:5].all()
    two = boxes_mask([BOX, (0.05, 0.05, 0.1, 0.1)], 10, 10)
    assert two.sum() == 7 and two[0, 0]
    widened = boxes_mask([BOX], 10, 10, margin=0.1)  # one more pixel on every side
    assert widened.sum() == 5 * 4 and widened[5:9, 1:6].all()


def test_pointing_game_hit_miss_margin_and_constant_map():
    mask = boxes_mask([BOX], 10, 10)
    maps = torch.zeros(3, 10, 10)
    maps[0, 7, 3] = 1.0  # max inside
    maps[1, 0, 9] = 1.0  # max far outside
    maps[1, 7, 3] = 0.9
    maps[2, 5, 3] = 1.0  # one row above the box
    got = pointing_game(maps, mask).tolist()
    assert got == [True, False, False]
    assert pointing_game(maps[2], boxes_mask([BOX], 10, 10, margin=0.1)).item() is True
    assert pointing_game(torch.zeros(10, 10), mask).item() is False
    assert pointing_game(torch.full((10, 10), 0.3), mask).item() is False


def test_energy_is_the_exact_fraction():
    mask = boxes_mask([BOX], 10, 10)
    m = torch.zeros(10, 10)
    m[6, 2], m[7, 4] = 3.0, 1.0   # inside: 4
    m[0, 0], m[9, 9] = 2.0, 6.0   # outside: 8
    assert energy(m, mask).item() == pytest.approx(4 / 12, abs=1e-12)
    assert energy(torch.ones(10, 10), mask).item() == pytest.approx(6 / 100)
    assert energy(torch.zeros(10, 10), mask).item() == 0.0


def test_iou_threshold_and_top_percent():
    mask = boxes_mask([BOX], 10, 10)  # 6 pixels
    m = torch.zeros(10, 10)
    m[6, 2:5] = 1.0    # 3 box pixels on
    m[0, 0:3] = 0.6    # 3 outside pixels on at threshold 0.5
    m[9, 9] = 0.4      # below 0.5 * max
    assert iou(m, mask).item() == pytest.approx(3 / 9)
    assert iou(m, mask, threshold=0.7).item() == pytest.approx(3 / 6)
    assert iou(m, mask, top_percent=3).item() == pytest.approx(3 / 6)     # top 3 px = the 1.0 row
    assert iou(m, mask, top_percent=6).item() == pytest.approx(3 / 9)     # + the three 0.6
    assert iou(torch.zeros(10, 10), mask).item() == 0.0
    perfect = mask.float()
    s = localisation_scores(perfect[None], mask)
    assert s["iou"][0] == 1.0 and s["energy"][0] == 1.0 and s["pointing_game"][0] and not s["degenerate"][0]
    with pytest.raises(BenchError):
        iou(m, mask, top_percent=0)


class _Toy(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b, self.c = torch.nn.Conv2d(3, 4, 3), torch.nn.Conv2d(4, 4, 3), torch.nn.Conv2d(4, 4, 3)

    def forward(self, x):
        return self.c(self.b(self.a(x))).mean((2, 3))

    def cam_layers(self):
        return [("backbone.a", self.a), ("backbone.b", self.b), ("backbone.c", self.c)]


def test_resolve_layers_override_order_and_unknown_name():
    m = _Toy()
    assert [n for n, _ in resolve_layers(m)] == ["backbone.a", "backbone.b", "backbone.c"]
    # User order does not matter: execution order is kept; the prefix is optional.
    assert [n for n, _ in resolve_layers(m, ["c", "backbone.a"])] == ["backbone.a", "backbone.c"]
    with pytest.raises(BenchError, match="unknown layer 'd'.*backbone.a, backbone.b, backbone.c"):
        resolve_layers(m, ["a", "d"])


def _preds():
    return pd.DataFrame({
        "image_id": ["a", "b", "c", "d", "e", "f", "v"],
        "split": ["test"] * 6 + ["val"],
        "label": [1, 1, 0, 0, 1, 0, 1],
        "pred": [1, 0, 1, 0, 1, 0, 1],
        "prob_neg": [0.1, 0.6, 0.3, 0.95, 0.4, 0.55, 0.0],
        "prob_pos": [0.9, 0.4, 0.7, 0.05, 0.6, 0.45, 1.0],
    })


def test_select_cases_from_predictions():
    cases = select_cases(_preds(), 1, ["neg", "pos"])
    assert cases == {"tp": "a", "fn": "b", "fp": "c", "tn": "d", "most_confident": "d", "least_confident": "f"}
    with pytest.raises(BenchError, match="missing columns"):
        select_cases(_preds().drop(columns="prob_pos"), 1, ["neg", "pos"])


@pytest.fixture
def rated_run(tmp_path):
    run = tmp_path / "run"
    (run / "explain").mkdir(parents=True)
    write_record(run, {"run_id": "r", "task": {"name": "t"}, "model": {"name": "m"},
                       "explain": {"methods": ["gradcampp", "eigencam"]}})
    index = {"methods": ["gradcampp", "eigencam"], "layers": ["l1", "l2"],
             "cases": [{"image_id": i, "cases": [c], "label": 1, "pred": 1, "grid": f"grids/{i}.png",
                        "overlays": {m: f"overlays/{i}__{m}.png" for m in ("gradcampp", "eigencam")}}
                       for i, c in (("img1", "tp"), ("img2", "fn"))]}
    (run / "explain" / "index.json").write_text(json.dumps(index))
    return run


def _fill(sheet, out, scores, rater="r1"):
    rows = list(csv.DictReader(sheet.open()))
    for row, s in zip(rows, scores):
        row.update(dict(zip(["anatomical_relevance", "fracture_site_relevance", "attention_concentration",
                             "clinical_interpretability"], [str(v) for v in s])), rater=rater)
    with out.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return out


def test_rating_sheet_round_trip(rated_run, tmp_path):
    sheet = export_rating_sheet(rated_run, tmp_path / "sheet.csv")
    rows = list(csv.DictReader(sheet.open()))
    assert [(r["image_id"], r["method"]) for r in rows] == [
        ("img1", "gradcampp"), ("img1", "eigencam"), ("img2", "gradcampp"), ("img2", "eigencam")]
    assert rows[0]["overlay"].endswith("overlays/img1__gradcampp.png") and rows[0]["anatomical_relevance"] == ""
    a = _fill(sheet, tmp_path / "a.csv", [(2, 2, 2, 2), (1, 1, 1, 1), (2, 2, 1, 1), (2, 1, 2, 1)], "r1")
    b = _fill(sheet, tmp_path / "b.csv", [(0, 0, 0, 0), (2, 2, 2, 1)], "r2")  # two rows rated, two blank
    summary = import_ratings(rated_run, [a, b])
    # Row means: r1 2, 1, 1.5, 1.5; r2 0, 1.75 -> overall 7.75 / 6; acceptable (>= 1.5): 4 of 6.
    assert summary["overall"]["n"] == 6
    assert summary["overall"]["overall_mean"] == pytest.approx(7.75 / 6, abs=1e-4)
    assert summary["overall"]["pct_acceptable"] == pytest.approx(100 * 4 / 6, abs=0.01)
    assert summary["per_method"]["gradcampp"]["criteria"]["anatomical_relevance"] == pytest.approx(4 / 3, abs=1e-4)
    assert summary["per_rater"]["r2"]["overall_mean"] == pytest.approx(0.875)
    assert summary["per_method_rater"]["eigencam"]["r2"]["n"] == 1
    assert read_record(rated_run)["explain"]["human_rating"]["overall"]["n"] == 6
    assert read_record(rated_run)["explain"]["methods"] == ["gradcampp", "eigencam"]  # rest kept


@pytest.mark.parametrize("bad, match", [
    ({"attention_concentration": "3"}, r"row 3, column attention_concentration: '3' is not a score"),
    ({"clinical_interpretability": ""}, r"row 3, column clinical_interpretability: empty"),
    ({"rater": ""}, r"row 3, column rater: empty"),
    ({"method": "scorecam"}, r"row 3, column method: unknown"),
    ({"image_id": "nope"}, r"row 3, column image_id: unknown"),
])
def test_bad_rating_names_file_row_and_column(rated_run, tmp_path, bad, match):
    sheet = export_rating_sheet(rated_run, tmp_path / "sheet.csv")
    out = _fill(sheet, tmp_path / "bad.csv", [(2, 2, 2, 2), (1, 1, 1, 1)])
    rows = list(csv.DictReader(out.open()))
    rows[1].update(bad)
    with out.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    with pytest.raises(BenchError, match=match) as e:
        import_ratings(rated_run, [out])
    assert "bad.csv" in str(e.value) and "\n" not in str(e.value)


def test_no_rated_rows_and_duplicate_rater(rated_run, tmp_path):
    sheet = export_rating_sheet(rated_run, tmp_path / "sheet.csv")
    with pytest.raises(BenchError, match="no rated rows"):
        aggregate_ratings(read_ratings([sheet]))
    a = _fill(sheet, tmp_path / "a.csv", [(2, 2, 2, 2)])
    with pytest.raises(BenchError, match="already rated"):
        read_ratings([a, a])
