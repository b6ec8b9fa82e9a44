"""bench-check's errors name bench-check's own flags (--root, --task, ...), not bench-train's
settings (data.root, paths.data_dir, data=tiny_fracatlas), and a missing --root is reported
before the heavy imports."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bench.cli.check import flag_message, main

BENCH_TRAIN_WORDS = ("data.root", "paths.data_dir", "data=tiny_fracatlas")


@pytest.mark.parametrize("dataset", ["fracatlas", "mura"])
def test_missing_root_names_the_flag_before_heavy_imports(tmp_path, dataset):
    missing = tmp_path / "nowhere"
    code = ("import sys; from bench.cli.check import main; rc = main(sys.argv[1:]); "
            "print('torch' in sys.modules, 'bench.data.datamodule' in sys.modules); sys.exit(rc)")
    proc = subprocess.run([sys.executable, "-c", code, dataset, "--root", str(missing)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stdout.split() == ["False", "False"]  # answered before torch and the data module load (the registry is light)
    err = proc.stderr
    assert err.count("\n") == 1 and err.startswith(f"error: --root {missing} does not exist: ")
    assert f"bench-check {dataset} --root DIR" in err and f"bench-data {dataset} --out DIR" in err
    assert ("MURA-v1.1/" in err) == (dataset == "mura") and ("dataset.csv" in err) == (dataset == "fracatlas")
    assert not any(w in err for w in BENCH_TRAIN_WORDS), err


def test_root_that_is_not_a_dataset_names_the_flag(tmp_path, capsys):
    # MURA: an existing folder without MURA-v1.1/ (the loader's message says "point data.root at ...").
    (tmp_path / "empty").mkdir()
    assert main(["mura", "--root", str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no MURA-v1.1 folder here: point --root at MURA-v1.1/" in err
    assert not any(w in err for w in BENCH_TRAIN_WORDS), err
    # FracAtlas: a file where the folder should be.
    (tmp_path / "file.txt").write_text("not a dataset")
    assert main(["fracatlas", "--root", str(tmp_path / "file.txt")]) == 2
    err = capsys.readouterr().err
    assert "FracAtlas root not found: point --root at the folder that has dataset.csv" in err
    assert not any(w in err for w in BENCH_TRAIN_WORDS), err


def test_flag_message_maps_keys_to_flags_only_where_a_flag_exists():
    assert flag_message("data.truncated=skip (leave it out)") == "--truncated=skip (leave it out)"
    assert flag_message("set data.root.") == "set --root."
    assert flag_message("data.split.ratios=[1.0]: give 2 or 3") == "--split-ratios=[1.0]: give 2 or 3"
    # No flag for these: the key stays as it is (no half-translated "--split_file").
    assert flag_message("give data.split_file a path; data.split: n_folds") == "give data.split_file a path; data.split: n_folds"
    assert flag_message("data.roots") == "data.roots"
