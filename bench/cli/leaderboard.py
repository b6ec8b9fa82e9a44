"""``bench-leaderboard``: add runs to the results store and render it (Markdown, CSV, static site)."""

from __future__ import annotations

import argparse
import sys

from bench.errors import BenchError


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bench-leaderboard", description=(
        "Add or update complete runs in the results store (OUT/store) and render the whole store as per-task "
        "Markdown/CSV tables and a static HTML site. Incomplete, corrupt and duplicate runs are skipped and listed; "
        "stored runs stay until removed with --remove."))
    p.add_argument("--runs", action="append", default=[], metavar="DIR",
                   help="a bench_runs/ folder, or a folder holding several (repeatable); none: re-render the store")
    p.add_argument("--remove", action="append", default=[], metavar="RUN_ID",
                   help="delete a run from the store before rendering (repeatable)")
    p.add_argument("--include-generated", action="store_true",
                   help="also store runs on generated data (tiny_* tasks, data.generated); shown in their own section")
    p.add_argument("--import-runs-csv", metavar="FILE", default=None,
                   help="rebuild store entries from an earlier render's runs.csv (run folders gone)")
    p.add_argument("--out", default="leaderboards", metavar="DIR", help="output folder (default: leaderboards)")
    p.add_argument("--n-resamples", type=int, default=1000, metavar="N", help="bootstrap resamples (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap random seed (default 0)")
    p.add_argument("--ci-scope", choices=("all", "reference", "none"), default="all",
                   help="bootstrap CIs for all runs (default), only each row's reference run, or none")
    p.add_argument("--primary", action="append", default=[], metavar="KIND=METRIC",
                   help="ranking metric per task kind, e.g. multiclass=accuracy (default binary=auroc, multiclass=f1)")
    p.add_argument("--no-site", action="store_true", help="write only Markdown/CSV, not the HTML site")
    p.add_argument("--no-cache", action="store_true", help="ignore and do not write the incremental cache")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        from bench.leaderboard import render_leaderboard

        primary = {}
        for item in args.primary:
            kind, sep, metric = item.partition("=")
            if not sep:
                raise BenchError(f"--primary {item}: expected KIND=METRIC, e.g. multiclass=accuracy")
            primary[kind.strip()] = metric.strip()
        result = render_leaderboard(args.runs, args.out, n_resamples=args.n_resamples, seed=args.seed,
                                    site=not args.no_site, ci_scope=args.ci_scope, primary=primary,
                                    use_cache=not args.no_cache, include_generated=args.include_generated,
                                    remove=args.remove, import_csv=args.import_runs_csv)
    except BenchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(result.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
