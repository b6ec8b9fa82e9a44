"""Time collecting and rendering leaderboards from many generated run records.

Usage: python benchmarks/render_leaderboard.py [--n 10000] [--work /tmp/lb_bench] [--n-resamples 1000]

Generation is excluded from the figures: a few dozen distinct runs are written with
``bench.testing.synthetic.make_run`` and cloned (hard links, new record.json per clone) up to
``--n`` run folders. Reported: collect (record parsing) and render (statistics + Markdown/CSV +
site) separately, cold (empty cache, empty output folder) and warm (cache and output present),
plus an incremental render after 10 new runs, and a cold render with a CI for every run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.leaderboard import render_leaderboard  # noqa: E402
from bench.leaderboard.collect import collect, load_cache  # noqa: E402
from bench.testing.synthetic import make_run  # noqa: E402
from bench.record import write_record  # noqa: E402

TASKS = ("fracatlas_binary", "fracatlas_region", "mura_hand")
MODELS = [f"model{i:02d}" for i in range(24)]


def generate(root: Path, n: int) -> None:
    """``n`` complete run folders: 3 tasks x 24 models x as many seeds as needed."""
    root.mkdir(parents=True)
    protos: dict[tuple[str, str], Path] = {}
    proto_root = root.parent / (root.name + "_proto")
    shutil.rmtree(proto_root, ignore_errors=True)
    i = 0
    seed = 0
    while i < n:
        for task in TASKS:
            for m_i, model in enumerate(MODELS):
                if i >= n:
                    return
                key = (task, model)
                if key not in protos:
                    protos[key] = make_run(proto_root, task, model, 0, skill=0.5 + 0.05 * m_i, n_images=300,
                                           explain=(m_i % 4 == 0))
                src = protos[key]
                rec = json.loads((src / "record.json").read_text())
                rid = f"{task}__{model}__s{seed}__{i:08x}"
                dst = root / rid
                for dirpath, _, files in os.walk(src):
                    rel = Path(dirpath).relative_to(src)
                    (dst / rel).mkdir(parents=True, exist_ok=True)
                    for f in files:
                        if f != "record.json":
                            os.link(Path(dirpath) / f, dst / rel / f)
                rec["run_id"] = rid
                rec["seed"] = seed
                rec["metrics"]["test"]["auroc"] = round(rec["metrics"]["test"]["auroc"] + 0.001 * (seed % 7), 6)
                write_record(dst, rec)
                i += 1
        seed += 1


def timed(fn):
    t = time.perf_counter()
    r = fn()
    return r, time.perf_counter() - t


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=10_000)
    p.add_argument("--work", default="/tmp/lb_bench")
    p.add_argument("--n-resamples", type=int, default=1000)
    p.add_argument("--skip-all-cis", action="store_true", help="skip the cold render with a CI for every run")
    p.add_argument("--keep", action="store_true", help="reuse generated runs (and their store) from an earlier call")
    a = p.parse_args(argv)
    work = Path(a.work)
    runs = work / "bench_runs"
    out = work / "leaderboards"
    if not (a.keep and runs.is_dir()):
        shutil.rmtree(work, ignore_errors=True)
        _, g = timed(lambda: generate(runs, a.n))
        print(f"generated {a.n} run folders in {g:.1f} s (excluded from the figures)")
    for d in runs.glob("*__newmodel__*"):
        shutil.rmtree(d)  # from an earlier --keep call
    print(f"load average before: {os.getloadavg()[0]:.1f} (this machine is shared; figures vary with it)")
    print(f"cpu cores: {os.cpu_count()}, n_resamples {a.n_resamples}")
    store = out / "store"
    if not (a.keep and store.is_dir()):
        shutil.rmtree(out, ignore_errors=True)
        r, t = timed(lambda: render_leaderboard([runs], out, n_resamples=a.n_resamples, ci_scope="none", site=False))
        print(f"ingest {len(r.ingest.added)} runs into the store: {r.timings['ingest_s']:.2f} s (once per new run)")
    for f in [out / ".leaderboard_cache.json"]:
        f.unlink(missing_ok=True)
    for sub in ("runs", "models", "plots"):
        shutil.rmtree(out / sub, ignore_errors=True)

    cache: dict = {}
    c, t_cold = timed(lambda: collect([store], cache, max_depth=1))
    _, t_warm = timed(lambda: collect([store], cache, max_depth=1))
    print(f"collect {len(c.runs)} stored records: cold {t_cold:.2f} s, warm (cache) {t_warm:.2f} s")

    def render(**kw):
        return timed(lambda: render_leaderboard([], out, n_resamples=a.n_resamples, **kw))

    def show(label, r, t):
        tm = r.timings
        if "stats_s" not in tm:
            print(f"render {label}: total {t:.2f} s = collect {tm['collect_s']:.2f} + nothing else"
                  f" (same store and options: outputs kept)")
            return
        core = tm["collect_s"] + tm["stats_s"] + tm["tables_s"] + tm.get("index_s", 0.0)
        print(f"render {label}: index + tables + statistics {core:.2f} s (collect {tm['collect_s']:.2f}"
              f" + statistics {tm['stats_s']:.2f} + tables {tm['tables_s']:.2f} + index {tm.get('index_s', 0):.2f});"
              f" whole site {t:.2f} s ({r.collection.parsed} records parsed, {r.ci_computed} CIs computed,"
              f" {r.written} files written, {len(r.files)} files)")

    totals: dict[str, float] = {}
    for label, kw in (("cold, no bootstrap (--ci-scope none)", {"ci_scope": "none"}),
                      ("cold, reference-run CIs + row intervals", {"ci_scope": "reference"}),
                      ("warm, same store", {"ci_scope": "reference"})):
        if label.startswith("cold"):
            (out / ".leaderboard_cache.json").unlink(missing_ok=True)
        r, t = render(**kw)
        show(label, r, t)
        totals[label] = t
    extra = work / "bench_runs_extra"
    for s in range(10):
        make_run(extra, "fracatlas_binary", "newmodel", s, n_images=300)
    r, t = timed(lambda: render_leaderboard([extra], out, n_resamples=a.n_resamples, ci_scope="reference"))
    show("warm, incremental (+10 new runs)", r, t)
    totals["incremental"] = t
    # Ratios against the cold render of the same store, measured above in this run (load-independent).
    base = totals["cold, reference-run CIs + row intervals"]
    print(f"ratios to the cold render with CIs ({base:.2f} s): warm {totals['warm, same store'] / base:.3f}, "
          f"incremental +10 runs {totals['incremental'] / base:.3f}")
    render_leaderboard([], out, n_resamples=a.n_resamples, ci_scope="reference",
                       remove=[d.name for d in sorted(extra.iterdir())])
    shutil.rmtree(extra, ignore_errors=True)
    print(f"cache file: {(out / '.leaderboard_cache.json').stat().st_size / 1e6:.1f} MB"
          if (out / ".leaderboard_cache.json").exists() else "")
    if not a.skip_all_cis:
        (out / ".leaderboard_cache.json").unlink(missing_ok=True)
        r, t = render(ci_scope="all", site=False)
        show("cold, a CI for every run (--ci-scope all, the default), no site", r, t)
        print(f"  = {1e3 * r.timings['stats_s'] / max(r.ci_computed, 1):.1f} ms of statistics per run CI"
              f" ({r.ci_computed} computed, once: cached after)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
