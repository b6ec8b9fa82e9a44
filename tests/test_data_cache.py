"""Decoded-image cache: reuse without decoding, per-file invalidation, safety rules."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

import bench.data.cache as cache_mod
from bench.testing import fixtures
from bench.data.cache import build_cache
from bench.data.decode import decode_resized_uint8
from bench.data.fracatlas import load_fracatlas
from bench.errors import BenchError


@pytest.fixture()
def fa(tmp_path):
    root = tmp_path / "fracatlas"
    info = fixtures.make_fracatlas(root, n=20, seed=2, bad_files=True)
    table, _ = load_fracatlas(root)
    return root, info, table["path"].tolist()


@pytest.fixture()
def count_decodes(monkeypatch):
    calls: list[str] = []
    real = cache_mod.decode_resized_uint8

    def counting(path, size, *args):
        calls.append(os.path.basename(path))
        return real(path, size, *args)

    monkeypatch.setattr(cache_mod, "decode_resized_uint8", counting)
    return calls


def test_second_build_decodes_nothing_and_matches(fa, tmp_path, count_decodes):
    root, info, paths = fa
    first = build_cache(paths, tmp_path / "cache", root, 32)
    assert first.n_decoded == len(paths) == len(count_decodes)
    assert first.images.shape == (len(paths), 32, 32) and first.images.dtype == np.uint8
    assert [os.path.basename(p) for p in first.truncated] == info["truncated"]
    count_decodes.clear()
    second = build_cache(paths, tmp_path / "cache", root, 32)
    assert second.n_decoded == 0 and count_decodes == []
    for k, p in enumerate(paths):
        ref, _ = decode_resized_uint8(p, 32)
        np.testing.assert_array_equal(second.images[second.rows[k]], ref)
    # a different size or policy is a different store, decoded afresh
    assert build_cache(paths, tmp_path / "cache", root, 16).n_decoded == len(paths)
    skip = build_cache(paths, tmp_path / "cache", root, 32, truncated="skip")
    assert skip.n_decoded == len(paths) and [os.path.basename(p) for p in skip.skipped] == info["truncated"]
    assert (skip.rows == -1).sum() == 1


def test_modified_file_invalidates_only_that_entry(fa, tmp_path, count_decodes):
    root, _, paths = fa
    build_cache(paths, tmp_path / "cache", root, 24)
    count_decodes.clear()
    victim = paths[3]
    # replace the image with a black one (new bytes, new size, new mtime)
    from PIL import Image

    Image.fromarray(np.zeros((30, 30), np.uint8)).save(victim, format="JPEG")
    os.utime(victim, ns=(time.time_ns(), time.time_ns() + 10**9))
    again = build_cache(paths, tmp_path / "cache", root, 24)
    assert count_decodes == [os.path.basename(victim)] and again.n_decoded == 1
    assert again.images[again.rows[3]].max() < 10
    other = build_cache(paths, tmp_path / "cache", root, 24)
    assert other.n_decoded == 0
    # only one data file remains (old one removed after the index moved on)
    store = again.store
    assert len(list(store.glob("images-*.u8"))) == 1
    index = json.loads((store / "index.json").read_text())
    assert index["n"] == len(paths) and index["size"] == 24


def test_subset_then_superset_reuses_entries(fa, tmp_path, count_decodes):
    root, _, paths = fa
    build_cache(paths[:5], tmp_path / "cache", root, 16)
    count_decodes.clear()
    res = build_cache(paths, tmp_path / "cache", root, 16)
    assert res.n_decoded == len(paths) - 5 == len(count_decodes)


def test_cache_inside_data_root_is_refused(fa):
    root, _, paths = fa
    before = sorted(p.relative_to(root) for p in root.rglob("*"))
    with pytest.raises(BenchError, match="inside the dataset root.*read-only"):
        build_cache(paths, root / ".cache", root, 16)
    assert sorted(p.relative_to(root) for p in root.rglob("*")) == before  # nothing written


def test_error_policy_stops_on_truncated(fa, tmp_path):
    root, info, paths = fa
    with pytest.raises(BenchError, match=f"{info['truncated'][0]}: image file is truncated"):
        build_cache(paths, tmp_path / "cache", root, 16, truncated="error")


def test_unreadable_file_is_reported_not_cached(fa, tmp_path):
    root, _, paths = fa
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 this is not a jpeg")
    res = build_cache(paths + [str(broken)], tmp_path / "cache", root, 16)
    assert res.rows[-1] == -1 and res.unreadable[0][0] == str(broken)
    assert "broken.jpg" in res.unreadable[0][1]


def test_two_processes_building_at_once(fa, tmp_path):
    root, _, paths = fa
    code = (
        "import sys, json; from bench.data.cache import build_cache; "
        "paths = json.loads(sys.argv[1]); r = build_cache(paths, sys.argv[2], sys.argv[3], 20); "
        "print(int(r.images[r.rows].astype('int64').sum()))"
    )
    args = [sys.executable, "-c", code, json.dumps(paths), str(tmp_path / "cache"), str(root)]
    procs = [subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    expected = sum(int(decode_resized_uint8(p, 20)[0].astype(np.int64).sum()) for p in paths)
    assert [int(o[0]) for o in outs] == [expected, expected]
    final = build_cache(paths, tmp_path / "cache", root, 20)
    assert final.n_decoded == 0
