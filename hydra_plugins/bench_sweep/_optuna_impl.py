"""The Optuna sweep loop of ``BenchOptunaSweeper`` (hydra-optuna-sweeper 1.3.0's, with three changes).

1. ``n_trials`` is the study's TOTAL: trials already finished in the storage (COMPLETE, PRUNED,
   FAIL) count, so re-running the same command finishes the remaining trials instead of running
   ``n_trials`` more (upstream counts from zero on every invocation).
2. A job that raised (or returned NaN: no validation metric) is told to Optuna as ``FAIL`` with
   its reason in the trial's user attrs, and the search goes on (upstream, with its default
   ``max_failure_rate=0``, re-raises the job's exception and ends the sweep).
3. Trials left RUNNING by a killed sweep are marked FAIL (``bench_interrupted``, not counted) and
   their params enqueued: the re-run trial composes the same config, hence the same run id, and
   bench-train resumes it from ``checkpoints/last.ckpt``. One sweeper per study at a time: a
   second concurrent sweeper's RUNNING trials would look interrupted.
"""

from __future__ import annotations

import functools
import logging
import math
from pathlib import Path
from typing import Any, Dict, List, Optional

import optuna
from hydra.core.utils import JobReturn, JobStatus
from hydra_plugins.hydra_optuna_sweeper._impl import OptunaSweeperImpl, create_params_from_overrides
from omegaconf import OmegaConf
from optuna.trial import TrialState

log = logging.getLogger(__name__)

INTERRUPTED = "bench_interrupted"
FAIL_REASON = "bench_fail_reason"
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


def counted_trials(study: optuna.Study) -> int:
    """Trials that count towards ``n_trials``: finished ones, except those a killed sweep interrupted."""
    return sum(1 for t in study.get_trials(deepcopy=False, states=FINISHED) if not t.user_attrs.get(INTERRUPTED))


def recover_interrupted(study: optuna.Study) -> int:
    stale = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    for t in stale:
        study._storage.set_trial_user_attr(t._trial_id, INTERRUPTED, True)
        study.tell(t.number, state=TrialState.FAIL)
        if t.params:
            study.enqueue_trial(dict(t.params))
    if stale:
        log.warning("%d trial(s) left RUNNING by an interrupted sweep: marked FAIL (%s) and queued again",
                    len(stale), INTERRUPTED)
    return len(stale)


def _sqlite_parent(storage: Any) -> None:
    # SQLite does not create the folder of its database file.
    if isinstance(storage, str) and storage.startswith("sqlite:///"):
        Path(storage[len("sqlite:///"):]).expanduser().parent.mkdir(parents=True, exist_ok=True)


def _values(ret: JobReturn, n_directions: int) -> tuple[Optional[List[float]], Optional[str]]:
    """(values, None) for a usable result, (None, reason) for a failed trial."""
    if ret.status != JobStatus.COMPLETED:
        exc = ret._return_value
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        return None, f"{type(exc).__name__}: {first}" if first else type(exc).__name__
    raw = ret._return_value
    try:
        values = [float(raw)] if n_directions == 1 else [float(v) for v in raw]
    except (TypeError, ValueError):
        return None, f"return value {raw!r} is not a number"
    if len(values) != n_directions:
        return None, f"{len(values)} values for {n_directions} directions"
    if not all(math.isfinite(v) for v in values):
        return None, f"objective {raw!r} is not finite (validation metric missing?)"
    return values, None


def _reseed(sampler: Any, seed: int) -> None:
    """A seeded sampler re-created by a re-run replays its first draws, so the resumed trials
    would repeat earlier trials' parameters (same config -> a skipped run). Re-seed it from
    (seed, trials so far): still deterministic, never a replay. optuna<3 keeps the RNGs in
    ``_rng`` of the sampler and of TPE's start-up random sampler; there is no public setter."""
    import numpy as np

    for obj in (sampler, getattr(sampler, "_random_sampler", None)):
        if obj is not None and hasattr(obj, "_rng"):
            obj._rng = np.random.RandomState(seed % 2**32)


class BenchOptunaSweeperImpl(OptunaSweeperImpl):
    def sweep(self, arguments: List[str]) -> None:
        assert self.config is not None and self.launcher is not None and self.hydra_context is not None
        self._process_searchspace_config()
        params_conf = self._parse_sweeper_params_config()
        params_conf.extend(arguments)
        is_grid = isinstance(self.sampler, functools.partial) and self.sampler.func == optuna.samplers.GridSampler
        distributions, fixed_params = create_params_from_overrides(params_conf)
        search_space: Dict[str, Any] = dict(self.search_space_distributions or {})
        search_space.update(distributions)
        if is_grid:
            grid = {name: self._to_grid_sampler_choices(d) for name, d in search_space.items()}
            self.sampler = self.sampler(grid)
            self.n_trials = min(self.n_trials, math.prod(len(v) for v in grid.values()))
        for name in fixed_params:
            search_space.pop(name, None)
        directions = self._get_directions()
        _sqlite_parent(self.storage)
        study = optuna.create_study(study_name=self.study_name, storage=self.storage, sampler=self.sampler,
                                    directions=directions, load_if_exists=True)
        recover_interrupted(study)
        seed = OmegaConf.select(self.config, "hydra.sweeper.sampler.seed")
        if study.trials and seed is not None:
            _reseed(study.sampler, int(seed) + len(study.trials))
        done = counted_trials(study)
        to_go = max(0, self.n_trials - done)
        log.info("Study %s (%s): %d of n_trials=%d done, %d to run; directions %s",
                 study.study_name, self.storage, done, self.n_trials, to_go, directions)
        ran = failed = 0
        while to_go > 0:
            batch = min(to_go, self.n_jobs)
            trials = [study.ask() for _ in range(batch)]
            overrides = self._configure_trials(trials, search_space, fixed_params)
            returns = self.launcher.launch(overrides, initial_job_idx=self.job_idx)
            self.job_idx += len(returns)
            for trial, ret in zip(trials, returns):
                values, reason = _values(ret, len(directions))
                if reason is None:
                    study.tell(trial, values=values, state=TrialState.COMPLETE)
                else:
                    study._storage.set_trial_user_attr(trial._trial_id, FAIL_REASON, reason)
                    study.tell(trial, state=TrialState.FAIL)
                    log.warning("trial %d FAILED, search goes on: %s", trial.number, reason)
                    failed += 1
            ran += len(returns)
            to_go -= batch
            if failed / ran > self.max_failure_rate:
                log.error("%d of %d trials failed (max_failure_rate=%s): stopping the search", failed, ran, self.max_failure_rate)
                break
        self._save_results(study, directions)

    def _save_results(self, study: optuna.Study, directions: List[str]) -> None:
        complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        results: Dict[str, Any] = {"name": "optuna", "study_name": study.study_name, "storage": str(self.storage),
                                   "n_trials": len(study.trials), "n_complete": len(complete),
                                   "n_failed": len(study.get_trials(deepcopy=False, states=(TrialState.FAIL,)))}
        if not complete:
            log.error("no trial of study %s completed", study.study_name)
        elif len(directions) < 2:
            best = study.best_trial
            results.update(best_params=best.params, best_value=best.value, best_trial=best.number)
            log.info("Best parameters: %s  value: %s (trial %d)", best.params, best.value, best.number)
        else:
            results["solutions"] = [{"params": t.params, "values": t.values} for t in study.best_trials]
        Path(str(self.config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
        OmegaConf.save(OmegaConf.create(results), f"{self.config.hydra.sweep.dir}/optimization_results.yaml")
