"""Golden-output check for refactors: the same fixed tiny run with two versions of the code.

    python benchmarks/golden_run.py --before <git-rev> [--after <git-rev>|worktree]

Exports each version (``git archive``; ``worktree`` = the files as they are now) to a temporary
folder, runs ``bench-train data=tiny_fracatlas model=resnet18 image_size=64
trainer.max_epochs=1 seed=0 logger=none`` (explain and leaderboard off) with that version's
``bench`` first on ``PYTHONPATH``, and compares what a refactor must keep: the metrics present in
both records (a new metric key is not a difference), the task / split / best / model / protocol
sections, ``predictions.csv`` (the columns the older run had) and ``split.csv`` byte for byte. The
run id may differ when the run-id rule itself changed; it is reported. Exit 1 on a difference.
Takes a few minutes per version on a CPU.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
OVERRIDES = ["data=tiny_fracatlas", "model=resnet18", "image_size=64", "trainer.max_epochs=1", "seed=0",
             "logger=none", "explain.enabled=false", "leaderboard.enabled=false", "measure_latency=false",
             "trainer.enable_progress_bar=false"]
SECTIONS = ("task", "split", "best", "model", "protocol", "seed", "epochs_run")


def export(rev: str, dest: Path) -> Path:
    if rev == "worktree":
        files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True,
                               text=True, check=True).stdout.split()
        for rel in files:
            src = REPO / rel
            if src.is_file():
                (dest / rel).parent.mkdir(parents=True, exist_ok=True)
                (dest / rel).write_bytes(src.read_bytes())
        return dest
    blob = subprocess.run(["git", "archive", rev], cwd=REPO, capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
        tar.extractall(dest, filter="data")
    return dest


def run(tree: Path, work: Path, cache: Path) -> Path:
    env = {**os.environ, "PYTHONPATH": str(tree), "BENCH_ROOT": str(work), "BENCH_CACHE_DIR": str(cache),
           "WANDB_MODE": "disabled"}
    proc = subprocess.run([sys.executable, "-m", "bench.cli.train", *OVERRIDES, f"hydra.run.dir={work / 'hydra'}"],
                          cwd=work, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"error: the run with {tree} failed:\n{proc.stderr[-3000:]}")
    (run_dir,) = [p for p in (work / "bench_runs").iterdir() if p.is_dir()]
    return run_dir


def _compare(old, new, where: str, out: list[str]) -> None:
    if isinstance(old, dict):
        if not isinstance(new, dict):
            out.append(f"{where}: {old!r} -> {new!r}")
            return
        for key in old:
            if key not in new:
                out.append(f"{where}.{key}: missing after")
            else:
                _compare(old[key], new[key], f"{where}.{key}", out)
    elif isinstance(old, float) and isinstance(new, float) and math.isnan(old) and math.isnan(new):
        return
    elif old != new:
        out.append(f"{where}: {old!r} -> {new!r}")


def differences(before: Path, after: Path) -> list[str]:
    rb = json.loads((before / "record.json").read_text())
    ra = json.loads((after / "record.json").read_text())
    out: list[str] = []
    _compare(rb["metrics"], ra["metrics"], "metrics", out)
    for section in SECTIONS:
        _compare(rb.get(section), ra.get(section), section, out)
    pb, pa = pd.read_csv(before / "predictions.csv"), pd.read_csv(after / "predictions.csv")
    missing = [c for c in pb.columns if c not in pa.columns]
    if missing:
        out.append(f"predictions.csv: columns {missing} missing after")
    elif not pb.equals(pa[pb.columns]):
        out.append("predictions.csv: values differ")
    if (before / "split.csv").read_bytes() != (after / "split.csv").read_bytes():
        out.append("split.csv differs")
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--before", required=True, help="git revision of the reference code")
    p.add_argument("--after", default="worktree", help="git revision, or 'worktree' (default)")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="golden-") as tmp:
        tmp = Path(tmp)
        cache = tmp / "cache"  # one generated fixture for both runs
        dirs = {}
        for name, rev in (("before", args.before), ("after", args.after)):
            tree = export(rev, (tmp / f"{name}-src"))
            (tmp / name).mkdir()
            dirs[name] = run(tree, tmp / name, cache)
        diffs = differences(dirs["before"], dirs["after"])
        print(f"run id: {dirs['before'].name} -> {dirs['after'].name}")
    print("same metrics, predictions and split" if not diffs else "DIFFERENCES:\n  " + "\n  ".join(diffs))
    return 1 if diffs else 0


if __name__ == "__main__":
    sys.exit(main())
