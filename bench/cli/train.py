"""`bench-train`: the Hydra app. Thin: compose the config, hand it to bench.training.run."""

from __future__ import annotations

import logging
import sys

import hydra
from omegaconf import DictConfig

from bench.errors import BenchError

log = logging.getLogger("bench.train")


def _is_multirun() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


@hydra.main(version_base="1.3", config_path="../../conf", config_name="train")
def _main(cfg: DictConfig) -> float:
    from bench.training.run import run

    try:
        summary = run(cfg)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        if _is_multirun():
            raise  # the sweep records this job as failed and goes on with the others
        sys.exit(2)
    # Optuna minimises/maximises this value: the monitored VALIDATION metric, never test.
    return summary.get("objective", float("nan"))


def main() -> None:
    _main()


if __name__ == "__main__":
    main()
