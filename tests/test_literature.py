"""Published rows in the columns whose definition they share, and only beside real-data tasks."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from bench.leaderboard.literature import literature_for, literature_metric_columns, literature_table

SEEDS = Path(__file__).resolve().parents[2] / "shared" / "seeds"


def test_table_ix_a_is_balanced_accuracy_and_equals_macro_recall():
    region = literature_for("fracatlas", "multiclass").set_index("model")
    assert len(region) == 24
    assert region["accuracy"].isna().all()  # macro "A" is not plain accuracy
    assert region.loc["YOLOv8s", "balanced_accuracy"] == pytest.approx(0.96)
    # the reason for the column: in Table IX, A equals R in all 24 rows
    assert (region["balanced_accuracy"] == region["recall"]).all()
    binary = literature_for("fracatlas", "binary").set_index("model")
    assert binary.loc["YOLOv8m", "accuracy"] == pytest.approx(0.83) and binary["balanced_accuracy"].isna().all()


def test_every_published_row_is_image_level_and_goes_to_image_level_columns():
    lit = literature_table()
    assert set(lit["level"]) == {"image"}
    mura = literature_for("mura", "binary")
    cols = literature_metric_columns(mura)
    assert not [c for c in cols.columns if c.startswith("test_study_")]
    tuned = cols[mura["model"] == "ResNet-101 (balanced + tuned)"].iloc[0]
    assert (tuned["test_accuracy_mean"], tuned["test_recall_mean"], tuned["test_specificity_mean"],
            tuned["test_auroc_mean"]) == pytest.approx((0.797, 0.425, 0.940, 0.7512))


def test_no_literature_rows_for_generated_data():
    assert literature_for("fracatlas", "binary", generated=True).empty
    assert literature_for("mura", "binary", generated=True).empty


@pytest.mark.skipif(not SEEDS.is_dir(), reason="seed papers not found beside the checkout")
def test_transcribed_values_are_in_the_papers_tables():
    text = (next(SEEDS.glob("002_*.txt"))).read_text()
    for row in literature_for("fracatlas", "multiclass").itertuples():
        line = f"{row.model}\t{row.balanced_accuracy:.2f}\t{row.precision:.2f}\t{row.recall:.2f}\t{row.f1:.2f}"
        assert line in text, line


def _render(tmp_path: Path, *runs) -> Path:
    from bench.leaderboard import render_leaderboard
    from bench.testing.synthetic import make_run

    for task, model, extra in runs:
        make_run(tmp_path / "runs", task, model, 0, n_images=120, extra=extra)
    out = tmp_path / "lb"
    render_leaderboard([tmp_path / "runs"], out, n_resamples=100, site=False, ci_scope="none")
    return out


def _csv_rows(out: Path, task: str) -> pd.DataFrame:
    (path,) = [p for p in out.rglob(f"{task}.csv")]
    csv = pd.read_csv(path)
    return csv[csv["source"] != "this benchmark"].set_index("model")


def test_literature_values_read_back_from_the_rendered_csv_in_the_right_columns(tmp_path):
    out = _render(tmp_path, ("mura_hand", "resnet101", None), ("fracatlas_region", "resnet50", None))
    mura = _csv_rows(out, "mura_hand")
    tuned = mura.loc["ResNet-101 (balanced + tuned)"]
    assert tuned["test_accuracy_mean"] == pytest.approx(0.797)
    assert tuned["test_auroc_mean"] == pytest.approx(0.7512)
    for col in [c for c in mura.columns if c.startswith("test_study_")]:
        assert mura[col].isna().all(), col  # image-level numbers never in study-level columns
    region = _csv_rows(out, "fracatlas_region")
    assert region.loc["YOLOv8s", "test_balanced_accuracy_mean"] == pytest.approx(0.96)
    assert "test_accuracy_mean" not in region.columns or math.isnan(region.loc["YOLOv8s", "test_accuracy_mean"])
