"""FractureDataModule: a registered dataset -> cached uint8 images -> split -> balance -> loaders.

What differs between datasets (loader, tasks, default split, extra columns, fixture) comes from
its module in ``bench/data/datasets/`` through ``bench.data.registry``.

Per step the loader only indexes an in-memory uint8 array and runs the v2 transform: decoding
happens once, in the cache (``bench/data/cache.py``), shared by every epoch, run and seed.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Sequence

import lightning as L
import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from bench.data import balance as balance_mod
from bench.data import splits as splits_mod
from bench.data.cache import build_cache
from bench.data.decode import DEFAULT_MAX_IMAGE_PIXELS, check_max_image_pixels
from bench.data.registry import LoadRequest, fixture_into, get_dataset
from bench.data.selection import limit_and_fingerprint
from bench.data.symlinks import check_policy as check_symlink_policy
from bench.data.report import build_report
from bench.data.transforms import eval_transform, train_transform
from bench.errors import BenchError

DEFAULT_SPLIT = {"method": "ratio", "ratios": [0.72, 0.18, 0.10], "n_folds": 5, "fold": 0, "val_fraction": 0.1}
DEFAULT_BALANCE = {"policy": "none", "per_class": None, "class_weight": False, "augment_rows": "all"}


def _plain(obj: Any) -> Any:
    """DictConfig/ListConfig -> dict/list without importing omegaconf here."""
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)) or type(obj).__name__ == "ListConfig":
        return [_plain(v) for v in obj]
    return obj


class EpochSeededSampler(Sampler[int]):
    """Shuffle whose order is a function of (seed, epoch) alone. Lightning calls ``set_epoch``
    before every training epoch, so a run resumed at epoch k sees the batches an uninterrupted
    run would have seen (a generator seeded once per fit would replay epoch 0's order)."""

    def __init__(self, n: int, seed: int):
        self.n, self.seed, self.epoch = n, int(seed), 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        order = torch.randperm(self.n, generator=gen).tolist()
        # One augmentation seed per sample: its random transform is then a function of
        # (seed, epoch, position) alone, whatever the workers, prefetching or a resume do.
        seeds = torch.randint(0, 2**62, (self.n,), generator=gen).tolist()
        return iter(zip(order, seeds))


class CachedImageDataset(Dataset):
    """Item ``i`` -> (transform(image), label, table row) for ``rows[i]``; images stay uint8."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, rows: np.ndarray, transform,
                 plain_transform=None, augment_mask: np.ndarray | None = None):
        self.images = images
        self.labels = labels
        self.rows = np.asarray(rows, dtype=np.int64)
        self.transform = transform
        # data.balance.augment_rows=copies: item i is augmented only where augment_mask[i]
        self.plain_transform = plain_transform
        self.augment_mask = augment_mask

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, key: int | tuple[int, int]):
        i, seed = key if isinstance(key, tuple) else (key, None)
        r = int(self.rows[i])
        x = torch.from_numpy(self.images[r]).unsqueeze(0)
        if self.augment_mask is not None and not self.augment_mask[i]:
            return self.plain_transform(x), int(self.labels[r]), r
        if seed is None:
            return self.transform(x), int(self.labels[r]), r
        # Seed only the CPU generator the transforms draw from, and put its state back after:
        # torch.random.fork_rng does the same but cost ~30% of an augmented sample here.
        gen = torch.default_generator
        state = gen.get_state()
        gen.manual_seed(seed)
        try:
            return self.transform(x), int(self.labels[r]), r
        finally:
            gen.set_state(state)


class FractureDataModule(L.LightningDataModule):
    def __init__(
        self,
        dataset: str = "fracatlas",
        root: str | os.PathLike = "data/fracatlas",
        task: str = "binary",
        label_source: str = "folder",
        body_part: str = "XR_HAND",
        split: Mapping | None = None,
        split_file: str | os.PathLike | None = None,
        balance: Mapping | None = None,
        augment: str = "none",
        image_size: int = 224,
        batch_size: int = 32,
        num_workers: int = 0,
        seed: int = 0,
        cache_dir: str | os.PathLike = ".cache/fracture-bench",
        truncated: str = "load",
        mean: Sequence[float] = (0.485, 0.456, 0.406),
        std: Sequence[float] = (0.229, 0.224, 0.225),
        generate_if_missing: bool = False,
        limit_per_class: int | None = None,
        name: str | None = None,  # the task name of the config (run ids); not used here
        split_seed: int | None = None,
        pin_memory: bool = False,
        persistent_workers: bool | None = None,
        decode_workers: int | None = None,
        max_image_pixels: int | None = DEFAULT_MAX_IMAGE_PIXELS,
        symlinks: str = "refuse",
        options: Mapping | None = None,  # a registered dataset's own keys (data.options.*)
    ):
        super().__init__()
        self.source = get_dataset(dataset)
        self.source.check_task(task)
        self.dataset = dataset
        self.root = Path(os.path.expanduser(str(root)))
        self.task = task
        self.label_source = label_source
        self.body_part = body_part
        self.options = {"label_source": label_source, "body_part": body_part, **_plain(options or {})}
        self.split_cfg = {**DEFAULT_SPLIT, "method": self.source.default_split, **_plain(split or {})}
        self.split_file = split_file
        self.balance_cfg = {**DEFAULT_BALANCE, **_plain(balance or {})}
        self.augment = augment
        self.image_size = int(image_size)
        self.batch_size = int(batch_size)
        self.num_workers = int(num_workers)
        self.seed = int(seed)
        # The split has its own seed: seeds 0,1,2 of a sweep then train on the SAME test images.
        self.split_seed = self.seed if split_seed is None else int(split_seed)
        self.pin_memory = bool(pin_memory)
        self.persistent_workers = (self.num_workers > 0) if persistent_workers is None else bool(persistent_workers) and self.num_workers > 0
        self.cache_dir = Path(os.path.expanduser(str(cache_dir)))
        self.truncated = truncated
        self.mean = [float(v) for v in _plain(mean)]
        self.std = [float(v) for v in _plain(std)]
        self.generate_if_missing = bool(generate_if_missing)
        # The tiny_* configs point at a generated fixture (run records say so: data.generated).
        self.generated = self.generate_if_missing
        self.limit_per_class = None if limit_per_class in (None, "", 0) else int(limit_per_class)
        self.name = name
        self.decode_workers = decode_workers
        self.max_image_pixels = check_max_image_pixels(max_image_pixels)
        self.symlinks = check_symlink_policy(symlinks)
        self.data_fingerprint: str | None = None  # set by setup() / compute_data_fingerprint()
        self._selected = None
        self._ready = False
        # Fail early on a bad preset (cheap), before any decoding.
        train_transform(self.augment, self.mean, self.std)
        if self.balance_cfg["augment_rows"] not in balance_mod.AUGMENT_ROWS:
            raise BenchError(f"data.balance.augment_rows={self.balance_cfg['augment_rows']!r}: use all or copies (only the oversampled copies)")

    # ------------------------------------------------------------------ setup
    def prepare_data(self) -> None:
        if self.generate_if_missing and not self.root.exists():
            fixture_into(self.dataset, self.root, seed=0)

    def _require_every_class(self, table: pd.DataFrame, after: str) -> None:
        """A class the task needs with no image is an error now, not NaN metrics after training."""
        counts = table["label"].value_counts()
        empty = [c for i, c in enumerate(self.classes) if int(counts.get(i, 0)) == 0]
        if empty:
            raise BenchError(
                f"data.task={self.task}: class {empty[0]!r} has no images in {self.root}{after} "
                f"(classes: {', '.join(self.classes)}): the task needs every class; check the dataset or its selection"
            )

    def _select(self) -> tuple[pd.DataFrame, dict, list[list[str]], int]:
        """Load the table, apply the symlink policy and ``limit_per_class``; fingerprint the
        files that selection reads. No decoding. Returns (table, info, duplicate groups, excluded)."""
        if self._selected is not None:
            return self._selected
        if not self.root.exists():
            raise BenchError(
                f"data.root={self.root} does not exist: set paths.data_dir=DIR (the folder holding the dataset) "
                f"or data.root=DIR; data=tiny_fracatlas trains on a generated fixture"
            )
        loaded = self.source.load(LoadRequest(root=self.root, task=self.task, symlinks=self.symlinks,
                                              cache_dir=self.cache_dir, decode_workers=self.decode_workers,
                                              options=self.options))
        table, info, dups = loaded.table, loaded.info, loaded.duplicate_groups
        self.classes = list(info["classes"])
        self.num_classes = len(self.classes)
        self.positive_index = info["positive_index"] if self.num_classes == 2 else None
        self.study_level = self.source.study_level
        refused = len(info.get("symlinks_refused", []))
        self._require_every_class(table, f" (after {refused} symlink refusals)" if refused else "")

        n_before = len(table)
        table, self.fingerprint = limit_and_fingerprint(self.dataset, table, info, self.limit_per_class, self.cache_dir,
                                                        self.decode_workers)  # the same images for every seed
        excluded_by_limit = n_before - len(table)
        self.data_fingerprint = self.fingerprint.digest
        self._selected = (table, info, dups, excluded_by_limit)
        return self._selected

    def compute_data_fingerprint(self) -> str:
        """The dataset fingerprint without decoding anything (for a run id before ``setup``)."""
        self.prepare_data()
        self._select()
        return self.data_fingerprint

    def setup(self, stage: str | None = None) -> None:
        if self._ready:  # Lightning calls setup once per stage
            return
        self.prepare_data()
        table, info, dups, excluded_by_limit = self._select()
        table, cache, cache_rows, id_of, unreadable = self._decoded(table.copy())
        table, leakage = self._split(table)

        cols = ["image_id", "path", "label", "split", "group"]
        self.table = table[cols + list(self.source.extra_columns) + ["truncated"]].copy()
        self.split_hash = splits_mod.split_hash(self.table)

        # Cached images in RAM, in table order (row r of the table is image r).
        self._images = np.ascontiguousarray(cache.images[cache_rows])
        self._labels = self.table["label"].to_numpy(dtype=np.int64)
        self._balance()

        id_by_path = lambda paths: [id_of.get(p, p) for p in paths]  # noqa: E731
        # Duplicate groups as used: members dropped by limit_per_class or skip do not count.
        kept = set(self.table["image_id"])
        dups = [[i for i in g if i in kept] for g in dups]
        dups = [g for g in dups if len(g) > 1]
        self.report = build_report(
            self.table, self.classes, info,
            truncated=id_by_path(cache.truncated), skipped=id_by_path(cache.skipped), unreadable=unreadable,
            duplicate_groups=dups, leakage=leakage, excluded_by_limit=excluded_by_limit,
            truncated_policy=self.truncated,
        )
        self.report["split"] = {**self.split_cfg, "seed": self.split_seed, "file": str(self.split_file) if self.split_file else None,
                                "sha256": self.split_hash}
        self.report["balance"] = self._balance_report()
        self.report["cache"] = {"store": str(cache.store), "decoded_now": int(cache.n_decoded), "image_size": self.image_size}
        self.report["max_image_pixels"] = self.max_image_pixels
        self.report["fingerprint"] = self.fingerprint.as_report()
        self._train_tf = train_transform(self.augment, self.mean, self.std)
        self._eval_tf = eval_transform(self.mean, self.std)
        self._ready = True

    def _decoded(self, table: pd.DataFrame):
        """Decode into the cache (once per image and size); leave out unreadable and skipped
        files. Returns (table of usable rows with ``truncated``, cache, their cache rows, image id
        by resolved path, unreadable entries)."""
        cache = build_cache(table["path"].tolist(), self.cache_dir, self.root, self.image_size,
                            self.truncated, workers=self.decode_workers, max_image_pixels=self.max_image_pixels)
        id_of = dict(zip((str(Path(p).resolve()) for p in table["path"]), table["image_id"]))
        unreadable = [{"image_id": id_of.get(p, p), "reason": cache.reasons.get(p, "unreadable"), "error": msg}
                      for p, msg in cache.unreadable]
        if unreadable and self.truncated == "error":
            raise BenchError(unreadable[0]["error"])
        usable = cache.rows >= 0
        truncated_paths = set(cache.truncated)
        table["truncated"] = [str(Path(p).resolve()) in truncated_paths for p in table["path"]]
        cache_rows = cache.rows[usable]
        table = table.loc[usable].reset_index(drop=True)
        if table.empty:
            raise BenchError(f"{self.root}: no readable images left (see unreadable/skipped files): check the dataset")
        left_out = len(unreadable) + len(cache.skipped)
        self._require_every_class(table, f" after leaving out {left_out} unreadable/skipped files" if left_out else "")
        return table, cache, cache_rows, id_of, unreadable

    def _split(self, table: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
        """The split (from ``split_file`` or made by the config), checked: no group on two sides, no empty side."""
        if self.split_file:
            table = splits_mod.read_split(self.split_file, table)
        else:
            s = self.split_cfg
            table["split"] = splits_mod.make_split(table, method=s["method"], ratios=s.get("ratios"),
                                                   n_folds=s.get("n_folds", 5), fold=s.get("fold", 0),
                                                   val_fraction=s.get("val_fraction", 0.1), seed=self.split_seed)
        leakage = splits_mod.check_leakage(table)
        if not leakage["ok"]:
            bad = leakage.get("groups_across_splits") or leakage.get("patients_across_splits")
            raise BenchError(
                f"{self.split_file or 'split'}: group {bad[0]} (duplicate images or one patient) is in two splits: "
                f"regenerate the split file so every group is on one side"
            )
        for s in ("train", "val", "test"):
            if not (table["split"] == s).any():
                raise BenchError(f"split {s!r} is empty ({len(table)} images): use more images or other split ratios")
        return table, leakage

    def _balance(self) -> None:
        """The training rows after ``data.balance`` (copies flagged) and the class weights."""
        train_rows = np.flatnonzero(self.table["split"].to_numpy() == "train")
        b = self.balance_cfg
        plan = balance_mod.balance_plan(
            self._labels[train_rows], self.num_classes, policy=b["policy"], per_class=b.get("per_class"),
            class_weight=bool(b.get("class_weight", False)), seed=self.seed,
        )
        self.class_weights = plan.class_weights
        self.train_rows = train_rows[plan.positions]
        self.train_is_copy = plan.is_copy

    def _balance_report(self) -> dict:
        trained = self._labels[self.train_rows]
        return {**self.balance_cfg, "train_rows": int(len(self.train_rows)),
                "train_per_class": {c: int((trained == i).sum()) for i, c in enumerate(self.classes)},
                "train_copies_per_class": {c: int(((trained == i) & self.train_is_copy).sum())
                                           for i, c in enumerate(self.classes)},
                "class_weights": None if self.class_weights is None else self.class_weights.tolist()}

    # ------------------------------------------------------------------ loaders
    def _check_ready(self) -> None:
        if not self._ready:
            raise RuntimeError("call setup() first")

    def dataset_for(self, split: str) -> CachedImageDataset:
        self._check_ready()
        if split == "train":
            if self.balance_cfg.get("augment_rows", "all") == "copies":
                return CachedImageDataset(self._images, self._labels, self.train_rows, self._train_tf,
                                          plain_transform=self._eval_tf, augment_mask=self.train_is_copy)
            return CachedImageDataset(self._images, self._labels, self.train_rows, self._train_tf)
        if split not in ("val", "test"):
            raise BenchError(f"split {split!r}: use train, val or test")
        rows = np.flatnonzero(self.table["split"].to_numpy() == split)
        return CachedImageDataset(self._images, self._labels, rows, self._eval_tf)

    def dataloader(self, split: str, shuffle: bool | None = None, batch_size: int | None = None) -> DataLoader:
        ds = self.dataset_for(split)
        shuffle = (split == "train") if shuffle is None else shuffle
        sampler = EpochSeededSampler(len(ds), self.seed) if shuffle else None
        return DataLoader(ds, batch_size=batch_size or self.batch_size, sampler=sampler, num_workers=self.num_workers,
                          persistent_workers=self.persistent_workers, pin_memory=self.pin_memory,
                          # a last train batch of one image breaks BatchNorm (and is noise anyway)
                          drop_last=shuffle and len(ds) > (batch_size or self.batch_size))

    def train_dataloader(self) -> DataLoader:
        return self.dataloader("train")

    def val_dataloader(self) -> DataLoader:
        return self.dataloader("val")

    def test_dataloader(self) -> DataLoader:
        return self.dataloader("test")

    def write_split(self, path: str | os.PathLike) -> Path:
        self._check_ready()
        return splits_mod.write_split(self.table, path)
