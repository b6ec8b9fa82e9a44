"""Best-checkpoint choice with a documented tie-break.

Lightning's ``ModelCheckpoint`` replaces the best checkpoint only on a strict improvement, so when
the monitored metric ties (validation AUROC stuck at 1.0 on a small validation set) the
*earliest* tied epoch wins, however poor its other validation numbers. This subclass breaks a
tie on the monitor with a second validation key (default ``val/loss``, lower is better): a later
epoch with the same monitor value and a strictly better tie-break value becomes the best.
Monitor values within ``tie_tolerance`` of the best are ties: float32 AUROC reads 1.0000001 on one
epoch and 1.0 on another, and that rounding must not pick the epoch. Only the validation metrics
ever decide (test never picks a checkpoint).
"""

from __future__ import annotations

import math
import operator
from typing import Any

import numpy as np
import pandas as pd
from lightning.pytorch.callbacks import ModelCheckpoint

from bench.errors import BenchError


class TieBreakModelCheckpoint(ModelCheckpoint):
    """``ModelCheckpoint(save_top_k=1)`` whose ties on ``monitor`` go to the better ``tie_break``."""

    def __init__(self, *args, tie_break: str | None = "val/loss", tie_break_mode: str = "min",
                 tie_tolerance: float = 1e-6, **kwargs):
        super().__init__(*args, **kwargs)
        if not (isinstance(tie_tolerance, (int, float)) and 0 <= tie_tolerance < 0.01):
            raise BenchError(f"callbacks.model_checkpoint.tie_tolerance={tie_tolerance!r}: use a number in [0, 0.01)")
        self.tie_tolerance = float(tie_tolerance)
        if tie_break_mode not in ("min", "max"):
            raise BenchError(f"callbacks.model_checkpoint.tie_break_mode={tie_break_mode!r}: use 'min' or 'max'")
        if tie_break and self.save_top_k != 1:
            raise BenchError(f"callbacks.model_checkpoint.save_top_k={self.save_top_k}: the tie-break keeps one best checkpoint; use save_top_k=1")
        self.tie_break = tie_break if tie_break and tie_break != self.monitor else None
        self.tie_break_mode = tie_break_mode
        self.best_tie_break_score: float | None = None
        self.best_epoch: int | None = None
        self.won_by_tie_break = False
        self._tie_win = False

    def check_monitor_top_k(self, trainer, current=None) -> bool:
        self._tie_win = False
        if current is None or self.tie_break is None or not self.best_k_models:
            return super().check_monitor_top_k(trainer, current)
        best = float(self.best_k_models[self.kth_best_model_path])
        if not math.isfinite(float(current)) or abs(float(current) - best) > self.tie_tolerance:
            return super().check_monitor_top_k(trainer, current)
        value = trainer.callback_metrics.get(self.tie_break)  # a tie: the tie-break decides
        if value is None or not math.isfinite(float(value)) or self.best_tie_break_score is None:
            return False
        better = {"min": operator.lt, "max": operator.gt}[self.tie_break_mode](float(value), self.best_tie_break_score)
        self._tie_win = bool(trainer.strategy.reduce_boolean_decision(bool(better)))
        return self._tie_win

    def _update_best_and_save(self, current, trainer, monitor_candidates) -> None:
        value = monitor_candidates.get(self.tie_break) if self.tie_break else None
        self.best_tie_break_score = None if value is None else float(value)
        self.best_epoch = int(monitor_candidates["epoch"])
        self.won_by_tie_break = self._tie_win
        super()._update_best_and_save(current, trainer, monitor_candidates)

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state.update(best_tie_break_score=self.best_tie_break_score, best_epoch=self.best_epoch,
                     won_by_tie_break=self.won_by_tie_break)
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        self.best_tie_break_score = state_dict.get("best_tie_break_score")
        self.best_epoch = state_dict.get("best_epoch")
        self.won_by_tie_break = bool(state_dict.get("won_by_tie_break", False))


def best_section(ckpt_cb: ModelCheckpoint, mode: str, best_epoch: int, history: pd.DataFrame | None = None) -> dict:
    """The record's ``best`` section: monitor, its score, the chosen epoch, the tie-break key and
    value, and the epochs that tied with the best on the monitor (from ``history.csv``)."""
    score = None if ckpt_cb.best_model_score is None else float(ckpt_cb.best_model_score)
    out: dict = {"monitor": ckpt_cb.monitor, "mode": mode, "epoch": best_epoch,
                 "score": score if score is None or math.isfinite(score) else None}
    tie_break = getattr(ckpt_cb, "tie_break", None)
    if tie_break:
        value = ckpt_cb.best_tie_break_score
        out["tie_break"] = {"metric": tie_break, "mode": ckpt_cb.tie_break_mode,
                            "value": value if value is None or math.isfinite(value) else None,
                            "decided": bool(ckpt_cb.won_by_tie_break)}
    col = str(ckpt_cb.monitor).replace("/", "_")
    if history is not None and score is not None and col in history.columns and "epoch" in history.columns:
        atol = getattr(ckpt_cb, "tie_tolerance", 0.0) or 1e-12
        tied = history[np.isclose(history[col].astype(float), score, rtol=0.0, atol=atol)]
        out["tied_epochs"] = [int(e) for e in tied["epoch"]]
    return out
