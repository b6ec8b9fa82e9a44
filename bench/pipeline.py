"""The pipeline: train (classification or detection, by the config's task kind) -> explain ->
leaderboard, as the config asks.

The one module that knows the order of the stages. The stages never import each other: training
writes a run folder (docs/run_record.md), explain reads it and adds its section, the leaderboard
reads every run folder. A single run renders the leaderboard after its explain step; a sweep
renders it once, at the end (:class:`LeaderboardAfterSweep`, a Hydra callback), not after every job.
"""

from __future__ import annotations

import logging
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from bench.errors import BenchError
from bench.tasks import DETECTION, task_kind

log = logging.getLogger(__name__)


def run_pipeline(cfg: DictConfig) -> dict:
    """Train (or skip / resume) one configuration, then explain it and render the leaderboard
    when ``explain.enabled`` / ``leaderboard.enabled``; returns training's run summary."""
    # The stages are imported here, not at the top: Hydra builds LeaderboardAfterSweep before
    # every run, and torch / Lightning would delay even a one-line config error by 10-15 s.
    if task_kind(cfg) == DETECTION:  # Ultralytics' own trainer; nothing to explain (docs/detection.md)
        from bench.detection.run import run_detection

        return run_detection(cfg)
    from bench.explain import explain_run
    from bench.training import run as train

    summary = train(cfg)
    record = summary.get("record") or {}
    if summary.get("status") != "complete":
        return summary  # skipped, busy or another rank's: nothing to explain here
    if cfg.explain.get("enabled"):
        explain_run(summary["run_dir"], **explain_options(cfg))
    if cfg.leaderboard.get("enabled") and not record.get("sweep"):
        render(cfg)
    return summary


def explain_options(cfg: DictConfig) -> dict[str, Any]:
    options = OmegaConf.to_container(cfg.explain, resolve=True)
    options.pop("enabled", None)
    return options


def render(cfg: DictConfig):
    from bench.leaderboard import render_leaderboard

    return render_leaderboard([cfg.paths.runs_dir], cfg.leaderboard.out_dir,
                              n_resamples=int(cfg.leaderboard.n_resamples),
                              include_generated=bool(cfg.leaderboard.get("include_generated", False)))


class LeaderboardAfterSweep(Callback):
    """Hydra callback (``hydra.callbacks.leaderboard`` in conf/hydra/default.yaml): with
    ``leaderboard.enabled=true``, render once the whole sweep is done."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        board = config.get("leaderboard")
        if board is None or not board.get("enabled"):
            return
        try:
            render(config)
            log.info("leaderboard rendered into %s", board.out_dir)
        except BenchError as exc:  # the sweep's results are safe on disk; say why there is no board
            print(f"error: leaderboard not rendered: {exc}", flush=True)
