"""The dataset registry: one module in ``bench/data/datasets/`` and one ``conf/data/*.yaml`` a dataset.

A dataset module defines a :class:`DatasetSource` subclass under ``@register_dataset("<name>")``
(the value of ``data.dataset``): its tasks, its loader (the image table), the label files its
fingerprint covers, its extra table columns, its default split, whether metrics are per study, and
its tiny fixture generator. The datamodule, ``bench-data`` and ``bench-check`` ask the registry,
so no dataset name stands in an if/else outside its own module (detectron2's ``DatasetCatalog``
and timm's ``register_model`` work the same way; neither fits a table of images + a data report).
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar

import pandas as pd

from bench.errors import BenchError

_REGISTRY: dict[str, "DatasetSource"] = {}
_DATASETS_PACKAGE = "bench.data.datasets"


@dataclass(frozen=True)
class LoadRequest:
    """What a loader gets from the config: the root, the task and the dataset's own options."""

    root: Path
    task: str
    symlinks: str = "refuse"
    cache_dir: Path | None = None
    decode_workers: int | None = None
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class LoadedDataset:
    """A loader's answer: ``table`` (image_id, path, label, group + the extra columns), ``info``
    (classes, positive_index, root, ... for the data report) and the duplicate groups found."""

    table: pd.DataFrame
    info: dict
    duplicate_groups: list[list[str]] = field(default_factory=list)


class DatasetSource:
    """One dataset. Subclass it in ``bench/data/datasets/<name>.py`` under ``@register_dataset``."""

    name: ClassVar[str] = ""
    tasks: ClassVar[tuple[str, ...]] = ()                # the first is the default (bench-check)
    extra_columns: ClassVar[tuple[str, ...]] = ()        # kept in dm.table after the common ones
    default_split: ClassVar[str] = "ratio"               # data.split.method when the config gives none
    study_level: ClassVar[bool] = False                  # metrics also aggregated per study
    fixture_size: ClassVar[str] = "images"               # what bench-data --n counts
    layout_hint: ClassVar[str] = "the dataset's folder"  # what data.root / bench-check --root must be
    fixture_default_n: ClassVar[int] = 200

    def load(self, request: LoadRequest) -> LoadedDataset:
        raise NotImplementedError

    def label_files(self, root: Path, table: pd.DataFrame) -> list[str]:
        """Files besides the images that a run reads (CSVs, annotations): the fingerprint covers them."""
        return []

    def make_fixture(self, out: Path, n: int | None = None, seed: int = 0, bad_files: bool = True) -> dict:
        """Write a tiny dataset in this dataset's layout at ``out`` (tests, quickstart, bench-data)."""
        raise BenchError(f"data.dataset={self.name}: has no fixture generator: set data.generate_if_missing=false")

    @property
    def default_task(self) -> str:
        return self.tasks[0]

    def check_task(self, task: str) -> None:
        if task not in self.tasks:
            raise BenchError(f"data.task={task!r} is not a {self.name} task: use {' or '.join(self.tasks)}")


def register_dataset(name: str) -> Callable[[type[DatasetSource]], type[DatasetSource]]:
    """Class decorator: ``@register_dataset("fracatlas")`` makes ``data.dataset=fracatlas`` use it."""

    def wrap(cls: type[DatasetSource]) -> type[DatasetSource]:
        if name in _REGISTRY and type(_REGISTRY[name]) is not cls:
            raise ValueError(f"dataset {name!r} is registered twice ({type(_REGISTRY[name]).__module__}, {cls.__module__})")
        cls.name = name
        _REGISTRY[name] = cls()
        return cls

    return wrap


def _import_builtin() -> None:
    """Import every module of ``bench/data/datasets/``: each registers its dataset."""
    package = importlib.import_module(_DATASETS_PACKAGE)
    for mod in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"{_DATASETS_PACKAGE}.{mod.name}")


def dataset_names() -> list[str]:
    """Every registered dataset (the choices of data.dataset, bench-data and bench-check)."""
    _import_builtin()
    return sorted(_REGISTRY)


def get_dataset(name: str) -> DatasetSource:
    """The registered dataset ``name``; a one-line error listing the registered ones otherwise."""
    if name not in _REGISTRY:
        _import_builtin()
    if name not in _REGISTRY:
        raise BenchError(f"data.dataset={name!r}: use {' or '.join(sorted(_REGISTRY))} "
                         f"(a new dataset is a module in bench/data/datasets/ and a conf/data/*.yaml)")
    return _REGISTRY[name]


def fixture_into(dataset: str, root: Path, seed: int = 0) -> None:
    """Write ``dataset``'s tiny fixture at ``root`` atomically (temp folder + rename): the
    ``generate_if_missing`` configs (tiny_*) and concurrent runs of a sweep share one copy."""
    source = get_dataset(dataset)
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.", dir=root.parent))
    try:
        source.make_fixture(tmp / "data", seed=seed, bad_files=True)
        try:
            os.rename(tmp / "data", root)
        except OSError:
            if not root.exists():  # another process won the race otherwise
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
