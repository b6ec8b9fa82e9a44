"""Best-checkpoint tie-break on a scripted validation history, through a real Lightning Trainer:
epochs that tie on val/auroc go to the better val/loss, not to the earliest; the choice (and
state across a resume) is recorded."""

import lightning as L
import pandas as pd
import pytest
import torch
from torch import nn

from bench.errors import BenchError
from bench.training.best_checkpoint import TieBreakModelCheckpoint, best_section


class Scripted(L.LightningModule):
    """Logs a fixed (val/auroc, val/loss) per epoch; the weights record which epoch saved them."""

    def __init__(self, history):
        super().__init__()
        self.history = history
        self.layer = nn.Linear(1, 1)

    def training_step(self, batch, batch_idx):
        return self.layer(batch[0]).sum() * 0.0

    def on_train_epoch_end(self):
        with torch.no_grad():
            self.layer.bias.fill_(float(self.current_epoch))  # the checkpoint says its epoch

    def validation_step(self, batch, batch_idx):
        auroc, loss = self.history[self.current_epoch]
        self.log("val/auroc", auroc)
        self.log("val/loss", loss)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.0)

    def train_dataloader(self):
        return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.ones(2, 1)), batch_size=2)

    val_dataloader = train_dataloader


def _fit(tmp_path, history, max_epochs=None, ckpt_path=None, **kw):
    cb = TieBreakModelCheckpoint(dirpath=str(tmp_path / "ckpt"), filename="best", monitor="val/auroc", mode="max",
                                 save_top_k=1, save_last=True, auto_insert_metric_name=False, enable_version_counter=False, **kw)
    trainer = L.Trainer(max_epochs=max_epochs or len(history), callbacks=[cb], logger=False, enable_progress_bar=False,
                        enable_model_summary=False, num_sanity_val_steps=0, accelerator="cpu", devices=1)
    trainer.fit(Scripted(history), ckpt_path=ckpt_path)
    return cb


def _saved_epoch(cb):
    state = torch.load(cb.best_model_path, map_location="cpu", weights_only=True)
    return int(state["epoch"]), float(state["state_dict"]["layer.bias"])


# Epoch 1 reaches AUROC 1.0 with a poor loss; epochs 2 and 3 tie on AUROC, epoch 3 has the best loss.
HISTORY = [(0.8, 0.6), (1.0, 0.9), (1.0, 0.4), (1.0, 0.2), (1.0, 0.3), (0.9, 0.1)]


def test_tie_on_monitor_goes_to_the_better_val_loss(tmp_path):
    cb = _fit(tmp_path, HISTORY)
    assert cb.best_epoch == 3 and _saved_epoch(cb) == (3, 3.0)
    assert float(cb.best_model_score) == 1.0 and cb.best_tie_break_score == pytest.approx(0.2)
    hist = pd.DataFrame({"epoch": range(6), "val_auroc": [a for a, _ in HISTORY], "val_loss": [lo for _, lo in HISTORY]})
    best = best_section(cb, "max", 3, hist)
    assert best == {"monitor": "val/auroc", "mode": "max", "epoch": 3, "score": 1.0,
                    "tie_break": {"metric": "val/loss", "mode": "min", "value": pytest.approx(0.2), "decided": True},
                    "tied_epochs": [1, 2, 3, 4]}


def test_without_tie_break_lightning_keeps_the_earliest_tie(tmp_path):
    cb = _fit(tmp_path, HISTORY, tie_break=None)
    assert _saved_epoch(cb) == (1, 1.0)  # the degenerate choice the tie-break exists to avoid


def test_strict_improvement_still_wins_over_a_better_loss(tmp_path):
    cb = _fit(tmp_path, [(0.7, 0.1), (0.8, 0.9), (0.8, 0.95)])
    assert _saved_epoch(cb)[0] == 1 and cb.won_by_tie_break is False


def test_float32_rounding_on_the_monitor_is_a_tie_not_an_improvement(tmp_path):
    # the quickstart's history: AUROC 1.0 from epoch 1, float32 AUROC 1.0000001 on epoch 2 with a
    # val loss 40x worse; the best loss (epoch 3) must win, as in an exact tie
    cb = _fit(tmp_path, [(0.97, 0.6), (1.0, 0.59), (1.0000001192092896, 5.2), (1.0, 0.0006), (0.99, 0.0001)])
    assert cb.best_epoch == 3 and _saved_epoch(cb) == (3, 3.0) and cb.won_by_tie_break is True
    assert _saved_epoch(_fit(tmp_path / "exact", [(0.97, 0.6), (1.0, 0.59), (1.0000001192092896, 5.2)],
                             tie_tolerance=0.0))[0] == 2  # tolerance 0: Lightning's strict rule


def test_tie_break_state_survives_a_resume(tmp_path):
    _fit(tmp_path, HISTORY, max_epochs=3)  # best so far: epoch 2 (loss 0.4)
    cb = _fit(tmp_path, HISTORY, max_epochs=6, ckpt_path=str(tmp_path / "ckpt" / "last.ckpt"))
    assert cb.best_epoch == 3 and _saved_epoch(cb) == (3, 3.0)


def test_tie_break_needs_a_single_best():
    with pytest.raises(BenchError, match="save_top_k"):
        TieBreakModelCheckpoint(monitor="val/auroc", mode="max", save_top_k=2)
