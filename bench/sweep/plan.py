"""`bench-train ... --plan`: what a command would do, job by job, before it runs.

The sweep is expanded by Hydra itself (the command's master config, the sweeper's ``params``,
``OverridesParser`` and ``BasicSweeper.split_arguments``; each job composed by Hydra's
``load_sweep_config``, as the launcher does), and each job's run id is computed by the code that
names the run folder (``bench.run_folder.run_id_for``, with the dataset fingerprint of
``bench.data.selection``). The run folder then says what the job would do:

- ``skip``: its record is complete (``resume=true``, the default);
- ``busy``: another live process holds its ``run.lock`` (the job would skip it);
- ``resume``: ``checkpoints/last.ckpt`` is there (detection: ``ultralytics/weights/last.pt``);
- ``train``: nothing to reuse (or ``resume=false``: it starts over).

Nothing is trained, decoded or written (images missing from the fingerprint's digest cache are
hashed: read, never decoded), no GPU is touched, and neither torch nor Lightning is imported.
Optuna chooses each trial's values as its study goes: such a sweep is described, not listed.
"""

from __future__ import annotations

import csv
import json
import os
import time
from dataclasses import dataclass
from typing import Callable
from pathlib import Path

from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from bench.errors import BenchError, first_line
from bench.paths import confined
from bench.record import read_record
from bench.run_folder import LOCK_FILE, absolute_paths, lock_stale_reason, read_lock, run_id_for
from bench.tasks import DETECTION, task_kind

ACTIONS = ("train", "resume", "skip", "busy", "error")
UNKNOWN_HASH = "????????"  # the id's hash part while the data it depends on does not exist yet


@dataclass
class JobPlan:
    num: int
    overrides: list[str]
    action: str
    run_id: str | None = None
    run_dir: str | None = None
    detail: str = ""

    def line(self, shown: list[str]) -> str:
        """One line: number, action, run id, what is there, and the job's own overrides ``shown``."""
        return f"  job {self.num:<3d} {self.action:<6s} {self.run_id or '-'}  {self.detail}  [{' '.join(shown)}]"


# -- the jobs of a command --------------------------------------------------------------------
def _hydra(conf_dir: str, config_dir: str | None):
    from hydra._internal.hydra import Hydra
    from hydra._internal.utils import create_config_search_path
    from hydra.core.global_hydra import GlobalHydra

    search_path = create_config_search_path(conf_dir)
    if config_dir is not None:  # --config-dir, as Hydra's own entry point adds it
        search_path.prepend(provider="command-line", path=f"file://{os.path.abspath(config_dir)}")
    GlobalHydra.instance().clear()
    return Hydra.create_main_hydra2(task_name="train", config_search_path=search_path)


def _task_config(cfg: DictConfig) -> DictConfig:
    """The job's config without its ``hydra`` node: what the task function receives."""
    with read_write(cfg), open_dict(cfg):
        del cfg["hydra"]
    return cfg


def _is_optuna(sweeper: DictConfig) -> bool:
    return "optuna" in str(sweeper.get("_target_", "")).lower()


def _job_overrides(hydra, master: DictConfig) -> list[list[str]]:
    """Every job's overrides, in launch order, as the basic sweeper computes them."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    sweeper = master.hydra.sweeper
    params = [f"{k}={v}" for k, v in (sweeper.get("params") or {}).items()]  # BasicSweeper._parse_config
    arguments = params + list(OmegaConf.to_container(master.hydra.overrides.task, resolve=False))
    parser = OverridesParser.create(config_loader=hydra.config_loader)
    batches = BasicSweeper.split_arguments(parser.parse_overrides(arguments), sweeper.get("max_batch_size"))
    return [list(job) for batch in batches for job in batch]


def _optuna_lines(master: DictConfig) -> list[str]:
    sweeper = master.hydra.sweeper
    fixed = [o for o in OmegaConf.to_container(master.hydra.overrides.task, resolve=False)]
    searched = ", ".join(f"{k}={v}" for k, v in (sweeper.get("params") or {}).items()) or "(none)"
    study = OmegaConf.select(master, "hydra.sweeper.study_name", default=None)
    storage = OmegaConf.select(master, "hydra.sweeper.storage", default=None)
    n_trials = OmegaConf.select(master, "hydra.sweeper.n_trials", default=None)
    return [
        f"plan: hydra/sweeper is Optuna ({sweeper.get('_target_')}): it chooses each trial's values from the "
        f"results so far, so its jobs cannot be listed before they run; n_trials={n_trials} in total for "
        f"study {study} ({storage})",
        f"  fixed part: {' '.join(fixed) or '(no overrides)'}",
        f"  searched: {searched}",
    ]


# -- one job ----------------------------------------------------------------------------------
class _Fingerprints:
    """One fingerprint per distinct data config of the sweep (its jobs usually share one)."""

    def __init__(self) -> None:
        self.known: dict[str, object] = {}

    def get(self, data: DictConfig):
        from bench.data.selection import SELECTION_KEYS, selected_fingerprint

        plain = OmegaConf.to_container(data, resolve=True)
        key = json.dumps({k: plain.get(k) for k in SELECTION_KEYS}, sort_keys=True, default=str)
        if key not in self.known:
            self.known[key] = selected_fingerprint(plain)
        return self.known[key]


def _epochs_done(run_dir: Path) -> int | None:
    """Rows of history.csv: epochs the interrupted run finished (one row per epoch)."""
    try:
        with open(run_dir / "history.csv", newline="", encoding="utf-8") as fh:
            return sum(1 for _ in csv.DictReader(fh))
    except (OSError, csv.Error, UnicodeDecodeError):
        return None


def _objective_text(record: dict, cfg: DictConfig, detection: bool) -> str:
    metric = "val/map50" if detection else str(cfg.monitor.metric)
    value = (record.get("metrics") or {}).get("val", {}).get(metric.split("/", 1)[1])
    return f"{metric} {value:.4f}" if isinstance(value, float) else f"{metric} ?"


def plan_job(num: int, overrides: list[str], cfg: DictConfig, fingerprints: _Fingerprints,
             check_data: Callable[[DictConfig], None] = lambda cfg: None) -> JobPlan:
    job = JobPlan(num, overrides, "error")
    absolute_paths(cfg)  # as run() does before it names the folder
    detection = task_kind(cfg) == DETECTION  # the trainer bench.pipeline picks
    fingerprint = None
    provisional = ""
    if not detection:  # detection run ids have no data fingerprint (bench.detection.run)
        root = Path(os.path.expanduser(str(cfg.data.root)))
        if not root.exists():
            if not cfg.data.get("generate_if_missing", False):
                check_data(cfg)  # the message the command itself gives (bench-train: bench.cli.train_feedback)
                raise BenchError(f"data.root={root} does not exist: set data.root=DIR to the dataset folder")
            provisional = f"new run; id provisional: {root} is generated by the first job (see the note)"
        else:
            fingerprint = fingerprints.get(cfg.data).digest
    run_id = run_id_for(cfg, fingerprint)
    if provisional:
        run_id = f"{run_id.rsplit('__', 1)[0]}__{UNKNOWN_HASH}"
    run_dir = confined(cfg.paths.runs_dir, run_id, what="run folder")
    job.run_id, job.run_dir = run_id, str(run_dir)
    if provisional:
        job.action, job.detail = "train", provisional
        return job

    resume = bool(cfg.get("resume", True))
    record = read_record(run_dir)
    if record is not None and resume:
        job.action, job.detail = "skip", f"complete ({_objective_text(record, cfg, detection)})"
        return job
    lock_path = run_dir / LOCK_FILE
    holder = read_lock(lock_path)
    stale_note = ""
    if holder is not None:
        stale_after = float(OmegaConf.select(cfg, "run_lock.stale_after_s", default=600.0))
        stale = lock_stale_reason(lock_path, holder, stale_after)
        if stale is None:
            beat = holder.get("heartbeat") if holder else None
            try:
                age = f"{time.time() - (float(beat) if beat else lock_path.stat().st_mtime):.0f} s ago"
            except (OSError, ValueError):  # released while we looked, or a torn heartbeat
                age = "unknown"
            job.action = "busy"
            job.detail = (f"run.lock held by host {holder.get('host')} pid {holder.get('pid')} "
                          f"(heartbeat {age}): this job would skip it")
            return job
        stale_note = f"; its stale run.lock ({stale}) is taken over"
    if not resume:
        job.action = "train"
        job.detail = "resume=false: starts over" + (" (the complete run is replaced)" if record else "") + stale_note
        return job
    last = (run_dir / "ultralytics" / "weights" / "last.pt") if detection else (run_dir / "checkpoints" / "last.ckpt")
    if last.is_file():
        done = None if detection else _epochs_done(run_dir)
        progress = f", {done} of {int(cfg.trainer.max_epochs)} epochs done" if done is not None else ""
        job.action, job.detail = "resume", f"from {last.relative_to(run_dir)}{progress}{stale_note}"
        return job
    job.action = "train"
    job.detail = ("new run" if not run_dir.exists() else "folder without a checkpoint: trains from scratch") + stale_note
    return job


# -- the command ------------------------------------------------------------------------------
def plan_command(argv: list[str], conf_dir: str, prog: str = "bench-train",
                 check_data: Callable[[DictConfig], None] = lambda cfg: None) -> tuple[int, list[str]]:
    """The plan of ``prog argv`` (``--plan`` removed): (exit code, lines to print). ``check_data(cfg)``
    raises the command's own ``BenchError`` for a job whose dataset is missing.

    Errors of the command itself (overrides, composition) propagate as Hydra raises them, for the
    caller to print as bench-train does; a job whose config cannot be planned is an ``error`` line.
    """
    from hydra._internal.utils import get_args_parser

    from bench.sweep.plugins import ensure_plugins

    started = time.perf_counter()
    args = get_args_parser().parse_args(argv)
    if args.help or args.hydra_help or args.cfg or args.info or args.shell_completion:
        raise BenchError("--plan goes with a training command (bench-train [-m] OVERRIDES --plan), not with "
                         "--help, --hydra-help, --cfg, --info or --shell-completion")
    if args.config_path is not None:
        raise BenchError("--plan reads bench-train's own configs: use --config-dir DIR (added to them), not --config-path")
    ensure_plugins()
    from hydra.core.global_hydra import GlobalHydra

    try:
        return _plan(args, conf_dir, prog, started, check_data)
    finally:
        GlobalHydra.instance().clear()  # leave no global Hydra behind (in-process callers, tests)


def _plan(args, conf_dir: str, prog: str, started: float, check_data) -> tuple[int, list[str]]:
    from hydra.types import RunMode

    hydra = _hydra(conf_dir, args.config_dir)
    mode = RunMode.MULTIRUN if args.multirun else RunMode.RUN
    master = hydra.compose_config(config_name=args.config_name or "train", overrides=list(args.overrides),
                                  run_mode=mode, with_log_configuration=False)
    if mode == RunMode.RUN:
        jobs = [(list(args.overrides), master)]
    else:
        if _is_optuna(master.hydra.sweeper):
            return 0, _optuna_lines(master)
        from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
        from hydra.utils import get_class

        target = str(master.hydra.sweeper.get("_target_", ""))
        if not issubclass(get_class(target), BasicSweeper):
            raise BenchError(f"hydra/sweeper ({target}) is not a basic sweeper: --plan lists the jobs of "
                             f"hydra/sweeper=bench_basic (the default) only")
        jobs = [(o, hydra.config_loader.load_sweep_config(master, o)) for o in _job_overrides(hydra, master)]

    fingerprints = _Fingerprints()
    plans = []
    for num, (overrides, cfg) in enumerate(jobs):
        try:
            plans.append(plan_job(num, overrides, _task_config(cfg), fingerprints, check_data))
        except BenchError as exc:
            plans.append(JobPlan(num, overrides, "error", detail=f"error: {exc}"))
        except Exception as exc:  # an unresolvable value of this job's config: the user's to fix
            plans.append(JobPlan(num, overrides, "error", detail=f"error: {type(exc).__name__}: {first_line(exc)}"))

    runs_dirs = sorted({str(Path(p.run_dir).parent) for p in plans if p.run_dir})
    kind = "sweep" if mode == RunMode.MULTIRUN else "run"
    shared = set.intersection(*(set(p.overrides) for p in plans)) if len(plans) > 1 else set()
    lines = [f"plan of {prog}: {len(plans)} job{'s' if len(plans) != 1 else ''} ({kind}), "
             f"run folders under {', '.join(runs_dirs) or '-'}"]
    lines += [p.line([o for o in p.overrides if o not in shared]) for p in plans]  # what varies between jobs
    if any(UNKNOWN_HASH in (p.run_id or "") for p in plans):
        lines.append(f"note: {UNKNOWN_HASH} stands for the part of a run id that hashes the dataset's files "
                     f"(bench.data.fingerprint): a generated fixture (data.generate_if_missing) that does not exist yet "
                     f"has no files to hash; the first job writes it, and a plan after that shows every id")
    counts = {a: sum(p.action == a for p in plans) for a in ACTIONS}
    lines.append(f"plan: {counts['train']} to train, {counts['resume']} to resume, {counts['skip']} to skip (complete), "
                 f"{counts['busy']} busy elsewhere, {counts['error']} with errors; nothing was run "
                 f"({time.perf_counter() - started:.1f} s; drop --plan to run it)")
    return (2 if counts["error"] else 0), lines
