"""YOLOv8-cls backbones from Ultralytics' model definition: no download, no network, no trainer.

Head policy: the Ultralytics ``Classify`` module is conv(1x1 -> 1280) -> avg pool -> dropout ->
linear. Its 1x1 conv stays in the backbone (like EfficientNet's ``conv_head``) and is the last
CAM layer; pooling onward is our head, as for every other backbone, so a head sweep means the
same thing across the zoo. ``head: {pool: avg, dropout: 0.0, dense_units: 0}`` reproduces
Ultralytics' Classify exactly, and then a checkpoint's linear layer loads too when the class
count matches.
"""

from __future__ import annotations

import contextlib
import io
import logging
from pathlib import Path

import torch
import torch.nn as nn

from bench.errors import BenchError


class YoloBackbone(nn.Module):
    """Layers 0..n-2 of an Ultralytics ``ClassificationModel`` plus the Classify head's 1x1 conv.

    ``self.model`` is Ultralytics' own ``nn.Sequential``, so state-dict keys (``model.N...``) match
    Ultralytics checkpoints. Classify's pool / dropout / linear are replaced by ``nn.Identity``:
    our head owns them, and unused parameters would break DDP.
    """

    def __init__(self, ultra_model: nn.Module, arch: str):
        super().__init__()
        self.arch = arch
        self.model = ultra_model.model
        if any(getattr(m, "f", -1) != -1 for m in self.model):
            raise BenchError(f"{arch} is not a sequential classification model (layers with skip inputs): use a *-cls.yaml")
        classify = self.model[-1]
        if not hasattr(classify, "conv") or not hasattr(classify, "linear"):
            raise BenchError(f"{arch} does not end in an Ultralytics Classify head: use a *-cls.yaml model")
        classify.pool, classify.drop, classify.linear = nn.Identity(), nn.Identity(), nn.Identity()
        self.num_features = classify.conv.conv.out_channels
        self.pretrained_cfg: dict = {}

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        # Sequential by construction (every layer reads the previous output, checked above).
        for i in range(len(self.model) - 1):
            x = self.model[i](x)
        return self.model[-1].conv(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_features(x)

    def cam_names(self) -> list[str]:
        last = len(self.model) - 1
        return [f"model.{i}" for i in range(last)] + [f"model.{last}.conv"]


def build_yolo_backbone(arch: str, num_classes: int, weights: Path | None, pretrained: bool, in_chans: int = 3):
    """Returns ``(backbone, head_state)``; ``head_state`` is the checkpoint's Classify linear
    (``{"weight", "bias"}``) when weights were loaded, else None."""
    if pretrained and weights is None:
        raise BenchError(
            f"pretrained {arch} needs a local Ultralytics checkpoint (no downloads here): pass model.weights=/path/{arch.replace('.yaml', '.pt')}"
        )
    from ultralytics.nn.tasks import ClassificationModel

    try:
        with _quiet():
            ultra = ClassificationModel(cfg=arch, ch=in_chans, nc=num_classes, verbose=False)
    except FileNotFoundError as err:
        raise BenchError(f"Ultralytics has no model definition {arch!r}: use e.g. yolov8n-cls.yaml (scales n/s/m/l/x)") from err
    backbone = YoloBackbone(ultra, arch)
    head_state = load_yolo_weights(backbone, weights) if weights is not None else None
    return backbone, head_state


def load_yolo_weights(backbone: YoloBackbone, path: Path) -> dict | None:
    """Load an Ultralytics checkpoint (``{"model"/"ema": ClassificationModel}``, a pickled model,
    or a plain state dict) into ``backbone``; every backbone tensor must be present with the same
    shape. Returns the checkpoint's Classify linear for the head, or None."""
    state = _read_state_dict(path)
    last = len(backbone.model) - 1
    linear_prefix = f"model.{last}.linear."
    head_state = {k[len(linear_prefix):]: v for k, v in state.items() if k.startswith(linear_prefix)} or None
    own = backbone.state_dict()
    bad = [k for k, v in own.items() if k not in state or tuple(state[k].shape) != tuple(v.shape)]
    if bad:
        raise BenchError(
            f"weights file {path} does not fit {backbone.arch}: {len(bad)} of {len(own)} backbone tensors missing or of another shape "
            f"(first: {bad[0]}): use a checkpoint of the same YOLO scale"
        )
    backbone.load_state_dict({k: state[k].to(v.dtype) for k, v in own.items()})
    return head_state


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    # Ultralytics .pt files pickle the whole model: loaded as data (weights_only=True with an
    # allowlist of layer classes, bench.checkpoints), never by running the file's pickle code.
    from bench.checkpoints import load_ultralytics

    obj = load_ultralytics(path)
    if isinstance(obj, dict) and ("model" in obj or "ema" in obj):
        obj = obj.get("ema") or obj.get("model")
    if isinstance(obj, nn.Module):
        obj = obj.float().state_dict()
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise BenchError(f"weights file {path} holds no model state dict: use an Ultralytics .pt checkpoint")
    return obj


@contextlib.contextmanager
def _quiet():
    """Ultralytics prints a model summary even with verbose=False."""
    from ultralytics.utils import LOGGER

    level = LOGGER.level
    LOGGER.setLevel(logging.WARNING)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        LOGGER.setLevel(level)
