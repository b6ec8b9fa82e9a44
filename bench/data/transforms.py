"""Augmentation presets (torchvision.transforms.v2) on cached uint8 1 x S x S tensors.

Every preset ends with: to float in [0, 1], gray -> 3 channels (ImageNet-shaped backbones),
normalise with the model's mean/std. Augmenting the single channel first is 3x cheaper.

* ``seed000``: +-15 deg rotation, horizontal flip, +-20% brightness/contrast, zoom 0.9-1.1 and
  shift 0.1 (seed 000's "small zoom and shift").
* ``seed002``: Keras ImageDataGenerator(rotation_range=40, width/height_shift_range=0.2,
  shear_range=0.2, zoom_range=0.2, horizontal_flip=True). Keras' shear_range is in degrees, so
  the shear is +-0.2 deg here too (faithful, if nearly a no-op); zoom 0.2 -> scale 0.8-1.2.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn
from torchvision.transforms import v2

from bench.errors import BenchError

PRESETS = ("none", "seed000", "seed002")


class GrayToRGB(nn.Module):
    """1 x H x W -> 3 x H x W without copying (expand)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.expand(3, *x.shape[-2:]) if x.shape[-3] == 1 else x


def _tail(mean: Sequence[float], std: Sequence[float]) -> list[nn.Module]:
    return [v2.ToDtype(torch.float32, scale=True), GrayToRGB(), v2.Normalize(mean=list(mean), std=list(std))]


def eval_transform(mean: Sequence[float], std: Sequence[float]) -> v2.Compose:
    return v2.Compose(_tail(mean, std))


def train_transform(preset: str, mean: Sequence[float], std: Sequence[float]) -> v2.Compose:
    if preset == "none":
        aug: list[nn.Module] = []
    elif preset == "seed000":
        aug = [
            v2.RandomAffine(degrees=15, translate=(0.1, 0.1), scale=(0.9, 1.1)),
            v2.RandomHorizontalFlip(p=0.5),
            v2.ColorJitter(brightness=0.2, contrast=0.2),
        ]
    elif preset == "seed002":
        aug = [
            v2.RandomAffine(degrees=40, translate=(0.2, 0.2), scale=(0.8, 1.2), shear=0.2),
            v2.RandomHorizontalFlip(p=0.5),
        ]
    else:
        raise BenchError(f"data.augment={preset!r}: use one of {', '.join(PRESETS)}")
    return v2.Compose(aug + _tail(mean, std))
