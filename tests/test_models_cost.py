"""Parameter counts, GMACs and latency."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from bench.errors import BenchError
from bench.models import create_model
from bench.models.cost import count_params, gmacs, inference_latency_ms


def _tiny() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4))


def test_count_params_is_the_sum_of_numel_and_respects_freezing():
    model = _tiny()
    assert count_params(model) == (8 * 3 * 9 + 8) + (8 * 4 + 4) == 260
    model[0].requires_grad_(False)
    assert count_params(model) == 260 and count_params(model, trainable_only=True) == 36


def test_gmacs_of_a_tiny_net_matches_hand_count():
    # conv: 8 output channels x 16 x 16 positions x (3 x 3 x 3) taps; linear: 8 x 4.
    expected = (8 * 16 * 16 * 27 + 8 * 4) / 1e9
    assert gmacs(_tiny(), 16) == pytest.approx(expected, rel=1e-9)
    assert gmacs(_tiny(), (3, 16, 32)) == pytest.approx((8 * 16 * 32 * 27 + 32) / 1e9, rel=1e-9)


def test_resnet18_gmacs_at_224_is_the_published_figure():
    model = create_model("resnet18", 2, head={"dense_units": 0})
    assert gmacs(model, 224) == pytest.approx(1.82, abs=0.01)


def test_gmacs_and_latency_leave_the_model_as_it_was():
    model = _tiny().train()
    assert inference_latency_ms(model, 16, warmup=1, reps=3) > 0
    gmacs(model, 16)
    assert model.training and all(p.grad is None for p in model.parameters())


def test_bad_input_size_is_a_bench_error():
    with pytest.raises(BenchError, match="input_size"):
        gmacs(_tiny(), "224")
    with pytest.raises(BenchError, match="reps"):
        inference_latency_ms(_tiny(), 16, reps=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_latency_on_cuda_synchronises_and_moves_back():
    model = create_model("resnet18", 2)
    ms = inference_latency_ms(model, 224, device="cuda", batch_size=8, warmup=2, reps=5)
    assert ms > 0 and next(model.parameters()).device.type == "cpu"
