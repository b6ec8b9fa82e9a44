"""Helpers of the issue-9 training tests (test_security_training.py, test_run_lock.py): compose
bench-train's real config in-process and compute the run id that ``run()`` will use."""

from __future__ import annotations

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BENCH_TRAIN = [sys.executable, "-m", "bench.cli.train"]
# Small and quick: 12 images per class of the generated FracAtlas fixture, 32 px, one CPU epoch.
TINY = ["data=tiny_fracatlas", "model=resnet18", "image_size=32", "data.limit_per_class=12", "data.batch_size=8",
        "trainer.max_epochs=1", "trainer.accelerator=cpu", "trainer.deterministic=true", "logger=none", "callbacks=none",
        "measure_latency=false", "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false"]


def paths(tmp: Path, cache: Path) -> list[str]:
    return [f"paths.root_dir={tmp}", f"paths.runs_dir={tmp}/runs", f"paths.cache_dir={cache}",
            f"paths.log_dir={tmp}/logs", f"paths.data_dir={tmp}/data"]


def compose(overrides: list[str]):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from bench.sweep.plugins import ensure_plugins

    ensure_plugins()
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        return hydra_compose(config_name="train", overrides=overrides)


def run_id_of(cfg) -> str:
    """``run()``'s run id: config hash + the dataset fingerprint (computed without decoding)."""
    from hydra.utils import instantiate

    from bench.training.run import run_id_for

    dm = instantiate(cfg.data, image_size=int(cfg.image_size))
    return run_id_for(cfg, dm.compute_data_fingerprint())


def child_env(**extra: str) -> dict:
    return {**os.environ, "WANDB_MODE": "offline", "PYTHONHASHSEED": "0", **extra}


def tree(root: Path) -> list[str]:
    """Every path under ``root``, relative, sorted (folders end in '/')."""
    if not root.exists():
        return []
    return sorted(str(p.relative_to(root)) + ("/" if p.is_dir() else "") for p in root.rglob("*"))
