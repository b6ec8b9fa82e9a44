"""SLURM pre-timeout / preemption: a job signalled mid-run (USR2, what SLURM sends
``signal_delay_s`` before the limit and on preemption) checkpoints, requeues itself through
submitit and resumes exactly. Needs a real SLURM controller (``.ci/slurm.sh``); skipped otherwise."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from test_sweep_slurm import _slurm_args, _slurm_up  # noqa: E402
from training_helpers import BENCH_TRAIN, TINY, child_env, paths, tree  # noqa: E402

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

# Three epochs, enough images that an epoch outlasts the signal's round trip.
ARGS = [o for o in TINY if not o.startswith(("trainer.max_epochs", "data.limit_per_class"))] + [
    "trainer.max_epochs=3", "data.limit_per_class=40"]


@pytest.fixture(scope="module", autouse=True)
def slurm() -> None:
    reason = _slurm_up()
    if reason:
        pytest.skip(reason)


def _probs(run_dir: Path) -> pd.DataFrame:
    return pd.read_csv(run_dir / "predictions.csv").sort_values(["split", "image_id"]).reset_index(drop=True)


def test_signalled_job_requeues_and_resumes_exactly(tmp_path):
    cache = tmp_path / "cache"
    # Reference: the same run, uninterrupted, in this process's machine.
    ref = subprocess.run([*BENCH_TRAIN, *ARGS, *paths(tmp_path / "ref", cache)], cwd=tmp_path, capture_output=True,
                         text=True, timeout=900, env=child_env())
    assert ref.returncode == 0, ref.stderr[-3000:]
    (ref_dir,) = list((tmp_path / "ref" / "runs").iterdir())

    name = f"bench-requeue-{uuid.uuid4().hex[:8]}"
    work = tmp_path / "slurm"
    runs = work / "runs"
    proc = subprocess.Popen([*BENCH_TRAIN, "-m", *_slurm_args(name), "hydra.launcher.max_num_timeout=1", *ARGS,
                             *paths(work, cache)], cwd=tmp_path, env=child_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    signalled = None
    try:
        deadline = time.monotonic() + 600
        while signalled is None and time.monotonic() < deadline and proc.poll() is None:
            last = list(runs.glob("*/checkpoints/last.ckpt")) if runs.is_dir() else []
            if last:  # epoch 0 finished: interrupt the job in epoch 1
                out = subprocess.run(["squeue", "-h", "-n", name, "-o", "%i %T"], capture_output=True, text=True).stdout
                running = [ln.split()[0] for ln in out.splitlines() if ln.endswith(" RUNNING")]
                if running:
                    signalled = running[0]
                    subprocess.run(["scancel", "--signal=USR2", signalled], check=True)
            time.sleep(0.2)
        # SLURM holds a requeued job for ~120 s (BeginTime); release it at once so the test does not idle
        released = False
        while signalled is not None and not released and time.monotonic() < deadline and proc.poll() is None:
            state = subprocess.run(["squeue", "-h", "-j", signalled, "-o", "%T %r"], capture_output=True,
                                   text=True).stdout.strip()
            if state == "PENDING BeginTime":
                subprocess.run(["scontrol", "update", f"JobId={signalled}", "StartTime=now"], check=True)
                released = True
            time.sleep(0.5)
        stdout, stderr = proc.communicate(timeout=900)
    finally:
        if proc.poll() is None:
            proc.kill()
        subprocess.run(["scancel", "-n", name])
    assert signalled is not None, "the job was never seen running after its first epoch"
    assert proc.returncode == 0, stderr[-4000:]

    (run_dir,) = list(runs.iterdir())
    assert run_dir.name == ref_dir.name  # same config, same run id
    record = json.loads((run_dir / "record.json").read_text())
    assert record["resumed_from"] and record["resumed_from"].endswith("checkpoints/last.ckpt")
    assert record["epochs_run"] == 3
    history = pd.read_csv(run_dir / "history.csv")
    assert history["epoch"].tolist() == [0, 1, 2]
    summary = json.loads(sorted((work / "logs").glob("train/multiruns/*/sweep_summary.json"))[-1].read_text())
    assert summary["counts"]["resumed"] == 1 and summary["counts"]["failed"] == 0
    logs = "\n".join(p.read_text(errors="replace") for p in (work / "logs" / "submitit").rglob("*.err"))
    assert "requeue" in logs.lower()
    assert "run.lock" not in tree(run_dir)
    # Exactly as if never interrupted.
    ours, want = _probs(run_dir), _probs(ref_dir)
    assert ours["image_id"].tolist() == want["image_id"].tolist()
    cols = [c for c in want.columns if c.startswith("prob_")]
    np.testing.assert_allclose(ours[cols].to_numpy(), want[cols].to_numpy(), atol=1e-5)
