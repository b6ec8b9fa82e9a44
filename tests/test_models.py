"""The backbone zoo: every entry builds, trains one step, and lists its CAM layers in execution order."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

from bench.errors import BenchError
from bench.models import ZOO, Classifier, ModelSpec, create_model, spec_for

CONF = Path(__file__).resolve().parents[1] / "conf" / "model"

# 32 px (a 1 x 1 final map) keeps the whole zoo at about two CPU-minutes on 2 cores; Inception's
# stem needs at least 75 px (as in Keras).
TEST_SIZE = {"inception_v3": 75, "inception_resnet_v2": 75}

SEED_PAPER_NAMES = {
    "Xception", "VGG16", "VGG19", "ResNet50", "ResNet101", "ResNet50V2", "ResNet101V2", "ResNet152V2",
    "InceptionV3", "InceptionResNetV2", "MobileNetV2", "DenseNet121", "DenseNet169", "DenseNet201",
    "NASNetMobile", "NASNetLarge", "EfficientNetB7", "EfficientNetV2B3", "EfficientNetV2L",
    "YOLOv8n-cls", "YOLOv8s-cls", "YOLOv8m-cls", "YOLOv8l-cls", "YOLOv8x-cls",
}


def test_zoo_covers_both_seed_papers():
    assert {s.paper_name for s in ZOO.values() if s.paper_name} == SEED_PAPER_NAMES
    assert {"resnet18", "efficientnet_lite0", "mobilenetv3_small"} <= set(ZOO)
    assert ZOO["resnet50v2"].arch == "resnetv2_50" and ZOO["xception"].native_size == 299
    assert ZOO["efficientnet_b7"].native_size == 600 and ZOO["nasnet_large"].native_size == 331


@pytest.mark.parametrize("name", list(ZOO))
def test_zoo_entry_trains_and_lists_cam_layers_in_execution_order(name):
    torch.manual_seed(0)
    model = create_model(name, num_classes=3)
    assert isinstance(model, Classifier) and model.spec is ZOO[name] and model.input_size == ZOO[name].native_size
    layers = model.cam_layers()
    assert layers and len({id(m) for _, m in layers}) == len(layers)
    assert all(model.get_submodule(n) is m for n, m in layers)
    calls, outputs, head_input = [], {}, []

    def record(layer_name):
        def hook(_module, _args, out):
            calls.append(layer_name)
            outputs[layer_name] = out
        return hook

    handles = [m.register_forward_hook(record(n)) for n, m in layers]
    handles.append(model.head.register_forward_pre_hook(lambda _m, args: head_input.append(args[0])))
    size = TEST_SIZE.get(name, 32)
    logits = model(torch.randn(2, 3, size, size))
    for h in handles:
        h.remove()
    assert logits.shape == (2, 3)
    F.cross_entropy(logits, torch.tensor([0, 2])).backward()

    # Hook order == listed order proves both the execution order and "each runs exactly once".
    assert calls == [n for n, _ in layers]
    final_name, _ = model.final_cam_layer()
    final = outputs[final_name]
    assert final_name == layers[-1][0] and final.ndim == 4 and final.shape[:2] == (2, model.num_features)
    assert torch.equal(final, head_input[0])  # the last CAM layer makes the map the head pools
    no_grad = [n for n, p in model.named_parameters() if p.grad is None]
    assert not no_grad, f"parameters outside the forward pass: {no_grad[:5]}"


def test_resnet50_cam_layers_are_its_16_bottlenecks():
    names = [n for n, _ in create_model("resnet50", 2).cam_layers()]
    assert len(names) == 16 and names[0] == "backbone.layer1.0" and names[-1] == "backbone.layer4.2"


def test_densenet_cam_layers_are_blocks_and_transitions():
    names = [n.split(".")[-1] for n, _ in create_model("densenet121", 2).cam_layers()]
    assert names == ["denseblock1", "transition1", "denseblock2", "transition2", "denseblock3", "transition3", "denseblock4", "norm5"]


def test_nasnet_mobile_matches_keras_parameter_counts():
    """Keras NASNetMobile: 5,326,716 total (5,289,978 trainable + 36,738 BN moving statistics);
    NASNetLarge: 88,949,818. Both with the 1000-class head, as Keras counts them."""
    import timm

    def keras_count(m):
        params = sum(p.numel() for p in m.parameters())
        stats = sum(b.numel() for n, b in m.named_buffers() if n.endswith(("running_mean", "running_var")))
        return params, params + stats

    assert keras_count(timm.create_model("nasnetamobile")) == (5_289_978, 5_326_716)
    assert keras_count(timm.create_model("nasnetalarge"))[1] == 88_949_818


# ------------------------------------------------------------------------------------- head


def test_head_default_is_seed000s():
    model = create_model("resnet18", 2)
    head = model.head
    assert head.pool.pool_type == "avg" and head.drop.p == pytest.approx(0.3)
    assert isinstance(head.dense[0], torch.nn.Linear) and head.dense[0].in_features == 512 and head.dense[0].out_features == 512
    assert isinstance(head.dense[1], torch.nn.ReLU)
    assert (head.fc.in_features, head.fc.out_features) == (512, 2)


def test_head_computes_pool_dense_relu_linear():
    model = create_model("mobilenetv3_small", 4, head={"dense_units": 32, "dropout": 0.5}).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        feats = model.forward_features(x)
        dense = model.head.dense[0]
        expected = model.head.fc(torch.relu(dense(feats.mean(dim=(2, 3)))))
        assert torch.allclose(model(x), expected, atol=1e-5)


def test_head_without_dense_layer_and_with_concat_pooling():
    model = create_model("resnet18", 5, head={"dense_units": 0, "pool": "catavgmax", "dropout": 0.0})
    assert isinstance(model.head.dense, torch.nn.Identity)
    assert (model.head.fc.in_features, model.head.fc.out_features) == (2 * 512, 5)
    assert model(torch.randn(2, 3, 64, 64)).shape == (2, 5)


def test_dropout_is_active_in_training_only():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 64, 64)
    model = create_model("resnet18", 3, head={"dropout": 0.5})
    model.train()
    assert not torch.allclose(model(x), model(x))  # batch norm is deterministic; dropout is not
    model.eval()
    assert torch.equal(model(x), model(x))
    no_drop = create_model("resnet18", 3, head={"dropout": 0.0}).train()
    assert torch.allclose(no_drop(x), no_drop(x))


@pytest.mark.parametrize(
    "head, needle",
    [({"dropuot": 0.3}, "dropuot"), ({"dropout": 1.5}, "model.head.dropout"), ({"pool": "median"}, "model.head.pool"),
     ({"dense_units": -1}, "model.head.dense_units"), ("avg", "model.head")],
)
def test_bad_head_config_is_a_one_line_error(head, needle):
    with pytest.raises(BenchError) as err:
        create_model("resnet18", 2, head=head)
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_yolo_returns_logits_in_eval_mode():
    torch.manual_seed(0)
    model = create_model("yolov8n_cls", 3).eval()
    with torch.no_grad():
        logits = model(torch.randn(4, 3, 64, 64))
    assert isinstance(logits, torch.Tensor) and logits.shape == (4, 3)
    assert not torch.allclose(logits.sum(1), torch.ones(4), atol=1e-3)
    assert not torch.allclose(logits, logits.softmax(1), atol=1e-3)
    assert model.mean == (0.0, 0.0, 0.0) and model.std == (1.0, 1.0, 1.0)  # Ultralytics takes [0, 1] inputs
    assert model.final_cam_layer()[0] == "backbone.model.9.conv"


# -------------------------------------------------------------------------- names and configs


def test_unknown_backbone_lists_close_matches():
    with pytest.raises(BenchError) as err:
        create_model("resnet5O", 2)
    msg = str(err.value)
    assert "resnet5O" in msg and "resnet50" in msg and "\n" not in msg


def test_any_timm_name_works_with_a_generic_spec():
    model = create_model("regnetx_002", 2)
    assert model.spec == ModelSpec("regnetx_002", "timm", "regnetx_002", 224, "", "generic timm model")
    assert model(torch.randn(2, 3, 64, 64)).shape == (2, 2)
    assert model.cam_layers()  # timm's feature_info taps


def test_transformer_backbones_are_refused_clearly():
    with pytest.raises(BenchError, match="feature map"):
        create_model("vit_tiny_patch16_224", 2)


def test_spec_overrides_and_bad_values():
    assert spec_for("resnet18", native_size=128).native_size == 128
    assert spec_for("resnet18", arch="resnet34").arch == "resnet34"
    with pytest.raises(BenchError, match="num_classes"):
        create_model("resnet18", 0)
    with pytest.raises(BenchError, match="model.pretrained=false"):
        create_model("resnet18", 2, weights="/some/file.pth")


def test_every_zoo_entry_has_a_matching_config():
    files = {p.stem for p in CONF.glob("*.yaml")}
    # *_det: detectors (bench.detection), not classifiers of the zoo
    assert set(ZOO) <= files and {f for f in files - set(ZOO) if not f.endswith("_det")} == {"timm"}
    for name, spec in ZOO.items():
        cfg = OmegaConf.to_container(OmegaConf.load(CONF / f"{name}.yaml"))  # unresolved
        assert cfg["_target_"] == "bench.models.create_model" and cfg["name"] == name
        assert cfg["native_size"] == spec.native_size and cfg["pretrained"] is False and cfg["freeze_backbone"] is False
        assert cfg["weights"] == "${oc.select:weights_map.${.name},null}"  # the one weights_map setting
        assert cfg["head"] == {"pool": "avg", "dropout": 0.3, "dense_units": 512, "binary_output": "two_logits"}
        assert cfg.get("family", "timm") == spec.family


def test_configs_instantiate_with_hydra():
    from hydra.utils import instantiate

    model = instantiate(OmegaConf.load(CONF / "yolov8n_cls.yaml"), num_classes=2)
    assert model.spec.family == "yolo" and model.head.fc.out_features == 2
    cfg = OmegaConf.load(CONF / "timm.yaml")
    cfg.arch = "resnet10t"
    model = instantiate(cfg, num_classes=3)
    assert model.spec.name == "resnet10t" and model.spec.arch == "resnet10t"
    assert model.input_size == 176  # timm's pretrained_cfg for resnet10t


def test_channels_last_gives_the_same_logits():
    for name in ("resnet18", "yolov8n_cls", "nasnet_mobile"):
        model = create_model(name, 2).eval()
        x = torch.randn(2, 3, 64, 64)
        with torch.no_grad():
            ref = model(x)
            model = model.to(memory_format=torch.channels_last)
            out = model(x.contiguous(memory_format=torch.channels_last))
        assert torch.allclose(ref, out, atol=1e-4), name


@pytest.mark.parametrize("name", ["resnet18", "yolov8n_cls", "nasnet_mobile"])
def test_forward_compiles_as_one_graph(name):
    """fullgraph=True fails on any graph break (Python control flow on tensor values, etc.)."""
    torch._dynamo.reset()
    model = create_model(name, 2).eval()
    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(compiled(x), model(x), atol=1e-4)
