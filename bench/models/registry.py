"""The backbone zoo: one ``ModelSpec`` per backbone, keyed by our name (the ``conf/model`` file name).

Adding a backbone is one ``register(ModelSpec(...))`` line plus a ``conf/model/<name>.yaml``.
Any timm model name not listed here still works through ``spec_for`` (a generic spec).
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, replace
from typing import Literal

from bench.errors import BenchError

Family = Literal["timm", "yolo"]


@dataclass(frozen=True)
class ModelSpec:
    name: str  # ours: conf/model/<name>.yaml, run ids, leaderboards
    family: Family
    arch: str  # timm model name, or the Ultralytics model yaml (yolov8n-cls.yaml)
    native_size: int  # input side the architecture was designed / pretrained at
    paper_name: str = ""  # the seed paper's name for it ("ResNet50V2"); "" for extras
    notes: str = ""


ZOO: dict[str, ModelSpec] = {}


def register(spec: ModelSpec) -> ModelSpec:
    if spec.family not in ("timm", "yolo"):
        raise BenchError(f"model family {spec.family!r} of {spec.name!r} is not supported: use 'timm' or 'yolo'")
    if spec.name in ZOO and ZOO[spec.name] != spec:
        raise BenchError(f"model {spec.name!r} is already registered with a different spec: pick another name")
    ZOO[spec.name] = spec
    return spec


def _t(name: str, arch: str, size: int, paper: str = "", notes: str = "") -> None:
    register(ModelSpec(name, "timm", arch, size, paper, notes))


# Seed 002's 19 Keras ImageNet models (seed 000's ResNet-101 is the same entry as seed 002's).
_t("xception", "legacy_xception", 299, "Xception")
_t("vgg16", "vgg16", 224, "VGG16")
_t("vgg19", "vgg19", 224, "VGG19")
_t("resnet50", "resnet50", 224, "ResNet50")
_t("resnet101", "resnet101", 224, "ResNet101", "also seed 000's backbone")
_t("resnet50v2", "resnetv2_50", 224, "ResNet50V2")
_t("resnet101v2", "resnetv2_101", 224, "ResNet101V2")
_t("resnet152v2", "resnetv2_152", 224, "ResNet152V2")
_t("inception_v3", "inception_v3", 299, "InceptionV3")
_t("inception_resnet_v2", "inception_resnet_v2", 299, "InceptionResNetV2")
_t("mobilenet_v2", "mobilenetv2_100", 224, "MobileNetV2")
_t("densenet121", "densenet121", 224, "DenseNet121")
_t("densenet169", "densenet169", 224, "DenseNet169")
_t("densenet201", "densenet201", 224, "DenseNet201")
_t("nasnet_mobile", "nasnetamobile", 224, "NASNetMobile",
   "timm has no NASNet-A Mobile: built from timm's NASNet cells (bench/models/nasnet_mobile.py)")
_t("nasnet_large", "nasnetalarge", 331, "NASNetLarge")
_t("efficientnet_b7", "tf_efficientnet_b7", 600, "EfficientNetB7")
_t("efficientnetv2_b3", "tf_efficientnetv2_b3", 300, "EfficientNetV2B3", "Keras/Google eval size 300 (timm trains at 240)")
_t("efficientnetv2_l", "tf_efficientnetv2_l", 480, "EfficientNetV2L", "Keras/Google eval size 480 (timm trains at 384)")

# Seed 002's YOLOv8 classifiers: Ultralytics' model definition, scale from the yaml name.
for _s in "nsmlx":
    register(ModelSpec(f"yolov8{_s}_cls", "yolo", f"yolov8{_s}-cls.yaml", 224, f"YOLOv8{_s}-cls"))

# Small extras for CI and the quickstart.
_t("resnet18", "resnet18", 224, "", "CI / quickstart")
_t("efficientnet_lite0", "tf_efficientnet_lite0", 224, "",
   "CI / quickstart; real ImageNet weights in shared/weights (tf_efficientnet_lite0_timm-904d152a.pth)")
_t("mobilenetv3_small", "mobilenetv3_small_100", 224, "", "CI / quickstart")

_YOLO_ARCH = re.compile(r"^(yolo[\w.]*?-cls)(\.ya?ml)?$")


def _timm_names() -> list[str]:
    import timm

    return timm.list_models()


def spec_for(name: str, arch: str | None = None, family: str | None = None, native_size: int | None = None) -> ModelSpec:
    """The zoo entry for ``name``, or a generic spec for any timm / Ultralytics-cls model name.

    ``arch`` / ``family`` / ``native_size`` override the entry (``conf/model/timm.yaml`` sets ``arch``).
    """
    if not isinstance(name, str) or not name:
        raise BenchError(f"model.name must be a non-empty string, got {name!r}: pick one of conf/model/*.yaml")
    spec = ZOO.get(name)
    if spec is None:
        target = arch or name
        yolo = _YOLO_ARCH.match(target.replace("_cls", "-cls"))
        if family == "yolo" or (family is None and yolo):
            stem = yolo.group(1) if yolo else target
            spec = ModelSpec(name, "yolo", stem if stem.endswith((".yaml", ".yml")) else f"{stem}.yaml", 224, "", "generic Ultralytics classifier")
        else:
            import timm

            if not timm.is_model(target):
                close = difflib.get_close_matches(target, list(ZOO) + _timm_names(), n=5, cutoff=0.6)
                hint = f" Close matches: {', '.join(close)}." if close else ""
                raise BenchError(
                    f"unknown backbone {target!r}: not in the zoo (bench.models.ZOO) nor a timm model name.{hint}"
                )
            spec = ModelSpec(name, "timm", target, _timm_native_size(target), "", "generic timm model")
    overrides = {k: v for k, v in dict(arch=arch, family=family, native_size=native_size).items() if v is not None}
    if overrides:
        spec = replace(spec, **overrides)
    if spec.family not in ("timm", "yolo"):
        raise BenchError(f"model.family {spec.family!r} is not supported: use 'timm' or 'yolo'")
    if not isinstance(spec.native_size, int) or spec.native_size < 32:
        raise BenchError(f"model.native_size must be an integer >= 32, got {spec.native_size!r}")
    return spec


def _timm_native_size(arch: str) -> int:
    import timm

    cfg = timm.get_pretrained_cfg(arch)
    size = getattr(cfg, "input_size", None) if cfg is not None else None
    return int(size[-1]) if size else 224
