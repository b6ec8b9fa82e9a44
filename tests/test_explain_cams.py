"""Per-layer CAMs from one pass vs the stock pytorch-grad-cam single-layer results."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from pytorch_grad_cam import EigenCAM, GradCAM, GradCAMPlusPlus
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from pytorch_grad_cam.utils.svd_on_activations import get_2d_projection, get_2d_projection_with_sign_correction

from bench.errors import BenchError
from bench.explain.cams import check_layer_order, eigen_projection, make_cam

STOCK = {"gradcampp": GradCAMPlusPlus, "gradcam": GradCAM, "eigencam": EigenCAM}


class _SignCorrectedEigenCAM(EigenCAM):
    """The stock EigenCAM with the library's own sign handling (get_2d_projection_with_sign_correction):
    the stock default keeps LAPACK's arbitrary SVD sign, which no other implementation can reproduce."""

    def get_cam_image(self, input_tensor, target_layer, target_category, activations, grads, eigen_smooth):
        return get_2d_projection_with_sign_correction(activations)


def _stock_single(method, model, layer, x, targets=None):
    cls = _SignCorrectedEigenCAM if method == "eigencam" else STOCK[method]
    with cls(model, [layer]) as cam:
        return cam(x, targets)


@pytest.fixture(scope="module")
def resnet():
    import timm

    torch.manual_seed(0)
    model = timm.create_model("resnet18", num_classes=2).eval()
    # A trained-looking head: random init gives many all-negative gradients (degenerate maps).
    layers = [(f"layer{i}.{j}", getattr(model, f"layer{i}")[j]) for i in range(1, 5) for j in range(2)]
    x = torch.randn(3, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    return model, layers, x


class _YoloLogits(torch.nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        out = self.inner(x)
        return out[-1] if isinstance(out, (tuple, list)) else out


@pytest.fixture(scope="module")
def yolo(tmp_path_factory):
    os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ.setdefault("YOLO_AUTOINSTALL", "False")
    os.environ.setdefault("YOLO_CONFIG_DIR", str(tmp_path_factory.mktemp("yolo_cfg")))
    from ultralytics.nn.tasks import ClassificationModel

    torch.manual_seed(0)
    inner = ClassificationModel(cfg="yolov8n-cls.yaml", nc=2, verbose=False)
    model = _YoloLogits(inner).eval()
    seq = inner.model
    layers = [(f"model.{i}", seq[i]) for i in range(len(seq) - 1)] + [("model.9.conv", seq[-1].conv)]
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    return model, layers, x


@pytest.mark.parametrize("method", ["gradcampp", "eigencam", "gradcam"])
@pytest.mark.parametrize("net", ["resnet", "yolo"])
def test_one_pass_equals_stock_single_layer(request, net, method):
    model, layers, x = request.getfixturevalue(net)
    with make_cam(method, model, layers) as cam:
        ours = cam(x)
    assert ours.shape == (len(x), len(layers), 64, 64) and ours.dtype == np.float32
    n_nontrivial = 0
    for k, (name, layer) in enumerate(layers):
        ref = _stock_single(method, model, layer, x)
        np.testing.assert_allclose(ours[:, k], ref, atol=2e-5, err_msg=f"{net} {method} {name}")
        n_nontrivial += int((ref.max(axis=(1, 2)) > 0.5).sum())
    # Not a vacuous comparison of all-zero maps.
    assert n_nontrivial >= len(layers) * len(x) // 2


def test_positive_class_target_differs_from_predicted(resnet):
    model, layers, x = resnet
    with torch.no_grad():
        pred = model(x).argmax(-1)
    other = [ClassifierOutputTarget(int(1 - p)) for p in pred]
    with make_cam("gradcampp", model, layers[-2:]) as cam:
        a, b = cam(x), cam(x, other)
    ref = _stock_single("gradcampp", model, layers[-1][1], x, other)
    np.testing.assert_allclose(b[:, -1], ref, atol=2e-5)
    assert np.abs(a - b).max() > 0.1


def test_works_under_inference_mode_and_releases_hooks(resnet):
    model, layers, x = resnet
    with make_cam("gradcampp", model, layers) as cam:
        ref = cam(x)
    with torch.inference_mode():
        with make_cam("gradcampp", model, layers) as cam:
            got = cam(torch.as_tensor(x))
    np.testing.assert_allclose(got, ref, atol=1e-6)
    assert all(not layer._forward_hooks for _, layer in layers)


def test_layers_out_of_order_is_an_error(resnet):
    model, layers, x = resnet
    with pytest.raises(BenchError, match="not in execution order"):
        with make_cam("gradcampp", model, [layers[3], layers[1]]) as cam:
            cam(x)
    with pytest.raises(BenchError, match="not in execution order"):
        check_layer_order(model, [layers[3][1], layers[1][1]], x[:1], ["b", "a"])
    check_layer_order(model, [m for _, m in layers], x[:1])


def test_module_that_runs_twice_is_an_error():
    shared = torch.nn.Conv2d(3, 3, 3, padding=1)

    class Twice(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.c, self.fc = shared, torch.nn.Linear(3, 2)

        def forward(self, x):
            return self.fc(self.c(self.c(x)).mean((2, 3)))

    with pytest.raises(BenchError, match="runs more than once"):
        check_layer_order(Twice(), [shared], torch.randn(1, 3, 8, 8), ["c"])
    with pytest.raises(BenchError, match="runs more than once"):
        with make_cam("gradcam", Twice(), [("c", shared)]) as cam:
            cam(torch.randn(1, 3, 8, 8))


@pytest.mark.parametrize("shape", [(2, 16, 12, 10), (2, 300, 7, 7)])  # C <= hw and C > hw branches
def test_eigen_projection_equals_svd(shape):
    g = torch.Generator().manual_seed(3)
    act = torch.randn(shape, generator=g) + 2 * torch.randn(shape[0], shape[1], 1, 1, generator=g) * torch.rand(
        shape[0], 1, *shape[2:], generator=g)
    ours = eigen_projection(act).numpy()
    ref = get_2d_projection_with_sign_correction(act.numpy())
    scale = np.abs(ref).max()
    np.testing.assert_allclose(ours / scale, ref / scale, atol=1e-4)
    # The library's default (no sign correction) agrees up to the arbitrary SVD sign, per image.
    raw, plain = get_2d_projection(act.numpy()), eigen_projection(act, sign="none").numpy()
    for o, r in zip(plain, raw):
        assert min(np.abs(o - r).max(), np.abs(o + r).max()) / np.abs(r).max() < 1e-4
    # The sign rule holds: |max| >= |min| for every map.
    assert (np.abs(ours.max(axis=(1, 2))) >= np.abs(ours.min(axis=(1, 2)))).all()


def test_unknown_method_is_an_error(resnet):
    model, layers, _ = resnet
    with pytest.raises(BenchError, match="unknown CAM method"):
        make_cam("scorecam", model, layers)
