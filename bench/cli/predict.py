"""``bench-predict RUN_DIR INPUT... [--out DIR]``: one finished run's predictions, heatmaps and a
PDF report for new radiographs (image files, folders, DICOM). See docs/predict.md."""

from __future__ import annotations

import argparse
import logging
import sys

from bench.errors import BenchError


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench-predict", description=(
        "One finished run's predictions, heatmaps and a PDF report for new radiographs (image files, "
        "folders, DICOM): predictions.csv, Grad-CAM++ overlays and report.pdf in --out. See docs/predict.md."))
    p.add_argument("run_dir", help="a finished classification run (record.json with status complete)")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, DICOM files or folders (walked recursively)")
    p.add_argument("--out", default=None, help="output folder (default: ./predict-<run id>)")
    p.add_argument("--no-heatmaps", action="store_true", help="predictions only: no CAM overlays")
    p.add_argument("--no-report", action="store_true", help="do not write report.pdf")
    p.add_argument("--cam-method", default="gradcampp", help="gradcampp (default), gradcam or eigencam")
    p.add_argument("--cam-layer", default=None,
                   help="CAM layer name (default: the best layer of the run's explain results, else the final layer)")
    p.add_argument("--batch-size", type=int, default=16, help="images per forward pass (default 16)")
    p.add_argument("--workers", type=int, default=None, help="decode worker processes (default: the CPUs available, at most 8; 0: in-process)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads of the main process (default: torch's own; 1 helps on a busy machine)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: the run's device when available here, else cpu)")
    p.add_argument("--show-patient-ids", action="store_true",
                   help="put DICOM PatientName, PatientID and PatientBirthDate in the CSV and the PDF (off by default)")
    p.add_argument("--credit", default=None, help="a line printed on every PDF page (e.g. the images' source and licence)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        if args.threads is not None:
            if args.threads < 1:
                raise BenchError(f"--threads {args.threads}: must be >= 1")
            import torch

            torch.set_num_threads(args.threads)
        from bench.predict import predict

        s = predict(args.run_dir, args.inputs, args.out, heatmaps=not args.no_heatmaps, report=not args.no_report,
                    cam_method=args.cam_method, cam_layer=args.cam_layer, batch_size=args.batch_size,
                    workers=args.workers, device=args.device, show_patient_ids=args.show_patient_ids,
                    credit=args.credit)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    thr = "argmax" if s["threshold"] is None else f"threshold {s['threshold']:.4g} ({s['threshold_rule']})"
    print(f"scored {s['n_scored']} of {s['n_inputs']} inputs in {s['seconds']:.2f} s: {s['images_per_s']:.2f} images/s "
          f"({'with' if s['heatmaps'] else 'without'} heatmaps, device {s['device']}, batch {s['batch_size']}, "
          f"{s['workers']} decode workers); {thr}")
    if s["threshold_source"] != "record" and s["kind"] == "binary":
        print(f"note: {s['threshold_source']}")
    if s["n_unreadable"]:
        print(f"{s['n_unreadable']} input(s) not readable: listed in predictions.csv and on the report's first page")
    if "report_s" in s:
        print(f"report.pdf written in {s['report_s']:.2f} s")
    print(f"wrote {s['out_dir']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
