"""Small Lightning callbacks that feed the run record: per-epoch history and training throughput."""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

import lightning as L
import pandas as pd
from lightning.pytorch.callbacks import Checkpoint

from bench.record import atomic_write_text


class HistoryWriter(L.Callback):
    """Writes ``history.csv`` (one row per epoch) after every epoch, so a killed run keeps it and a
    resumed run continues it (rows past the resumed epoch are dropped)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.rows: list[dict] = []

    def on_train_start(self, trainer, pl_module):
        # on_train_start runs after a resumed checkpoint restored current_epoch (on_fit_start does not).
        self.rows = []
        if self.path.is_file() and trainer.current_epoch > 0:
            old = pd.read_csv(self.path)
            self.rows = old[old["epoch"] < trainer.current_epoch].to_dict("records")

    def on_train_epoch_end(self, trainer, pl_module):
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        row = {"epoch": trainer.current_epoch}
        if hasattr(pl_module, "epoch_train_loss"):  # logged by the module after this hook runs
            row["train_loss"] = pl_module.epoch_train_loss()
        for key, value in sorted(trainer.callback_metrics.items()):
            if key.startswith(("train/", "val/")) and key.replace("/", "_") not in row:
                v = float(value)
                row[key.replace("/", "_")] = v if math.isfinite(v) else float("nan")
        self.rows = [r for r in self.rows if r["epoch"] != row["epoch"]] + [row]
        atomic_write_text(self.path, pd.DataFrame(self.rows).to_csv(index=False))


class ThroughputMeter(L.Callback):
    """Training images per second: images seen in training batches over the wall time of the
    training part of each epoch (data loading included, validation excluded). The first
    ``warmup_batches`` batches of the run are left out (kernel selection and allocator warm-up
    dominate them on short runs); a run too short for that falls back to counting every batch."""

    def __init__(self, warmup_batches: int = 2, run_started: float | None = None):
        self.warmup_batches = warmup_batches
        self.images = self.all_images = 0
        self.seconds = self.all_seconds = 0.0
        self._seen = 0
        self._t0: float | None = None
        self._t0_all: float | None = None
        # Wall time of the attempts before a resume (up to their last checkpoint), so that a
        # resumed run's cost figures cover the whole run; carried in the checkpoint (state_dict).
        self.run_started = time.perf_counter() if run_started is None else run_started
        self.fit_started: float | None = None
        self.prior_total_s = self.prior_fit_s = 0.0

    def on_fit_start(self, trainer, pl_module):
        self.fit_started = time.perf_counter()

    def state_dict(self) -> dict:
        now = time.perf_counter()
        return {"images": self.images, "all_images": self.all_images, "seconds": self.seconds,
                "all_seconds": self.all_seconds,
                "total_wall_s": self.prior_total_s + now - self.run_started,
                "fit_wall_s": self.prior_fit_s + (now - self.fit_started if self.fit_started is not None else 0.0)}

    def load_state_dict(self, state: dict) -> None:
        self.images, self.all_images = int(state["images"]), int(state["all_images"])
        self.seconds, self.all_seconds = float(state["seconds"]), float(state["all_seconds"])
        self.prior_total_s, self.prior_fit_s = float(state["total_wall_s"]), float(state["fit_wall_s"])
        self._seen = 0  # the resumed attempt has its own warm-up batches (left out of the timing)

    def on_train_epoch_start(self, trainer, pl_module):
        now = time.perf_counter()
        self._t0_all = now
        self._t0 = now if self._seen >= self.warmup_batches else None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        n = int(batch[0].shape[0])
        self.all_images += n
        if self._seen >= self.warmup_batches:
            self.images += n
        self._seen += 1
        if self._seen == self.warmup_batches:
            self._t0 = time.perf_counter()  # timing starts after the warm-up batches

    def _stop(self):
        now = time.perf_counter()
        if self._t0 is not None:
            self.seconds += now - self._t0
            self._t0 = None
        if self._t0_all is not None:
            self.all_seconds += now - self._t0_all
            self._t0_all = None

    def on_validation_epoch_start(self, trainer, pl_module):
        self._stop()

    def on_train_epoch_end(self, trainer, pl_module):
        self._stop()

    @property
    def images_per_s(self) -> float:
        if self.images and self.seconds > 0:
            return self.images / self.seconds
        return self.all_images / self.all_seconds if self.all_seconds > 0 else float("nan")


class LastCheckpoint(Checkpoint):
    """Writes ``last.ckpt`` at the end of every epoch, atomically (temp file + ``os.replace``).

    Lightning's ``ModelCheckpoint(save_last=True)`` writes ``last.ckpt`` only when it also writes
    a top-k checkpoint (FIELD_NOTES: after 2 epochs whose best was epoch 0 it held epoch 0), so a
    killed run resumed from its last *improving* epoch. This callback is a ``Checkpoint`` so that
    Lightning runs it after ``ModelCheckpoint`` (whose updated best score is then in the file);
    it saves when the epoch's validation ends, or at the epoch's end when it had no validation.
    """

    FILE = "last.ckpt"

    def __init__(self, dirpath: str | os.PathLike):
        self.path = Path(dirpath) / self.FILE
        self._validated = False

    def _save(self, trainer) -> None:
        tmp = self.path.with_name(f".{self.FILE}.{os.getpid()}.tmp")
        trainer.save_checkpoint(tmp, weights_only=False)  # full state (optimizer too); every rank calls it, rank 0 writes
        if trainer.is_global_zero:
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)

    def on_validation_end(self, trainer, pl_module):
        if not trainer.sanity_checking:
            self._validated = True
            self._save(trainer)

    def on_train_epoch_end(self, trainer, pl_module):
        # An epoch without validation (check_val_every_n_epoch > 1): save at its end instead.
        if not self._validated:
            self._save(trainer)
        self._validated = False


class EpochSeeder(L.Callback):
    """Re-seeds the global RNGs (dropout and anything else in the step) from (seed, epoch) at the
    first training batch of every epoch, so that resuming from an epoch-end checkpoint replays
    exactly what an uninterrupted run does (Lightning checkpoints hold no RNG state). It runs after
    the loader's iterator is created, which itself draws from the global RNG at a point that
    differs between a fresh and a resumed epoch. Augmentation has per-sample seeds (the sampler)."""

    def __init__(self, seed: int):
        self.seed = int(seed)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if batch_idx == 0:
            from lightning.fabric.utilities.seed import seed_everything

            seed_everything((self.seed * 1_000_003 + trainer.current_epoch) % 2**32, workers=True, verbose=False)
