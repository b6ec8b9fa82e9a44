"""One run folder, one writer (bench.training.lock): real processes hold and contend for the lock."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.training.lock import LOCK_FILE, RunLock, RunLocked, read_lock

sys.path.insert(0, str(Path(__file__).parent))
from training_helpers import TINY, compose, paths, run_id_of, tree  # noqa: E402

# The lock module by its file: a holder process without torch / Lightning (bench.training's imports).
HOLDER = f"""
import importlib.util, sys, time
spec = importlib.util.spec_from_file_location("lock", {str(Path(__file__).resolve().parents[1] / "bench" / "training" / "lock.py")!r})
mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)
lock = mod.RunLock(sys.argv[1], stale_after_s=float(sys.argv[2]), heartbeat_s=float(sys.argv[3])).acquire()
print("locked", flush=True)
time.sleep(600)
"""


def _holder(run_dir: Path, stale_after_s: float = 600, heartbeat_s: float = 30) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(run_dir), str(stale_after_s), str(heartbeat_s)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    assert line.strip() == "locked", proc.stderr.read()
    return proc


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=30)


def test_a_live_holder_keeps_the_folder_and_a_killed_one_is_taken_over_at_once(tmp_path):
    run_dir = tmp_path / "run"
    proc = _holder(run_dir)
    try:
        holder = read_lock(run_dir / LOCK_FILE)
        assert holder["pid"] == proc.pid and holder["host"] == socket.gethostname()
        with pytest.raises(RunLocked) as err:
            RunLock(run_dir).acquire()
        msg = str(err.value)
        assert f"pid {proc.pid}" in msg and socket.gethostname() in msg and "skipped" in msg and "\n" not in msg
        os.kill(proc.pid, signal.SIGKILL)  # kill -9: no release, the file stays
        proc.wait(timeout=30)
        assert (run_dir / LOCK_FILE).is_file()
        lock = RunLock(run_dir).acquire()  # same host, pid gone: no need to wait for staleness
        try:
            assert read_lock(run_dir / LOCK_FILE)["pid"] == os.getpid()
        finally:
            lock.release()
        assert not (run_dir / LOCK_FILE).exists()
    finally:
        _stop(proc)


def test_heartbeat_keeps_a_lock_held_longer_than_the_stale_time_fresh(tmp_path):
    run_dir = tmp_path / "run"
    proc = _holder(run_dir, stale_after_s=1.5, heartbeat_s=0.2)
    try:
        first = read_lock(run_dir / LOCK_FILE)["heartbeat"]
        time.sleep(3.0)  # twice the stale time: only the heartbeat thread keeps it alive
        later = read_lock(run_dir / LOCK_FILE)["heartbeat"]
        assert later > first + 2.0
        with pytest.raises(RunLocked):
            RunLock(run_dir, stale_after_s=1.5, heartbeat_s=0.2).acquire()
    finally:
        _stop(proc)


def _foreign_lock(run_dir: Path, age_s: float, **extra) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / LOCK_FILE).write_text(json.dumps({"host": "node-b.cluster", "pid": 4242, "token": "x",
                                                 "started": time.time() - age_s, "heartbeat": time.time() - age_s,
                                                 **extra}))


def test_a_lock_from_another_node_waits_for_the_stale_time(tmp_path):
    run_dir = tmp_path / "run"
    _foreign_lock(run_dir, age_s=5)
    with pytest.raises(RunLocked, match=r"host node-b.cluster pid 4242 \(heartbeat 5 s ago; taken over after 600 s"):
        RunLock(run_dir).acquire()
    _foreign_lock(run_dir, age_s=601)  # dead node: no heartbeat for longer than stale_after_s
    lock = RunLock(run_dir).acquire()
    assert read_lock(run_dir / LOCK_FILE)["token"] == lock.token
    lock.release()
    assert sorted(p.name for p in run_dir.iterdir()) == []  # the stale file was not kept either


def test_a_requeued_slurm_job_takes_its_own_lock_over(tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    _foreign_lock(run_dir, age_s=1, slurm_job_id="777")
    monkeypatch.setenv("SLURM_JOB_ID", "778")
    with pytest.raises(RunLocked):
        RunLock(run_dir).acquire()
    monkeypatch.setenv("SLURM_JOB_ID", "777")  # same job id after `scontrol requeue`
    with RunLock(run_dir) as lock:
        assert read_lock(run_dir / LOCK_FILE)["token"] == lock.token


def test_an_unreadable_lock_counts_from_its_modification_time(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    torn = run_dir / LOCK_FILE
    torn.write_bytes(b'{"host": "nod')
    with pytest.raises(RunLocked):
        RunLock(run_dir, stale_after_s=60, heartbeat_s=1).acquire()
    old = time.time() - 120
    os.utime(torn, (old, old))
    with RunLock(run_dir, stale_after_s=60, heartbeat_s=1) as lock:
        assert read_lock(torn)["token"] == lock.token


def test_release_leaves_a_lock_that_was_taken_over(tmp_path):
    run_dir = tmp_path / "run"
    lock = RunLock(run_dir).acquire()
    _foreign_lock(run_dir, age_s=0)  # another process took it over (we were presumed dead)
    lock.release()
    assert read_lock(run_dir / LOCK_FILE)["host"] == "node-b.cluster"


def test_settings_are_checked():
    with pytest.raises(ValueError, match="stale_after_s > heartbeat_s"):
        RunLock("x", stale_after_s=10, heartbeat_s=30)


# ------------------------------------------------------------------ the run, with a real holder


@pytest.fixture
def restore_env():
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


def test_second_identical_run_skips_while_the_first_holds_the_folder(tmp_path, restore_env):
    from bench.training.run import run

    cfg = compose([*TINY, *paths(tmp_path, tmp_path / "cache")])
    run_dir = tmp_path / "runs" / run_id_of(cfg)
    proc = _holder(run_dir)
    try:
        summary = run(cfg)
    finally:
        _stop(proc)
    assert summary["status"] == "skipped" and summary["run_dir"] == str(run_dir)
    assert f"pid {proc.pid}" in summary["reason"] and "being trained by" in summary["reason"]
    # The second run wrote nothing into the folder the first one owns.
    assert tree(run_dir) == [LOCK_FILE]
