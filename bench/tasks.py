"""Which trainer runs a config: the one rule, light to import (bench.pipeline before torch loads,
``bench-train --plan``)."""

from __future__ import annotations

from typing import Any

CLASSIFICATION, DETECTION = "classification", "detection"


def task_kind(cfg: Any) -> str:
    """``detection`` or ``classification``. A detection dataset (``data.task_kind``) or a detector
    model (``model.family: yolo_det``) makes it a detection run, whose own checks then name a
    mismatched pair (``bench.detection.run``)."""
    if cfg.data.get("task_kind") == DETECTION or cfg.model.get("family") == "yolo_det":
        return DETECTION
    return CLASSIFICATION
