"""``BenchSlurmLauncher``: hydra-submitit-launcher's SLURM launcher, except that a job which never
returned a result (scancel, time limit, node failure, a crash outside the task) becomes a FAILED
job with the SLURM state as reason, entered in the sweep summary, instead of an exception that
aborts the whole sweep and loses the other jobs' results. Used by conf/hydra/launcher/slurm_*.yaml.

Submitit notices such jobs through ``sacct``; on a cluster without accounting the start script in
../shared/tools/slurm installs an ``sacct`` that answers from ``squeue`` (docs/cluster.md).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, List, Sequence

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, filter_overrides
from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher
from omegaconf import OmegaConf

log = logging.getLogger(__name__)


class BenchSlurmLauncher(SlurmLauncher):
    def _executor(self) -> Any:
        # Same executor set-up as BaseSubmititLauncher.launch (hydra-submitit-launcher 1.2.0).
        import submitit

        params = dict(self.params)
        init_keys = {"max_num_timeout"}
        init = {"folder": params["submitit_folder"],
                **{f"{self._EXECUTOR}_{k}": v for k, v in params.items() if k in init_keys}}
        executor = submitit.AutoExecutor(cluster=self._EXECUTOR, **init)
        base = set(OmegaConf.structured(BaseQueueConf).keys())
        executor.update_parameters(**{k if k in base else f"{self._EXECUTOR}_{k}": v
                                      for k, v in params.items() if k not in init_keys | {"submitit_folder"}})
        return executor

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from bench.sweep.summary import job_entry, write_job_entry

        assert self.config is not None and len(job_overrides) > 0
        executor = self._executor()
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        log.info("Submitit 'slurm' sweep output dir : %s", sweep_dir)
        job_params: List[Any] = []
        for k, overrides in enumerate(job_overrides):
            idx = initial_job_idx + k
            log.info("\t#%d : %s", idx, " ".join(filter_overrides(overrides)))
            job_params.append((list(overrides), "hydra.sweep.dir", idx, f"job_id_for_{idx}", Singleton.get_state()))
        # The nodes unpickle the callable: the stock launcher plus checkpoint() (requeue), not this subclass.
        worker = RequeueingWorker(**self.params)
        worker.setup(hydra_context=self.hydra_context, task_function=self.task_function, config=self.config)
        jobs = executor.map_array(worker, *zip(*job_params))
        returns = []
        for (overrides, _, idx, _, _), job in zip(job_params, jobs):
            try:
                returns.append(job.results()[0])
            except Exception as exc:  # UncompletedJobError (cancelled/timeout), FailedJobError
                state = _state(job)
                first = next((ln for ln in str(exc).splitlines() if ln.strip()), type(exc).__name__)
                reason = f"SLURM job {job.job_id} {state}: {first.strip()}"
                log.error("job #%d lost, sweep goes on: %s", idx, reason)
                write_job_entry(sweep_dir, job_entry(idx, overrides, "failed", reason, state, slurm_job_id=str(job.job_id)))
                ret = JobReturn(overrides=overrides, status=JobStatus.FAILED)
                ret.return_value = RuntimeError(reason)
                returns.append(ret)
        return returns


class RequeueingWorker(SlurmLauncher):
    """What each SLURM job runs: hydra-submitit-launcher's job callable. On SLURM's pre-timeout
    or preemption signal (USR2, ``signal_delay_s`` before the limit) submitit calls
    ``checkpoint()``: this releases the run's lock (the requeued job, same SLURM job id, may
    start on another node), then hands submitit the same call to requeue. The requeued job runs
    the same config, i.e. the same run id, and resumes from the run's ``last.ckpt`` (the last
    finished epoch; the interrupted epoch is trained again, exactly as without the interruption).
    Timeouts requeue up to ``max_num_timeout`` times; preemptions always."""

    def checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        from bench.training.lock import release_all

        log.warning("SLURM signal: requeueing this job; it resumes from the run's last.ckpt")
        release_all()
        return super().checkpoint(*args, **kwargs)


def _state(job: Any) -> str:
    try:
        return str(job.state)
    except Exception:  # sacct unavailable
        return "UNKNOWN"
