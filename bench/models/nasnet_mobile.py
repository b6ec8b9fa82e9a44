"""NASNet-A Mobile (4 @ 1056), the architecture of Keras' ``NASNetMobile``, built from timm's own
NASNet cells and registered with timm as ``nasnetamobile``.

timm ships only NASNet-A Large. Its cells (``timm.models.nasnet``, ported from Cadene's
pretrained-models) are parameterised by channel counts, so the mobile network is the same cells
with stem 32, 44 base channels and 4 cells per stage instead of 6, wired like Keras with
``skip_reduction=False``: the cell after a reduction cell takes the reduction's input as its
previous input (Large takes the one before). Attribute names follow Cadene's ``NASNetAMobile``
(cell_0..3, cell_6..9, cell_12..15) so its state dicts map onto this one key for key.
"""

from __future__ import annotations

from functools import partial

import timm
import torch.nn as nn
from timm.layers import ConvNormAct, create_classifier
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model
from timm.models.nasnet import CellStem0, CellStem1, FirstCell, NormalCell, ReductionCell0, ReductionCell1

ARCH = "nasnetamobile"


class NASNetAMobile(nn.Module):
    """NASNet-A Mobile (4 @ 1056): 5.3 M parameters with the 1000-class head, like Keras."""

    def __init__(
        self,
        num_classes: int = 1000,
        in_chans: int = 3,
        stem_size: int = 32,
        channel_multiplier: int = 2,
        num_features: int = 1056,
        drop_rate: float = 0.0,
        global_pool: str = "avg",
        pad_type: str = "same",
        **_,
    ):
        super().__init__()
        self.num_classes = num_classes
        self.num_features = self.head_hidden_size = num_features
        c = num_features // 24  # 44: the penultimate width is 24 x the base channels
        cells = dict(pad_type=pad_type)
        self.conv0 = ConvNormAct(
            in_chans, stem_size, kernel_size=3, padding=0, stride=2,
            norm_layer=partial(nn.BatchNorm2d, eps=0.001, momentum=0.1), apply_act=False,
        )
        self.cell_stem_0 = CellStem0(stem_size, num_channels=c // channel_multiplier**2, **cells)
        self.cell_stem_1 = CellStem1(stem_size, num_channels=c // channel_multiplier, **cells)
        self.cell_0 = FirstCell(c, c // 2, 2 * c, c, **cells)
        self.cell_1 = NormalCell(2 * c, c, 6 * c, c, **cells)
        self.cell_2 = NormalCell(6 * c, c, 6 * c, c, **cells)
        self.cell_3 = NormalCell(6 * c, c, 6 * c, c, **cells)
        self.reduction_cell_0 = ReductionCell0(6 * c, 2 * c, 6 * c, 2 * c, **cells)
        self.cell_6 = FirstCell(6 * c, c, 8 * c, 2 * c, **cells)
        self.cell_7 = NormalCell(8 * c, 2 * c, 12 * c, 2 * c, **cells)
        self.cell_8 = NormalCell(12 * c, 2 * c, 12 * c, 2 * c, **cells)
        self.cell_9 = NormalCell(12 * c, 2 * c, 12 * c, 2 * c, **cells)
        self.reduction_cell_1 = ReductionCell1(12 * c, 4 * c, 12 * c, 4 * c, **cells)
        self.cell_12 = FirstCell(12 * c, 2 * c, 16 * c, 4 * c, **cells)
        self.cell_13 = NormalCell(16 * c, 4 * c, 24 * c, 4 * c, **cells)
        self.cell_14 = NormalCell(24 * c, 4 * c, 24 * c, 4 * c, **cells)
        self.cell_15 = NormalCell(24 * c, 4 * c, 24 * c, 4 * c, **cells)
        self.act = nn.ReLU(inplace=True)
        self.feature_info = [
            dict(num_chs=stem_size, reduction=2, module="conv0"),
            dict(num_chs=c, reduction=4, module="cell_stem_0"),
            dict(num_chs=6 * c, reduction=8, module="cell_3"),
            dict(num_chs=12 * c, reduction=16, module="cell_9"),
            dict(num_chs=num_features, reduction=32, module="act"),
        ]
        self.global_pool, self.head_drop, self.last_linear = create_classifier(
            num_features, num_classes, pool_type=global_pool, drop_rate=drop_rate
        )

    def get_classifier(self) -> nn.Module:
        return self.last_linear

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        self.num_classes = num_classes
        pool = self.global_pool.pool_type if global_pool is None else global_pool
        self.global_pool, self.last_linear = create_classifier(self.num_features, num_classes, pool_type=pool)

    def forward_features(self, x):
        x_conv0 = self.conv0(x)
        x_stem_0 = self.cell_stem_0(x_conv0)
        x_stem_1 = self.cell_stem_1(x_conv0, x_stem_0)
        x_cell_0 = self.cell_0(x_stem_1, x_stem_0)
        x_cell_1 = self.cell_1(x_cell_0, x_stem_1)
        x_cell_2 = self.cell_2(x_cell_1, x_cell_0)
        x_cell_3 = self.cell_3(x_cell_2, x_cell_1)
        x_red_0 = self.reduction_cell_0(x_cell_3, x_cell_2)
        x_cell_6 = self.cell_6(x_red_0, x_cell_3)  # Keras skip_reduction=False: prev = reduction input
        x_cell_7 = self.cell_7(x_cell_6, x_red_0)
        x_cell_8 = self.cell_8(x_cell_7, x_cell_6)
        x_cell_9 = self.cell_9(x_cell_8, x_cell_7)
        x_red_1 = self.reduction_cell_1(x_cell_9, x_cell_8)
        x_cell_12 = self.cell_12(x_red_1, x_cell_9)
        x_cell_13 = self.cell_13(x_cell_12, x_red_1)
        x_cell_14 = self.cell_14(x_cell_13, x_cell_12)
        x_cell_15 = self.cell_15(x_cell_14, x_cell_13)
        return self.act(x_cell_15)

    def forward_head(self, x, pre_logits: bool = False):
        x = self.head_drop(self.global_pool(x))
        return x if pre_logits else self.last_linear(x)

    def forward(self, x):
        return self.forward_head(self.forward_features(x))


# No published timm weights: pretrained=True needs a local file (model.weights=...).
default_cfgs = generate_default_cfgs({  # read by timm's register_model
    f"{ARCH}.untrained": dict(
        url="", num_classes=1000, input_size=(3, 224, 224), pool_size=(7, 7), crop_pct=0.875,
        interpolation="bicubic", mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5),
        first_conv="conv0.conv", classifier="last_linear",
    )
})


def _nasnetamobile(pretrained: bool = False, **kwargs) -> NASNetAMobile:
    return build_model_with_cfg(
        NASNetAMobile, ARCH, pretrained, feature_cfg=dict(feature_cls="hook", no_rewrite=True), **kwargs
    )


if not timm.is_model(ARCH):  # a future timm may ship its own; then that one is used
    _nasnetamobile.__name__ = ARCH
    _nasnetamobile.__module__ = __name__
    register_model(_nasnetamobile)
