"""Pretrained weights from local files, fast offline failures, and no network use at all."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from bench.errors import BenchError
from bench.models import create_model

REPO = Path(__file__).resolve().parents[1]


def test_lite0_transfer_learning_from_the_shared_file(lite0_weights):
    model = create_model("efficientnet_lite0", 2, pretrained=True, weights=str(lite0_weights))
    file = torch.load(lite0_weights, map_location="cpu", weights_only=True)
    backbone = model.backbone.state_dict()
    compared = 0
    for key, tensor in file.items():
        if key.startswith("classifier."):
            assert key not in backbone  # the ImageNet head is dropped
            continue
        assert torch.equal(backbone[key], tensor), key
        compared += 1
    assert compared == 294  # 296 tensors less the 1000-class classifier's weight and bias
    assert model.pretrained and model.weights == str(lite0_weights)
    assert (model.head.dense[0].in_features, model.head.fc.out_features) == (1280, 2)
    assert model.mean == (0.5, 0.5, 0.5) and model.std == (0.5, 0.5, 0.5)
    assert model(torch.randn(2, 3, 64, 64)).shape == (2, 2)


def test_weights_of_another_architecture_are_refused(lite0_weights):
    with pytest.raises(BenchError) as err:
        create_model("resnet18", 2, pretrained=True, weights=str(lite0_weights))
    assert str(lite0_weights) in str(err.value) and "\n" not in str(err.value)


def test_missing_weights_file_names_the_path(tmp_path):
    missing = tmp_path / "nope.pth"
    with pytest.raises(BenchError, match="nope.pth"):
        create_model("resnet18", 2, pretrained=True, weights=str(missing))


@pytest.fixture
def empty_caches(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "torch_hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return tmp_path


@pytest.mark.parametrize("name", ["resnet18", "vgg16", "efficientnet_b7"])
def test_pretrained_without_weights_offline_fails_fast(name, empty_caches):
    started = time.monotonic()
    with pytest.raises(BenchError) as err:
        create_model(name, 2, pretrained=True)
    assert time.monotonic() - started < 10
    msg = str(err.value)
    assert "model.weights=" in msg and "Hugging Face cache" in msg and "\n" not in msg


def test_pretrained_without_published_weights_says_so(empty_caches):
    with pytest.raises(BenchError, match="no published pretrained weights.*model.weights="):
        create_model("nasnet_mobile", 2, pretrained=True)
    with pytest.raises(BenchError, match="model.weights="):
        create_model("yolov8n_cls", 2, pretrained=True)


def test_warm_hugging_face_cache_is_used_offline(lite0_weights, empty_caches):
    """A cache warmed elsewhere (here: the shared file laid out as the Hub cache would hold it)."""
    from safetensors.torch import save_file

    snapshot = empty_caches / "hf" / "models--timm--tf_efficientnet_lite0.in1k" / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text("0" * 40)
    tensors = torch.load(lite0_weights, map_location="cpu", weights_only=True)
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(snapshot / "model.safetensors"))
    model = create_model("efficientnet_lite0", 2, pretrained=True)
    assert torch.equal(model.backbone.conv_stem.weight, tensors["conv_stem.weight"])


# --------------------------------------------------------------------------------- YOLO .pt


def _ultralytics_checkpoint(path: Path, yaml: str, nc: int) -> torch.nn.Module:
    """Save a checkpoint the way Ultralytics does: the whole model object, in half precision."""
    from ultralytics.nn.tasks import ClassificationModel

    torch.manual_seed(1)
    model = ClassificationModel(cfg=yaml, nc=nc, verbose=False)
    for m in model.modules():  # non-trivial BN statistics so that a wrong load shows
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    torch.save({"model": copy.deepcopy(model).half(), "epoch": -1}, path)
    return model.half().float().eval()


def test_yolo_checkpoint_with_ultralytics_head_reproduces_ultralytics(tmp_path):
    ref = _ultralytics_checkpoint(tmp_path / "yolov8n-cls.pt", "yolov8n-cls.yaml", nc=3)
    ours = create_model("yolov8n_cls", 3, pretrained=True, weights=str(tmp_path / "yolov8n-cls.pt"),
                        head={"pool": "avg", "dropout": 0.0, "dense_units": 0}).eval()
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        probs, logits = ref(x)  # Ultralytics in eval mode: (softmax, logits)
        out = ours(x)
    assert torch.allclose(out, logits, atol=1e-4)
    assert torch.allclose(out.softmax(1), probs, atol=1e-5)


def test_yolo_checkpoint_with_other_class_count_loads_the_backbone_only(tmp_path):
    ref = _ultralytics_checkpoint(tmp_path / "y.pt", "yolov8n-cls.yaml", nc=5)
    ours = create_model("yolov8n_cls", 2, pretrained=True, weights=str(tmp_path / "y.pt"))
    ref_state = ref.state_dict()
    for key, tensor in ours.backbone.state_dict().items():
        assert torch.equal(tensor, ref_state[key]), key
    assert ours.head.fc.out_features == 2


def test_yolo_checkpoint_of_another_scale_is_refused(tmp_path):
    _ultralytics_checkpoint(tmp_path / "yolov8s-cls.pt", "yolov8s-cls.yaml", nc=2)
    with pytest.raises(BenchError, match="same YOLO scale"):
        create_model("yolov8n_cls", 2, pretrained=True, weights=str(tmp_path / "yolov8s-cls.pt"))


def test_truncated_yolo_checkpoint_is_refused(tmp_path):
    bad = tmp_path / "yolov8n-cls.pt"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(BenchError, match="could not read weights file"):
        create_model("yolov8n_cls", 2, pretrained=True, weights=str(bad))


# ----------------------------------------------------------------------------- no network


def test_import_build_and_run_never_touch_the_network():
    """A fresh interpreter (imports included) with every socket entry point blocked; the
    Ultralytics/HF offline variables are removed so that bench.env must set them itself."""
    script = textwrap.dedent(
        """
        import socket
        def _blocked(*a, **k):
            raise AssertionError("network use: " + repr(a)[:200])
        socket.socket.connect = socket.socket.connect_ex = _blocked
        socket.getaddrinfo = socket.gethostbyname = socket.create_connection = _blocked
        import torch
        from bench.models import create_model
        for name in ("yolov8n_cls", "resnet18"):
            model = create_model(name, 2)
            model(torch.randn(2, 3, 64, 64)).sum().backward()
            model.eval()(torch.randn(1, 3, 64, 64))
        print("OFFLINE-OK")
        """
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("YOLO_", "HF_HUB_OFFLINE", "TIMM_"))}
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0 and "OFFLINE-OK" in done.stdout, done.stderr[-2000:]
