"""Where and with what a run ran (``environment.json``) and which sweep job it is: shared by the
classification and the detection trainers, which do not import each other."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import socket
import subprocess
from pathlib import Path
from typing import Any

import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode

PACKAGES = ("torch", "torchvision", "lightning", "timm", "ultralytics", "torchmetrics", "grad-cam", "hydra-core", "wandb", "numpy", "pandas", "fracture-bench")


def sweep_info() -> dict:
    """This job's sweep (id, job number, folder) under a Hydra multirun; {} otherwise."""
    try:
        hc = HydraConfig.get()
    except Exception:
        return {}
    if hc.mode == RunMode.MULTIRUN:
        return {"id": Path(hc.sweep.dir).name, "job": int(hc.job.num), "dir": str(hc.sweep.dir)}
    return {}


def environment(cfg: Any, device: str) -> dict:
    """What ran the run (``environment.json``): versions, commit, host, device, threads, SLURM job."""
    versions = {}
    for pkg in PACKAGES:
        try:
            versions[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            versions[pkg] = None
    commit = None
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=5
        ).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        pass
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "hostname": socket.gethostname(),
        "packages": versions,
        "git_commit": commit,
        "device": device,
        "device_name": torch.cuda.get_device_name(0) if device.startswith("cuda") else platform.processor() or platform.machine(),
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
    }
