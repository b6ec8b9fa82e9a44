"""Detection leaderboards: one table per protocol (Set 1, Set 2) and a per-region table, from
detection run records (``task.kind: detection``), with the published numbers beside them.

* Runs are grouped by (protocol, model, image size, epochs, pretrained); numbers are mean ± sd
  over seeds; the test mAP@0.5 interval is a percentile bootstrap over test images (the same
  image resample for every seed, AP averaged over seeds), from each run's ``detections.csv``.
* "Reported elsewhere" rows (seed 002 Tables I-III, the dataset paper's Table VIII) sit in the
  **validation** columns, where they were measured; their test columns stay empty. Table II is
  seed 002's best Table I model (YOLOv8x, 225 epochs, 640 px) applied per region; its n are
  "samples", not stated as images or boxes.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["REPORTED", "REPORTED_REGIONS", "collect_detection_runs", "detection_files", "detection_tables", "render",
           "to_markdown"]

SEED002 = "seed 002 (FracAtlas benchmark)"
DATASET_PAPER = "FracAtlas paper (Abedeen et al. 2023), via seed 002 Table VIII"
# (protocol, model, setting, val P, val R, val mAP@0.5, source)
REPORTED = [
    ("set1", "YOLOv8s", "settings not stated (Table I)", 0.575, 0.462, 0.496, SEED002),
    ("set1", "YOLOv8s", "100 epochs, imgsz 600 (Table I)", 0.695, 0.477, 0.548, SEED002),
    ("set1", "YOLOv8s", "73 epochs, imgsz 640 (Table I)", 0.709, 0.535, 0.562, SEED002),
    ("set1", "YOLOv8x", "100 epochs, imgsz 640 (Table I)", 0.729, 0.503, 0.575, SEED002),
    ("set1", "YOLOv8x", "225 epochs, imgsz 640 (Table I)", 0.721, 0.560, 0.595, SEED002),
    ("set1", "YOLOv8s", "baseline, 30 epochs, imgsz 640 (Table VIII)", 0.807, 0.473, 0.562, DATASET_PAPER),
    ("set2", "YOLOv8s", "Table III", 0.526, 0.785, 0.502, SEED002),
    ("set2", "YOLOv8m", "Table III", 0.515, 0.808, 0.538, SEED002),
    ("set2", "YOLOv8l", "Table III", 0.507, 0.804, 0.513, SEED002),
    ("set2", "YOLOv8x", "Table III", 0.514, 0.770, 0.477, SEED002),
]
# (region, samples as printed, P, R, mAP@0.5): seed 002 Table II, YOLOv8x 225 epochs, Set 1.
REPORTED_REGIONS = [("hip", 10, 0.758, 0.273, 0.316), ("hand", 49, 0.883, 0.589, 0.665),
                    ("shoulder", 5, 0.141, 0.200, 0.083), ("leg", 34, 0.628, 0.444, 0.446)]
METRICS = ("precision", "recall", "map50", "map50_95")


def collect_detection_runs(roots, max_depth: int = 4) -> list[tuple[Path, dict]]:
    """Complete detection records under ``roots`` (run folders or folders of run folders)."""
    from bench.record import read_record

    out = []
    for root in roots:
        root = Path(root)
        candidates = [root] + [p.parent for d in range(1, max_depth + 1) for p in root.glob("/".join(["*"] * d) + "/record.json")]
        for run_dir in sorted(set(candidates)):
            rec = read_record(run_dir)
            if rec and (rec.get("task") or {}).get("kind") == "detection":
                out.append((run_dir, rec))
    return out


def _ms(values) -> str:
    v = [x for x in values if x is not None and np.isfinite(x)]
    if not v:
        return ""
    return f"{np.mean(v):.3f}" if len(v) == 1 else f"{np.mean(v):.3f} ± {np.std(v, ddof=1):.3f}"


def _bootstrap_over_seeds(runs: list[Path], n_resamples: int, seed: int = 0) -> tuple[float, float] | None:
    from bench.detection.metrics import ap50_from_matches, image_matches

    per_run = []
    ids = None
    for run_dir in runs:
        try:
            det = pd.read_csv(run_dir / "detections.csv", dtype={"image_id": str})
            gt = pd.read_csv(run_dir / "ground_truth.csv", dtype={"image_id": str})
            images = pd.read_csv(run_dir / "images.csv", dtype={"image_id": str})
        except (FileNotFoundError, pd.errors.ParserError, pd.errors.EmptyDataError):
            return None
        test_ids = sorted(images.loc[images["split"] == "test", "image_id"])
        if ids is None:
            ids = test_ids
        elif test_ids != ids:
            return None  # seeds on different test images: no paired resample
        per_run.append(image_matches(det[det["split"] == "test"], gt[gt["split"] == "test"], ids))
    if not ids:
        return None
    rng = np.random.default_rng(seed)
    vals = []
    for _ in range(n_resamples):
        pick = rng.integers(0, len(ids), len(ids))
        v = [ap50_from_matches([m[k] for k in pick]) for m in per_run]
        v = [x for x in v if np.isfinite(x)]
        if v:
            vals.append(float(np.mean(v)))
    if not vals:
        return None
    lo, hi = np.quantile(vals, [0.025, 0.975])
    return float(lo), float(hi)


def detection_tables(roots=(), n_resamples: int = 1000, runs: list[tuple[Path, dict]] | None = None,
                     seed: int = 0) -> dict[str, pd.DataFrame]:
    """``{"set1": DataFrame, "set2": DataFrame, "regions": DataFrame}`` (harness rows first, then
    the reported-elsewhere rows). ``runs``: already collected ``(run_dir, record)`` pairs (the
    results store's detection runs, from bench-leaderboard) instead of searching ``roots``."""
    runs = collect_detection_runs(roots) if runs is None else list(runs)
    groups: dict[tuple, list[tuple[Path, dict]]] = {}
    for run_dir, rec in runs:
        prot = rec.get("protocol") or {}
        key = (prot.get("detection_protocol") or (rec.get("task") or {}).get("protocol") or "set1", rec["model"]["name"],
               prot.get("image_size"), prot.get("epochs"), bool(prot.get("pretrained")))
        groups.setdefault(key, []).append((run_dir, rec))
    rows = []
    region_rows = []
    for (protocol, model, size, epochs, pretrained), members in sorted(groups.items(), key=lambda kv: tuple(str(x) for x in kv[0])):
        recs = [r for _, r in members]
        row = {"protocol": protocol, "model": model, "setting": f"{epochs} epochs, imgsz {size}" + (", pretrained" if pretrained else ", from scratch"),
               "source": "this harness", "seeds": len(recs)}
        for split in ("val", "test"):
            for m in METRICS:
                row[f"{split}_{m}"] = _ms([((r.get("metrics") or {}).get(split) or {}).get(m) for r in recs])
        ci = _bootstrap_over_seeds([d for d, _ in members], n_resamples, seed)
        row["test_map50_ci95"] = "" if ci is None else f"[{ci[0]:.3f}, {ci[1]:.3f}]"
        row["test_images"] = ((recs[0].get("metrics") or {}).get("test") or {}).get("n_images")
        rows.append(row)
        for split in ("val", "test"):
            regions = ((recs[0].get("subgroups") or {}).get("region") or {}).get(split) or {}
            for region, entry in sorted(regions.items()):
                rr = {"protocol": protocol, "model": model, "setting": row["setting"], "source": "this harness", "split": split,
                      "region": region, "n_images": entry.get("n_images"), "n_boxes": entry.get("n_boxes"), "seeds": len(recs)}
                for m in ("precision", "recall", "map50"):
                    rr[m] = _ms([((((r.get("subgroups") or {}).get("region") or {}).get(split) or {}).get(region) or {}).get(m) for r in recs])
                region_rows.append(rr)
    for protocol, model, setting, p, r, map50, source in REPORTED:
        rows.append({"protocol": protocol, "model": model, "setting": setting, "source": f"reported elsewhere: {source}", "seeds": None,
                     "val_precision": f"{p:.3f}", "val_recall": f"{r:.3f}", "val_map50": f"{map50:.3f}", "val_map50_95": "",
                     **{f"test_{m}": "" for m in METRICS}, "test_map50_ci95": "", "test_images": None})
    for region, n, p, r, map50 in REPORTED_REGIONS:
        region_rows.append({"protocol": "set1", "model": "YOLOv8x", "setting": "225 epochs, imgsz 640 (seed 002 Table II)",
                            "source": f"reported elsewhere: {SEED002}", "split": "val (as reported)", "region": region,
                            "n_images": None, "n_boxes": None, "samples_reported": n, "seeds": None,
                            "precision": f"{p:.3f}", "recall": f"{r:.3f}", "map50": f"{map50:.3f}"})
    table = pd.DataFrame(rows)
    cols = ["protocol", "model", "setting", "source", "seeds", *[f"val_{m}" for m in METRICS], *[f"test_{m}" for m in METRICS],
            "test_map50_ci95", "test_images"]
    table = table.reindex(columns=cols)
    table[["seeds", "test_images"]] = table[["seeds", "test_images"]].astype("Int64")  # counts, not 2.0 beside empty cells
    out = {p: table[table["protocol"] == p].drop(columns="protocol").reset_index(drop=True) for p in ("set1", "set2")}
    out["regions"] = pd.DataFrame(region_rows).reindex(columns=["protocol", "model", "setting", "source", "split", "region", "n_images",
                                                                 "n_boxes", "samples_reported", "seeds", "precision", "recall", "map50"])
    counts = ["n_images", "n_boxes", "samples_reported", "seeds"]
    out["regions"][counts] = out["regions"][counts].astype("Int64")
    return out


def to_markdown(df: pd.DataFrame) -> str:
    """A GitHub Markdown table (pandas' to_markdown needs tabulate, which is not a dependency)."""
    def cell(v) -> str:
        if v is None or (isinstance(v, float) and not np.isfinite(v)):
            return ""
        if isinstance(v, float) and v.is_integer():
            return str(int(v))  # counts in a column pandas made float by its empty cells
        return str(v).replace("|", "\\|")

    lines = ["| " + " | ".join(map(str, df.columns)) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines) + "\n"


TITLES = {"set1": "Detection, Set 1 (official split, fractured images only)",
          "set2": "Detection, Set 2 (all images, non-fractured as background, harness split)",
          "regions": "Detection per region"}
CREDIT = "FracAtlas (Abedeen et al. 2023, CC BY 4.0)."
NOTE = ("Reported-elsewhere rows are validation-split numbers (where they were measured); their test "
        "columns stay empty. Precision and recall are Ultralytics' (at the confidence of maximal F1), "
        "mAP as Ultralytics computes it, in the papers as here.")
#: What every column means (shown beside the tables: on the site and in the Markdown).
COLUMN_DEFINITIONS = {
    "model": "detector (harness model name, or the paper's)",
    "setting": "epochs, image size (imgsz) and weights of the row",
    "source": "this harness, or the publication a reported number comes from",
    "seeds": "runs (seeds) aggregated in the row; numbers are mean ± sample sd over them",
    "val_precision / test_precision": "box precision on the split (Ultralytics, at the confidence of maximal F1)",
    "val_recall / test_recall": "box recall on the split (same confidence)",
    "val_map50 / test_map50": "mean average precision at IoU 0.5 (mAP@0.5) on the split",
    "val_map50_95 / test_map50_95": "mAP averaged over IoU 0.5:0.05:0.95 (COCO's mAP@0.5:0.95)",
    "test_map50_ci95": "95% percentile bootstrap interval of test mAP@0.5 over test images (the same resample "
                       "for every seed, AP averaged over seeds), from the stored detections",
    "test_images": "test images of the first run",
    "split / region / n_images / n_boxes": "per-region rows: split, body region, images and boxes in it",
    "samples_reported": "the n seed 002 prints for Table II (not stated as images or boxes)",
}


def definitions_markdown() -> str:
    return "\n".join(f"- `{k}`: {v}" for k, v in COLUMN_DEFINITIONS.items()) + "\n"


def table_markdown(name: str, df: pd.DataFrame, level: int = 2) -> str:
    return f"{'#' * level} {TITLES[name]}\n\n{CREDIT} {NOTE}\n\n" + to_markdown(df)


def has_harness_rows(tables: dict[str, pd.DataFrame]) -> bool:
    return any((df["source"] == "this harness").any() for df in tables.values() if "source" in df.columns)


def detection_files(tables: dict[str, pd.DataFrame]) -> dict[str, bytes]:
    """``detection_<table>.md`` / ``.csv`` per table, as bytes (bench-leaderboard writes them
    through its own writer: rewritten only when changed)."""
    out: dict[str, bytes] = {}
    for name, df in tables.items():
        md = table_markdown(name, df) + "\nColumns:\n\n" + definitions_markdown()
        out[f"detection_{name}.md"] = md.encode("utf-8")
        out[f"detection_{name}.csv"] = df.to_csv(index=False, lineterminator="\n").encode("utf-8")
    return out


def render(roots, out_dir: str | os.PathLike, n_resamples: int = 1000) -> dict[str, str]:
    """Write ``detection_set1.md/.csv``, ``detection_set2.md/.csv``, ``detection_regions.md/.csv``."""
    from bench.record import atomic_write_bytes, atomic_write_text

    tables = detection_tables(roots, n_resamples)
    out = Path(out_dir)
    for rel, data in detection_files(tables).items():
        atomic_write_bytes(out / rel, data)
    written = {name: str(out / f"detection_{name}.md") for name in tables}
    atomic_write_text(out / "detection_index.json", json.dumps(written, indent=1) + "\n")
    return written


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.detection.leaderboard RUNS_DIR... --out DIR``: the detection tables."""
    import argparse
    import sys

    from bench.errors import BenchError

    parser = argparse.ArgumentParser(prog="python -m bench.detection.leaderboard", description=main.__doc__)
    parser.add_argument("roots", nargs="+", help="run folders or folders of run folders")
    parser.add_argument("--out", required=True, help="output folder for detection_*.md / .csv")
    parser.add_argument("--n-resamples", type=int, default=1000)
    args = parser.parse_args(argv)
    try:
        written = render(args.roots, args.out, args.n_resamples)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for path in written.values():
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
