"""FracAtlas (CC BY 4.0, Abedeen et al., Scientific Data 10, 521, 2023): fractured vs not, or the
body region. The loader is ``bench/data/fracatlas.py`` (detection and the fixtures use it too)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from bench.data.fingerprint import file_digests
from bench.data.fracatlas import annotation_path, duplicate_groups, load_fracatlas
from bench.data.registry import DatasetSource, LoadedDataset, LoadRequest, register_dataset
from bench.testing import fixtures


@register_dataset("fracatlas")
class FracAtlas(DatasetSource):
    tasks = ("binary", "region")
    extra_columns = ("region", "boxes", "fractured_folder", "fractured_csv")
    layout_hint = "the FracAtlas folder holding dataset.csv and images/"

    def load(self, request: LoadRequest) -> LoadedDataset:
        table, info = load_fracatlas(request.root, task=request.task,
                                     label_source=request.options.get("label_source", "folder"),
                                     symlinks=request.symlinks)
        # One hashing pass, remembered: the duplicate check and the fingerprint share it.
        digests, _, _ = file_digests(table["path"].tolist(), request.cache_dir, info["root"], request.decode_workers)
        table["group"], dups = duplicate_groups(table, digests=digests)
        return LoadedDataset(table, info, dups)

    def label_files(self, root: Path, table: pd.DataFrame) -> list[str]:
        return [str(root / "dataset.csv")] + [str(a) for a in (annotation_path(root, i) for i in table["image_id"])
                                              if a.is_file()]

    def make_fixture(self, out: Path, n: int | None = None, seed: int = 0, bad_files: bool = True) -> dict:
        return fixtures.make_fracatlas(out, n=n or self.fixture_default_n, seed=seed, bad_files=bad_files)
