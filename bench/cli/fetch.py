"""bench-fetch: get FracAtlas (download, verify, unpack), or verify a local MURA copy."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from bench.errors import BenchError


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="bench-fetch",
        description="Download FracAtlas (pinned to one release file, verified by size and SHA-256, resumable, "
                    "unpacked atomically into OUT/fracatlas), or check a local MURA-v1.1 copy against its own CSVs "
                    "(MURA's licence does not allow downloading it for you).")
    sub = p.add_subparsers(dest="dataset", required=True)
    f = sub.add_parser("fracatlas", help="download, verify and unpack FracAtlas into OUT/fracatlas")
    f.add_argument("--out", required=True, help="folder that will hold fracatlas/ (use it as paths.data_dir)")
    f.add_argument("--url", default=None, help="download from this URL instead (a mirror)")
    f.add_argument("--sha256", default=None, help="expected SHA-256 of the zip (with --url: of the mirror's file)")
    f.add_argument("--size", type=int, default=None, help="expected size in bytes of the zip")
    f.add_argument("--from-file", default=None, help="verify and unpack a FracAtlas.zip you downloaded yourself")
    f.add_argument("--cache-dir", default=None,
                   help="where the partial download lives until verified (default: .bench_cache/ in the current folder)")
    f.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the server to answer (default 10)")
    f.add_argument("--no-check", action="store_true", help="skip the data check after unpacking")
    m = sub.add_parser("mura", help="verify a local MURA-v1.1 copy (every listed image present, nothing unlisted, labels)")
    m.add_argument("--verify", required=True, metavar="ROOT", help="the folder that contains MURA-v1.1/")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # Light imports only: a wrong path or no network is reported within seconds.
    from bench import fetch

    try:
        if args.dataset == "mura":
            return _mura(fetch, Path(args.verify))
        release = fetch.FRACATLAS_RELEASE
        if args.url or args.sha256 or args.size:
            release = fetch.Release(name=release.name, url=args.url or release.url,
                                    size=args.size if args.size is not None else (None if args.url else release.size),
                                    sha256=args.sha256 or (None if args.url else release.sha256),
                                    source="given on the command line")
            if args.url and not args.sha256:
                print("warning: --url without --sha256: the download is checked by size only, if --size is given",
                      file=sys.stderr)
        cache = Path(args.cache_dir or os.environ.get("BENCH_CACHE_DIR") or ".bench_cache")
        print(f"FracAtlas (CC BY 4.0, Abedeen et al., Scientific Data 10, 521, 2023): {release.source}")
        target = fetch.fetch_fracatlas(Path(args.out), cache, release=release,
                                       from_file=Path(args.from_file) if args.from_file else None,
                                       timeout=args.timeout, progress=_progress_bar())
    except BenchError as exc:
        print(f"\nerror: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted: run the same command again to resume the download", file=sys.stderr)
        return 130
    print(f"\nunpacked and verified: {target}")
    if not args.no_check:
        from bench.cli import check

        rc = check.main(["fracatlas", "--root", str(target)])
        if rc != 0:
            return rc
    print(f"done: FracAtlas is in {target}; train on it with `bench-train data=fracatlas_binary paths.data_dir={target.parent}`")
    return 0


def _progress_bar():
    """A rich progress bar on a terminal; a line every 10% otherwise (logs on a cluster)."""
    state = {"bar": None, "task": None, "last": -1}

    def update(done: int, total: int | None) -> None:
        if sys.stderr.isatty():
            if state["bar"] is None:
                from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

                state["bar"] = Progress("downloading", BarColumn(), DownloadColumn(), TransferSpeedColumn(), transient=True)
                state["bar"].start()
                state["task"] = state["bar"].add_task("dl", total=total)
            state["bar"].update(state["task"], completed=done, total=total)
            if total and done >= total:
                state["bar"].stop()
        elif total:
            step = int(10 * done / total)
            if step != state["last"]:
                state["last"] = step
                print(f"downloaded {done} of {total} bytes ({100 * done / total:.0f}%)", file=sys.stderr)

    return update


def _mura(fetch, root: Path) -> int:
    report = fetch.verify_mura(root)
    for split, s in report["splits"].items():
        print(f"{split}: {s['images']} images listed in {s['studies']} studies, {s['images_on_disk']} PNG on disk; "
              f"XR_HAND {s['hand_images']} images / {s['hand_studies']} studies")
    for key, title in (("missing", "listed but missing"), ("unlisted", "on disk but not listed"),
                       ("label_conflicts", "labels that disagree with their study folder")):
        items = report[key]
        print(f"{title}: {len(items)}")
        for item in items[:20]:
            print(f"  {item}")
        if len(items) > 20:
            print(f"  ... (+{len(items) - 20})")
    for note in report["totals"]:
        print(f"note: {note} (a subset or another release?)")
    if report["ok"]:
        print(f"done: {report['root']} matches its CSVs")
        return 0
    print(f"error: {report['root']} does not match its CSVs (see above)", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
