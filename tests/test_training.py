"""Training-loop pieces: the throughput figure leaves out warm-up batches and never goes empty;
compiling keeps checkpoint keys."""

import time

import torch

from bench.training.callbacks import ThroughputMeter

BATCH = (torch.zeros(8, 1),)


def _epoch(meter, sleeps):
    meter.on_train_epoch_start(None, None)
    for i, s in enumerate(sleeps):
        time.sleep(s)
        meter.on_train_batch_end(None, None, None, BATCH, i)
    meter.on_train_epoch_end(None, None)


def test_warmup_batches_are_left_out_of_images_per_second():
    meter = ThroughputMeter(warmup_batches=2)
    _epoch(meter, [0.3, 0.3, 0.01, 0.01, 0.01])  # two slow warm-up batches, then fast ones
    _epoch(meter, [0.01, 0.01])
    assert meter.images == 5 * 8 and meter.all_images == 7 * 8
    everything = meter.all_images / meter.all_seconds
    assert meter.images_per_s > 5 * everything  # the slow start does not drag the figure down
    assert meter.images_per_s < 8 / 0.01  # each timed batch took at least 10 ms


def test_a_run_shorter_than_the_warmup_counts_every_batch():
    meter = ThroughputMeter(warmup_batches=2)
    _epoch(meter, [0.02, 0.02])
    assert meter.images == 0
    assert 0 < meter.images_per_s < 16 / 0.04


def test_compiled_module_keeps_plain_checkpoint_keys():
    """accel.compile must not change what a checkpoint holds: load_run rebuilds an uncompiled model."""
    from bench.models import create_model
    from bench.training.module import FractureClassifier

    torch.manual_seed(0)
    module = FractureClassifier(create_model("resnet18", num_classes=2), ["a", "b"], 1, {"name": "adam", "lr": 1e-3})
    module.eval()
    keys = list(module.state_dict())
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        eager = module(x)
        module.compile_model(backend="eager")  # the dynamo path without a C++ toolchain run
        compiled = module(x)
    assert list(module.state_dict()) == keys and not any("_orig_mod" in k for k in keys)
    assert torch.allclose(eager, compiled, atol=1e-5)
