"""One line per epoch when the output is not a terminal (a cluster log file): Lightning's
progress bar writes only its last frame there, so a long run is otherwise silent until it ends."""

from __future__ import annotations

import logging
import math
import sys
import time

import lightning as L

log = logging.getLogger("bench.train")
VAL_SHOWN = ("loss", "accuracy", "auroc", "f1", "kappa")  # the rest are in history.csv


def output_is_terminal() -> bool:
    return sys.stdout.isatty() and sys.stderr.isatty()


class EpochLine(L.Callback):
    """``epoch 1/5: train loss 0.512, val loss 0.498, val auroc 0.81, ... (12.3 s)`` after validation."""

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._t0 = time.perf_counter()

    # After the epoch's validation (and the module's own epoch-end logging of val/*).
    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero or not hasattr(self, "_t0"):
            return
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if getattr(v, "numel", lambda: 1)() == 1}
        train_loss = pl_module.epoch_train_loss() if hasattr(pl_module, "epoch_train_loss") else metrics.get("train/loss")
        parts = [f"train loss {train_loss:.4f}" if train_loss is not None and math.isfinite(train_loss) else "train loss n/a"]
        parts += [f"val {k} {metrics[f'val/{k}']:.4f}" for k in VAL_SHOWN if f"val/{k}" in metrics]
        log.info("epoch %d/%s: %s (%.1f s)", trainer.current_epoch + 1, trainer.max_epochs, ", ".join(parts),
                 time.perf_counter() - self._t0)
