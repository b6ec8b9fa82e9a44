"""Shared fixtures. ``../shared`` (beside the checkout) holds the real FracAtlas and real weights;
a user's fresh clone has neither, so tests that need them skip with the reason."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("BENCH_SHARED_DIR", REPO.parent / "shared"))
FRACATLAS = SHARED / "data" / "fracatlas"
LITE0_WEIGHTS = SHARED / "weights" / "tf_efficientnet_lite0_timm-904d152a.pth"

os.environ.setdefault("WANDB_MODE", "offline")


@pytest.fixture(scope="session")
def fracatlas_root() -> Path:
    if not (FRACATLAS / "dataset.csv").is_file():
        pytest.skip(f"real FracAtlas not found at {FRACATLAS} (set BENCH_SHARED_DIR to the folder holding data/fracatlas)")
    return FRACATLAS


@pytest.fixture(scope="session")
def lite0_weights() -> Path:
    if not LITE0_WEIGHTS.is_file():
        pytest.skip(f"real EfficientNet-Lite0 weights not found at {LITE0_WEIGHTS}")
    return LITE0_WEIGHTS
