"""The prepared GPU check (benchmarks/gpu_check.py) runs end to end in its CPU dry mode: every
section produces figures (a FAILED row makes it exit 1), and the Markdown table parses back."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_check_cpu_dry_mode(tmp_path):
    out = tmp_path / "table.md"
    p = subprocess.run([sys.executable, "benchmarks/gpu_check.py", "--cpu", "--out", str(out)], cwd=REPO,
                       capture_output=True, text=True, timeout=1500)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    rows = [ln.split("|")[1:-1] for ln in out.read_text().splitlines() if ln.startswith("| ") and "---" not in ln]
    sections = {r[0].strip().split()[0] for r in rows[1:]}
    assert sections == {"1", "2", "3", "4", "5"}
    total = [r for r in rows if "full benchmark" in r[1]]
    assert total and float(total[0][4].split()[0]) >= 0  # GPU hours: a number, never negative


def test_gpu_check_refuses_without_cuda():
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    p = subprocess.run([sys.executable, "benchmarks/gpu_check.py"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and "--cpu" in p.stderr
