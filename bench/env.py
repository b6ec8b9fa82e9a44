"""Process-wide settings that keep third-party libraries offline and out of the user's home.

Set before ultralytics / wandb / timm are imported (``bench/__init__`` calls ``apply_defaults``).
Every value is a default: a variable the user already set wins.

Nothing is written to ``$HOME``: each library's settings / cache / log folder is pointed at
``state_dir()`` at import (matplotlib and Ultralytics read theirs then), and ``use_cache_dir`` moves
the ones read later (W&B's debug logs and cache, torch hub) under the run's ``paths.cache_dir``
when a run starts. Reading a user's existing Hugging Face or torch hub cache for weights stays
possible: ``TORCH_HOME`` is only set when ``~/.cache/torch`` does not exist (it would be created
on a download), and Hugging Face's cache is left alone (offline by default: nothing is written).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

# Variables this module set (never the user's own): the only ones use_cache_dir re-points.
_OURS: set[str] = set()
# W&B: wandb-core writes core-debug-*.log under WANDB_CACHE_DIR/logs (else ~/.cache/wandb/logs),
# settings under WANDB_CONFIG_DIR (else ~/.config/wandb), artifacts/staging under the other two.
_WANDB_DIRS = {"WANDB_CACHE_DIR": "wandb/cache", "WANDB_CONFIG_DIR": "wandb/config",
               "WANDB_DATA_DIR": "wandb/data", "WANDB_ARTIFACT_DIR": "wandb/artifacts"}
_LATE_DIRS = {**_WANDB_DIRS, "TORCH_HOME": "torch", "TRITON_CACHE_DIR": "triton"}


def state_dir() -> Path:
    """Where library settings files go (never the dataset, never $HOME by surprise)."""
    base = os.environ.get("BENCH_STATE_DIR") or os.path.join(tempfile.gettempdir(), "fracture-bench")
    return Path(base)


def _set_default(key: str, value: str) -> None:
    if key not in os.environ:
        os.environ[key] = value
        _OURS.add(key)


def apply_defaults() -> None:
    state = state_dir()
    defaults = {
        # Ultralytics probes DNS at import, downloads fonts/weights and may pip-install packages
        # into the running environment (FIELD_NOTES): none of that is wanted in a benchmark.
        "YOLO_OFFLINE": "1",
        "YOLO_AUTOINSTALL": "False",
        "YOLO_CONFIG_DIR": str(state / "ultralytics"),
        # Ultralytics' own checkpoint loads (e.g. its detection trainer) with weights_only=True and
        # its allowlist of model classes, instead of unpickling whatever the .pt file holds.
        "ULTRALYTICS_SAFE_LOAD": "1",
        "MPLCONFIGDIR": str(state / "matplotlib"),
        # W&B: offline unless the user configures it (logger.wandb.mode=online or WANDB_MODE).
        "WANDB_MODE": "offline",
        "WANDB_SILENT": "true",
        # Model hubs are reached only when the user allows it: no hangs on offline nodes.
        "HF_HUB_OFFLINE": "1",
        "TIMM_OFFLINE": "1",
    }
    for key, value in defaults.items():
        _set_default(key, value)
    for key, rel in _LATE_DIRS.items():
        if key == "TORCH_HOME" and (Path.home() / ".cache" / "torch").is_dir():
            continue  # the user's torch hub cache exists: read weights from it
        _set_default(key, str(state / rel))
    for key in ("YOLO_CONFIG_DIR", "MPLCONFIGDIR"):
        Path(os.environ[key]).mkdir(parents=True, exist_ok=True)


def use_cache_dir(cache_dir: str | os.PathLike) -> None:
    """Move the library folders read at run time (W&B cache / config / logs, torch hub, triton)
    under ``<cache_dir>/env/`` (the run's ``paths.cache_dir``); folders the user set stay."""
    base = Path(cache_dir) / "env"
    for key, rel in _LATE_DIRS.items():
        if key in _OURS:
            os.environ[key] = str(base / rel)
