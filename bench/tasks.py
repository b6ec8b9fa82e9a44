"""Which trainer runs a config (the one rule) and the run-level keys both trainers check; light to
import (bench.pipeline before torch loads, ``bench-train --plan``)."""

from __future__ import annotations

from typing import Any

from bench.errors import BenchError

CLASSIFICATION, DETECTION = "classification", "detection"


def task_kind(cfg: Any) -> str:
    """``detection`` or ``classification``. A detection dataset (``data.task_kind``) or a detector
    model (``model.family: yolo_det``) makes it a detection run, whose own checks then name a
    mismatched pair (``bench.detection.run``)."""
    if cfg.data.get("task_kind") == DETECTION or cfg.model.get("family") == "yolo_det":
        return DETECTION
    return CLASSIFICATION


def check_run_keys(cfg: Any) -> None:
    """The run-level keys every trainer reads the same way (seed, epochs, size policy), one error each."""
    if cfg.size_policy not in ("protocol", "native"):
        raise BenchError(f"size_policy={cfg.size_policy!r}: use 'protocol' (one image_size for all) or 'native'")
    if not isinstance(cfg.seed, int) or cfg.seed < 0:
        raise BenchError(f"seed={cfg.seed!r}: give a non-negative integer")
    if int(cfg.trainer.max_epochs) < 1:
        raise BenchError(f"trainer.max_epochs={cfg.trainer.max_epochs!r}: train for at least one epoch")
