"""Where a backbone's pretrained (ImageNet) weights come from, decided before anything is built.

Sources, in order: a local file (``model.weights``, which the model configs fill from the one
``weights_map: {<model name>: /path/file}`` setting), the library's own download when the
machine may go online (timm: Hugging Face hub, ``HF_HUB_OFFLINE=0``; YOLOv8-cls: Ultralytics'
release assets, ``YOLO_OFFLINE=0``), or a cache filled earlier (Hugging Face cache, torch hub,
our Ultralytics download folder). Offline with none of these, :func:`resolve_weights` raises one
BenchError naming both fixes, in well under a second: ``bench.training.run.validate`` calls
:func:`preflight` before any data is read.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from bench.errors import BenchError
from bench.models.registry import ModelSpec, spec_for


@dataclass(frozen=True)
class WeightsSource:
    kind: str  # "none" (from scratch) | "file" | "timm-hub" | "ultralytics"
    path: Path | None = None  # the local file loaded (file / ultralytics)
    ref: str = ""  # hub id or asset name

    def describe(self) -> str:
        if self.kind == "none":
            return "none (from scratch)"
        return f"{self.kind}: {self.path or self.ref}"


def _env_true(key: str) -> bool:
    return os.environ.get(key, "").strip().lower() in ("1", "true", "yes", "on", "y", "t")


def _fixes(spec: ModelSpec, online_hint: str) -> str:
    return (f"give a local file (weights_map.{spec.name}=/path/file or model.weights=/path/file){online_hint}, "
            f"or train from scratch with model.pretrained=false (recorded as such)")


def resolve_weights(spec: ModelSpec, pretrained: bool, weights: str | os.PathLike | None) -> WeightsSource:
    if weights not in (None, ""):
        if not pretrained:
            raise BenchError(f"model.weights={weights} is set but model.pretrained=false: set model.pretrained=true to load it, or model.weights=null")
        path = Path(weights).expanduser()
        if not path.is_file():
            raise BenchError(f"weights file not found: {path} (model.weights / weights_map.{spec.name}): give the path of a local .pth/.pt/.safetensors file")
        return WeightsSource("file", path)
    if not pretrained:
        return WeightsSource("none")
    if spec.family == "yolo":
        return _ultralytics_source(spec)
    return _timm_source(spec)


def preflight(model_cfg: Mapping) -> WeightsSource:
    """Check a model config's weights without building the model (fast; called before data)."""
    spec = spec_for(model_cfg.get("name"), arch=model_cfg.get("arch"), family=model_cfg.get("family"),
                    native_size=model_cfg.get("native_size"))
    pretrained = model_cfg.get("pretrained", False)
    if not isinstance(pretrained, bool):
        raise BenchError(f"model.pretrained must be true or false, got {pretrained!r}")
    return resolve_weights(spec, pretrained, model_cfg.get("weights"))


# --------------------------------------------------------------------------------------- timm


def _timm_source(spec: ModelSpec) -> WeightsSource:
    import timm

    cfg = timm.get_pretrained_cfg(spec.arch)
    hint = ", or warm the Hugging Face cache on a machine with network (HF_HUB_OFFLINE=0)"
    if cfg is None or not (cfg.hf_hub_id or cfg.url):
        raise BenchError(f"timm has no published pretrained weights for {spec.arch}: {_fixes(spec, '')}")
    ref = cfg.hf_hub_id or cfg.url
    if _env_true("HF_HUB_OFFLINE") and not _timm_cached(cfg):
        raise BenchError(f"pretrained weights for {spec.name} ({spec.arch}) are not in the Hugging Face cache and "
                         f"HF_HUB_OFFLINE=1 (offline): {_fixes(spec, hint)}")
    return WeightsSource("timm-hub", None, ref)


def _timm_cached(cfg) -> bool:
    import torch
    from timm.models._builder import _resolve_pretrained_source

    load_from, loc = _resolve_pretrained_source(cfg.to_dict())
    if load_from == "hf-hub":
        from huggingface_hub import constants, try_to_load_from_cache

        repo, files = (loc, ("model.safetensors", "open_clip_pytorch_model.bin", "pytorch_model.bin")) if isinstance(loc, str) else (loc[0], (loc[1],))
        return any(isinstance(try_to_load_from_cache(repo, f, cache_dir=constants.HF_HUB_CACHE), str) for f in files)
    if load_from == "url":
        return (Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(loc)).is_file()
    return False


# --------------------------------------------------------------------------------- Ultralytics


def ultralytics_weights_dir() -> Path:
    """Our folder for Ultralytics' downloaded ``*-cls.pt`` (never the working directory or $HOME)."""
    from bench.env import state_dir

    return Path(os.environ.get("BENCH_WEIGHTS_DIR") or state_dir() / "weights")


def ultralytics_asset(spec: ModelSpec) -> str:
    """``yolov8n-cls.yaml`` -> ``yolov8n-cls.pt``, Ultralytics' ImageNet-1k release asset."""
    return Path(spec.arch).with_suffix(".pt").name


def _ultralytics_source(spec: ModelSpec) -> WeightsSource:
    asset = ultralytics_asset(spec)
    target = ultralytics_weights_dir() / asset
    if target.is_file():
        return WeightsSource("ultralytics", target, asset)
    if _env_true("YOLO_OFFLINE"):
        raise BenchError(f"pretrained {spec.name} needs Ultralytics' {asset} and YOLO_OFFLINE=1 (offline): "
                         f"{_fixes(spec, f', or let Ultralytics download it with YOLO_OFFLINE=0')}")
    from ultralytics.utils.downloads import attempt_download_asset

    target.parent.mkdir(parents=True, exist_ok=True)
    got = Path(attempt_download_asset(target))
    if not got.is_file():
        raise BenchError(f"Ultralytics could not download {asset}: {_fixes(spec, '')}")
    return WeightsSource("ultralytics", got, asset)
