"""``explain_run``: per-layer CAMs of a finished run, scored against the boxes, written to
``RUN_DIR/explain/`` and summarised in ``record["explain"]`` (docs/explain.md)."""

from __future__ import annotations

import ast
import io
import logging
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from bench import runs
from bench.errors import BenchError
from bench.paths import slug
from bench.explain.cams import METHODS, check_layer_order, logits_of, make_cam
from bench.explain.cases import select_cases
from bench.explain.feedback import ROAD_OPT_IN, Progress, final_line
from bench.explain.layers import inner_module, resolve_layers
from bench.explain.localisation import boxes_mask, localisation_scores
from bench.explain.plots import grid_figure, overlay_figure, to_display
from bench.record import atomic_write_bytes, atomic_write_json, atomic_write_text, prob_column, read_record, update_record

__all__ = ["explain_run", "explain_model", "SCORES"]

log = logging.getLogger(__name__)
SCORES = ("pointing_game", "energy", "iou")


class _Logits(torch.nn.Module):
    """ROAD calls ``model(x)`` and indexes the output: give it logits (YOLO eval returns a tuple)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return logits_of(self.model(x))


def _boxes(value) -> list:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return []
    if isinstance(value, str):
        value = ast.literal_eval(value) if value.strip() else []
    return [tuple(float(v) for v in b) for b in value]


def _check_run(run_dir: Path) -> dict:
    record = read_record(run_dir)
    if record is None:
        raise BenchError(f"{run_dir}: no complete run record (record.json missing, corrupt or not 'complete')")
    ckpt = run_dir / (record.get("files") or {}).get("best_checkpoint", "checkpoints/best.ckpt")
    if not ckpt.is_file():
        raise BenchError(f"{ckpt}: the run's checkpoint is missing; nothing to explain")
    if not (run_dir / "predictions.csv").is_file():
        raise BenchError(f"{run_dir / 'predictions.csv'}: missing; the run record is incomplete")
    return record


def _targets(kind: str, n: int, positive_index: int | None):
    """CAM targets on the logits: None lets the CAM take each image's predicted class."""
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    if kind == "pred":
        return None
    if kind == "positive":
        if positive_index is None:
            raise BenchError("explain.target=positive: this task has no positive class; use target=pred")
        return [ClassifierOutputTarget(int(positive_index))] * n
    raise BenchError(f"explain.target={kind!r}: use 'pred' or 'positive'")


def _images_for(dm, rows: Sequence[int]):
    """(images [N,3,S,S], labels [N]) for table rows, in the order given."""
    want = {int(r): i for i, r in enumerate(rows)}
    if hasattr(dm, "dataset_for"):
        ds = dm.dataset_for("test")
        pos = {int(r): i for i, r in enumerate(ds.rows)}
        items = [ds[pos[int(r)]] for r in rows]
        return torch.stack([torch.as_tensor(it[0]) for it in items]), [int(it[1]) for it in items]
    images, labels = [None] * len(rows), [None] * len(rows)
    for x, y, r in dm.dataloader("test"):
        for k, row in enumerate(r.tolist()):
            if row in want:
                images[want[row]], labels[want[row]] = x[k], int(y[k])
    if any(i is None for i in images):
        raise BenchError("explain: some chosen test images were not produced by the test loader")
    return torch.stack(images), labels


def explain_model(model, images: torch.Tensor, layers, methods: Sequence[str], batch_size: int = 8,
                  target: str = "pred", positive_index: int | None = None, device="cpu",
                  boxes: Sequence[list] | None = None, iou_threshold: float = 0.5,
                  iou_top_percent: float | None = None, pointing_margin: float = 0.0,
                  store_size: int = 56, keep_final: int = 0, progress=None) -> dict:
    """CAMs of ``images`` for every method and layer, scored where ``boxes[i]`` is non-empty.
    ``progress(n)``, when given, is called after each batch with its images x layers.

    Returns ``{"maps": {method: float16 [N, L, s, s]}, "scores": DataFrame, "final": {method:
    float32 [keep_final, S, S]}, "target_class": [N], "seconds": {method: s}}``.
    """
    model = inner_module(model).to(device).eval()
    names = [n for n, _ in layers]
    check_layer_order(model, [m for _, m in layers], images[:1].to(device), names)
    n = len(images)
    out = {"maps": {}, "final": {}, "seconds": {}, "target_class": None}
    rows, masks, target_class = [], {}, []
    for method in methods:
        stored, finals, spent = [], [], 0.0
        with make_cam(method, model, layers) as cam:
            for s in range(0, n, batch_size):
                x = images[s:s + batch_size].to(device)
                t0 = time.perf_counter()
                tg = _targets(target, len(x), positive_index)  # None: the predicted class
                maps = cam.maps(x, tg)  # [B, L, S, S] on the device, from one forward (+ backward)
                cls = [t.category for t in tg] if tg else cam.outputs.argmax(-1).tolist()
                if maps.device.type == "cuda":
                    torch.cuda.synchronize()
                spent += time.perf_counter() - t0
                if method == methods[0]:
                    target_class.extend(cls)
                size = maps.shape[-2:]
                for k in range(len(x)):
                    i = s + k
                    bx = boxes[i] if boxes is not None else []
                    if not bx:
                        continue
                    if i not in masks:
                        masks[i] = (boxes_mask(bx, *size, device=maps.device),
                                    boxes_mask(bx, *size, margin=pointing_margin, device=maps.device))
                    sc = localisation_scores(maps[k], masks[i][0], iou_threshold, iou_top_percent, masks[i][1])
                    # the boxes' share of the map: what a uniform map scores on energy, and the
                    # chance that a random point lands in the (margin-grown) boxes, the pointing game's
                    chance = {"box_area": masks[i][0].float().mean().item(), "pointing_area": masks[i][1].float().mean().item()}
                    for li, name in enumerate(names):
                        rows.append({"index": i, "method": method, "layer": name, "layer_index": li,
                                     **{key: sc[key][li].item() for key in sc}, "n_boxes": len(bx), **chance})
                small = F.interpolate(maps, size=(store_size, store_size), mode="area")
                stored.append(small.to(torch.float16).cpu())
                if s < keep_final:
                    finals.append(maps[: max(0, keep_final - s), -1].float().cpu())
                if progress is not None:
                    progress(len(x) * len(names))
        out["maps"][method] = torch.cat(stored).numpy()
        out["final"][method] = torch.cat(finals).numpy() if finals else np.zeros((0,) + tuple(images.shape[-2:]), np.float32)
        out["seconds"][method] = spent
    out["target_class"] = target_class
    scores = pd.DataFrame(rows, columns=["index", "method", "layer", "layer_index", *SCORES, "degenerate", "n_boxes",
                                         "box_area", "pointing_area"])
    if len(scores):
        scores["pointing_game"] = scores["pointing_game"].astype(int)
        scores["degenerate"] = scores["degenerate"].astype(int)
    out["scores"] = scores
    return out


def _road(model, images, finals: dict, target_class, percentiles, batch_size, device, progress=None) -> dict:
    from pytorch_grad_cam.metrics.road import ROADCombined
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    wrapped = _Logits(inner_module(model)).to(device).eval()
    metric = ROADCombined(percentiles=list(percentiles))
    res = {}
    for method, cams in finals.items():
        k = len(cams)
        vals = []
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)  # the imputer adds noise
            for s in range(0, k, batch_size):
                x = images[s:min(k, s + batch_size)].to(device)
                tg = [ClassifierOutputTarget(int(c)) for c in target_class[s:s + len(x)]]
                vals.extend(np.asarray(metric(x, cams[s:s + len(x)], tg, wrapped), dtype=float).ravel().tolist())
                if progress is not None:
                    progress(len(x))
        res[method] = {"road_combined": float(np.mean(vals)) if vals else None, "n": len(vals),
                       "per_image": [round(v, 6) for v in vals]}
    return res


def _png_name(s: str) -> str:
    return slug(s, what="image_id")  # one safe path component (bench.paths)


def explain_run(run_dir, methods: Sequence[str] = ("gradcampp", "eigencam", "gradcam"),
                layers: Sequence[str] | None = None, n_images: int = 64, batch_size: int = 8,
                device: str | None = None, road_images: int = 0,
                road_percentiles: Sequence[int] = (20, 40, 60, 80), target: str = "pred",
                iou_threshold: float = 0.5, iou_top_percent: float | None = None,
                pointing_margin: float = 0.0, store_size: int = 56, **unknown) -> dict:
    """Explain a finished run; returns the ``explain`` section written into its record.
    ROAD is opt-in (``road_images`` > 0): minutes on a CPU where the CAMs take seconds."""
    if unknown:
        raise BenchError(f"explain: unknown option(s) {sorted(unknown)}; see conf/explain/default.yaml")
    t_start = time.perf_counter()
    run_dir = Path(run_dir)
    record = _check_run(run_dir)
    if isinstance(methods, str):
        methods = [m.strip() for m in methods.split(",") if m.strip()]
    methods = list(methods)
    bad = [m for m in methods if m not in METHODS]
    if bad or not methods:
        raise BenchError(f"explain.methods: unknown {bad or methods}; choose from {', '.join(METHODS)}")
    if target not in ("pred", "positive"):
        raise BenchError(f"explain.target={target!r}: use 'pred' or 'positive'")
    if n_images < 1 or batch_size < 1:
        raise BenchError(f"explain: n_images={n_images}, batch_size={batch_size}: both must be >= 1")
    if road_images is None or int(road_images) < 0:
        raise BenchError(f"explain.road_images={road_images}: use 0 (ROAD off) or a number of images (>= 1)")
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise BenchError(f"explain: device={device} but CUDA is not available here; use --device cpu")

    model, dm, record = runs.load_run(run_dir, device=device)
    task = record.get("task", {})
    classes = list(task.get("classes") or getattr(dm, "classes"))
    positive_index = task.get("positive_index")
    table = dm.table.reset_index(drop=True)
    test = table[table["split"] == "test"]
    if test.empty:
        raise BenchError(f"{run_dir}: the run has no test images to explain")
    preds = pd.read_csv(run_dir / "predictions.csv", dtype={"image_id": str})
    cases = select_cases(preds, positive_index, classes)

    has_box_col = "boxes" in table.columns
    boxes_of = {str(r.image_id): _boxes(r.boxes) for r in test.itertuples()} if has_box_col else {}
    boxed = sorted(i for i, b in boxes_of.items() if b)
    chosen = list(dict.fromkeys(cases.values()))[:n_images]
    pool = boxed if boxed else sorted(str(i) for i in test["image_id"])
    chosen += [i for i in pool if i not in chosen][: max(0, n_images - len(chosen))]
    row_of = {str(i): int(k) for k, i in zip(test.index, test["image_id"])}
    chosen = [i for i in chosen if i in row_of]
    if not boxed:
        dataset = task.get("dataset") or getattr(dm, "dataset", "unknown")
        skip = f"no boxes in dataset {dataset}" if not has_box_col else f"no test image of dataset {dataset} has boxes"
    else:
        skip = None

    layer_list = resolve_layers(model, layers)
    names = [n for n, _ in layer_list]
    images, labels = _images_for(dm, [row_of[i] for i in chosen])
    road_n = min(int(road_images), len(chosen))
    with Progress("explain", len(chosen) * len(names) * len(methods), "images x layers x methods") as bar:
        res = explain_model(model, images, layer_list, methods, batch_size, target, positive_index, device,
                            boxes=[boxes_of.get(i, []) for i in chosen] if not skip else None,
                            iou_threshold=iou_threshold, iou_top_percent=iou_top_percent,
                            pointing_margin=pointing_margin, store_size=store_size, keep_final=road_n,
                            progress=bar.update)

    out_dir = run_dir / "explain"
    out_dir.mkdir(parents=True, exist_ok=True)
    pred_by_id = preds[preds["split"] == "test"].set_index("image_id")
    scores = res["scores"]
    scores.insert(0, "image_id", [chosen[i] for i in scores["index"]])
    scores = scores.drop(columns="index")

    # Localisation summary.
    if skip:
        localisation = {"skipped": skip}
    else:
        per_layer = {}
        for m in methods:
            sm = scores[scores["method"] == m]
            per_layer[m] = {
                name: {**{s: round(float(sm[sm["layer"] == name][s].mean()), 6) for s in SCORES},
                       "n": int((sm["layer"] == name).sum())}
                for name in names
            }
        per_image = scores.drop_duplicates("image_id")
        localisation = {"n_images": int(scores["image_id"].nunique()), "iou_threshold": iou_threshold,
                        "iou_top_percent": iou_top_percent, "pointing_margin": pointing_margin,
                        # a uniform map's scores: mean over the scored images of the boxes' area share
                        "chance": {"energy": round(float(per_image["box_area"].mean()), 6),
                                   "pointing_game": round(float(per_image["pointing_area"].mean()), 6)},
                        "per_layer": per_layer,
                        "degenerate_maps": {m: int(scores[scores["method"] == m]["degenerate"].sum()) for m in methods}}
    summary = {}
    for m in methods:
        fin = localisation["per_layer"][m][names[-1]] if not skip else {}
        summary[m] = {"pointing_game": fin.get("pointing_game"), "energy": fin.get("energy"),
                      "iou": fin.get("iou"), "n": fin.get("n", 0), "final_layer": names[-1]}
        if skip:
            summary[m]["skipped"] = skip

    t_road = time.perf_counter()
    if road_n > 0:
        with Progress("explain ROAD", road_n * len(methods), "images x methods") as bar:
            road = _road(model, images[:road_n], res["final"], res["target_class"][:road_n],
                         road_percentiles, batch_size, device, progress=bar.update)
        road = {"layer": names[-1], "metric": "ROADCombined (LeRF - MoRF) / 2, higher is more faithful",
                "percentiles": list(road_percentiles), "per_method": road}
    else:
        road = {"skipped": f"not run (road_images=0; opt in with {ROAD_OPT_IN})"}
    t_road = time.perf_counter() - t_road

    # Figures: a per-layer grid per chosen case, a final-layer overlay per case x method.
    display = {}
    case_items = []
    for pos, image_id in enumerate(chosen):
        in_cases = [c for c, i in cases.items() if i == image_id]
        if not in_cases:
            continue
        img = to_display(images[pos], dm.mean, dm.std)  # the run's normalisation (bench.spec)
        display[image_id] = img
        bx = boxes_of.get(image_id, [])
        p = pred_by_id.loc[image_id] if image_id in pred_by_id.index else None
        lab, prd = int(labels[pos]), (int(p["pred"]) if p is not None else None)
        conf = float(p[prob_column(classes[prd])]) if p is not None else None
        title = f"{image_id}  {'/'.join(in_cases)}  label={classes[lab]} pred={classes[prd] if prd is not None else '?'} p={conf:.2f}" if conf is not None else image_id
        grid = f"grids/{'+'.join(in_cases)}__{_png_name(image_id)}.png"
        grid_figure(out_dir / grid, img, np.stack([res["maps"][m][pos] for m in methods]), methods, names, bx, title)
        overlays = {}
        for m in methods:
            rel = f"overlays/{_png_name(image_id)}__{m}.png"
            overlay_figure(out_dir / rel, img, res["maps"][m][pos, -1], bx, f"{title}\n{m}, {names[-1]}")
            overlays[m] = rel
        case_items.append({"image_id": image_id, "cases": in_cases, "label": lab, "pred": prd,
                           "confidence": conf, "n_boxes": len(bx), "grid": grid, "overlays": overlays})

    # Figures of an earlier explain of this run that are not part of this one would be stale.
    keep = {out_dir / it["grid"] for it in case_items} | {out_dir / p for it in case_items for p in it["overlays"].values()}
    for sub in ("grids", "overlays"):
        for f in (out_dir / sub).glob("*.png") if (out_dir / sub).is_dir() else []:
            if f not in keep:
                f.unlink(missing_ok=True)

    buf = io.BytesIO()
    np.savez_compressed(buf, image_ids=np.array(chosen), layers=np.array(names), methods=np.array(methods),
                        **{m: res["maps"][m] for m in methods})
    atomic_write_bytes(out_dir / "heatmaps.npz", buf.getvalue())
    atomic_write_text(out_dir / "scores.csv", scores.to_csv(index=False))
    timings = {m: {"cam_s": round(res["seconds"][m], 4),
                   "images_per_s": round(len(chosen) / res["seconds"][m], 3) if res["seconds"][m] > 0 else None}
               for m in methods}
    if road_n > 0:
        timings["road_s"] = round(t_road, 3)  # absent when ROAD was not run
    index = {
        "version": 1, "methods": methods, "layers": names, "image_ids": chosen, "cases": case_items,
        "target": target, "store_size": store_size,
        "files": {"heatmaps": "heatmaps.npz", "scores": "scores.csv", "grids": "grids/", "overlays": "overlays/"},
        "heatmaps": {"keys": methods, "shape": "[N, L, h, w] float16 per method; rows follow image_ids, "
                                              "columns follow layers; min-max normalised per map"},
    }
    atomic_write_json(out_dir / "index.json", index)

    prev = (read_record(run_dir) or {}).get("explain") or {}
    section = {
        "version": 1, "methods": methods, "layers": names, "n_images": len(chosen), "target": target,
        "device": str(device), "cases": cases, "localisation": localisation, "summary": summary,
        "road": road, "timings": {**timings, "total_s": round(time.perf_counter() - t_start, 3)},
        "files": {"index": "explain/index.json", "heatmaps": "explain/heatmaps.npz", "scores": "explain/scores.csv"},
    }
    old_cases = prev.get("cases")
    if "human_rating" in prev and old_cases == cases and prev.get("methods") == methods:
        section["human_rating"] = prev["human_rating"]  # same images and methods: ratings still apply
    update_record(run_dir, explain=section)
    log.info("%s", final_line(section, run_dir))
    return section
