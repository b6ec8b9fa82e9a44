"""bench-explain RUN_DIR: per-layer CAMs of a finished run scored against the fracture boxes,
plus the human rating sheet (export / import). See docs/explain.md."""

from __future__ import annotations

import argparse
import json
import logging
import sys

from bench.errors import BenchError


def _csv(s: str) -> list[str]:
    return [p.strip() for p in s.split(",") if p.strip()]


DESCRIPTION = (
    "Per-layer class activation maps (Grad-CAM++, EigenCAM, Grad-CAM) of a finished run, scored "
    "against its fracture boxes (pointing game, energy, IoU), written to RUN_DIR/explain/ and "
    "summarised in RUN_DIR/record.json; also exports and imports the human rating sheet. ROAD "
    "faithfulness is opt-in (--road-images N): minutes on a CPU. See docs/explain.md."
)


def _compare_with_detector(run_dir: str, det_run_dir: str, score: float) -> None:
    """Heatmaps against the ground-truth boxes and a detector's boxes, on the images both runs cover."""
    from pathlib import Path

    import pandas as pd

    from bench.detection.heatmaps import heatmaps_vs_detector
    from bench.record import atomic_write_text

    table = heatmaps_vs_detector(run_dir, det_run_dir, score_threshold=score)
    out = Path(run_dir) / "explain" / "heatmaps_vs_detector.csv"
    atomic_write_text(out, table.to_csv(index=False))
    final = table[table["method"] != "detector"].groupby("method").tail(1)
    cams = ", ".join(f"{r.method} {r.pointing_game_gt:.2f}/{r.pointing_game_det:.2f}" for r in final.itertuples()
                     if pd.notna(r.pointing_game_gt) and pd.notna(r.pointing_game_det))
    det = table[table["method"] == "detector"].iloc[0]
    hit = f"{det['pointing_game_gt']:.2f}" if pd.notna(det["pointing_game_gt"]) else "n/a"
    print(f"heatmaps vs detector: {out} ({len(table.attrs['image_ids'])} images; pointing game at the final layer, "
          f"ground-truth boxes / detector boxes: {cams or 'n/a'}; detector's top box in a ground-truth box: {hit})",
          flush=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench-explain", description=DESCRIPTION)
    p.add_argument("run_dir", help="a finished run directory (record.json with status complete)")
    p.add_argument("--methods", type=_csv, default=None,
                   help="comma list of gradcampp,eigencam,gradcam (default: all three)")
    p.add_argument("--layers", type=_csv, default=None,
                   help="comma list of CAM layer names, e.g. layer3.1,layer4.1 (default: every layer the model lists)")
    p.add_argument("--n-images", type=int, default=64,
                   help="test images explained: the chosen cases first, then boxed fractured images (default 64)")
    p.add_argument("--batch-size", type=int, default=8, help="images per CAM forward/backward pass (default 8)")
    p.add_argument("--device", choices=["cpu", "cuda"], default=None, help="default: cuda when available, else cpu")
    p.add_argument("--road-images", type=int, default=0, metavar="N",
                   help="score ROAD faithfulness on the first N images, final layer, per method "
                        "(default 0: not run; about 10 s per image and method on a 2-core CPU)")
    p.add_argument("--target", choices=["pred", "positive"], default="pred",
                   help="CAM target logit: the predicted class, or the task's positive class (default pred)")
    p.add_argument("--export-rating-sheet", metavar="PATH",
                   help="write the blank rating CSV (runs the CAMs first unless --no-cams)")
    p.add_argument("--import-ratings", metavar="CSV", nargs="+",
                   help="validate rated CSVs and store the aggregate in the record")
    p.add_argument("--no-cams", action="store_true",
                   help="do not (re)compute CAMs; only export/import rating sheets or compare with --detector")
    p.add_argument("--detector", metavar="DET_RUN_DIR", default=None,
                   help="a finished detection run (data=fracatlas_detection): also score the heatmaps against its boxes "
                        "and write RUN_DIR/explain/heatmaps_vs_detector.csv (seed 002 Fig. 6 as numbers)")
    p.add_argument("--detector-score", type=float, default=0.25, metavar="S",
                   help="detector boxes with score >= S count (default 0.25)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        from bench.explain.rating import export_rating_sheet, import_ratings

        only_ratings = args.no_cams or (args.import_ratings and not args.export_rating_sheet and not args.detector)
        if not only_ratings:
            from bench.explain.run import explain_run

            kwargs = dict(layers=args.layers, n_images=args.n_images, batch_size=args.batch_size,
                          device=args.device, road_images=args.road_images, target=args.target)
            if args.methods:
                kwargs["methods"] = args.methods
            from bench.explain.feedback import final_line

            # explain_run logs its final line for bench-train; here it goes to stdout once.
            logging.getLogger("bench.explain.run").setLevel(logging.WARNING)
            section = explain_run(args.run_dir, **kwargs)
            print(final_line(section, args.run_dir), flush=True)
        if args.detector:
            _compare_with_detector(args.run_dir, args.detector, args.detector_score)
        if args.export_rating_sheet:
            path = export_rating_sheet(args.run_dir, args.export_rating_sheet)
            print(f"wrote rating sheet {path}")
        if args.import_ratings:
            summary = import_ratings(args.run_dir, args.import_ratings)
            print(json.dumps({"human_rating": summary["overall"], "per_method": summary["per_method"]}, indent=1))
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
