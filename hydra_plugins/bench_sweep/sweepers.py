"""Sweepers registered as ``hydra/sweeper=bench_basic`` (default, conf/hydra/default.yaml) and
``hydra/sweeper=bench_optuna`` (conf/hparams_search/*)."""

# No `from __future__ import annotations`: Hydra's plugin scanner execs this module before it is
# in sys.modules, and dataclasses then cannot resolve string annotations.

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, List, Sequence

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper, BasicSweeperConf
from hydra.core.config_store import ConfigStore
from hydra.core.utils import JobReturn, JobStatus
from hydra_plugins.hydra_optuna_sweeper.config import OptunaSweeperConf
from hydra_plugins.hydra_optuna_sweeper.optuna_sweeper import OptunaSweeper
from omegaconf import OmegaConf

log = logging.getLogger(__name__)


class BenchBasicSweeper(BasicSweeper):
    """Hydra's basic sweeper raises at the first failed job after each batch, which drops the later
    batches and skips ``on_multirun_end`` (no sweep summary). This one logs the failure and goes on;
    bench-train exits non-zero afterwards when any job failed."""

    def sweep(self, arguments: List[str]) -> Any:
        from hydra.core.override_parser.overrides_parser import OverridesParser

        assert self.config is not None and self.launcher is not None and self.hydra_context is not None
        params_conf = self._parse_config()
        params_conf.extend(arguments)
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        self.overrides = self.split_arguments(parser.parse_overrides(params_conf), self.max_batch_size)
        sweep_dir = Path(self.config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        returns: List[Sequence[JobReturn]] = []
        initial_job_idx = 0
        while not self.is_done():
            batch = self.get_job_batch()
            self.validate_batch_is_legal(batch)
            results = self.launcher.launch(batch, initial_job_idx=initial_job_idx)
            for r in results:
                if r.status != JobStatus.COMPLETED:
                    log.error("job failed, sweep goes on: %s: %s", " ".join(r.overrides or []), r._return_value)
            initial_job_idx += len(batch)
            returns.append(results)
        return returns


class BenchOptunaSweeper(OptunaSweeper):
    """Optuna sweeper whose ``n_trials`` is the study's total, that records failed jobs as FAIL and
    goes on, and re-runs trials interrupted by a killed sweep (same params -> same run id -> the
    run resumes from its checkpoint). Logic in ``_optuna_impl`` (imported lazily: optuna is slow)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        from ._optuna_impl import BenchOptunaSweeperImpl

        self.sweeper = BenchOptunaSweeperImpl(*args, **kwargs)


@dataclass
class BenchBasicSweeperConf(BasicSweeperConf):
    _target_: str = "hydra_plugins.bench_sweep.sweepers.BenchBasicSweeper"


@dataclass
class BenchOptunaSweeperConf(OptunaSweeperConf):
    _target_: str = "hydra_plugins.bench_sweep.sweepers.BenchOptunaSweeper"
    # A failed trial never stops the search by default (stop when the failed fraction EXCEEDS this).
    max_failure_rate: float = 1.0
    n_jobs: int = 1


ConfigStore.instance().store(group="hydra/sweeper", name="bench_basic", node=BenchBasicSweeperConf, provider="fracture-bench")
ConfigStore.instance().store(group="hydra/sweeper", name="bench_optuna", node=BenchOptunaSweeperConf, provider="fracture-bench")
