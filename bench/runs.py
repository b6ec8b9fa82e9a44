"""A finished run folder, rebuilt for the stages after training (explain; anything that needs the
trained model and its data again). Stage-neutral: it reads what training wrote (record, config,
split, checkpoint) and builds the model and the data from it, without the training code."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf

from bench.checkpoints import load_checkpoint
from bench.errors import BenchError
from bench.models.preprocess import input_normalisation
from bench.record import load_record
from bench.spec import instantiate, model_spec

# FractureClassifier (bench.training.module) keeps the network as ``self.model``.
_MODEL_PREFIX = "model."


def load_run(run_dir: str | os.PathLike, device: str = "cpu") -> tuple[torch.nn.Module, Any, dict]:
    """(model with the best checkpoint's weights, in eval mode; datamodule set up on the recorded
    split; record) of a finished run."""
    run_dir = Path(run_dir)
    record = load_record(run_dir).to_dict()
    ckpt = run_dir / record.get("files", {}).get("best_checkpoint", "checkpoints/best.ckpt")
    if not ckpt.is_file():
        raise BenchError(f"{ckpt}: the run's best checkpoint is missing; re-run training for {record['run_id']}")
    cfg = OmegaConf.load(run_dir / "config.yaml")
    OmegaConf.set_struct(cfg, False)
    cfg.data.split_file = str(run_dir / "split.csv")
    mean, std = input_normalisation(model_spec(cfg.model))
    dm = instantiate(cfg.data, "data", image_size=int(record["model"]["input_size"]), mean=list(mean), std=list(std))
    dm.prepare_data()
    dm.setup("test")
    # The checkpoint holds every weight: do not load (or require) the pretrained file again.
    model = instantiate(cfg.model, "model", num_classes=dm.num_classes, pretrained=False, weights=None)
    state = load_checkpoint(ckpt)  # data only: a run folder copied from elsewhere cannot run code
    weights = {k[len(_MODEL_PREFIX):]: v for k, v in state["state_dict"].items() if k.startswith(_MODEL_PREFIX)}
    model.load_state_dict(weights)
    return model.eval().to(device), dm, record
