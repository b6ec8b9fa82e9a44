"""Many jobs writing into one bench_runs/ and one cache at once: nothing lost, nothing corrupt."""

from __future__ import annotations

import json
import multiprocessing as mp
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench.record import read_record, update_record, write_record

N_PROCS, N_RECORDS = 8, 20


def _writer(args: tuple[str, int]) -> int:
    runs, k = args
    for i in range(N_RECORDS):
        run_dir = Path(runs) / f"task__model__s{k}__{i:04d}"
        (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
        # A record large enough that a torn write would be visible.
        write_record(run_dir, {"run_id": run_dir.name, "task": {"name": "task"}, "model": {"name": "model"},
                               "proc": k, "i": i, "metrics": {"val": {"auroc": k + i / 100}},
                               "payload": list(range(2000))})
        update_record(run_dir, explain={"proc": k})
        update_record(run_dir, extra={"i": i})
    return k


def _reader(args: tuple[str, float]) -> tuple[int, list[str]]:
    """Reads every record.json while the writers run: each must parse (atomic os.replace)."""
    import time

    runs, seconds = args
    seen, bad = 0, []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for path in Path(runs).glob("*/record.json"):
            try:
                json.loads(path.read_text())
                seen += 1
            except FileNotFoundError:
                pass
            except json.JSONDecodeError as exc:
                bad.append(f"{path}: {exc}")
    return seen, bad


def test_parallel_record_writes_lose_and_corrupt_nothing(tmp_path: Path) -> None:
    runs = tmp_path / "bench_runs"
    runs.mkdir()
    ctx = mp.get_context("spawn")
    with ctx.Pool(N_PROCS + 1) as pool:
        reader = pool.apply_async(_reader, ((str(runs), 4.0),))
        done = pool.map(_writer, [(str(runs), k) for k in range(N_PROCS)])
        seen, bad = reader.get(timeout=120)
    assert sorted(done) == list(range(N_PROCS))
    assert bad == []
    dirs = sorted(p for p in runs.iterdir() if p.is_dir())
    assert len(dirs) == N_PROCS * N_RECORDS
    for d in dirs:
        rec = read_record(d)
        assert rec is not None, d
        k, i = rec["proc"], rec["i"]
        assert d.name == f"task__model__s{k}__{i:04d}"
        assert rec["explain"] == {"proc": k} and rec["extra"] == {"i": i}
        assert rec["payload"] == list(range(2000))
    # No temp files left behind by the atomic writes.
    assert not list(runs.glob("*/.record.json.*"))


def _cache_worker(args: tuple[int, str, str, list[str]]) -> list[str]:
    from bench.data.cache import build_cache
    from bench.data.decode import decode_resized_uint8

    k, root, cache, paths = args
    common, own = paths[:20], [p for p in paths[20:] if int(Path(p).stem) % 6 == k]
    errors = []
    for it in range(40):
        # Even iterations only read the cache; odd ones add new files (rewrite the store).
        sel = common if it % 2 == 0 else common + own[: it // 2 + 1]
        try:
            res = build_cache(sel, cache, root, 16, workers=1)
            for p, row in zip(sel, res.rows):
                expected, _ = decode_resized_uint8(p, 16)
                if row < 0 or not np.array_equal(np.asarray(res.images[row]), expected):
                    errors.append(f"wrong image for {p}")
        except Exception as exc:  # noqa: BLE001 - every failure is what this test collects
            errors.append(f"{type(exc).__name__}: {exc}")
    return errors


# Six processes asking for different selections of one root at one size at once: readers must
# never open a store file that a concurrent builder has just replaced (readers hold a shared lock).
def test_decoded_cache_parallel_builders(tmp_path: Path) -> None:
    root = tmp_path / "data"
    root.mkdir()
    rng = np.random.default_rng(0)
    for i in range(20 + 6 * 25):
        Image.fromarray(rng.integers(0, 255, (40, 48), dtype=np.uint8)).save(root / f"{i:03d}.png")
    paths = [str(p) for p in sorted(root.glob("*.png"))]
    with mp.get_context("spawn").Pool(6) as pool:
        out = pool.map(_cache_worker, [(k, str(root), str(tmp_path / "cache"), paths) for k in range(6)])
    errors = [e for o in out for e in o]
    assert errors == [], f"{len(errors)} errors, first: {errors[:3]}"
