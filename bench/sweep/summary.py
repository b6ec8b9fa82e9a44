"""Sweep summary: which runs of a multirun finished, resumed, were skipped or failed, and why.

Each job writes its own entry ``<sweep_dir>/.bench_jobs/<job_num>.json`` at ``on_job_end`` (in the
job's process: locally or on a SLURM node; one file per job, so jobs never write the same file).
Jobs that never got to report (SLURM cancel, timeout, node failure) are entered by the launcher
(``hydra_plugins.bench_sweep.launchers``). ``on_multirun_end`` (the submitting process) gathers the
entries into ``sweep_summary.json``, prints a table, and exits 1 when a job failed (after the
whole sweep: the other jobs' results are all kept). It reports; rendering is bench.pipeline's.

What a job did (trained, resumed, skipped) travels from the task function to ``on_job_end`` as a
file in the job's output folder (``RUN_NOTE``), like everything else between the stages.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from bench.errors import first_line
from bench.record import atomic_write_json

log = logging.getLogger(__name__)

JOBS_DIR = ".bench_jobs"
SUMMARY_FILE = "sweep_summary.json"
STATUSES = ("finished", "resumed", "skipped", "failed")
RUN_NOTE = ".bench_run.json"  # in the job's output folder: what the run did, for on_job_end


def note_run(summary: dict) -> None:
    """Called by the task function: tells on_job_end what the run did (trained, resumed, skipped)."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return  # not under Hydra (a direct call): there is no job to report
    record = summary.get("record") or {}
    atomic_write_json(Path(HydraConfig.get().runtime.output_dir) / RUN_NOTE, {
        "status": summary.get("status"),
        "run_id": summary.get("run_id"),
        "run_dir": summary.get("run_dir"),
        "objective": summary.get("objective"),
        "resumed_from": record.get("resumed_from"),
        "reason": summary.get("reason"),  # e.g. a skip because another process holds the run (run.lock)
    })


def _read_note(job_dir: str | os.PathLike | None) -> dict:
    if job_dir is None:
        return {}
    try:
        note = json.loads((Path(job_dir) / RUN_NOTE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}  # the job ended before its run said anything
    return note if isinstance(note, dict) else {}


def _reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {first_line(exc)}" if str(exc).strip() else type(exc).__name__


def _finite(x: Any) -> float | None:
    try:
        x = float(x)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def job_entry(job_num: int, overrides: list[str], status: str, reason: str | None, job_status: str, **extra: Any) -> dict:
    if status not in STATUSES:
        raise ValueError(f"unknown job status {status!r}")
    return {"job": int(job_num), "overrides": list(overrides), "status": status, "reason": reason,
            "job_status": job_status, "run_id": None, "run_dir": None, "objective": None,
            "slurm_job_id": None, **extra}


def write_job_entry(sweep_dir: str | os.PathLike, entry: dict) -> Path:
    path = Path(sweep_dir) / JOBS_DIR / f"{int(entry['job']):06d}.json"
    atomic_write_json(path, entry)
    return path


def entry_from_return(job_num: int, job_return: JobReturn, job_dir: str | os.PathLike | None = None) -> dict:
    overrides = list(job_return.overrides or [])
    slurm_id = os.environ.get("SLURM_ARRAY_JOB_ID")
    slurm_id = f"{slurm_id}_{os.environ.get('SLURM_ARRAY_TASK_ID')}" if slurm_id else os.environ.get("SLURM_JOB_ID")
    if job_return.status != JobStatus.COMPLETED:
        exc = job_return._return_value
        reason = _reason(exc) if isinstance(exc, BaseException) else str(exc)
        return job_entry(job_num, overrides, "failed", reason, job_return.status.name, slurm_job_id=slurm_id)
    run = _read_note(job_dir)
    objective = _finite(job_return._return_value)
    if run.get("status") == "skipped":
        status, reason = "skipped", run.get("reason") or "run record already complete"
    elif run.get("resumed_from"):
        status, reason = "resumed", f"resumed from {run['resumed_from']}"
    else:
        status, reason = "finished", None
    if objective is None and job_return._return_value is not None:
        reason = "; ".join(filter(None, [reason, f"objective is {job_return._return_value!r}"]))
    return job_entry(job_num, overrides, status, reason, job_return.status.name, run_id=run.get("run_id"),
                     run_dir=run.get("run_dir"), objective=objective, slurm_job_id=slurm_id)


def collect(sweep_dir: str | os.PathLike) -> list[dict]:
    entries = []
    for path in sorted((Path(sweep_dir) / JOBS_DIR).glob("*.json")):
        try:
            entries.append(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, json.JSONDecodeError):
            continue  # written atomically: an unreadable file is not ours
    return sorted(entries, key=lambda e: e["job"])


def summarise(sweep_dir: str | os.PathLike, started_at: str | None = None, wall_s: float | None = None) -> dict:
    jobs = collect(sweep_dir)
    counts = {s: sum(1 for j in jobs if j["status"] == s) for s in STATUSES}
    return {"sweep_dir": str(sweep_dir), "started_at": started_at,
            "ended_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "wall_s": wall_s, "n_jobs": len(jobs), "counts": counts, "jobs": jobs}


def format_table(summary: dict) -> str:
    jobs = summary["jobs"]
    # Overrides shared by every job say nothing about one job: show the ones that vary.
    common = set.intersection(*(set(j.get("overrides", [])) for j in jobs)) if len(jobs) > 1 else set()
    rows = [("job", "status", "run_id", "objective", "reason / overrides")]
    for j in jobs:
        obj = "" if j.get("objective") is None else f"{j['objective']:.4f}"
        detail = j.get("reason") or " ".join(o for o in j.get("overrides", []) if o not in common)
        rows.append((str(j["job"]), j["status"], j.get("run_id") or "-", obj, detail))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r[:4], widths)) + "  " + r[4] for r in rows]
    c = summary["counts"]
    lines.append(f"{summary['n_jobs']} jobs: {c['finished']} finished, {c['resumed']} resumed, "
                 f"{c['skipped']} skipped, {c['failed']} failed  ->  {Path(summary['sweep_dir']) / SUMMARY_FILE}")
    return "\n".join(lines)


class SweepSummary(Callback):
    """Hydra callback (``hydra.callbacks.sweep_summary`` in conf/hydra/default.yaml)."""

    def __init__(self, print_table: bool = True) -> None:
        self.print_table = print_table
        self._t0: float | None = None
        self._started_at: str | None = None

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._t0 = time.perf_counter()
        self._started_at = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        # A re-used sweep dir must not report the previous sweep's jobs.
        jobs_dir = Path(config.hydra.sweep.dir) / JOBS_DIR
        for old in jobs_dir.glob("*.json"):
            old.unlink(missing_ok=True)

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        # A re-used job folder must not report the previous sweep's run.
        (Path(config.hydra.runtime.output_dir) / RUN_NOTE).unlink(missing_ok=True)

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        from hydra.types import RunMode

        if config.hydra.mode != RunMode.MULTIRUN:
            return
        write_job_entry(config.hydra.sweep.dir, entry_from_return(int(config.hydra.job.num), job_return,
                                                                  config.hydra.runtime.output_dir))

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        wall = None if self._t0 is None else round(time.perf_counter() - self._t0, 3)
        summary = summarise(sweep_dir, self._started_at, wall)
        atomic_write_json(sweep_dir / SUMMARY_FILE, summary)
        if self.print_table:
            print(f"SWEEP SUMMARY ({sweep_dir})\n{format_table(summary)}", flush=True)
        failed = summary["counts"]["failed"]
        if failed:
            # Hydra runs the end callbacks last-listed first: this one is listed first, so it ends the sweep.
            print(f"error: {failed} of {summary['n_jobs']} jobs failed; see {sweep_dir / SUMMARY_FILE}", file=sys.stderr)
            sys.exit(1)
