"""Make the repo's Hydra plugins (``hydra_plugins/bench_sweep``) and resolvers available to bench-train.

Hydra only loads sweepers/launchers from the ``hydra_plugins`` namespace package. A wheel or a fresh
``pip install -e .`` installs ours there; an editable install made before ``hydra_plugins/`` existed
does not know it, so for a source checkout we put the checkout root on ``sys.path`` (and on
``PYTHONPATH``: SLURM jobs inherit the environment and must unpickle the plugin classes too).
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

from omegaconf import OmegaConf

from bench.errors import BenchError

_DIRECTIONS = {"max": "maximize", "min": "minimize"}


def _direction(mode: str) -> str:
    # Optuna's direction follows the checkpoint monitor, so the search and best.ckpt agree.
    try:
        return _DIRECTIONS[str(mode)]
    except KeyError:
        raise BenchError(f"monitor.mode={mode!r}: use 'min' or 'max'") from None


def ensure_plugins() -> None:
    if not OmegaConf.has_resolver("bench_direction"):
        OmegaConf.register_new_resolver("bench_direction", _direction)
    if not OmegaConf.has_resolver("bench_slug"):  # config values used as folder names (conf/hydra)
        from bench.paths import slug

        OmegaConf.register_new_resolver("bench_slug", lambda value: slug(value, "task_name"))
    if importlib.util.find_spec("hydra_plugins.bench_sweep") is not None:
        return
    root = Path(__file__).resolve().parents[2]
    if not (root / "hydra_plugins" / "bench_sweep" / "__init__.py").is_file():
        return  # installed without the plugins: Hydra will name the missing sweeper/launcher
    sys.path.append(str(root))
    importlib.invalidate_caches()
    parts = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if str(root) not in parts:
        os.environ["PYTHONPATH"] = os.pathsep.join(parts + [str(root)])
