"""Training throughput of the harness against a bare PyTorch loop (a script, not a test).

Both do the same forward, cross-entropy, backward and Adam step on the same model, batch and
in-memory data through the same DataLoader; the harness runs our LightningModule under a
Lightning Trainer. Timing starts after warm-up steps; the two alternate (bare first, then harness
first, ...) so machine noise and warm caches hit both, and each is timed in process CPU seconds
as well as wall seconds (on a shared machine wall time mostly measures the neighbours). The figure
is the median ratio of images per second.

    python benchmarks/throughput.py                      # CPU, three backbones
    python benchmarks/throughput.py --device cuda --models resnet50 --precision bf16-mixed --channels-last
"""

from __future__ import annotations

import argparse
import statistics
import time

import lightning as L
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

import bench  # noqa: F401  (offline defaults)
from bench.models import create_model
from bench.training.module import FractureClassifier


def _clock(device: str) -> tuple[float, float]:
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter(), time.process_time()


class _Timer(L.Callback):
    def __init__(self, warmup: int, device: str):
        self.warmup, self.device, self.t0, self.t1, self.images = warmup, device, None, None, 0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if batch_idx == self.warmup:
            self.t0 = _clock(self.device)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if batch_idx >= self.warmup:
            self.images += batch[0].shape[0]
            self.t1 = _clock(self.device)


def _loader(n, size, batch, num_classes=2):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 3, size, size, generator=g)
    y = torch.randint(0, num_classes, (n,), generator=g)
    return DataLoader(TensorDataset(x, y, torch.arange(n)), batch_size=batch, shuffle=False, drop_last=True)


def bare_loop(model, loader, device, warmup, precision, channels_last, compile=False):
    model.to(device).train()
    step_model = torch.compile(model) if compile else model
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    autocast = torch.autocast(device_type=device.split(":")[0], dtype=torch.bfloat16, enabled=precision == "bf16-mixed")
    t0, images = None, 0
    for i, (x, y, _) in enumerate(loader):
        if i == warmup:
            t0 = _clock(device)
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast:
            loss = F.cross_entropy(step_model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if i >= warmup:
            images += x.shape[0]
    t1 = _clock(device)
    return images / (t1[0] - t0[0]), images / (t1[1] - t0[1])


def harness(model, loader, device, warmup, precision, channels_last, compile=False):
    module = FractureClassifier(model, ["a", "b"], 1, {"name": "adam", "lr": 1e-3}, channels_last=channels_last)
    if compile:
        module.compile_model()  # what accel.compile=true does in a run
    timer = _Timer(warmup, device)
    trainer = L.Trainer(accelerator="gpu" if device.startswith("cuda") else "cpu", devices=1, max_epochs=1,
                        precision=precision, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=0, callbacks=[timer])
    trainer.fit(module, train_dataloaders=loader)
    return timer.images / (timer.t1[0] - timer.t0[0]), timer.images / (timer.t1[1] - timer.t0[1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="resnet18,mobilenet_v2,yolov8n_cls")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--steps", type=int, default=20, help="timed steps per measurement")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=4)
    ap.add_argument("--precision", default="32-true")
    ap.add_argument("--channels-last", action="store_true")
    ap.add_argument("--compile", action="store_true", help="torch.compile the model in both loops (accel.compile)")
    args = ap.parse_args()
    n = args.batch * (args.steps + args.warmup)
    print(f"device={args.device} size={args.size} batch={args.batch} steps={args.steps} precision={args.precision} "
          f"channels_last={args.channels_last} compile={args.compile} threads={torch.get_num_threads()}")
    print(f"{'model':<16}{'bare img/s':>11}{'harness':>9}{'ratio':>7}   {'bare img/cpu-s':>15}{'harness':>9}{'ratio':>7}"
          f"   (median of {args.repeats}, alternating order)")
    for name in args.models.split(","):
        loader = _loader(n, args.size, args.batch)
        torch.manual_seed(0)
        model = create_model(name, num_classes=2)
        if args.channels_last:
            model = model.to(memory_format=torch.channels_last)
        state = {k: v.clone() for k, v in model.state_dict().items()}
        wall, cpu = {"bare": [], "harness": []}, {"bare": [], "harness": []}
        for r in range(args.repeats):
            order = [("bare", bare_loop), ("harness", harness)]
            for kind, fn in (order if r % 2 == 0 else order[::-1]):
                model.load_state_dict(state)
                w, c = fn(model, loader, args.device, args.warmup, args.precision, args.channels_last, args.compile)
                wall[kind].append(w), cpu[kind].append(c)
        med = statistics.median
        rw = med([h / b for h, b in zip(wall["harness"], wall["bare"])])
        rc = med([h / b for h, b in zip(cpu["harness"], cpu["bare"])])
        print(f"{name:<16}{med(wall['bare']):>11.1f}{med(wall['harness']):>9.1f}{rw:>7.3f}   "
              f"{med(cpu['bare']):>15.1f}{med(cpu['harness']):>9.1f}{rc:>7.3f}", flush=True)

if __name__ == "__main__":
    main()
