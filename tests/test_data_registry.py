"""The dataset registry: a dataset is one module (a registered DatasetSource) + one YAML, and the
datamodule asks the registry instead of branching on dataset names."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf
from PIL import Image

from bench.data import registry
from bench.data.registry import DatasetSource, LoadedDataset, LoadRequest, get_dataset, register_dataset
from bench.errors import BenchError

PACKAGE = Path(__file__).resolve().parents[1] / "bench"
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def test_the_builtin_datasets_are_registered_with_their_own_rules():
    assert registry.dataset_names() == ["fracatlas", "mura"]
    fracatlas, mura = get_dataset("fracatlas"), get_dataset("mura")
    assert (fracatlas.default_task, fracatlas.default_split, fracatlas.study_level) == ("binary", "ratio", False)
    assert (mura.default_task, mura.default_split, mura.study_level) == ("abnormal", "official", True)
    assert "boxes" in fracatlas.extra_columns and "patient_id" in mura.extra_columns


def test_an_unknown_dataset_or_task_is_one_line_naming_the_choices():
    with pytest.raises(BenchError, match=r"data.dataset='chexpert': use fracatlas or mura .*bench/data/datasets/"):
        get_dataset("chexpert")
    with pytest.raises(BenchError, match=r"data.task='region' is not a mura task: use abnormal or binary"):
        get_dataset("mura").check_task("region")


def _no_dataset_name_compared(path: Path) -> list[str]:
    """`x == "fracatlas"`-style branches (a Compare against a registered dataset's name)."""
    names = set(registry.dataset_names())
    hits = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Compare):
            for c in [node.left, *node.comparators]:
                if isinstance(c, ast.Constant) and c.value in names:
                    hits.append(f"{path.name}:{node.lineno} compares with {c.value!r}")
    return hits


@pytest.mark.parametrize("rel", ["data/datamodule.py", "data/fingerprint.py", "data/registry.py", "spec.py",
                                 "evaluation/results.py"])
def test_no_dataset_names_in_if_else_outside_the_dataset_modules(rel):
    assert _no_dataset_name_compared(PACKAGE / rel) == []


class FolderPerClass(DatasetSource):
    """A dataset a user might add: ``<root>/<class>/*.png``, one image a patient (the test's module)."""

    tasks = ("binary",)
    extra_columns = ("source_folder",)

    def load(self, request: LoadRequest) -> LoadedDataset:
        classes = list(request.options["classes"])
        rows = [{"image_id": p.name, "path": str(p), "label": i, "source_folder": c}
                for i, c in enumerate(classes) for p in sorted((request.root / c).glob("*.png"))]
        table = pd.DataFrame(rows)
        table["group"] = table["image_id"].astype(object)
        return LoadedDataset(table, {"dataset": self.name, "root": str(request.root), "task": request.task,
                                     "classes": classes, "positive_index": 1}, [])

    def label_files(self, root: Path, table: pd.DataFrame) -> list[str]:
        return [str(root / "README.txt")]


def _write_folders(root: Path, n: int = 30) -> None:
    rng = np.random.default_rng(0)
    for c in ("healthy", "broken"):
        (root / c).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(rng.integers(0, 255, (40, 36), dtype=np.uint8)).save(root / c / f"{c}_{i:02d}.png")
    (root / "README.txt").write_text("labels are the folder names\n")


def test_a_new_dataset_is_one_registered_class_and_one_yaml(tmp_path, monkeypatch):
    monkeypatch.setitem(registry._REGISTRY, "folders", FolderPerClass())
    monkeypatch.setattr(FolderPerClass, "name", "folders")
    root = tmp_path / "folders"
    _write_folders(root)
    # conf/data/folders.yaml, as a user would write it: its own keys go under options
    cfg = OmegaConf.create({"_target_": "bench.data.FractureDataModule", "name": "folders_binary", "dataset": "folders",
                            "root": str(root), "task": "binary", "options": {"classes": ["healthy", "broken"]},
                            "split": {"ratios": [0.6, 0.2, 0.2]}, "image_size": 32, "batch_size": 8, "seed": 0,
                            "cache_dir": str(tmp_path / "cache"), "mean": list(MEAN), "std": list(STD)})
    dm = instantiate(cfg)
    dm.setup()
    assert dm.classes == ["healthy", "broken"] and dm.positive_index == 1 and dm.study_level is False
    assert list(dm.table.columns) == ["image_id", "path", "label", "split", "group", "source_folder", "truncated"]
    assert (dm.table["source_folder"] == np.array(["healthy", "broken"])[dm.table["label"]]).all()
    counts = dm.table["split"].value_counts().to_dict()
    assert counts == {"train": 36, "val": 12, "test": 12}  # the common ratio split, 60 images
    assert dm.report["dataset"] == "folders" and dm.report["fingerprint"]["n_files"] == 61  # images + README.txt
    x, y, row = next(iter(dm.dataloader("val", shuffle=False)))
    assert x.shape == (8, 3, 32, 32) and y.tolist() == dm.table["label"].to_numpy()[row.numpy()].tolist()
    # a generate_if_missing config of a dataset without a fixture generator says so
    with pytest.raises(BenchError, match="folders: has no fixture generator"):
        registry.fixture_into("folders", tmp_path / "missing")


def test_registering_a_name_twice_is_refused():
    with pytest.raises(ValueError, match="'fracatlas' is registered twice"):
        register_dataset("fracatlas")(type("Other", (DatasetSource,), {}))
