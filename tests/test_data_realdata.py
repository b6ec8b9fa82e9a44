"""The real FracAtlas copy in ../shared (skipped with a reason when absent)."""

from __future__ import annotations

import numpy as np
import pytest

from bench.data.cache import build_cache
from bench.data.fracatlas import duplicate_groups, load_fracatlas

pytestmark = pytest.mark.realdata

# FIELD_NOTES / the copy's README: region x (fractured, non-fractured), folder labels.
REGION_COUNTS = {"hand": (379, 902), "leg": (212, 1912), "mixed": (106, 292), "hip": (10, 169), "shoulder": (10, 91)}


def test_real_fracatlas_counts_conflict_duplicates(fracatlas_root):
    table, info = load_fracatlas(fracatlas_root)
    assert len(table) == 4083
    assert table["label"].value_counts().to_dict() == {0: 3366, 1: 717}
    assert info["label_conflicts"] == [{"image_id": "IMG0003298.jpg", "folder": 1, "csv": 0}]
    assert info["images_not_in_csv"] == []
    csv_table, _ = load_fracatlas(fracatlas_root, label_source="csv")
    assert csv_table["label"].value_counts().to_dict() == {0: 3367, 1: 716}
    for region, (frac, non) in REGION_COUNTS.items():
        part = table[table["region"] == region]
        assert (int(part["label"].sum()), int((part["label"] == 0).sum())) == (frac, non), region
    assert table.set_index("image_id").loc["IMG0000019.jpg", "boxes"] == [(0.5985, 0.3482, 0.1186, 0.0512)]
    assert int(table["boxes"].map(len).sum()) == 922  # YOLO boxes = COCO instances
    _, dups = duplicate_groups(table)
    assert len(dups) == 12 and sum(len(g) for g in dups) == 27
    assert ["IMG0000003.jpg", "IMG0000005.jpg", "IMG0002291.jpg", "IMG0002293.jpg"] in dups


def test_real_fracatlas_truncated_jpegs(fracatlas_root, tmp_path):
    # One strict decode of every image (about 2-5 s on 2 cores), at a tiny cache size.
    table, _ = load_fracatlas(fracatlas_root)
    paths = table["path"].tolist()
    lenient = build_cache(paths, tmp_path / "cache", fracatlas_root, 16, truncated="load")
    assert len(lenient.truncated) == 59 and lenient.unreadable == []
    assert lenient.images.shape == (4083, 16, 16) and lenient.images.dtype == np.uint8
    # policy skip leaves exactly those out (checked on them plus 41 intact files)
    intact = [p for p in paths if p not in set(lenient.truncated)][:41]
    res = build_cache(lenient.truncated + intact, tmp_path / "cache", fracatlas_root, 16, truncated="skip")
    assert sorted(res.skipped) == sorted(lenient.truncated) and int((res.rows >= 0).sum()) == 41


def test_real_fracatlas_datamodule_smoke(fracatlas_root, tmp_path):
    from bench.data import FractureDataModule

    dm = FractureDataModule(dataset="fracatlas", root=str(fracatlas_root), task="region", limit_per_class=40,
                            image_size=32, cache_dir=str(tmp_path / "cache"), batch_size=16)
    dm.setup()
    assert sorted(dm.table["label"].value_counts().tolist()) == [40] * 5
    x, y, rows = next(iter(dm.train_dataloader()))
    assert x.shape == (16, 3, 32, 32) and dm.report["leakage"]["ok"]


def test_real_fracatlas_fingerprint_is_remembered_and_selection_dependent(fracatlas_root, tmp_path):
    from bench.data import FractureDataModule

    def dm(**kw):
        return FractureDataModule(dataset="fracatlas", root=str(fracatlas_root), image_size=16,
                                  cache_dir=str(tmp_path / "cache"), **kw)

    cold = dm()
    digest = cold.compute_data_fingerprint()
    assert cold.fingerprint.n_files == 4083 + 1 + 4083  # images, dataset.csv, one YOLO file per image
    assert cold.fingerprint.hashed_now == 4083 + 1  # the images were hashed by the duplicate check
    warm = dm()
    assert warm.compute_data_fingerprint() == digest and warm.fingerprint.hashed_now == 0
    assert warm.fingerprint.seconds < cold.fingerprint.seconds
    limited = dm(limit_per_class=50)
    assert limited.compute_data_fingerprint() != digest and limited.fingerprint.n_files == 100 + 1 + 100
    assert not (tmp_path / "cache" / "decoded").exists()  # fingerprinting decodes nothing
