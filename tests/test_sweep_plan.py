"""`bench-train ... --plan`: each job's action (train / resume / skip / busy) and run id, before
anything runs. The oracle is a real sweep: the ids and actions the plan prints are parsed back and
compared with the run folders and the sweep summary that `bench-train -m` then writes."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CONF = str(REPO / "conf")
BENCH_TRAIN = str(Path(sys.executable).parent / "bench-train")  # the console script, as users run it
JOB_LINE = re.compile(r"^  job (\d+)\s+(train|resume|skip|busy|error)\s+(\S+)  (.*)  \[(.*)\]$")
SUMMARY_ACTION = {"finished": "train", "resumed": "resume", "skipped": "skip"}


def tiny(tmp: Path, cache: Path) -> list[str]:
    """12 images a class of the generated FracAtlas fixture, 32 px, one CPU epoch."""
    return ["data=tiny_fracatlas", "model=resnet18", "image_size=32", "data.limit_per_class=12", "data.batch_size=8",
            "trainer.max_epochs=1", "trainer.accelerator=cpu", "trainer.deterministic=true", "logger=none",
            "callbacks=none", "measure_latency=false", "trainer.enable_progress_bar=false",
            "trainer.enable_model_summary=false", "explain.enabled=false",
            f"paths.runs_dir={tmp / 'runs'}", f"paths.cache_dir={cache}", f"paths.log_dir={tmp / 'logs'}"]


def _env() -> dict:
    return {**os.environ, "WANDB_MODE": "offline", "PYTHONUNBUFFERED": "1"}


def _run(cmd: list[str], cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=timeout)


def _jobs(lines: list[str]) -> list[tuple[str, str, str]]:
    """(action, run id, detail) of each job line, in job order."""
    found = [JOB_LINE.match(line) for line in lines]
    jobs = [m for m in found if m]
    assert [int(m.group(1)) for m in jobs] == list(range(len(jobs)))
    return [(m.group(2), m.group(3), m.group(4)) for m in jobs]


def _tree(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*")}


def _plan(argv: list[str]) -> tuple[int, list[str]]:
    """The plan in-process, as `bench-train ... --plan` makes it (same missing-data message)."""
    from bench.cli.train_feedback import check_data_path
    from bench.sweep.plan import plan_command

    return plan_command(argv, CONF, check_data=check_data_path)


@pytest.fixture(scope="module")
def fixture_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache folder holding the generated tiny FracAtlas (as the first tiny_fracatlas run writes it)."""
    from bench.data.registry import fixture_into

    cache = tmp_path_factory.mktemp("plan_cache")
    fixture_into("fracatlas", cache / "tiny_fracatlas")
    return cache


@pytest.mark.slow
def test_plan_names_the_jobs_and_ids_that_the_real_sweep_then_runs(tmp_path: Path, fixture_cache: Path) -> None:
    args = tiny(tmp_path, fixture_cache)
    first = _run([BENCH_TRAIN, "-m", *args, "seed=0,1"], tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    done = {p.name: p for p in (tmp_path / "runs").iterdir()}
    interrupted = next(p for name, p in done.items() if "__s1__" in name)
    (interrupted / "record.json").unlink()  # as if killed after its epoch: last.ckpt and history.csv stay
    assert (interrupted / "checkpoints" / "last.ckpt").is_file()

    before = _tree(tmp_path) | {f"cache/{k}": v for k, v in _tree(fixture_cache).items()}
    started = time.perf_counter()
    plan = _run([BENCH_TRAIN, "-m", *args, "seed=0,1,2", "--plan"], tmp_path)
    plan_s = time.perf_counter() - started
    print(plan.stdout)
    print(f"bench-train -m ... --plan (3 jobs): {plan_s:.1f} s")
    assert plan.returncode == 0, plan.stderr[-3000:]
    after = _tree(tmp_path) | {f"cache/{k}": v for k, v in _tree(fixture_cache).items()}
    assert after == before, "the plan wrote, moved or touched files"

    jobs = _jobs(plan.stdout.splitlines())
    assert [a for a, _, _ in jobs] == ["skip", "resume", "train"]
    assert {jobs[0][1], jobs[1][1]} == set(done), "the plan's ids are the folders the first sweep wrote"
    assert jobs[1][1] == interrupted.name and "1 of 1 epochs done" in jobs[1][2]
    assert plan.stdout.splitlines()[-1].startswith("plan: 1 to train, 1 to resume, 1 to skip (complete), 0 busy")

    real = _run([BENCH_TRAIN, "-m", *args, "seed=0,1,2"], tmp_path)
    assert real.returncode == 0, real.stderr[-3000:]
    summary = json.loads(sorted((tmp_path / "logs").glob("train/multiruns/*/sweep_summary.json"))[-1].read_text())
    ran = [(SUMMARY_ACTION[j["status"]], j["run_id"]) for j in sorted(summary["jobs"], key=lambda j: j["job"])]
    assert ran == [(a, i) for a, i, _ in jobs]
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == sorted(i for _, i, _ in jobs)


def test_plan_reads_locks_and_checkpoints_and_leaves_ids_alone(tmp_path: Path, fixture_cache: Path) -> None:
    argv = ["-m", *tiny(tmp_path, fixture_cache), "seed=0,1,2"]
    code, lines = _plan(argv)
    assert code == 0, lines
    fresh = _jobs(lines)
    assert [a for a, _, _ in fresh] == ["train"] * 3 and all(d == "new run" for _, _, d in fresh)
    ids = [i for _, i, _ in fresh]
    assert [i.split("__")[:3] for i in ids] == [["tiny_fracatlas", "resnet18", f"s{s}"] for s in range(3)]
    assert len(set(ids)) == 3 and not (tmp_path / "runs").exists()

    runs = tmp_path / "runs"
    # job 0: a live holder (this process, on this host, heartbeat now): the job would skip it.
    (runs / ids[0]).mkdir(parents=True)
    holder = {"host": socket.gethostname(), "pid": os.getpid(), "token": "t", "started": time.time(),
              "heartbeat": time.time(), "slurm_job_id": None}
    (runs / ids[0] / "run.lock").write_text(json.dumps(holder))
    # job 1: a holder on this host whose pid is gone, and a last.ckpt with one epoch in history.csv.
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (runs / ids[1] / "checkpoints").mkdir(parents=True)
    (runs / ids[1] / "run.lock").write_text(json.dumps({**holder, "pid": int(gone.stdout)}))
    (runs / ids[1] / "checkpoints" / "last.ckpt").write_bytes(b"x")
    (runs / ids[1] / "history.csv").write_text("epoch,train_loss\n0,0.7\n")
    # job 2: a lock whose heartbeat is older than run_lock.stale_after_s, no checkpoint.
    (runs / ids[2]).mkdir(parents=True)
    (runs / ids[2] / "run.lock").write_text(json.dumps({**holder, "host": "elsewhere", "heartbeat": time.time() - 601}))

    code, lines = _plan(argv)
    assert code == 0, lines
    jobs = _jobs(lines)
    assert [i for _, i, _ in jobs] == ids, "the folder's state never changes a run id"
    assert [a for a, _, _ in jobs] == ["busy", "resume", "train"]
    assert f"pid {os.getpid()}" in jobs[0][2] and "would skip" in jobs[0][2]
    assert "last.ckpt, 1 of 1 epochs done" in jobs[1][2] and f"pid {gone.stdout.strip()} on this host is gone" in jobs[1][2]
    assert "no heartbeat for 60" in jobs[2][2] and "taken over" in jobs[2][2]
    assert lines[-1].startswith("plan: 1 to train, 1 to resume, 0 to skip (complete), 1 busy elsewhere, 0 with errors")
    # resume=false starts over whatever is there (the lock rule still applies).
    code, lines = _plan([*argv, "resume=false"])
    assert [a for a, _, _ in _jobs(lines)] == ["busy", "train", "train"]


def test_plan_runs_in_seconds_without_torch_or_lightning(tmp_path: Path, fixture_cache: Path) -> None:
    code = ("import sys, time; t = time.perf_counter(); from bench.sweep.plan import plan_command; "
            f"rc, lines = plan_command(sys.argv[1:], {CONF!r}); "
            "print(rc, round(time.perf_counter() - t, 2), [m for m in ('torch', 'lightning') if m in sys.modules])")
    out = _run([sys.executable, "-c", code, "-m", *tiny(tmp_path, fixture_cache), "seed=0,1,2,3",
                "model=resnet18,efficientnet_lite0"], tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    rc, seconds, heavy = out.stdout.split(" ", 2)
    print(f"plan of 8 jobs, in-process: {seconds} s; heavy modules imported: {heavy.strip()}")
    assert rc == "0" and heavy.strip() == "[]"
    assert float(seconds) < 30  # ~3 s on a quiet 2-core machine; the heavy imports alone take 15-25 s


def test_plan_of_a_fixture_not_generated_yet_says_the_ids_are_provisional(tmp_path: Path) -> None:
    code, lines = _plan(["-m", *tiny(tmp_path, tmp_path / "empty_cache"), "seed=0,1"])
    assert code == 0, lines
    jobs = _jobs(lines)
    assert [i for _, i, _ in jobs] == ["tiny_fracatlas__resnet18__s0__????????", "tiny_fracatlas__resnet18__s1__????????"]
    assert any(line.startswith("note: ???????? stands for") for line in lines)
    assert not (tmp_path / "empty_cache").exists(), "the plan generated the fixture"


def test_single_run_and_optuna_and_errors(tmp_path: Path, fixture_cache: Path) -> None:
    code, lines = _plan([*tiny(tmp_path, fixture_cache), "seed=3"])  # no -m: the one run
    assert code == 0 and len(_jobs(lines)) == 1 and "1 job (run)" in lines[0]

    code, lines = _plan(["-m", "hparams_search=seed000_optuna", *tiny(tmp_path, fixture_cache)])
    assert code == 0 and _jobs(lines) == []
    assert "cannot be listed before they run" in lines[0] and "n_trials=10" in lines[0]
    assert lines[1].startswith("  fixed part: hparams_search=seed000_optuna data=tiny_fracatlas")
    assert "optim.lr=tag(log, interval(1e-5, 1e-2))" in lines[2]

    # A job whose data is missing: an error line with bench-train's own message, exit 2.
    code, lines = _plan(["-m", *tiny(tmp_path, fixture_cache), "data=tiny_fracatlas,fracatlas_binary",
                         f"paths.data_dir={tmp_path / 'no_data'}"])
    jobs = _jobs(lines)
    assert code == 2 and [a for a, _, _ in jobs] == ["train", "error"]
    assert "does not exist: set paths.data_dir=DIR" in jobs[1][2]

    # The command's own errors: one line, exit 2, as bench-train without --plan.
    bad = _run([BENCH_TRAIN, "-m", *tiny(tmp_path, fixture_cache), "seed=0,1", "no_such_key=1", "--plan"], tmp_path)
    assert bad.returncode == 2 and bad.stderr.startswith("error: ") and "no_such_key" in bad.stderr.splitlines()[0]
    assert not (tmp_path / "logs").exists() and not (tmp_path / "runs").exists()


def test_plan_fingerprint_is_the_one_the_datamodule_records(tmp_path: Path, fixture_cache: Path) -> None:
    """The oracle of bench.data.selection: FractureDataModule's own fingerprint (Lightning loaded here)."""
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from bench.data.selection import selected_fingerprint

    sys.path.insert(0, str(Path(__file__).parent))
    from training_helpers import compose

    digests = []
    for limit in ("null", "5"):
        cfg = compose([*tiny(tmp_path, fixture_cache), f"data.limit_per_class={limit}"])
        dm = instantiate(cfg.data, image_size=32)
        planned = selected_fingerprint(OmegaConf.to_container(cfg.data, resolve=True))
        assert planned.digest == dm.compute_data_fingerprint()
        digests.append((planned.digest, planned.n_files))
    assert digests[0][0] != digests[1][0] and digests[1][1] < digests[0][1]


def test_bench_train_help_names_the_plan_flag(tmp_path: Path) -> None:
    out = _run([BENCH_TRAIN, "--help"], tmp_path)
    assert out.returncode == 0 and "--plan" in out.stdout.splitlines()[1]
