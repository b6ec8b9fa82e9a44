"""The seed papers' protocols as `experiment=` presets: composed, checked, and dry-run at tiny scale."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf, open_dict

from bench.models import ZOO

REPO = Path(__file__).resolve().parents[1]
CONF = REPO / "conf"
SEED002_MODELS = {
    "Xception", "VGG16", "VGG19", "ResNet50", "ResNet50V2", "ResNet101", "ResNet101V2", "ResNet152V2", "InceptionV3",
    "InceptionResNetV2", "MobileNetV2", "DenseNet121", "DenseNet169", "DenseNet201", "NASNetMobile", "NASNetLarge",
    "EfficientNetB7", "EfficientNetV2B3", "EfficientNetV2L",
}


def _compose(*overrides: str):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="train", overrides=list(overrides), return_hydra_config=True)


@pytest.mark.parametrize("name", ["seed002_binary", "seed002_region"])
def test_seed002_presets_sweep_all_24_backbones(name):
    cfg = _compose(f"experiment={name}")
    models = str(cfg.hydra.sweeper.params.model).split(",")
    assert len(models) == len(set(models)) == 24
    for m in models:
        assert (CONF / "model" / f"{m}.yaml").is_file(), m
        assert m in ZOO, m
    paper = {ZOO[m].paper_name for m in models if ZOO[m].family == "timm"}
    assert paper == SEED002_MODELS
    assert sorted(m for m in models if ZOO[m].family == "yolo") == [f"yolov8{s}_cls" for s in "lmnsx"]
    assert list(cfg.data.split.ratios) == [0.7, 0.3]
    assert cfg.experiment_name == name


def test_seed002_binary_balances_like_the_paper_region_on_train_only():
    binary = _compose("experiment=seed002_binary")
    assert binary.data.task == "binary" and binary.data.limit_per_class == 717
    region = _compose("experiment=seed002_region")
    assert region.data.task == "region" and region.data.limit_per_class == 300
    assert region.data.balance.policy == "oversample" and region.data.augment == "seed002"
    assert region.data.balance.augment_rows == "copies"


@pytest.mark.parametrize("variant,lr,dropout,units,policy", [
    ("raw", 1e-3, 0.3, 512, "none"),  # Table 3's head in every variant; untuned lr assumed
    ("balanced", 1e-3, 0.3, 512, "oversample"),
    ("tuned", 5.52e-4, 0.3, 512, "oversample"),
])
def test_seed000_variants_resolve_to_table8_settings(variant, lr, dropout, units, policy):
    cfg = _compose("experiment=seed000", f"variant={variant}")
    sweep_params = str(cfg.hydra.sweeper.params.variant)
    with open_dict(cfg):
        del cfg["hydra"]  # job-time interpolations (hydra.job.num) cannot resolve here
    c = OmegaConf.to_container(cfg, resolve=True)
    assert c["model"]["name"] == "resnet101" and c["data"]["dataset"] == "mura"
    assert c["optim"]["lr"] == pytest.approx(lr)
    assert c["model"]["head"] == {"pool": "avg", "dropout": dropout, "dense_units": units, "binary_output": "two_logits"}
    assert c["model"]["pretrained"] is True and c["model"]["freeze_backbone"] is True
    assert c["callbacks"]["early_stopping"] is None
    assert c["data"]["balance"]["augment_rows"] == ("all" if policy == "none" else "copies")
    assert c["data"]["balance"]["policy"] == policy
    assert c["data"]["balance"].get("class_weight", False) is (policy != "none")
    assert c["data"]["split"]["ratios"] == [0.72, 0.18, 0.10]
    assert c["data"]["batch_size"] == 32 and c["trainer"]["max_epochs"] == 30
    assert sweep_params == "raw,balanced,tuned"


# From scratch: no ImageNet files for these backbones here (the Lite0 transfer run is in test_pretrained.py).
TINY = ["image_size=64", "trainer.max_epochs=1", "callbacks=none", "logger=none", "measure_latency=false",
        "trainer.enable_progress_bar=false", "data.batch_size=16", "model.pretrained=false"]


def _sweep(tmp: Path, *overrides: str) -> dict[str, dict]:
    args = [sys.executable, "-m", "bench.cli.train", "-m", f"paths.root_dir={tmp}", f"paths.cache_dir={tmp}/cache",
            *overrides, *TINY]
    proc = subprocess.run(args, cwd=tmp, capture_output=True, text=True, timeout=1200,
                          env={**os.environ, "WANDB_MODE": "offline"})
    assert proc.returncode == 0, proc.stderr[-4000:]
    return {p.parent.name: json.loads(p.read_text()) for p in (tmp / "bench_runs").glob("*/record.json")}


def test_seed002_binary_dry_run_three_backbones_one_split(tmp_path):
    """Three small backbones, YOLOv8n-cls among them, through the preset: three complete records,
    one split hash."""
    records = _sweep(tmp_path, "experiment=seed002_binary", "data=tiny_fracatlas",
                     "hydra.sweeper.params.model='resnet18,mobilenetv3_small,yolov8n_cls'")
    assert sorted(r["model"]["name"] for r in records.values()) == ["mobilenetv3_small", "resnet18", "yolov8n_cls"]
    assert len({r["split"]["sha256"] for r in records.values()}) == 1
    for r in records.values():
        assert r["protocol"]["experiment"] == "seed002_binary"
        assert r["split"]["ratios"] == [0.7, 0.3]
        assert r["model"]["params"] > 0 and r["model"]["gmacs"] > 0
    yolo = next(r for r in records.values() if r["model"]["name"] == "yolov8n_cls")
    assert yolo["model"]["family"] == "yolo"


@pytest.mark.slow
def test_seed000_and_seed002_region_dry_runs(tmp_path):
    records = _sweep(tmp_path, "experiment=seed000", "data=tiny_mura", "model=resnet18", "data.split.method=ratio")
    assert len(records) == 3
    assert {r["protocol"]["lr"] for r in records.values()} == {1e-3, 5.52e-4}
    assert all("test_study" in r["metrics"] for r in records.values())
    (tmp_path / "region").mkdir()
    region = _sweep(tmp_path / "region", "experiment=seed002_region",
                    "data=tiny_fracatlas_region", "hydra.sweeper.params.model=resnet18")
    assert any(r["task"]["name"] == "tiny_fracatlas_region" for r in region.values())


def test_seed000_search_pins_the_balanced_variant():
    from bench.sweep.plugins import ensure_plugins

    ensure_plugins()
    cfg = _compose("hparams_search=seed000_optuna", "experiment=seed000", "hydra.sweeper.params.variant=balanced")
    params = dict(cfg.hydra.sweeper.params)
    assert params["variant"] == "balanced"  # a fixed value, not a search dimension
    assert set(params) == {"variant", "model.head.dropout", "model.head.dense_units", "optim.lr"}
    assert cfg.hydra.sweeper.n_trials == 10
