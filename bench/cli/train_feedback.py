"""What `bench-train` tells the user, kept out of the training code: a missing data path before
the heavy imports, and the last line of a run (its folder and what its numbers are).

Light on purpose: omegaconf and bench.errors only, so the path check answers within seconds
(torch / Lightning take 10-15 s to import on a 2-core machine).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from bench.errors import BenchError


def _data_root_text(cfg: DictConfig) -> str | None:
    data = cfg.get("data")
    if data is None or data.get("root") is None or data.get("generate_if_missing", False):
        return None  # no root, or a generated fixture made on first use
    return str(OmegaConf.select(cfg, "data.root"))


def check_data_path(cfg: DictConfig) -> None:
    """Raise ``BenchError`` naming ``paths.data_dir`` (the README's setting) when data.root is missing."""
    root = _data_root_text(cfg)
    if root is None:
        return
    path = Path(os.path.expanduser(root))
    if path.exists():
        return
    data_dir = OmegaConf.select(cfg, "paths.data_dir")
    uses_data_dir = "paths.data_dir" in str(OmegaConf.to_container(cfg.data, resolve=False).get("root"))
    below = uses_data_dir and data_dir is not None and path != Path(os.path.expanduser(str(data_dir)))
    layout = f"{path.name}/" if below else "the dataset"
    how = (f"set paths.data_dir=DIR to the folder holding {layout} (now {data_dir}), or data.root=DIR"
           if uses_data_dir else "set data.root=DIR to the dataset folder")
    raise BenchError(f"data.root={path} does not exist: {how}; data=tiny_fracatlas trains on a generated fixture")


def _fmt(value: object) -> str:
    return f"{value:.3f}" if isinstance(value, float) and math.isfinite(value) else str(value)


def final_line(summary: dict, monitor: str = "val/auroc") -> str:
    """``run complete: <dir> (test auroc 0.810, accuracy 0.700; ...)`` or ``skipped: <dir> is complete``."""
    run_dir = summary.get("run_dir", "?")
    status = summary.get("status")
    if status == "skipped":
        reason = summary.get("reason")
        return f"skipped: {run_dir} " + (f"({reason})" if reason else "is complete (resume=false trains it again)")
    if status != "complete":
        return f"{status}: {run_dir}"
    record = summary.get("record") or {}
    test = (record.get("metrics") or {}).get("test") or {}
    names = [k for k in ("auroc", "accuracy", "f1", "kappa", "map50", "map50_95") if isinstance(test.get(k), float)]
    numbers = ", ".join(f"{k} {_fmt(test[k])}" for k in names)
    best = (record.get("best") or {}).get("epoch")
    objective = summary.get("objective")
    parts = [f"test {numbers}" if numbers else "no test metrics"]
    if isinstance(objective, float) and math.isfinite(objective):
        parts.append(f"best {monitor} {_fmt(objective)}" + (f" at epoch {best}" if best is not None else ""))
    return f"run complete: {run_dir} ({'; '.join(parts)})"
