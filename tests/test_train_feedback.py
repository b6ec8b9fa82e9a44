"""What bench-train tells the user (issue 16): messages that name the fix, a missing path before
the heavy imports, one line per epoch in a log file, a last line naming the run folder, no noise."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

BENCH_TRAIN = str(Path(sys.executable).with_name("bench-train"))


def _train(tmp_path: Path, *overrides: str, timeout: int = 600) -> tuple[subprocess.CompletedProcess, float]:
    env = {**os.environ, "BENCH_ROOT": str(tmp_path), "WANDB_MODE": "offline"}
    env.pop("BENCH_DATA_DIR", None)
    t0 = time.perf_counter()
    # Output to pipes: not a terminal, as on a cluster.
    proc = subprocess.run([BENCH_TRAIN, *overrides], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=timeout)
    return proc, time.perf_counter() - t0


def test_missing_data_names_paths_data_dir_within_3_s(tmp_path):
    proc, seconds = _train(tmp_path, "data=fracatlas_binary", f"paths.data_dir={tmp_path / 'nodata'}", "logger=none")
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"error: data.root={tmp_path / 'nodata' / 'fracatlas'} does not exist")
    assert "paths.data_dir=DIR" in lines[0] and "fracatlas/" in lines[0]
    assert seconds < 3, f"{seconds:.1f} s: the path check must come before torch / Lightning are imported"
    assert not (tmp_path / "bench_runs").exists()


def test_bad_batch_size_is_one_line_naming_the_key(tmp_path):
    proc, _ = _train(tmp_path, "data.batch_size=abc", "logger=none")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert lines == ["error: data.batch_size='abc': give a positive integer (images per batch)"], proc.stderr
    assert "invalid literal" not in proc.stderr


@pytest.mark.slow
def test_epoch_lines_final_line_and_no_noise(tmp_path):
    args = ("logger=wandb", "image_size=64", "trainer.max_epochs=2", "explain.enabled=false", "leaderboard.enabled=false")
    proc, _ = _train(tmp_path, *args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout + proc.stderr
    epochs = re.findall(r"epoch (\d+)/2: train loss ([\d.]+), val loss ([\d.]+), val accuracy ([\d.]+), "
                        r"val auroc ([\d.]+).* \(([\d.]+) s\)", out)
    assert [int(e[0]) for e in epochs] == [1, 2], out[-3000:]
    for _, train_loss, val_loss, acc, auroc, secs in epochs:
        assert float(train_loss) > 0 and float(val_loss) > 0 and 0 <= float(acc) <= 1 and 0 <= float(auroc) <= 1
        assert float(secs) > 0
    last = proc.stdout.strip().splitlines()[-1]
    m = re.fullmatch(r"run complete: (\S+) \(test auroc ([\d.]+), accuracy ([\d.]+), .*best val/auroc ([\d.]+) at epoch (\d)\)", last)
    assert m, last
    run_dir = Path(m.group(1))
    import json

    record = json.loads((run_dir / "record.json").read_text())
    assert float(m.group(2)) == pytest.approx(record["metrics"]["test"]["auroc"], abs=5e-4)
    assert float(m.group(3)) == pytest.approx(record["metrics"]["test"]["accuracy"], abs=5e-4)
    assert int(m.group(5)) == record["best"]["epoch"]
    for noise in ("anonymous setting has no effect", "litlogger", "log_every_n_steps"):
        assert noise not in out, noise

    again, _ = _train(tmp_path, *args)
    assert again.returncode == 0, again.stderr[-2000:]
    assert again.stdout.strip().splitlines()[-1].startswith(f"skipped: {run_dir} is complete")
