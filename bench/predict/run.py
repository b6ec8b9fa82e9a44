"""``predict``: score new radiographs with one finished run -> ``predictions.csv``, heatmaps
and ``report.pdf`` in the output folder (docs/predict.md).

Streaming: a DataLoader decodes the inputs in worker processes, batch by batch; each batch is
scored (and its CAMs computed) on the run's device, its figures written, and then dropped. What
stays in memory per image is one CSV row.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import time
from pathlib import Path
from typing import Sequence

import pandas as pd
import torch

from bench.errors import BenchError
from bench.predict.figures import METHOD_LABELS, heatmap_to_display, original_png, overlay_png, safe_name
from bench.predict.inputs import InputDataset, expand_inputs, input_loader
from bench.predict.model import RunForPredict, best_cam_layer, load_for_predict
from bench.record import atomic_write_json, atomic_write_text, prob_column

__all__ = ["predict"]

log = logging.getLogger(__name__)


def default_workers() -> int:
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        n = os.cpu_count() or 1
    return max(0, min(8, n))


def _autocast(run: RunForPredict):
    """The precision the run was evaluated in (its test predictions came from that)."""
    dev = torch.device(run.device).type
    if "bf16" in run.precision:
        return torch.autocast(dev, dtype=torch.bfloat16)
    if run.precision.startswith("16") and dev == "cuda":
        return torch.autocast(dev, dtype=torch.float16)
    return contextlib.nullcontext()


def _cam_choice(run: RunForPredict, method: str, layer: str | None):
    from bench.explain.cams import METHODS
    from bench.explain.layers import inner_module, resolve_layers

    if method not in METHODS:
        raise BenchError(f"--cam-method {method!r}: choose from {', '.join(METHODS)}")
    net = inner_module(run.model)
    if layer:
        (chosen,) = resolve_layers(net, [layer])
        why = "chosen with --cam-layer"
    else:
        best, why = best_cam_layer(run.record, method)
        available = [n for n, _ in resolve_layers(net)]
        if best is not None and best in available:
            chosen = resolve_layers(net, [best])[0]
        else:
            if best is not None:
                why = f"explain's best layer {best!r} is not a CAM layer of this model: final layer"
            chosen = resolve_layers(net)[-1]
    return net, chosen, why


def _out_dir(out_dir, run: RunForPredict, items) -> Path:
    """The output folder (default ``./predict-<run id>``): never inside the run, never over an input."""
    out = Path(out_dir) if out_dir is not None else Path.cwd() / f"predict-{run.run_id}"
    out_res = out.resolve()
    if out_res == run.run_dir.resolve() or out_res.is_relative_to(run.run_dir.resolve()):
        raise BenchError(f"--out {out}: inside the run folder; the run stays as it was trained: choose another folder")
    for it in items:
        if Path(it.input).resolve() == out_res / "predictions.csv":
            raise BenchError(f"--out {out}: would overwrite the input {it.input}")
    return out


def _labels(run: RunForPredict, probs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(argmax, label): binary runs call the positive class at the run's threshold, others the argmax."""
    argmax = probs.argmax(1)
    if run.kind != "binary":
        return argmax, argmax
    pos = run.positive_index
    return argmax, torch.where(probs[:, pos] >= run.threshold, torch.full_like(argmax, pos), torch.full_like(argmax, 1 - pos))


def _scored_row(run: RunForPredict, b: dict, probs: torch.Tensor, li: int, at_half: int) -> dict:
    """One readable input's row of predictions.csv / the report (``probs``: its class probabilities)."""
    classes, pos = run.classes, run.positive_index
    return {"index": b["index"], "input": b["input"], "image_id": b["image_id"], "readable": True, "reason": "",
            **{prob_column(c): float(probs[j]) for j, c in enumerate(classes)},
            "label": classes[li], "label_at_0.5": classes[at_half],
            "threshold": run.threshold, "threshold_rule": run.threshold_rule,
            "positive_class": classes[pos] if pos is not None else None,
            "probability": float(probs[pos] if run.kind == "binary" else probs[li]),
            "truncated": b["truncated"], "dicom": b["dicom"],
            "probs": {c: float(probs[j]) for j, c in enumerate(classes)}}


def _heatmap_figure(out: Path, name: str, b: dict, row: dict, cam_map: torch.Tensor, cam_method: str,
                    layer_name: str, heat_text: str) -> dict:
    """Draw ``heatmaps/<name>.png`` (the map over the input as shown); its columns of the row."""
    rel = f"heatmaps/{Path(name).stem}.png"
    heat = heatmap_to_display(cam_map, b["display"].shape)
    title = f"{b['image_id']}: {row['label']} (p={row['probability']:.3f})"
    overlay_png(out / rel, b["display"], heat, title, cam_method, layer_name)
    empty = bool(cam_map.max() <= 0)
    return dict(heatmap=rel, cam_method=cam_method, cam_layer=layer_name, heatmap_empty=empty,
                heatmap_text=heat_text + ("; EMPTY: the map is zero everywhere (no positive evidence "
                                          "for the label at this layer; try --cam-layer)" if empty else ""))


def _unique_name(image_id: str, used_names: set[str]) -> str:
    """A figure file name for ``image_id``, numbered when two inputs share one name (other folders)."""
    name = safe_name(image_id)
    stem, n = Path(name).stem, 1
    while name.lower() in used_names:
        n += 1
        name = f"{stem}__{n}{Path(name).suffix}"
    used_names.add(name.lower())
    return name


def predict(run_dir, inputs: Sequence[str | os.PathLike], out_dir=None, *, heatmaps: bool = True,
            report: bool = True, cam_method: str = "gradcampp", cam_layer: str | None = None,
            batch_size: int = 16, workers: int | None = None, device: str | None = None,
            show_patient_ids: bool = False, credit: str | None = None) -> dict:
    """Score ``inputs`` with the run in ``run_dir``; returns the batch summary (also written to
    ``predict_summary.json``). Unreadable inputs are rows with their reason, never an exception."""
    if batch_size < 1:
        raise BenchError(f"--batch-size {batch_size}: must be >= 1")
    workers = default_workers() if workers is None else int(workers)
    if workers < 0:
        raise BenchError(f"--workers {workers}: must be >= 0")
    run = load_for_predict(run_dir, device=device)
    items = expand_inputs(inputs)
    if not items:
        raise BenchError(f"no files found in {', '.join(map(str, inputs))}: nothing to score")
    net, (layer_name, layer_module), layer_why = _cam_choice(run, cam_method, cam_layer) if heatmaps else (run.model, (None, None), "")
    out = _out_dir(out_dir, run, items)
    # Everything is validated: from here on files are written.
    fig_dir = out / ("heatmaps" if heatmaps else "images")
    if heatmaps or report:
        fig_dir.mkdir(parents=True, exist_ok=True)
    else:
        out.mkdir(parents=True, exist_ok=True)

    classes = run.classes
    dataset = InputDataset(items, run.image_size, run.mean, run.std, run.truncated,
                           display=heatmaps or report, with_patient=show_patient_ids)
    loader = input_loader(dataset, batch_size, workers)
    heat_text = (f"{METHOD_LABELS.get(cam_method, cam_method)} at {layer_name} ({layer_why}); target: the predicted label"
                 if heatmaps else None)
    cam_ctx = contextlib.nullcontext(None)
    if heatmaps:
        from bench.explain.cams import make_cam

        cam_ctx = make_cam(cam_method, net, [(layer_name, layer_module)])
    rows: list[dict] = []
    used_names: set[str] = set()
    t0 = time.perf_counter()
    n_scored = 0
    stage = {"decode_wait": 0.0, "forward": 0.0, "cam": 0.0, "figures": 0.0}
    sync = torch.cuda.synchronize if str(run.device).startswith("cuda") else (lambda: None)
    with cam_ctx as cam:
        t_wait = time.perf_counter()
        for batch in loader:
            stage["decode_wait"] += time.perf_counter() - t_wait
            ok = [b for b in batch if b["ok"]]
            for b in batch:
                if not b["ok"]:
                    rows.append({"index": b["index"], "input": b["input"], "image_id": b["image_id"],
                                 "readable": False, "reason": b["reason"]})
            if not ok:
                t_wait = time.perf_counter()
                continue
            t_fw = time.perf_counter()
            x = torch.stack([b["x"] for b in ok]).to(run.device)
            if run.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.no_grad(), _autocast(run):
                from bench.explain.cams import logits_of

                probs = logits_of(run.model(x)).float().softmax(dim=1).cpu()
            stage["forward"] += time.perf_counter() - t_fw
            argmax, label_idx = _labels(run, probs)
            maps = None
            if heatmaps:
                from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

                t_cam = time.perf_counter()
                maps = cam.maps(x, [ClassifierOutputTarget(int(c)) for c in label_idx.tolist()])[:, 0].detach()
                sync()
                maps = maps.cpu()
                stage["cam"] += time.perf_counter() - t_cam
            t_fig = time.perf_counter()
            n_scored += len(ok)
            for k, b in enumerate(ok):
                row = _scored_row(run, b, probs[k], int(label_idx[k]), int(argmax[k]))
                name = _unique_name(b["image_id"], used_names)
                if heatmaps:
                    row.update(_heatmap_figure(out, name, b, row, maps[k], cam_method, layer_name, heat_text))
                elif report:
                    rel = f"images/{Path(name).stem}.png"
                    original_png(out / rel, b["display"])
                    row["original"] = rel
                rows.append(row)
            stage["figures"] += time.perf_counter() - t_fig
            t_wait = time.perf_counter()
    seconds = time.perf_counter() - t0
    rows.sort(key=lambda r: r["index"])
    ips = n_scored / seconds if seconds > 0 else 0.0
    summary = {
        "run_id": run.run_id, "run_dir": str(run.run_dir), "model": run.model_name,
        "task": (run.record.get("task") or {}).get("name"), "classes": classes, "kind": run.kind,
        "threshold": run.threshold, "threshold_rule": run.threshold_rule, "threshold_source": run.threshold_source,
        "performance": run.performance, "heatmaps": heatmaps, "cam_method": cam_method if heatmaps else None,
        "cam_layer": layer_name, "cam_layer_reason": layer_why if heatmaps else None, "heatmap_text": heat_text,
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "device": run.device,
        "n_inputs": len(items), "n_scored": n_scored, "n_unreadable": len(items) - n_scored,
        "label_counts": {c: sum(1 for r in rows if r.get("label") == c) for c in classes},
        "seconds": round(seconds, 3), "images_per_s": round(ips, 3), "batch_size": batch_size, "workers": workers,
        "image_size": run.image_size, "stage_s": {k: round(v, 3) for k, v in stage.items()},
    }
    _write_csv(out / "predictions.csv", rows, classes, show_patient_ids)
    if report:
        from bench.predict.report import write_report

        t_pdf = time.perf_counter()
        write_report(out / "report.pdf", summary, rows, credit=credit)
        summary["report_s"] = round(time.perf_counter() - t_pdf, 3)
    summary["files"] = {"predictions": "predictions.csv", **({"report": "report.pdf"} if report else {}),
                        **({"heatmaps": "heatmaps/"} if heatmaps else {})}
    atomic_write_json(out / "predict_summary.json", summary)
    summary["out_dir"] = str(out)
    return summary


def _write_csv(path: Path, rows: list[dict], classes: list[str], show_patient_ids: bool) -> None:
    records = []
    for r in rows:
        d = r.get("dicom") or {}
        rec = {"input": r["input"], "image_id": r["image_id"], "readable": r["readable"], "reason": r["reason"]}
        for c in classes:
            rec[prob_column(c)] = r.get(prob_column(c))
        rec.update({"label": r.get("label"), "label_at_0.5": r.get("label_at_0.5"), "threshold": r.get("threshold"),
                    "threshold_rule": r.get("threshold_rule"), "heatmap": r.get("heatmap"),
                    "cam_method": r.get("cam_method"), "cam_layer": r.get("cam_layer"), "heatmap_empty": r.get("heatmap_empty"),
                    "truncated": r.get("truncated"), "dicom_modality": d.get("modality"),
                    "dicom_photometric": d.get("photometric"), "dicom_voi": d.get("voi"),
                    "pixel_spacing_mm": " x ".join(f"{v:g}" for v in d["pixel_spacing_mm"]) if d.get("pixel_spacing_mm") else None})
        if show_patient_ids:
            for k, v in (d.get("patient") or {}).items():
                rec[k] = v
        records.append(rec)
    df = pd.DataFrame(records)
    if show_patient_ids:
        from bench.predict.dicom import PATIENT_FIELDS

        for k in PATIENT_FIELDS:
            if k not in df.columns:
                df[k] = None
    atomic_write_text(path, df.to_csv(index=False))
