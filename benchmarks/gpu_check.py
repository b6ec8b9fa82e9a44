"""One prepared GPU check: the harness's speed where its users run it, printed as one table.

    python benchmarks/gpu_check.py                    # on a GPU machine (about 5 minutes)
    python benchmarks/gpu_check.py --cpu              # dry mode: tiny sizes on the CPU (CI, tests)

Sections, each run as its own subprocess with its own time limit (a failure in one is reported in
the table and the others still run):

1. training images/s, harness vs a bare PyTorch loop (``benchmarks/throughput.py``): ResNet-50 and
   YOLOv8m-cls at 224, bf16-mixed, channels_last and ``torch.compile`` off/on;
2. the decoded-cache loader with seed 002 augmentation on N workers (``benchmarks/loader_cache.py``)
   against the GPU step rate of section 1 (is the loader the bottleneck?);
3. all-layer Grad-CAM++ and EigenCAM vs the stock pytorch-grad-cam call (``benchmarks/cam_bench.py``);
4. real ``bench-train`` runs of one epoch at the seed 002 binary protocol for backbones spanning the
   zoo's sizes, timed; with every zoo entry's GMACs, a least-squares fit of seconds per training
   image against GMACs gives the estimated cost of the full benchmark in GPU hours.

Data for section 4: ``--data DIR`` (a folder holding ``fracatlas/``); by default
``.gpu_carry/`` (made by ``benchmarks/gpu_check_prepare.sh``: real FracAtlas re-encoded at 256 px,
small enough to travel to a lent GPU machine), else ``../shared/data``, else a generated fixture.
Every figure row names the device, driver and precision it was measured with.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PY = sys.executable
# Backbones spanning the zoo's sizes (GMACs at 224 from 0.3 to 15), YOLOv8-cls among them.
GPU_TRAIN_MODELS = "mobilenet_v2,yolov8n_cls,resnet50,densenet121,yolov8m_cls,efficientnetv2_b3,resnet101,vgg16"
CPU_TRAIN_MODELS = "mobilenetv3_small,yolov8n_cls"
SEEDS = 5  # the full benchmark: every preset job repeated over five training seeds


def _device_facts(cpu: bool) -> dict:
    import torch

    facts = {"torch": torch.__version__, "cuda": torch.version.cuda, "device": "cpu", "driver": None}
    if not cpu and torch.cuda.is_available():
        facts["device"] = torch.cuda.get_device_name(0)
        try:
            out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                 capture_output=True, text=True, timeout=20).stdout.strip()
            facts["driver"] = out.splitlines()[0] if out else None
        except (OSError, subprocess.SubprocessError):
            pass
    return facts


def _run(cmd: list[str], timeout: float, env: dict | None = None) -> tuple[int, str, float]:
    t = time.perf_counter()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=REPO,
                           env={**os.environ, **(env or {})})
        return p.returncode, p.stdout + p.stderr, time.perf_counter() - t
    except subprocess.TimeoutExpired as exc:
        out = (exc.stdout or b"").decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        return 124, out + f"\n(timed out after {timeout:.0f} s)", time.perf_counter() - t


def section_throughput(args, rows: list, dev: str) -> float | None:
    """Harness vs bare loop; returns the best harness img/s of ResNet-50 (the GPU step rate)."""
    best = None
    variants = [("", []), ("channels_last", ["--channels-last"]), ("channels_last+compile", ["--channels-last", "--compile"])]
    if args.cpu:
        variants = variants[1:2]  # one torch start-up fewer: the dry run checks the section works, not the flags
    for label, flags in variants:
        cmd = [PY, "benchmarks/throughput.py", "--device", dev, "--models", args.train_bench_models,
               "--size", str(args.size), "--batch", str(args.batch), "--steps", str(args.steps),
               "--warmup", str(args.warmup), "--repeats", str(args.repeats), "--precision", args.precision, *flags]
        rc, out, wall = _run(cmd, args.section_timeout)
        parsed = 0
        for line in out.splitlines():
            m = re.match(r"^(\S+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+", line)
            if m and m.group(1) in args.train_bench_models.split(","):
                name, bare, harness, ratio = m.group(1), float(m.group(2)), float(m.group(3)), float(m.group(4))
                rows.append(("1 train img/s", f"{name} {args.size}px b{args.batch} {args.precision} {label or 'plain'}",
                             f"bare {bare:.0f}", f"harness {harness:.0f}", f"ratio {ratio:.3f}"))
                parsed += 1
                if name.startswith("resnet") and (best is None or harness > best):
                    best = harness
        if rc != 0 or not parsed:
            rows.append(("1 train img/s", label or "plain", "FAILED", f"rc={rc}", _last_line(out)))
    return best


def section_loader(args, rows: list, gpu_rate: float | None) -> None:
    cmd = [PY, "benchmarks/loader_cache.py", "--n", str(args.loader_n), "--size", str(args.size), "--epochs", "2",
           "--batch-size", str(args.batch), "--workers", str(args.workers), "--augment", "seed002"]
    if args.data_root:
        cmd += ["--root", str(Path(args.data_root) / "fracatlas")]
    rc, out, _ = _run(cmd, args.section_timeout)
    m = re.search(r"cached \+ seed002 augmentation.*?: ([\d.]+) img/s", out)
    if rc != 0 or not m:
        rows.append(("2 loader", "cache + seed002 aug", "FAILED", f"rc={rc}", _last_line(out)))
        return
    rate = float(m.group(1))
    verdict = "n/a" if not gpu_rate else (f"loader/GPU = {rate / gpu_rate:.2f}: "
                                          + ("loader is the bottleneck" if rate < gpu_rate else "GPU is the bottleneck"))
    rows.append(("2 loader", f"cache + seed002 aug, {args.workers} workers, {args.size}px", f"{rate:.0f} img/s",
                 f"GPU step {gpu_rate:.0f} img/s" if gpu_rate else "GPU step n/a", verdict))


def section_cams(args, rows: list, dev: str) -> None:
    cmd = [PY, "benchmarks/cam_bench.py", "--device", dev, "--batch", str(args.cam_batch), "--size", str(args.size),
           "--repeats", str(max(2, args.repeats)), "--skip-svd", "--eigencam"]
    rc, out, _ = _run(cmd, args.section_timeout)
    found = 0
    for line in out.splitlines():
        if line.startswith(("(b)", "(d)")):
            name, _, rest = line.partition("|")
            rows.append(("3 CAM", name.strip(), *[s.strip() for s in rest.split("|", 1)]))
            found += 1
    if rc != 0 or not found:
        rows.append(("3 CAM", "all-layer CAMs", "FAILED", f"rc={rc}", _last_line(out)))


def _data_dir(args, tmp: Path) -> Path:
    if args.data_root:
        return Path(args.data_root)
    for cand in (REPO / ".gpu_carry", REPO.parent / "shared" / "data"):
        if (cand / "fracatlas" / "dataset.csv").is_file():
            return cand
    sys.path.insert(0, str(REPO))
    try:
        from bench.testing.fixtures import make_fracatlas
    except ImportError:  # older layout
        from bench.data.fixtures import make_fracatlas
    make_fracatlas(tmp / "data" / "fracatlas", n=120, seed=0)
    return tmp / "data"


def section_train(args, rows: list, dev: str, tmp: Path) -> list[dict]:
    data = _data_dir(args, tmp)
    runs = tmp / "runs"
    measured = []
    for name in args.train_models.split(","):
        cmd = [PY, "-m", "bench.cli.train", "experiment=seed002_binary", f"model={name}", "trainer.max_epochs=1",
               f"paths.data_dir={data}", f"paths.runs_dir={runs}", f"paths.cache_dir={tmp / 'cache'}", "logger=none",
               "explain.enabled=false", "leaderboard.enabled=false", "measure_latency=false", "model.pretrained=false",
               f"data.num_workers={args.workers}"]
        cmd += ["trainer=cpu"] if args.cpu else ["trainer=gpu"]
        if args.cpu:
            cmd += [f"image_size={args.size}", "data.limit_per_class=24", "data.batch_size=8"]
        rc, out, wall = _run(cmd, args.section_timeout, env={"WANDB_MODE": "disabled"})
        records = sorted(runs.glob(f"*__{name}__*/record.json"), key=lambda p: p.stat().st_mtime)
        if rc != 0 or not records:
            rows.append(("4 bench-train 1 epoch", name, "FAILED", f"rc={rc}", _last_line(out)))
            continue
        rec = json.loads(records[-1].read_text())
        fit = rec["cost"]["wall_s"]["fit"]
        n_train = rec["split"]["counts"]["train"]
        measured.append({"model": name, "gmacs": rec["model"]["gmacs"], "size": rec["model"]["input_size"],
                         "fit_s": fit, "train_images": n_train, "s_per_image": fit / max(n_train, 1)})
        rows.append(("4 bench-train 1 epoch", f"{name} {rec['model']['input_size']}px {rec['cost']['precision']}",
                     f"{wall:.0f} s process", f"fit {fit:.1f} s ({n_train} train img)",
                     f"{rec['model']['gmacs']:.3f} GMACs, {rec['cost'].get('train_images_per_s') or 0:.0f} img/s"))
    return measured


def _preset(name: str):
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        return compose("train", overrides=[f"experiment={name}"], return_hydra_config=True)


def section_estimate(args, rows: list, measured: list[dict]) -> None:
    """Seconds per training image ~ a + b * GMACs (least squares over the measured backbones)."""
    import numpy as np
    import torch

    sys.path.insert(0, str(REPO))
    from bench.models import create_model
    from bench.models.cost import gmacs

    if len(measured) < 2:
        rows.append(("5 estimate", "full benchmark", "FAILED", "fewer than 2 timed backbones", ""))
        return
    from scipy.optimize import nnls

    g = np.array([m["gmacs"] for m in measured])
    s = np.array([m["s_per_image"] for m in measured])
    # Non-negative least squares: a noisy pair of runs must not give a negative cost per GMAC.
    (a, b), _ = nnls(np.stack([np.ones_like(g), g], axis=1), s)
    rows.append(("5 estimate", "fit: s/train-image = a + b*GMACs", f"a={a:.2e} s", f"b={b:.2e} s/GMAC",
                 f"from {len(measured)} backbones"))
    total_s, parts = 0.0, []
    jobs = [("seed002_binary", None), ("seed002_region", None), ("seed000", "resnet101")]
    device = "cuda" if (not args.cpu and torch.cuda.is_available()) else "cpu"
    for preset, only in jobs:
        try:
            cfg = _preset(preset)
        except Exception as exc:  # a preset that no longer composes is a finding, not a crash
            rows.append(("5 estimate", preset, "FAILED", type(exc).__name__, str(exc).splitlines()[0][:80]))
            continue
        models = [only] if only else str(cfg.hydra.sweeper.params.get("model", cfg.model.name)).split(",")
        if args.cpu:
            models = models[:2]
        epochs, size = int(cfg.trainer.max_epochs), int(cfg.image_size)
        n_train = args.train_images.get(preset, 1000)
        variants = 3 if preset == "seed000" else 1
        preset_s = 0.0
        for m in models:
            est_size = args.size if args.cpu else size
            net = create_model(m, num_classes=2).to(device)
            gm = gmacs(net, est_size)
            del net
            preset_s += (a + b * gm) * n_train * epochs * SEEDS * variants
        parts.append(f"{preset} {preset_s / 3600:.1f} h")
        total_s += preset_s
        rows.append(("5 estimate", f"{preset}: {len(models)} backbones x {epochs} ep x {SEEDS} seeds"
                     + (" x 3 variants" if variants > 1 else ""), f"{n_train} train img/epoch", f"{size}px",
                     f"{preset_s / 3600:.2f} GPU h"))
    rows.append(("5 estimate", "full benchmark (early stopping ignored: an upper bound)", "; ".join(parts), "",
                 f"{total_s / 3600:.1f} GPU h"))


def _last_line(out: str) -> str:
    lines = [ln for ln in out.strip().splitlines() if ln.strip()]
    return lines[-1][:120] if lines else ""


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cpu", action="store_true", help="dry mode: tiny sizes on the CPU (must pass anywhere)")
    p.add_argument("--data", dest="data_root", default=None, help="folder holding fracatlas/ for section 4")
    p.add_argument("--out", default=None, help="also write the table as Markdown to this file")
    p.add_argument("--sections", default="1,2,3,4,5", help="comma-separated sections to run")
    args = p.parse_args(argv)
    if args.cpu:
        args.size, args.batch, args.steps, args.warmup, args.repeats = 64, 4, 3, 1, 1
        args.precision, args.workers, args.loader_n, args.cam_batch = "32-true", 0, 48, 2
        args.train_bench_models, args.train_models, args.section_timeout = "resnet18,yolov8n_cls", CPU_TRAIN_MODELS, 400
    else:
        args.size, args.batch, args.steps, args.warmup, args.repeats = 224, 128, 30, 5, 3
        args.precision, args.workers, args.loader_n, args.cam_batch = "bf16-mixed", 16, 1000, 32
        args.train_bench_models, args.train_models, args.section_timeout = "resnet50,yolov8m_cls", GPU_TRAIN_MODELS, 240
    # Train images per epoch of each preset (seed 002 binary: 70% of 2 x 717, less the 10% carved out for
    # validation; region: 5 x 300 at 70%; seed 000: MURA hand train less 18% validation).
    args.train_images = {"seed002_binary": 903, "seed002_region": 945, "seed000": 4545}
    os.environ.setdefault("WANDB_MODE", "disabled")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("YOLO_OFFLINE", "1")
    facts = _device_facts(args.cpu)
    if not args.cpu and facts["device"] == "cpu":
        print("error: no CUDA device found; run with --cpu for the dry mode", file=sys.stderr)
        return 2
    dev = "cpu" if args.cpu else "cuda"
    wanted = set(args.sections.split(","))
    rows: list[tuple] = []
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as tmp:
        gpu_rate = section_throughput(args, rows, dev) if "1" in wanted else None
        if "2" in wanted:
            section_loader(args, rows, gpu_rate)
        if "3" in wanted:
            section_cams(args, rows, dev)
        measured = section_train(args, rows, dev, Path(tmp)) if "4" in wanted else []
        if "5" in wanted:
            section_estimate(args, rows, measured)
    head = (f"device={facts['device']} driver={facts['driver']} torch={facts['torch']} cuda={facts['cuda']} "
            f"precision={args.precision} mode={'cpu dry run' if args.cpu else 'gpu'} total={time.perf_counter() - t0:.0f} s")
    lines = [head, "", "| section | what | figure | figure | note |", "| --- | --- | --- | --- | --- |"]
    lines += ["| " + " | ".join(str(c) for c in (list(r) + [""] * 5)[:5]) + " |" for r in rows]
    text = "\n".join(lines)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    failed = [r for r in rows if "FAILED" in r]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
