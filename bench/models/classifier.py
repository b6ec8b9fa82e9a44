"""``create_model``: a zoo backbone (timm or Ultralytics YOLOv8-cls) plus our classification head.

Every backbone ends at its last spatial feature map (Keras ``include_top=False``); the head is
global pooling -> dropout -> dense(units, ReLU) -> linear(classes), all configurable (seed 000's
Dropout 0.30 -> Dense 512; seed 002's "final layer with one node" is ``binary_output: one_logit``).
``freeze_backbone`` trains the head only (a frozen "feature extractor", Keras ``trainable=False``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import timm
import torch
import torch.nn as nn
from timm.layers import SelectAdaptivePool2d

from bench.errors import BenchError
from bench.errors import first_line as _first_line
from bench.models import nasnet_mobile  # noqa: F401  (registers timm's "nasnetamobile")
from bench.models.preprocess import input_normalisation
from bench.models.registry import ModelSpec, spec_for

POOLS = ("avg", "max", "avgmax", "catavgmax")
BINARY_OUTPUTS = ("two_logits", "one_logit")
HEAD_DEFAULTS = {"pool": "avg", "dropout": 0.3, "dense_units": 512, "binary_output": "two_logits"}


class Head(nn.Module):
    """Pooling -> dropout -> dense(units, ReLU) -> linear; ``dense_units=0`` drops the dense layer.

    ``binary_output="one_logit"`` (two classes only): the last layer has ONE node, z = the log-odds
    of class index 1 (fractured / abnormal), and the head returns the logit pair (-z/2, z/2).
    Softmax of that pair is (1 - sigmoid(z), sigmoid(z)) and its cross-entropy equals
    BCE-with-logits on z, so the one-node model trains and predicts exactly as a sigmoid unit
    while the loss, metrics, predictions and CAM targets keep one (B, 2) interface.
    """

    def __init__(self, in_features: int, num_classes: int, pool: str = "avg", dropout: float = 0.3, dense_units: int = 512,
                 binary_output: str = "two_logits"):
        super().__init__()
        self.one_logit = binary_output == "one_logit" and num_classes == 2
        self.pool = SelectAdaptivePool2d(pool_type=pool, flatten=True)
        features = in_features * self.pool.feat_mult()
        self.drop = nn.Dropout(dropout)
        if dense_units:
            self.dense = nn.Sequential(nn.Linear(features, dense_units), nn.ReLU(inplace=True))
            features = dense_units
        else:
            self.dense = nn.Identity()
        self.fc = nn.Linear(features, 1 if self.one_logit else num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.fc(self.dense(self.drop(self.pool(x))))
        if self.one_logit:
            half = out * 0.5
            return torch.cat([-half, half], dim=1)
        return out


class Classifier(nn.Module):
    """``backbone.forward_features`` (a B x C x H x W map) followed by ``head``; returns logits."""

    def __init__(self, spec: ModelSpec, backbone: nn.Module, head: Head, cam_names: list[str],
                 mean: tuple[float, ...], std: tuple[float, ...], pretrained: bool, weights: str | None):
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.spec = spec
        self.input_size = spec.native_size
        self.mean = tuple(float(v) for v in mean)
        self.std = tuple(float(v) for v in std)
        self.pretrained = pretrained
        self.weights = weights
        self.num_features = int(backbone.num_features)
        self._cam_names = tuple(cam_names)
        self.frozen_backbone = False

    def freeze_backbone(self) -> None:
        """Train the head only: no gradients for the backbone, and its batch-norm layers keep
        their ImageNet statistics (Keras ``base.trainable = False`` runs them in inference mode)."""
        self.frozen_backbone = True
        for p in self.backbone.parameters():
            p.requires_grad_(False)
        self.backbone.eval()

    def train(self, mode: bool = True):
        super().train(mode)
        if self.frozen_backbone:
            self.backbone.eval()
        return self

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone.forward_features(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone.forward_features(x))

    def cam_layers(self) -> list[tuple[str, nn.Module]]:
        """Stages / blocks in execution order, each run once per forward; names are relative to
        this module (``get_submodule(name)``). The last one produces the map the head pools."""
        return [(f"backbone.{n}", self.backbone.get_submodule(n)) for n in self._cam_names]

    def final_cam_layer(self) -> tuple[str, nn.Module]:
        return self.cam_layers()[-1]

    def extra_repr(self) -> str:
        return f"name={self.spec.name!r}, arch={self.spec.arch!r}, input_size={self.input_size}"


def create_model(
    name: str,
    num_classes: int,
    pretrained: bool = False,
    weights: str | os.PathLike | None = None,
    head: Mapping | None = None,
    arch: str | None = None,
    family: str | None = None,
    native_size: int | None = None,
    in_chans: int = 3,
    freeze_backbone: bool = False,
    **ignored,
) -> Classifier:
    """Build zoo entry ``name`` (or any timm model name) with a ``num_classes`` head.

    Plain-valued arguments, so Hydra can ``instantiate`` ``conf/model/*.yaml``; keys other stages
    keep in the model config arrive in ``ignored``. ``pretrained=True`` loads ``weights`` (a local
    file) or, without it, the library's ImageNet weights (timm: Hugging Face hub or a warm cache;
    YOLOv8-cls: Ultralytics' release download when ``YOLO_OFFLINE=0``); offline with neither it
    fails at once with a BenchError naming both fixes (bench.models.pretrained).
    """
    spec = spec_for(name, arch=arch, family=family, native_size=native_size)
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise BenchError(f"num_classes must be a positive integer, got {num_classes!r}: it comes from the data task")
    if not isinstance(pretrained, bool):
        raise BenchError(f"model.pretrained must be true or false, got {pretrained!r}")
    if isinstance(in_chans, bool) or not isinstance(in_chans, int) or in_chans < 1:
        raise BenchError(f"model.in_chans must be a positive integer, got {in_chans!r}")
    if not isinstance(freeze_backbone, bool):
        raise BenchError(f"model.freeze_backbone must be true or false, got {freeze_backbone!r}")
    head_cfg = _head_config(head)
    from bench.models.pretrained import resolve_weights

    source = resolve_weights(spec, pretrained, weights)
    path = source.path
    if spec.family == "yolo":
        from bench.models.yolo import build_yolo_backbone

        backbone, head_state = build_yolo_backbone(spec.arch, num_classes=num_classes, weights=path if pretrained else None,
                                                   pretrained=pretrained, in_chans=in_chans)
        cam_names = backbone.cam_names()
    else:
        backbone = _timm_backbone(spec.arch, pretrained, path, in_chans)
        head_state = None
        cam_names = timm_cam_names(backbone)
    mean, std = input_normalisation(spec)  # the data stage normalises with the same (bench.spec)
    model_head = Head(backbone.num_features, num_classes, **head_cfg)
    if head_state is not None and head_cfg["dense_units"] == 0 and head_cfg["pool"] == "avg" and not model_head.one_logit:
        # Ultralytics' Classify is conv -> avg pool -> dropout -> linear: with dense_units=0 its
        # linear is our fc, so a checkpoint with the same class count keeps its head too.
        if all(model_head.fc.state_dict()[k].shape == v.shape for k, v in head_state.items()):
            model_head.fc.load_state_dict(head_state)
    model = Classifier(spec, backbone, model_head, cam_names, mean, std, pretrained, str(path) if path else None)
    model.weights_source = source.describe()
    if freeze_backbone:
        model.freeze_backbone()
    return model


def _head_config(head: Mapping | None) -> dict:
    cfg = dict(HEAD_DEFAULTS)
    if head is not None:
        if not isinstance(head, Mapping):
            raise BenchError(f"model.head must be a mapping like {{pool: avg, dropout: 0.3, dense_units: 512}}, got {head!r}")
        unknown = sorted(set(head) - set(cfg))
        if unknown:
            raise BenchError(f"unknown model.head key(s) {unknown}: allowed are {', '.join(cfg)}")
        cfg.update(head)
    if cfg["binary_output"] not in BINARY_OUTPUTS:
        raise BenchError(f"model.head.binary_output={cfg['binary_output']!r}: use one_logit (one sigmoid node) or two_logits (softmax over 2)")
    if cfg["pool"] not in POOLS:
        raise BenchError(f"model.head.pool={cfg['pool']!r} is not supported: use one of {', '.join(POOLS)}")
    dropout = cfg["dropout"]
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
        raise BenchError(f"model.head.dropout={dropout!r} must be a number in [0, 1)")
    units = cfg["dense_units"]
    if isinstance(units, bool) or not isinstance(units, int) or units < 0:
        raise BenchError(f"model.head.dense_units={units!r} must be an integer >= 0 (0: no dense layer)")
    cfg["dropout"] = float(dropout)
    return cfg


# --------------------------------------------------------------------------------------- timm


def _timm_backbone(arch: str, pretrained: bool, path: Path | None, in_chans: int) -> nn.Module:
    kwargs: dict = dict(pretrained=pretrained, num_classes=0, global_pool="", in_chans=in_chans)
    if pretrained and path is not None:
        kwargs["pretrained_cfg_overlay"] = dict(file=str(path))
    try:
        model = timm.create_model(arch, **kwargs)
    except (RuntimeError, KeyError, ValueError, OSError, EOFError) as err:
        if not pretrained:
            raise
        if path is None:
            raise BenchError(f"could not get pretrained weights for {arch} ({type(err).__name__}: {_first_line(err)}): pass model.weights=/path/file.pth") from err
        raise BenchError(f"weights file {path} does not fit timm model {arch} ({type(err).__name__}: {_first_line(err)}): use weights saved from the same architecture") from err
    except Exception as err:  # noqa: BLE001  (pickle errors etc. from a foreign file)
        if not pretrained or path is None:
            raise
        raise BenchError(f"could not read weights file {path} ({type(err).__name__}: {_first_line(err)}): use a timm/torchvision-style state dict (.pth) or .safetensors") from err
    _drop_unused_head_modules(model)
    if getattr(model, "output_fmt", "NCHW") != "NCHW" or getattr(model, "num_prefix_tokens", 0):
        raise BenchError(f"timm model {arch} does not end in a B x C x H x W feature map (transformer tokens / NHWC): use a convolutional backbone")
    return model


def _drop_unused_head_modules(model: nn.Module) -> None:
    """forward_features stops where Keras' include_top=False does; modules timm runs only after
    pooling would hold unused parameters (VGG's fc6/fc7 as convs: 120 M; MobileNetV3's 1x1 head
    conv), which waste memory and break DDP's unused-parameter check."""
    name = type(model).__name__
    if name == "VGG":
        model.pre_logits = nn.Identity()
    elif name == "MobileNetV3":
        model.conv_head, model.norm_head, model.act2 = nn.Identity(), nn.Identity(), nn.Identity()


def timm_cam_names(model: nn.Module) -> list[str]:
    """Blocks / stages of a timm model in execution order (names relative to the model).

    Known families list every block; anything else falls back to timm's ``feature_info`` taps.
    The order and run-once property are checked with forward hooks in tests/test_models.py.
    """
    kind = type(model).__name__
    children = dict(model.named_children())
    if kind == "ResNet":
        return [f"{s}.{i}" for s in ("layer1", "layer2", "layer3", "layer4") for i in range(len(children[s]))]
    if kind == "ResNetV2":  # pre-activation: the final norm+ReLU makes the map the head sees
        names = [f"stages.{s}.blocks.{b}" for s, st in enumerate(model.stages) for b in range(len(st.blocks))]
        return names + ([] if isinstance(model.norm, nn.Identity) else ["norm"])
    if kind == "DenseNet":
        names = [f"features.{n}" for n, _ in model.features.named_children() if n.startswith(("denseblock", "transition"))]
        return names + ["features.norm5"]
    if kind in ("EfficientNet", "MobileNetV3"):
        names = [f"blocks.{s}.{b}" for s, st in enumerate(model.blocks) for b in range(len(st))]
        return names + (["bn2"] if kind == "EfficientNet" else [])
    if kind == "Xception":
        return ["act2"] + [f"block{i}" for i in range(1, 13)] + ["act3", "act4"]
    if kind == "InceptionV3":
        return ["Conv2d_2b_3x3", "Conv2d_4a_3x3"] + [n for n in children if n.startswith("Mixed_")]
    if kind == "InceptionResnetV2":
        names = ["conv2d_2b", "conv2d_4a", "mixed_5b"]
        for rep, after in (("repeat", "mixed_6a"), ("repeat_1", "mixed_7a"), ("repeat_2", "block8")):
            names += [f"{rep}.{i}" for i in range(len(children[rep]))] + [after]
        return names + ["conv2d_7b"]
    if kind in ("NASNetALarge", "NASNetAMobile"):
        cells = [n for n in children if n.startswith(("conv0", "cell"))]
        cells.sort(key=_nasnet_order)
        return cells + ["act"]
    names: list[str] = []
    for info in getattr(model, "feature_info", []) or []:
        module = info["module"] if isinstance(info, Mapping) else None
        if module and module not in names:
            names.append(module)
    if not names:
        raise BenchError(f"no CAM layers known for timm model {type(model).__name__}: add a case to bench/models/classifier.py timm_cam_names")
    return names


def _nasnet_order(name: str) -> tuple[int, int]:
    """conv0, stem cells, then normal/reduction cells in the order forward_features runs them:
    a reduction cell sits between the normal cells numbered below and above it."""
    if name.startswith("conv"):
        return (0, 0)
    if name.startswith("cell_stem_"):
        return (1, int(name.rsplit("_", 1)[1]))
    if name.startswith("reduction_cell_"):
        return (2, _REDUCTION_SLOT[name])
    return (2, 2 * int(name.rsplit("_", 1)[1]))


# Reduction cell k runs after normal cell 6k+5 (Large) / 4k+3 (Mobile) and before 6k+6: slot 2*6(k+1)-1.
_REDUCTION_SLOT = {"reduction_cell_0": 11, "reduction_cell_1": 23}
