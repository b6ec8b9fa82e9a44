"""The LightningModule shared by every backbone: one loss, one optimiser setup, one metric set."""

from __future__ import annotations

from collections.abc import Sequence

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn

from bench.errors import BenchError
from bench.evaluation.metrics import VAL_LOGGED, ClassificationMetrics

OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}


class FractureClassifier(L.LightningModule):
    def __init__(
        self,
        model: nn.Module,
        class_names: Sequence[str],
        positive_index: int | None,
        optim: dict,
        class_weights: torch.Tensor | None = None,
        channels_last: bool = False,
    ):
        super().__init__()
        name = str(optim.get("name", "adam")).lower()
        if name not in OPTIMIZERS:
            raise BenchError(f"optim.name={name!r} is not supported; use one of {sorted(OPTIMIZERS)}")
        if float(optim.get("lr", 0)) <= 0:
            raise BenchError(f"optim.lr={optim.get('lr')!r} must be a positive number")
        self.model = model
        self.class_names = list(class_names)
        self.positive_index = positive_index
        self.optim = dict(optim)
        self.channels_last = channels_last
        # A buffer so the weights move with the module and are saved in checkpoints.
        self.register_buffer("class_weights", None if class_weights is None else class_weights.float(), persistent=False)
        self.val_metrics = ClassificationMetrics(len(self.class_names), positive_index, self.class_names)
        self._loss_sum, self._loss_n = torch.zeros(()), 0

    def compile_model(self, backend: str = "inductor") -> None:
        """torch.compile for the steps, kept off the module tree so checkpoints keep the plain
        ``model.*`` keys (a compiled submodule would save ``model._orig_mod.*``)."""
        object.__setattr__(self, "_compiled", torch.compile(self.model, backend=backend))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.__dict__.get("_compiled", self.model)(x)

    def training_step(self, batch, batch_idx):
        x, y, _ = batch
        logits = self(x)
        loss = F.cross_entropy(logits, y, weight=self.class_weights)
        # Summed on the device and logged once per epoch: a per-step self.log cost about 3% of
        # a small model's step on the CPU (benchmarks/throughput.py).
        self._loss_sum = self._loss_sum + loss.detach() * x.shape[0]
        self._loss_n += x.shape[0]
        return loss

    def on_train_epoch_start(self):
        self._loss_sum, self._loss_n = torch.zeros((), device=self.device), 0

    def epoch_train_loss(self) -> float:
        return float(self._loss_sum) / self._loss_n if self._loss_n else float("nan")

    def on_train_epoch_end(self):
        if self._loss_n:
            self.log("train/loss", self._loss_sum / self._loss_n, sync_dist=True)

    def validation_step(self, batch, batch_idx):
        x, y, _ = batch
        logits = self(x)
        loss = F.cross_entropy(logits, y, weight=self.class_weights)
        self.log("val/loss", loss, on_step=False, on_epoch=True, batch_size=x.shape[0])
        self.val_metrics.update(logits.float().softmax(dim=1), y)

    def on_validation_epoch_end(self):
        metrics = self.val_metrics.compute()
        self.val_metrics.reset()
        for key in VAL_LOGGED:
            if key in metrics:
                # None (undefined, e.g. AUC on a one-class val set) would poison "max" monitors: use 0.
                value = metrics[key]
                self.log(f"val/{key}", 0.0 if value is None else float(value), sync_dist=False)

    def predict_step(self, batch, batch_idx, dataloader_idx=0):
        x, y, rows = batch
        logits = self(x)
        return {"probs": logits.float().softmax(dim=1).cpu(), "labels": y.cpu(), "rows": rows.cpu()}

    def configure_optimizers(self):
        cls = OPTIMIZERS[str(self.optim.get("name", "adam")).lower()]
        return cls(self.parameters(), lr=float(self.optim["lr"]), weight_decay=float(self.optim.get("weight_decay", 0.0)))
