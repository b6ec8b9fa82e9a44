"""Checks of config values that Hydra's struct mode cannot make, run before anything is written.

``bench.training.run.validate`` calls ``check_config`` first thing: a bad value then fails with
one line naming the key, before a run folder, a W&B run or a cache entry exists (issue 9, item 7).
Each check is small; the point is that they all run up front, not at the first batch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from omegaconf import DictConfig, OmegaConf

from bench.errors import BenchError

RETENTION = ("keep_all", "keep_best")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(float(value))


def _int_at_least(key: str, value: object, low: int, hint: str) -> None:
    if not _is_int(value) or value < low:
        raise BenchError(f"{key}={value!r}: {hint}")


def _check_monitor(key: str, value: object, val_metrics: Sequence[str]) -> None:
    if value is None:
        return
    if value not in val_metrics:
        raise BenchError(f"{key}={value!r}: choose a validation metric, one of {', '.join(val_metrics)} "
                         "(test metrics never pick checkpoints or stop training)")


def _check_mode(key: str, value: object) -> None:
    if value not in ("min", "max"):
        raise BenchError(f"{key}={value!r}: use 'min' or 'max'")


def _check_data(data: Mapping) -> None:
    _int_at_least("data.batch_size", data.get("batch_size", 1), 1, "give a positive integer (images per batch)")
    _int_at_least("data.num_workers", data.get("num_workers", 0), 0, "give an integer >= 0 (0: load in the main process)")
    limit = data.get("limit_per_class")
    if limit not in (None, 0) and (not _is_int(limit) or limit < 1):
        raise BenchError(f"data.limit_per_class={limit!r}: give a positive integer or null (all images)")
    split = data.get("split") or {}
    if isinstance(split, Mapping):
        ratios = split.get("ratios")
        if ratios is not None:
            if (not isinstance(ratios, Sequence) or isinstance(ratios, str) or len(ratios) not in (2, 3)
                    or not all(_is_number(r) and 0 < float(r) < 1 for r in ratios)
                    or abs(sum(float(r) for r in ratios) - 1.0) > 1e-6):
                raise BenchError(f"data.split.ratios={list(ratios) if isinstance(ratios, Sequence) else ratios!r}: give 2 or 3 "
                                 "fractions in (0, 1) that sum to 1 (train/val/test, or train/test)")
        vf = split.get("val_fraction")
        if vf is not None and (not _is_number(vf) or not 0 < float(vf) < 1):
            raise BenchError(f"data.split.val_fraction={vf!r}: give a fraction in (0, 1)")
        n_folds, fold = split.get("n_folds"), split.get("fold")
        if n_folds is not None:
            _int_at_least("data.split.n_folds", n_folds, 2, "give an integer >= 2")
            if fold is not None and (not _is_int(fold) or not 0 <= fold < n_folds):
                raise BenchError(f"data.split.fold={fold!r}: give an integer in [0, {n_folds - 1}] (data.split.n_folds={n_folds})")


def _check_trainer(trainer: Mapping) -> None:
    _int_at_least("trainer.max_epochs", trainer.get("max_epochs", 1), 1, "train for at least one epoch (a positive integer)")
    min_epochs = trainer.get("min_epochs")
    if min_epochs is not None:
        _int_at_least("trainer.min_epochs", min_epochs, 0, "give an integer >= 0")
    acc = trainer.get("accumulate_grad_batches")
    if acc is not None:
        _int_at_least("trainer.accumulate_grad_batches", acc, 1, "give a positive integer")
    for key in ("limit_train_batches", "limit_val_batches", "limit_test_batches", "limit_predict_batches"):
        value = trainer.get(key)
        if value is None:
            continue
        ok = (_is_int(value) and value >= 1) or (isinstance(value, float) and 0 < value <= 1)
        if not ok:
            raise BenchError(f"trainer.{key}={value!r}: give a fraction in (0, 1] or a number of batches >= 1")


def _check_callbacks(callbacks: Mapping, val_metrics: Sequence[str]) -> None:
    for name, node in callbacks.items():
        if not isinstance(node, Mapping):
            continue
        if "monitor" in node:
            _check_monitor(f"callbacks.{name}.monitor", node["monitor"], val_metrics)
        if "mode" in node:
            _check_mode(f"callbacks.{name}.mode", node["mode"])
        if node.get("monitor") == "val/loss" and node.get("mode") == "max":
            raise BenchError(f"callbacks.{name}.mode must be 'min' when callbacks.{name}.monitor=val/loss")
        if "patience" in node:
            _int_at_least(f"callbacks.{name}.patience", node["patience"], 0, "give an integer >= 0 (validation checks without improvement)")
        if "save_top_k" in node:
            _int_at_least(f"callbacks.{name}.save_top_k", node["save_top_k"], 1,
                          "keep at least the best checkpoint (the run record needs best.ckpt)")


def check_config(cfg: DictConfig, val_metrics: Sequence[str]) -> None:
    """Raise ``BenchError`` for the first bad value (naming the key); write nothing."""
    container = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(container, dict)
    for key in ("image_size", "seed", "split_seed"):
        if key in container and (not _is_int(container[key]) or container[key] < 0):
            raise BenchError(f"{key}={container[key]!r}: give a non-negative integer")
    native = (container.get("model") or {}).get("native_size")
    if native is not None and (not _is_int(native) or not 32 <= native <= 2048):
        raise BenchError(f"model.native_size={native!r}: give an integer number of pixels between 32 and 2048")
    optim = container.get("optim") or {}
    if "lr" in optim and (not _is_number(optim["lr"]) or float(optim["lr"]) <= 0):
        raise BenchError(f"optim.lr={optim['lr']!r}: give a positive number")
    if "weight_decay" in optim and (not _is_number(optim["weight_decay"]) or float(optim["weight_decay"]) < 0):
        raise BenchError(f"optim.weight_decay={optim['weight_decay']!r}: give a number >= 0")
    monitor = container.get("monitor") or {}
    _check_monitor("monitor.metric", monitor.get("metric"), val_metrics)
    _check_mode("monitor.mode", monitor.get("mode"))
    _check_data(container.get("data") or {})
    _check_trainer(container.get("trainer") or {})
    _check_callbacks(container.get("callbacks") or {}, val_metrics)
    retention = container.get("retention", "keep_all")
    if retention not in RETENTION:
        raise BenchError(f"retention={retention!r}: use keep_all (every checkpoint) or keep_best (delete last.ckpt once the run is complete)")
    lock = container.get("run_lock") or {}
    stale, beat = lock.get("stale_after_s", 600), lock.get("heartbeat_s", 30)
    if not (_is_number(stale) and _is_number(beat) and float(stale) > float(beat) > 0):
        raise BenchError(f"run_lock: stale_after_s={stale!r} must be greater than heartbeat_s={beat!r} > 0 (seconds)")
