"""Issue 11: pretrained by default, weights from one map, the offline error, seed 002's one-node
head, a frozen backbone, class weights after oversampling, augmenting only the added copies."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from bench.errors import BenchError
from bench.models import create_model

REPO = Path(__file__).resolve().parents[1]
CONF = REPO / "conf"


# ------------------------------------------------------------------------- one-node head


def test_one_logit_head_has_one_node_and_is_bce_with_logits():
    torch.manual_seed(0)
    model = create_model("mobilenetv3_small", 2, head={"pool": "avg", "dropout": 0.0, "dense_units": 0,
                                                       "binary_output": "one_logit"}).eval()
    assert model.head.fc.out_features == 1
    x, y = torch.randn(4, 3, 64, 64), torch.tensor([0, 1, 1, 0])
    pair = model(x)
    z = model.head.fc(model.head.pool(model.forward_features(x)))[:, 0]  # the one node
    assert pair.shape == (4, 2)
    torch.testing.assert_close(pair.softmax(1)[:, 1], torch.sigmoid(z))
    torch.testing.assert_close(F.cross_entropy(pair, y), F.binary_cross_entropy_with_logits(z, y.float()))
    w = torch.tensor([0.7, 1.9])  # class weights act as per-sample BCE weights
    torch.testing.assert_close(F.cross_entropy(pair, y, weight=w),
                               (F.binary_cross_entropy_with_logits(z, y.float(), weight=w[y], reduction="sum") / w[y].sum()))
    # five regions: the setting does not apply, five outputs
    five = create_model("mobilenetv3_small", 5, head={"pool": "avg", "dropout": 0.0, "dense_units": 0,
                                                      "binary_output": "one_logit"})
    assert five.head.fc.out_features == 5
    with pytest.raises(BenchError, match="binary_output"):
        create_model("mobilenetv3_small", 2, head={"binary_output": "sigmoid"})


# ------------------------------------------------------------------------------ freezing


def test_frozen_backbone_trains_the_head_only_and_keeps_batchnorm_statistics():
    torch.manual_seed(0)
    model = create_model("resnet18", 2, freeze_backbone=True)
    model.train()
    assert not model.backbone.training and model.head.training
    assert not any(p.requires_grad for p in model.backbone.parameters())
    assert all(p.requires_grad for p in model.head.parameters())
    before = {k: v.clone() for k, v in model.state_dict().items()}
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    loss = F.cross_entropy(model(torch.randn(4, 3, 64, 64)), torch.tensor([0, 1, 0, 1]))
    loss.backward()
    opt.step()
    after = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(k.startswith("head.") for k in changed), sorted(changed)[:5]


# --------------------------------------------------------------- class weights, copies


def test_class_weights_after_oversampling_give_every_class_the_same_total_loss():
    from sklearn.utils.class_weight import compute_class_weight

    from bench.data.balance import balance_plan

    labels = np.array([0] * 2244 + [1] * 868)
    for policy in ("oversample", "class_weight", "none"):
        plan = balance_plan(labels, 2, policy=policy, class_weight=True, seed=3)
        trained = labels[plan.positions]
        w = plan.class_weights.numpy()
        np.testing.assert_allclose(w, compute_class_weight("balanced", classes=np.array([0, 1]), y=trained), rtol=1e-6)
        totals = [w[c] * (trained == c).sum() for c in (0, 1)]
        assert totals[0] == pytest.approx(totals[1]), policy
    plan = balance_plan(labels, 2, policy="oversample", class_weight=True)
    np.testing.assert_allclose(plan.class_weights.numpy(), [1.0, 1.0])  # exact balance: weights 1
    # the copies are the rows beyond each image's first appearance: 2244 - 868 minority copies
    assert plan.is_copy.sum() == 2244 - 868 and (labels[plan.positions][plan.is_copy] == 1).all()
    first = plan.positions[~plan.is_copy]
    assert sorted(first.tolist()) == list(range(len(labels)))


def test_only_the_oversampled_copies_are_augmented(tmp_path):
    from bench.data import FractureDataModule

    try:
        from bench.testing import fixtures
    except ImportError:  # before the fixtures moved to bench.testing
        from bench.data import fixtures

    root = tmp_path / "fa"
    fixtures.make_fracatlas(root, n=40, seed=1, bad_files=False)
    dm = FractureDataModule(root=root, task="binary", image_size=48, cache_dir=tmp_path / "cache", augment="seed002",
                            balance={"policy": "oversample", "augment_rows": "copies"}, seed=1)
    dm.setup("fit")
    train = dm.dataset_for("train")
    plain = dm._eval_tf
    n_copy = int(dm.train_is_copy.sum())
    assert n_copy > 0 and dm.report["balance"]["train_copies_per_class"]["fractured"] == n_copy
    for i in range(len(train)):
        x, _, r = train[(i, 1234 + i)]
        same = torch.equal(x, plain(torch.from_numpy(dm._images[r]).unsqueeze(0)))
        assert same is (not dm.train_is_copy[i]), i
    with pytest.raises(BenchError, match="augment_rows"):
        FractureDataModule(root=root, balance={"augment_rows": "some"}, cache_dir=tmp_path / "cache")


# ------------------------------------------------------------------ Ultralytics format


def _ultralytics_release_file(path: Path, yaml: str, nc: int = 1000) -> dict:
    """A file laid out as Ultralytics' trainer saves and strips it (its ``-cls.pt`` releases):
    metadata, the whole model object in half precision, no EMA, no optimizer."""
    from ultralytics.nn.tasks import ClassificationModel

    torch.manual_seed(2)
    model = ClassificationModel(cfg=yaml, nc=nc, verbose=False)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    model = model.half()
    for p in model.parameters():
        p.requires_grad = False
    ckpt = {"date": "2023-01-10T00:00:00", "version": "8.0.0", "license": "AGPL-3.0 License", "docs": "https://docs.ultralytics.com",
            "epoch": -1, "best_fitness": 0.69, "model": model, "ema": None, "updates": None, "optimizer": None,
            "train_args": {"task": "classify", "mode": "train", "imgsz": 224, "epochs": 100, "optimizer": "auto"},
            "train_metrics": {"metrics/accuracy_top1": 0.69, "metrics/accuracy_top5": 0.88}}
    torch.save(ckpt, path)
    return {k: v.float() for k, v in model.state_dict().items()}


def test_ultralytics_release_checkpoint_loads_into_the_backbone(tmp_path):
    ref = _ultralytics_release_file(tmp_path / "yolov8n-cls.pt", "yolov8n-cls.yaml")
    model = create_model("yolov8n_cls", 2, pretrained=True, weights=str(tmp_path / "yolov8n-cls.pt"),
                         head={"pool": "avg", "dropout": 0.0, "dense_units": 0})
    own = model.backbone.state_dict()
    assert len(own) > 100
    for key, tensor in own.items():
        assert torch.equal(tensor, ref[key]), key
    assert model.head.fc.out_features == 2 and model.weights_source.startswith("file:")


def test_ultralytics_download_folder_is_reused_offline(tmp_path, monkeypatch):
    """A yolov8n-cls.pt Ultralytics downloaded earlier (BENCH_WEIGHTS_DIR) serves pretrained=true offline."""
    monkeypatch.setenv("BENCH_WEIGHTS_DIR", str(tmp_path))
    monkeypatch.setenv("YOLO_OFFLINE", "1")
    ref = _ultralytics_release_file(tmp_path / "yolov8n-cls.pt", "yolov8n-cls.yaml")
    model = create_model("yolov8n_cls", 2, pretrained=True)
    assert torch.equal(model.backbone.model[0].conv.weight, ref["model.0.conv.weight"])
    assert model.weights_source == f"ultralytics: {tmp_path / 'yolov8n-cls.pt'}"
    (tmp_path / "yolov8n-cls.pt").unlink()
    with pytest.raises(BenchError, match=r"weights_map\.yolov8n_cls=.*YOLO_OFFLINE=0.*model\.pretrained=false"):
        create_model("yolov8n_cls", 2, pretrained=True)


# ----------------------------------------------------------------- offline, no weights


def _compose(*overrides):
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="train", overrides=list(overrides))


def test_offline_without_weights_fails_before_any_data_and_fast(tmp_path, monkeypatch):
    from huggingface_hub import constants

    from bench.training.run import run

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "torch_hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("YOLO_OFFLINE", "1")
    monkeypatch.setenv("BENCH_WEIGHTS_DIR", str(tmp_path / "w"))
    for model in ("resnet50", "yolov8m_cls"):
        cfg = _compose("experiment=seed002_binary", f"model={model}", f"paths.root_dir={tmp_path}",
                       f"paths.data_dir={tmp_path / 'no-data-here'}", "logger=none")
        started = time.monotonic()
        with pytest.raises(BenchError) as err:
            run(cfg)
        assert time.monotonic() - started < 10
        msg = str(err.value)
        # the weights error, not "data.root does not exist": nothing was read before it
        assert "\n" not in msg and f"weights_map.{model}=" in msg and "model.weights=" in msg
        assert "model.pretrained=false" in msg
    assert not (tmp_path / "bench_runs").exists()


def test_offline_without_weights_cli_prints_one_error_line(tmp_path):
    # the data folder exists (bench-train checks a missing one before its heavy imports): the
    # weights error comes before anything is read from it
    (tmp_path / "data" / "fracatlas").mkdir(parents=True)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"), "TORCH_HOME": str(tmp_path / "th"),
           "WANDB_MODE": "offline"}
    proc = subprocess.run([sys.executable, "-m", "bench.cli.train", "experiment=seed002_binary", "model=densenet121",
                           f"paths.root_dir={tmp_path}", f"paths.data_dir={tmp_path / 'data'}", "logger=none"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and "weights_map.densenet121=" in lines[0] and "model.pretrained=false" in lines[0]


# ------------------------------------------------------- a transfer-learning run, preset


@pytest.mark.slow
def test_seed002_binary_preset_transfer_learning_run_with_the_real_lite0_weights(tmp_path, lite0_weights):
    """The preset's head and optimiser, the real ImageNet Lite0 weights through weights_map, a tiny
    generated dataset: the record says pretrained, one node, generated data; the trained stem is
    still the ImageNet stem (nudged by one epoch), not a fresh initialisation."""
    args = [sys.executable, "-m", "bench.cli.train", "-m", "experiment=seed002_binary", "data=tiny_fracatlas",
            "hydra.sweeper.params.model=efficientnet_lite0", f"weights_map={{efficientnet_lite0: {lite0_weights}}}",
            f"paths.root_dir={tmp_path}", f"paths.cache_dir={tmp_path}/cache", "image_size=64", "trainer.max_epochs=1",
            "logger=none", "measure_latency=false", "trainer.enable_progress_bar=false", "data.batch_size=16"]
    proc = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, timeout=1200,
                          env={**os.environ, "WANDB_MODE": "offline"})
    assert proc.returncode == 0, proc.stderr[-4000:]
    (record_path,) = list((tmp_path / "bench_runs").glob("*/record.json"))
    record = json.loads(record_path.read_text())
    assert record["model"]["pretrained"] is True and record["protocol"]["pretrained"] is True
    assert record["data"]["generated"] is True
    assert record["protocol"]["optimizer"] == "adam" and record["protocol"]["epochs"] == 1
    ckpt = torch.load(record_path.parent / record["files"]["best_checkpoint"], map_location="cpu", weights_only=False)
    state = ckpt["state_dict"]
    assert tuple(state["model.head.fc.weight"].shape) == (1, 1280)  # one node
    imagenet = torch.load(lite0_weights, map_location="cpu", weights_only=True)["conv_stem.weight"]
    trained = state["model.backbone.conv_stem.weight"]
    corr = torch.corrcoef(torch.stack([trained.flatten(), imagenet.flatten()]))[0, 1]
    assert corr > 0.9 and not torch.equal(trained, imagenet)
