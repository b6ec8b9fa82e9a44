"""bench-check: validate a dataset root without training and print the data report."""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from pathlib import Path

from bench.data.registry import dataset_names, get_dataset

# The data module's errors name its config keys (data.root, ...); here the user typed flags.
FLAG_OF_KEY = {
    "data.root": "--root", "data.task": "--task", "data.label_source": "--label-source",
    "data.body_part": "--body-part", "data.split.method": "--split-method", "data.split.ratios": "--split-ratios",
    "data.truncated": "--truncated", "data.max_image_pixels": "--max-image-pixels", "data.symlinks": "--symlinks",
    "data.limit_per_class": "--limit-per-class", "data.cache_dir": "--cache-dir",
}
_KEY_RE = re.compile(r"\b(" + "|".join(re.escape(k) for k in sorted(FLAG_OF_KEY, key=len, reverse=True)) + r")(?!\w|\.\w)")


def flag_message(text: str) -> str:
    """An error of the data module in bench-check's own terms (its flags, not bench-train's keys)."""
    return _KEY_RE.sub(lambda m: FLAG_OF_KEY[m.group(1)], text)


def missing_root_message(dataset: str, root: str) -> str | None:
    """The one-line error for a --root that does not exist (None when it does), before heavy imports."""
    path = Path(root).expanduser()
    if path.exists():
        return None
    return (f"--root {path} does not exist: give bench-check {dataset} --root DIR with DIR {get_dataset(dataset).layout_hint}; "
            f"bench-data {dataset} --out DIR writes a small one in that layout to try")


def _ratios(text: str) -> list[float]:
    try:
        return [float(v) for v in text.replace("/", ",").split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--split-ratios {text!r}: give numbers like 0.72,0.18,0.10") from None


def _print_report(report: dict, console) -> None:
    from rich.markup import escape
    from rich.table import Table

    console.print(f"[bold]{report['dataset']}[/bold] {report['root']}  task={report['task']}  "
                  f"label_source={report['label_source']}  images={report['n_images']}")
    classes = report["classes"]
    t = Table(title="split x class")
    t.add_column("split")
    for c in classes:
        t.add_column(c, justify="right")
    t.add_column("total", justify="right")
    for s, row in report.get("per_split", {}).items():
        t.add_row(s, *[str(row[c]) for c in classes], str(row["total"]))
    t.add_row("all", *[str(report["per_class"][c]) for c in classes], str(report["n_images"]), style="bold")
    console.print(t)
    if "per_region" in report:
        r = Table(title="region x fracture (folder labels)" if report["label_source"] == "folder" else "region x fracture (csv labels)")
        for col in ("region", "non_fractured", "fractured"):
            r.add_column(col, justify="right" if col != "region" else "left")
        for region, row in report["per_region"].items():
            r.add_row(region, str(row["non_fractured"]), str(row["fractured"]))
        console.print(r)
    if "n_studies" in report:
        console.print(f"studies: {report['n_studies']}  patients: {report['n_patients']}")

    def listing(title: str, items: list) -> None:
        shown = ", ".join(str(i) for i in items[:10]) + (f" ... (+{len(items) - 10})" if len(items) > 10 else "")
        console.print(f"{title}: {len(items)}" + (f"  [dim]{escape(shown)}[/dim]" if items else ""))

    listing(f"truncated files (policy {report['truncated_policy']})", report["truncated"])
    listing("skipped files", report["skipped"])
    unreadable = report["unreadable"]
    by_reason = report.get("unreadable_by_reason") or {}
    console.print(f"unreadable files: {len(unreadable)}"
                  + (f"  ({', '.join(f'{k}: {v}' for k, v in by_reason.items())})" if by_reason else ""))
    for u in unreadable[:10]:
        console.print(f"  {escape(u['image_id'])}  [dim]{u.get('reason', 'unreadable')}: {escape(u['error'])}[/dim]", soft_wrap=True)
    if len(unreadable) > 10:
        console.print(f"  ... (+{len(unreadable) - 10}, all in --json)")
    policy = report.get("symlink_policy", "refuse")
    for key, verb in (("symlinks_refused", "refused, left out"), ("symlinks_followed", "followed")):
        items = report.get(key, [])
        if items or (key == "symlinks_refused"):
            console.print(f"symlinks out of the root ({verb}; data.symlinks={policy}): {len(items)}")
            for e in items[:10]:
                console.print(f"  {escape(e['image_id'])} -> {escape(e['target'])}", soft_wrap=True)
            if len(items) > 10:
                console.print(f"  ... (+{len(items) - 10}, all in --json)")
    if "images_not_in_csv" in report:
        listing("images not in dataset.csv (left out)", report["images_not_in_csv"])
    listing("label conflicts (folder vs csv)", [c.get("image_id") or c.get("study_id") for c in report["label_conflicts"]])
    groups = report["duplicate_groups"]
    console.print(f"duplicate groups: {len(groups)} ({sum(len(g) for g in groups)} files)")
    for g in groups[:12]:
        console.print(f"  [dim]{', '.join(g)}[/dim]")
    leak = report.get("leakage", {})
    console.print("leakage across splits: " + ("[green]none[/green]" if leak.get("ok") else f"[red]{leak}[/red]"))
    fp = report.get("fingerprint")
    if fp:
        console.print(f"data fingerprint ({fp['algorithm']}, {fp['n_files']} files, {fp['n_bytes']} bytes): {fp['digest']}",
                      soft_wrap=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="bench-check",
        description="Validate a dataset root without training and print its data report: images per split "
                    "and class, truncated or unreadable files, symlinks out of the root, label conflicts, "
                    "duplicates, leakage across splits and the data fingerprint. Reads the dataset only; "
                    "nothing is written there. See docs/data.md.")
    p.add_argument("dataset", choices=dataset_names(), help="which layout the root has")
    p.add_argument("--root", required=True, metavar="DIR",
                   help="the dataset folder: FracAtlas's (dataset.csv, images/), or MURA-v1.1/ or its parent")
    tasks = "; ".join(f"{n}: {'|'.join(get_dataset(n).tasks)} (default {get_dataset(n).default_task})"
                      for n in dataset_names())
    p.add_argument("--task", default=None, help=f"the task whose labels to check ({tasks})")
    p.add_argument("--label-source", default="folder", choices=["folder", "csv"],
                   help="fracatlas labels from the image folders or from dataset.csv (default folder)")
    p.add_argument("--body-part", default="XR_HAND", help="mura: body-part folder such as XR_HAND, or all (default XR_HAND)")
    p.add_argument("--split-method", default=None, choices=["ratio", "kfold", "official"],
                   help="how the split is made, as data.split.method (default: the dataset's own default)")
    p.add_argument("--split-ratios", type=_ratios, default=None,
                   help="train/val/test or train/test ratios, e.g. 0.72,0.18,0.10 or 0.7,0.3")
    p.add_argument("--seed", type=int, default=0, help="split seed (default 0)")
    p.add_argument("--truncated", default="load", choices=["load", "skip", "error"],
                   help="truncated image files: decode leniently, leave out, or stop (default load)")
    p.add_argument("--max-image-pixels", type=int, default=None,
                   help="images with more pixels are listed as unreadable (default: Pillow's 89478485)")
    p.add_argument("--symlinks", default="refuse", choices=["refuse", "error", "follow"],
                   help="files resolving outside the root: refuse (leave out, list; default), error, follow")
    p.add_argument("--limit-per-class", type=int, default=None, help="keep N images per class (as data.limit_per_class)")
    p.add_argument("--image-size", type=int, default=224, help="decode size of the cache (default 224)")
    p.add_argument("--cache-dir", default=None, help="decoded-image cache (default: a temporary folder)")
    p.add_argument("--json", default=None, metavar="PATH", help="also write the report as JSON here")
    args = p.parse_args(argv)
    missing = missing_root_message(args.dataset, args.root)
    if missing:
        print(f"error: {missing}", file=sys.stderr)
        return 2

    from rich.console import Console

    from bench.data import FractureDataModule
    from bench.errors import BenchError
    from bench.record import atomic_write_json

    split = {}
    if args.split_method:
        split["method"] = args.split_method
    if args.split_ratios:
        split["ratios"] = args.split_ratios
    task = args.task or get_dataset(args.dataset).default_task
    try:
        with tempfile.TemporaryDirectory(prefix="bench-check-") as tmp:
            dm = FractureDataModule(dataset=args.dataset, root=args.root, task=task, label_source=args.label_source,
                                    body_part=args.body_part, split=split, seed=args.seed, truncated=args.truncated,
                                    image_size=args.image_size, cache_dir=args.cache_dir or tmp,
                                    max_image_pixels=args.max_image_pixels, symlinks=args.symlinks,
                                    limit_per_class=args.limit_per_class)
            dm.setup()
        report = dm.report
        if args.json:
            atomic_write_json(args.json, report)
    except BenchError as exc:
        print(f"error: {flag_message(str(exc))}", file=sys.stderr)
        return 2
    _print_report(report, Console())
    return 0


if __name__ == "__main__":
    sys.exit(main())
