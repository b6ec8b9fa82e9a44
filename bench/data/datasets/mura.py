"""MURA v1.1 (one body part, normal vs abnormal studies; numbers only, never its images). The loader
is ``bench/data/mura.py``; the official split puts MURA's valid set as the test set."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from bench.data.mura import load_mura
from bench.data.registry import DatasetSource, LoadedDataset, LoadRequest, register_dataset
from bench.testing import fixtures


@register_dataset("mura")
class Mura(DatasetSource):
    tasks = ("abnormal", "binary")
    extra_columns = ("study_id", "patient_id", "official_split")
    default_split = "official"
    study_level = True
    fixture_size = "patients"
    fixture_default_n = 60
    layout_hint = "MURA-v1.1/ or the folder that contains it"

    def load(self, request: LoadRequest) -> LoadedDataset:
        table, info = load_mura(request.root, body_part=request.options.get("body_part", "XR_HAND"),
                                symlinks=request.symlinks)
        table["group"] = table["patient_id"].astype(object)  # a patient's images stay on one side of a split
        return LoadedDataset(table, info, [])

    def label_files(self, root: Path, table: pd.DataFrame) -> list[str]:
        mura = root / "MURA-v1.1"
        return [str(mura / f"{s}_{kind}.csv") for s in ("train", "valid") for kind in ("image_paths", "labeled_studies")]

    def make_fixture(self, out: Path, n: int | None = None, seed: int = 0, bad_files: bool = True) -> dict:
        return fixtures.make_mura(out, n_patients=n or self.fixture_default_n, seed=seed, bad_files=bad_files)
