"""`bench-train`: the Hydra app. Thin: compose the config, hand it to bench.pipeline."""

from __future__ import annotations

import logging
import os
import sys
import warnings
from pathlib import Path

import hydra
from omegaconf import DictConfig
from omegaconf.errors import InterpolationResolutionError, MissingMandatoryValue

from bench.cli.train_feedback import check_data_path, final_line
from bench.errors import BenchError
from bench.sweep.plugins import ensure_plugins

log = logging.getLogger("bench.train")
ensure_plugins()  # before Hydra scans plugins: our sweepers/launcher, the bench_direction resolver


def _is_multirun() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


# Absolute: as a console script the app is the module bench.cli.train, and Hydra would read a
# relative "../../conf" as the (missing) package `conf`.
CONF_DIR = str(Path(__file__).resolve().parents[2] / "conf")


def _quiet_libraries() -> None:
    """One line per event: Lightning adds its own console handlers on top of Hydra's (every line
    printed twice), and warns about `srun` on any machine that has SLURM installed."""
    import lightning.pytorch  # noqa: F401  (importing lightning adds the handlers removed here)

    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        lib_logger = logging.getLogger(name)
        for handler in list(lib_logger.handlers):
            lib_logger.removeHandler(handler)
        lib_logger.propagate = True  # to Hydra's handlers (console + the job's log file)
    warnings.filterwarnings("ignore", message=r".*`srun` command is available on your system")
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")
    # Known noise, by its exact text (other warnings stay): a small train set has fewer batches
    # than log_every_n_steps (train/loss is logged per epoch anyway); Lightning's litlogger tip.
    warnings.filterwarnings("ignore", message=r".*smaller than the logging interval Trainer\(log_every_n_steps")
    logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(_drop_known_noise)


def _drop_known_noise(record: logging.LogRecord) -> bool:
    return "litlogger" not in record.getMessage()


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="train")
def _main(cfg: DictConfig) -> float:
    try:
        check_data_path(cfg)  # before the heavy imports: a missing dataset is reported in seconds
        _quiet_libraries()
        # Here, not at the top: `bench-train --help` and config errors need no torch / Lightning.
        from bench.pipeline import run_pipeline
        from bench.sweep.summary import note_run

        summary = run_pipeline(cfg)
        note_run(summary)  # the sweep summary reports finished / resumed / skipped
        print(final_line(summary, str(cfg.monitor.metric)), flush=True)  # the run folder and what the numbers are
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        if _is_multirun():
            raise  # the sweep records this job as failed and goes on with the others
        sys.exit(2)
    except (InterpolationResolutionError, MissingMandatoryValue) as exc:
        # A config value that cannot be resolved (${...} to nothing, ???): the user's to fix.
        print(_config_error_text(exc), file=sys.stderr)
        if _is_multirun():
            raise
        sys.exit(2)
    except Exception as exc:
        exc._bench_from_task = True  # type: ignore[attr-defined]  (a bug: main() shows its traceback)
        raise
    # Optuna minimises/maximises this value: the monitored VALIDATION metric, never test.
    return summary.get("objective", float("nan"))


def _is_config_error(exc: BaseException) -> bool:
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    return isinstance(exc, (HydraException, OmegaConfBaseException)) and not getattr(exc, "_bench_from_task", False)


def _config_error_text(exc: BaseException) -> str:
    """Hydra's own message as ours: ``error: <first line>``, then Hydra's details (valid choices)."""
    lines = [ln for ln in str(exc).strip().splitlines()]
    cause = exc.__cause__
    if cause is not None and str(cause).strip() and str(cause).strip() not in str(exc):
        lines += str(cause).strip().splitlines()  # e.g. "Key 'foo' is not in struct" under "Could not override 'foo'"
    first = lines[0] if lines else type(exc).__name__
    return "\n".join([f"error: {first}", *lines[1:]])


def _run_app() -> None:
    """Hydra's own override and config errors exit 2 with the one-line form first, as ours do.

    Hydra prints its errors and exits 1 unless HYDRA_FULL_ERROR is set, in which case it raises
    them: set it for the call, and tell Hydra's errors (composition, overrides) from the task's.
    """
    previous = os.environ.get("HYDRA_FULL_ERROR")
    os.environ["HYDRA_FULL_ERROR"] = "1"
    try:
        _main()
    except Exception as exc:
        if not _is_config_error(exc):
            raise
        print(_config_error_text(exc), file=sys.stderr)
        sys.exit(2)
    finally:
        if previous is None:
            os.environ.pop("HYDRA_FULL_ERROR", None)
        else:
            os.environ["HYDRA_FULL_ERROR"] = previous


def _plan(argv: list[str]) -> None:
    """``--plan``: list what the command would do, job by job, and exit (bench.sweep.plan)."""
    from bench.sweep.plan import plan_command

    try:
        code, lines = plan_command(argv, CONF_DIR, check_data=check_data_path)  # its own missing-data message
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except Exception as exc:
        if not _is_config_error(exc):
            raise
        print(_config_error_text(exc), file=sys.stderr)
        sys.exit(2)
    print("\n".join(lines), flush=True)
    sys.exit(code)


def main() -> None:
    if "--plan" in sys.argv[1:]:  # before Hydra, which would refuse the flag and run the jobs
        _plan([a for a in sys.argv[1:] if a != "--plan"])
    # A sweep with a failed job exits 1 from its summary (bench.sweep.summary), after every job.
    _run_app()


if __name__ == "__main__":
    main()
