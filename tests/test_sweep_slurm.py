"""Sweeps through a real SLURM controller with Hydra's submitit launcher (conf/hydra/launcher/slurm_cpu.yaml).

Needs slurmctld + slurmd up (``.ci/slurm.sh``); skipped with the reason otherwise.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from bench.record import read_record

sys.path.insert(0, str(Path(__file__).parent))
from test_sweep import BENCH_TRAIN, tiny  # noqa: E402

pytestmark = pytest.mark.slurm


def _slurm_up() -> str | None:
    for exe in ("sbatch", "squeue", "scancel", "scontrol"):
        if shutil.which(exe) is None:
            return f"{exe} not installed (run .ci/slurm.sh)"
    try:
        out = subprocess.run(["scontrol", "ping"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        return f"scontrol ping failed: {exc}"
    return None if "is UP" in out else f"no SLURM controller answering (scontrol ping: {out.strip()!r}); run .ci/slurm.sh"


@pytest.fixture(scope="module", autouse=True)
def slurm() -> None:
    reason = _slurm_up()
    if reason:
        pytest.skip(reason)


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("slurm_cache")


def _slurm_args(name: str) -> list[str]:
    # 1 CPU per job so that two jobs run side by side on a 2-core CI node.
    return ["hydra/launcher=slurm_cpu", "hydra.launcher.cpus_per_task=1", "hydra.launcher.mem_gb=2",
            "hydra.launcher.timeout_min=10", f"hydra.launcher.name={name}"]


def _summary(log: Path) -> dict:
    return json.loads(sorted(log.glob("train/multiruns/*/sweep_summary.json"))[-1].read_text())


def _env() -> dict:
    return {**os.environ, "WANDB_MODE": "offline"}


@pytest.mark.slow
def test_slurm_sweep_completes_and_cancelled_job_is_reported(tmp_path: Path, cache: Path) -> None:
    # 1) Two tiny runs as a SLURM array: both finish, records written by the jobs.
    runs = tmp_path / "ok" / "bench_runs"
    name = f"bench-test-{uuid.uuid4().hex[:8]}"
    t0 = time.perf_counter()
    done = subprocess.run([BENCH_TRAIN, "-m", *_slurm_args(name), *tiny(tmp_path / "ok", cache, runs, epochs=1), "seed=0,1"],
                          cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=600)
    wall = time.perf_counter() - t0
    assert done.returncode == 0, done.stderr[-4000:]
    print(f"SLURM sweep of 2 tiny runs: {wall:.1f} s")
    summary = _summary(tmp_path / "ok" / "logs")
    assert summary["counts"] == {"finished": 2, "resumed": 0, "skipped": 0, "failed": 0}
    assert all(j["slurm_job_id"] for j in summary["jobs"])
    records = [read_record(d) for d in runs.iterdir()]
    assert sorted(r["seed"] for r in records if r) == [0, 1]
    assert all(r["sweep"]["id"] == Path(summary["sweep_dir"]).name for r in records)

    # 2) scancel one job of a running array: reported failed, the sweep ends, the other job finishes.
    runs = tmp_path / "cancel" / "bench_runs"
    name = f"bench-test-{uuid.uuid4().hex[:8]}"
    proc = subprocess.Popen([BENCH_TRAIN, "-m", *_slurm_args(name), *tiny(tmp_path / "cancel", cache, runs, epochs=2),
                             "seed=0,7"], cwd=tmp_path, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    cancelled = None
    deadline = time.monotonic() + 300
    while cancelled is None and time.monotonic() < deadline and proc.poll() is None:
        out = subprocess.run(["squeue", "-h", "-r", "-n", name, "-o", "%i %T"], capture_output=True, text=True).stdout
        for line in out.split("\n"):
            if line.endswith("_1 RUNNING"):
                cancelled = line.split()[0]
                subprocess.run(["scancel", cancelled], check=True)
        time.sleep(0.2)
    try:
        stdout, stderr = proc.communicate(timeout=300)  # bounded: a lost job must not hang the sweep
    finally:
        if proc.poll() is None:
            proc.kill()
            subprocess.run(["scancel", "-n", name])
    assert cancelled is not None, "job _1 never seen RUNNING"
    assert proc.returncode == 1, stderr[-4000:]
    summary = _summary(tmp_path / "cancel" / "logs")
    assert summary["counts"]["failed"] == 1 and summary["counts"]["finished"] == 1
    lost = [j for j in summary["jobs"] if j["status"] == "failed"][0]
    assert lost["job"] == 1 and lost["slurm_job_id"] == cancelled
    assert "CANCELLED" in lost["reason"] and "CANCELLED" in lost["job_status"]
    assert "SWEEP SUMMARY" in stdout and "1 failed" in stdout
