"""Process-wide settings that keep third-party libraries offline and out of the user's home.

Set before ultralytics / wandb / timm are imported (``bench/__init__`` calls ``apply_defaults``).
Every value is a default: a variable the user already set wins.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def state_dir() -> Path:
    """Where library settings files go (never the dataset, never $HOME by surprise)."""
    base = os.environ.get("BENCH_STATE_DIR") or os.path.join(tempfile.gettempdir(), "fracture-bench")
    return Path(base)


def apply_defaults() -> None:
    state = state_dir()
    defaults = {
        # Ultralytics probes DNS at import, downloads fonts/weights and may pip-install packages
        # into the running environment (FIELD_NOTES): none of that is wanted in a benchmark.
        "YOLO_OFFLINE": "1",
        "YOLO_AUTOINSTALL": "False",
        "YOLO_CONFIG_DIR": str(state / "ultralytics"),
        "MPLCONFIGDIR": str(state / "matplotlib"),
        # W&B: offline unless the user configures it (logger.wandb.mode=online or WANDB_MODE).
        "WANDB_MODE": "offline",
        "WANDB_SILENT": "true",
        # Model hubs are reached only when the user allows it: no hangs on offline nodes.
        "HF_HUB_OFFLINE": "1",
        "TIMM_OFFLINE": "1",
    }
    for key, value in defaults.items():
        os.environ.setdefault(key, value)
    for key in ("YOLO_CONFIG_DIR", "MPLCONFIGDIR"):
        Path(os.environ[key]).mkdir(parents=True, exist_ok=True)
