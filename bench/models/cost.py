"""Model cost: parameters, GMACs, inference latency. Cheap enough for the end of every run.

GMACs come from ``torch.utils.flop_counter.FlopCounterMode``, which counts only matrix ops
(convolutions, linear / matmul, attention) at 2 FLOPs per multiply-accumulate: MACs = FLOPs / 2.
Normalisation, activations, pooling and additions are not counted, as in the usual published
GMAC figures (ResNet-18 at 224 px: 1.82).
"""

from __future__ import annotations

import statistics
import time
from contextlib import contextmanager

import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode

from bench.errors import BenchError


def count_params(model: nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def _shape(input_size, batch_size: int = 1, in_chans: int = 3) -> tuple[int, int, int, int]:
    if isinstance(input_size, int) and not isinstance(input_size, bool):
        h = w = input_size
    elif isinstance(input_size, (tuple, list)) and len(input_size) in (2, 3):
        if len(input_size) == 3:
            in_chans = input_size[0]
        h, w = input_size[-2:]
    else:
        raise BenchError(f"input_size must be an int or (H, W) / (C, H, W), got {input_size!r}")
    return (batch_size, int(in_chans), int(h), int(w))


@contextmanager
def _eval(model: nn.Module):
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was_training)


def _device_dtype(model: nn.Module) -> tuple[torch.device, torch.dtype]:
    p = next(model.parameters(), None)
    return (p.device, p.dtype) if p is not None else (torch.device("cpu"), torch.float32)


def gmacs(model: nn.Module, input_size, in_chans: int = 3) -> float:
    """Multiply-accumulates (billions) of one forward pass of one image of ``input_size``."""
    device, dtype = _device_dtype(model)
    x = torch.zeros(_shape(input_size, 1, in_chans), device=device, dtype=dtype)
    counter = FlopCounterMode(display=False)
    with _eval(model), counter:
        model(x)
    return counter.get_total_flops() / 2 / 1e9


def inference_latency_ms(model: nn.Module, input_size, device=None, batch_size: int = 1,
                         warmup: int = 3, reps: int = 10, in_chans: int = 3) -> float:
    """Median wall time (ms) of one forward pass of a ``batch_size`` batch, eval mode, no grad.

    The model is moved to ``device`` (default: where it is) for the measurement and moved back.
    """
    if reps < 1 or warmup < 0 or batch_size < 1:
        raise BenchError(f"latency needs reps >= 1, warmup >= 0, batch_size >= 1 (got {reps}, {warmup}, {batch_size})")
    home, dtype = _device_dtype(model)
    device = torch.device(device) if device is not None else home
    x = torch.randn(_shape(input_size, batch_size, in_chans), device=device, dtype=dtype)
    cuda = device.type == "cuda"
    model.to(device)
    times = []
    try:
        with _eval(model):
            for i in range(warmup + reps):
                if cuda:
                    torch.cuda.synchronize(device)
                t0 = time.perf_counter()
                model(x)
                if cuda:
                    torch.cuda.synchronize(device)
                if i >= warmup:
                    times.append((time.perf_counter() - t0) * 1000)
    finally:
        model.to(home)
    return statistics.median(times)
