"""One detection run (``task.kind: detection``): FracAtlas boxes -> Ultralytics' own
``DetectionTrainer`` -> Ultralytics' validator on val and test (all images and per region) ->
the run record, like every run of the harness (docs/detection.md).

``bench.pipeline`` hands a config here when its task kind is detection (``bench.tasks``). The run
id, skip-when-complete, the run lock, the environment and the record writer are the classification
run's own (``bench.run_folder``, ``bench.training.lock``, ``bench.provenance``, ``bench.record``).
Ultralytics is kept offline and out of the dataset: see :func:`offline_ultralytics` and
``bench.detection.data``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from omegaconf import DictConfig, OmegaConf

from bench.errors import BenchError, first_line
from bench.paths import confined
from bench.record import atomic_write_json, atomic_write_text, read_record, write_record
from bench.run_folder import absolute_paths, run_id_for
from bench.tasks import check_run_keys
from bench.training.lock import RunLock, RunLocked

log = logging.getLogger(__name__)

__all__ = ["run_detection", "offline_ultralytics", "DETECTION_MODELS"]

DETECTION_MODELS = {f"yolov8{s}_det": f"yolov8{s}.yaml" for s in "nsmlx"}
METRIC_KEYS = ("precision", "recall", "map50", "map50_95")
INTEGRATIONS = ("sync", "clearml", "comet", "dvc", "mlflow", "raytune", "tensorboard", "wandb", "hub")
CONF, NMS_IOU = 0.001, 0.7  # Ultralytics' validation defaults: every box that can count toward AP


def _validate(cfg: DictConfig) -> None:
    name = cfg.model.get("name")
    if cfg.model.get("family") != "yolo_det":
        raise BenchError(f"model={name}: data={cfg.data.name} is a detection task; use model=yolov8n_det (s/m/l/x)")
    if cfg.data.get("task_kind") != "detection":
        raise BenchError(f"model={name} is a detector: use it with data=fracatlas_detection or data=fracatlas_detection_set2")
    if not isinstance(cfg.image_size, int) or not 32 <= cfg.image_size <= 2048 or cfg.image_size % 32:
        raise BenchError(f"image_size={cfg.image_size!r}: detection needs a multiple of 32 between 32 and 2048 (e.g. 320, 640)")
    check_run_keys(cfg)
    if int(cfg.data.batch_size) < 1:
        raise BenchError(f"data.batch_size={cfg.data.batch_size!r}: give a positive batch size")


def _image_size(cfg: DictConfig) -> int:
    if cfg.size_policy == "native":
        return int(cfg.model.get("native_size") or 640)
    return int(cfg.image_size)


def _device(cfg: DictConfig) -> str:
    import torch

    acc = str(cfg.trainer.get("accelerator", "auto"))
    if acc == "cpu" or (acc == "auto" and not torch.cuda.is_available()):
        return "cpu"
    if not torch.cuda.is_available():
        raise BenchError(f"trainer.accelerator={acc} but CUDA is not available here: use trainer.accelerator=cpu")
    devices = cfg.trainer.get("devices", 1)
    n = int(devices) if str(devices).isdigit() else 1
    return ",".join(str(i) for i in range(max(1, n)))


def _env_true(key: str) -> bool:
    return os.environ.get(key, "").strip().lower() in ("1", "true", "yes", "on")


def offline_ultralytics() -> dict:
    """What keeps Ultralytics from the network and from installing packages, in this process.

    ``YOLO_OFFLINE`` / ``YOLO_AUTOINSTALL`` / ``YOLO_CONFIG_DIR`` come from ``bench.env`` (set before
    Ultralytics is imported). Here: a TTF at ``USER_CONFIG_DIR/Arial.ttf`` (``check_font`` would
    fetch one over HTTP whatever ``YOLO_OFFLINE`` says: matplotlib's DejaVuSans), every logging
    integration and the usage events off, and requirement checks skipped (a missing optional
    package is then an ImportError that Ultralytics reports, never a pip run)."""
    os.environ.setdefault("ULTRALYTICS_SKIP_REQUIREMENTS_CHECKS", "1")
    import matplotlib

    from ultralytics.utils import SETTINGS, USER_CONFIG_DIR

    font = Path(USER_CONFIG_DIR) / "Arial.ttf"
    if not font.is_file():
        src = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
        from bench.record import atomic_write_bytes

        atomic_write_bytes(font, src.read_bytes())
    changes = {k: False for k in INTEGRATIONS if k in SETTINGS and SETTINGS.get(k)}
    if changes:
        SETTINGS.update(changes)
    return {"config_dir": str(USER_CONFIG_DIR), "font": str(font), "offline": _env_true("YOLO_OFFLINE"),
            "autoinstall": os.environ.get("YOLO_AUTOINSTALL"), "integrations_off": sorted(INTEGRATIONS)}


@contextlib.contextmanager
def _truncated_policy(policy: str):
    """``load``: Ultralytics' scan may re-encode truncated files (into the link tree) instead of dropping them."""
    from PIL import ImageFile

    previous = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = policy == "load"
    try:
        yield
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = previous


def _weights(cfg: DictConfig) -> str | None:
    """Pretrained detector weights as the classifiers get them: a local file, Ultralytics' release
    asset when online (``YOLO_OFFLINE=0``), else one clear error."""
    if not cfg.model.get("pretrained"):
        return None
    arch = DETECTION_MODELS[cfg.model.name]
    weights = cfg.model.get("weights")
    if weights:
        path = Path(str(weights)).expanduser()
        if not path.is_file():
            raise BenchError(f"model.weights={weights}: file not found: give a local Ultralytics checkpoint ({arch.replace('.yaml', '.pt')})")
        return str(path.resolve())
    if _env_true("YOLO_OFFLINE"):
        raise BenchError(f"model={cfg.model.name} model.pretrained=true: no weights file and Ultralytics is offline here: "
                         f"pass model.weights=/path/{arch.replace('.yaml', '.pt')}, or set YOLO_OFFLINE=0 to let Ultralytics download it")
    from ultralytics.utils.downloads import attempt_download_asset

    dest = Path(cfg.paths.cache_dir) / "weights" / arch.replace(".yaml", ".pt")
    dest.parent.mkdir(parents=True, exist_ok=True)
    return str(attempt_download_asset(dest))


def _train_args(cfg: DictConfig, yaml_path: str, ultra_dir: Path, image_size: int, device: str) -> dict:
    extra = OmegaConf.to_container(cfg.model.get("ultralytics") or {}, resolve=True)
    precision = str(cfg.trainer.get("precision", "32-true"))
    # AMP only on a GPU, and not offline: check_amp downloads a model first (FIELD_NOTES).
    amp = device != "cpu" and "16" in precision and not _env_true("YOLO_OFFLINE")
    return {
        "model": DETECTION_MODELS[cfg.model.name], "data": yaml_path, "epochs": int(cfg.trainer.max_epochs),
        "imgsz": image_size, "batch": int(cfg.data.batch_size), "workers": int(cfg.data.get("num_workers") or 0),
        "device": device, "seed": int(cfg.seed), "deterministic": True, "amp": amp, "project": str(ultra_dir.parent),
        "name": ultra_dir.name, "exist_ok": True, "plots": True, "verbose": False, "val": True, "pretrained": False,
        **extra,
    }


def _metrics_of(res) -> dict:
    box = res.box
    return {"precision": float(box.mp), "recall": float(box.mr), "map50": float(box.map50), "map50_95": float(box.map),
            "fitness": float(res.fitness)}


def run_detection(cfg: DictConfig) -> dict:
    """Train and evaluate one detection configuration; returns the summary ``bench-train`` reports."""
    _validate(cfg)
    absolute_paths(cfg)
    run_id = run_id_for(cfg)
    run_dir = confined(cfg.paths.runs_dir, run_id, what="run folder")
    existing = read_record(run_dir)
    if existing is not None and cfg.resume:
        log.info("run %s is complete: skipped (set resume=false to train it again)", run_id)
        return {"status": "skipped", "run_id": run_id, "run_dir": str(run_dir),
                "objective": existing.get("metrics", {}).get("val", {}).get("map50", float("nan"))}
    # One writer per run folder, as for classification runs (bench.training.lock).
    lock_cfg = OmegaConf.to_container(cfg.run_lock, resolve=True) if cfg.get("run_lock") else {}
    created = not run_dir.exists()
    try:
        lock = RunLock(run_dir, **lock_cfg).acquire()
    except RunLocked as busy:
        log.warning("%s", busy)
        return {"status": "skipped", "reason": str(busy), "run_id": run_id, "run_dir": str(run_dir), "objective": float("nan")}
    try:
        return _train_detection(cfg, run_id, run_dir)
    except BaseException:
        # A start that failed before it had anything to resume from leaves no folder behind.
        if created and not any((run_dir / "ultralytics").rglob("last.pt")):
            lock.release()
            shutil.rmtree(run_dir, ignore_errors=True)
        raise
    finally:
        lock.release()


@dataclass
class _DetectionData:
    """The run's view of the dataset: its table and report, the link tree Ultralytics reads, and
    the digest of every file it reads (checked again after the run)."""

    root: Path
    table: pd.DataFrame
    report: dict
    split_cfg: dict
    tree: dict
    files: list[str]
    digest_before: str


@dataclass
class _Fit:
    resume_from: str | None = None
    fit_s: float = 0.0
    train_images: int = 0


def _train_detection(cfg: DictConfig, run_id: str, run_dir: Path) -> dict:
    from bench.provenance import environment, sweep_info  # imports torch: only once a run starts

    ultra_dir = run_dir / "ultralytics"
    if not cfg.resume and run_dir.exists():
        (run_dir / "record.json").unlink(missing_ok=True)
        shutil.rmtree(ultra_dir, ignore_errors=True)
    image_size = _image_size(cfg)
    device = _device(cfg)
    weights = _weights(cfg)
    t_start = time.perf_counter()

    from bench.data.splits import split_hash, write_split

    d = cfg.data
    data = _prepare_data(cfg, run_dir)
    table, report, root = data.table, data.report, data.root
    atomic_write_text(run_dir / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
    write_split(table, run_dir / "split.csv")

    offline = offline_ultralytics()
    from bench.checkpoints import load_ultralytics

    args = _train_args(cfg, data.tree["yaml"]["main"], ultra_dir, image_size, device)
    if weights:
        load_ultralytics(weights)  # read as data first: refused files never reach Ultralytics' own loader
        args["pretrained"] = weights
    last = ultra_dir / "weights" / "last.pt"
    with _truncated_policy(str(d.get("truncated", "load"))):
        fit = _fit(cfg, args, ultra_dir, table)
        best = ultra_dir / "weights" / "best.pt"
        if not best.is_file():
            raise BenchError(f"{best}: Ultralytics wrote no best checkpoint; see {ultra_dir}")
        best_ckpt = load_ultralytics(best)
        t_test = time.perf_counter()
        summary = _evaluate(cfg, data.tree, table, best, image_size, device, ultra_dir)
        test_s = time.perf_counter() - t_test
    from bench.detection.data import files_digest, tree_changes

    digest_after = files_digest(data.files)
    if digest_after != data.digest_before:
        raise BenchError(f"{root}: dataset files changed during the run (SHA-256 {data.digest_before[:12]} -> {digest_after[:12]}): "
                         f"restore the dataset from its release; nothing may write into it")
    report["ultralytics_rewrote_in_link_tree"] = tree_changes(data.tree["root"])
    report["ultralytics_scan"] = summary["scan"]

    metrics = _write_evaluation(run_dir, summary)
    atomic_write_json(run_dir / "data_report.json", report)
    atomic_write_json(run_dir / "environment.json", {**environment(cfg, "cuda" if device != "cpu" else "cpu"), "ultralytics_offline": offline})
    params, macs, latency = _cost(cfg, best_ckpt, image_size, device)
    results_csv = ultra_dir / "results.csv"
    hist, fitness, best_epoch = _history(results_csv)
    counts = table["split"].value_counts().to_dict()
    sweep = sweep_info()
    record = {
        "run_id": run_id,
        "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "task": {"name": d.name, "dataset": "fracatlas", "kind": "detection", "classes": ["fracture"], "positive_index": None,
                 "protocol": str(d.protocol)},
        "protocol": {"experiment": cfg.get("experiment_name") or "default", "detection_protocol": str(d.protocol),
                     "image_size": image_size, "size_policy": cfg.size_policy, "epochs": int(cfg.trainer.max_epochs),
                     "batch_size": int(cfg.data.batch_size), "optimizer": str(args.get("optimizer", "auto")),
                     "lr0": args.get("lr0"), "pretrained": bool(weights), "amp": bool(args["amp"]),
                     "eval": {"conf": CONF, "nms_iou": NMS_IOU, "max_det": 300}, "ultralytics_args": _jsonable(args)},
        "model": {"name": cfg.model.name, "family": "yolo_det", "arch": DETECTION_MODELS[cfg.model.name],
                  "paper_name": cfg.model.get("paper_name"), "pretrained": bool(weights), "params": params, "gmacs": macs,
                  "input_size": image_size, "cam_layers": []},
        "seed": int(cfg.seed),
        "split": {"file": "split.csv", "sha256": split_hash(table), "seed": int(cfg.split_seed),
                  "source": "official Utilities/Fracture Split" if d.protocol == "set1" else "harness (grouped, stratified)",
                  **({} if d.protocol == "set1" else data.split_cfg),
                  "counts": {k: int(counts.get(k, 0)) for k in ("train", "val", "test")}},
        "best": {"monitor": "val/fitness (0.1 mAP50 + 0.9 mAP50-95, Ultralytics)", "mode": "max", "epoch": best_epoch,
                 "score": None if not len(hist) else float(fitness.max())},
        "epochs_run": int(len(hist)),
        "resumed_from": fit.resume_from,
        "metrics": metrics,
        "subgroups": {"region": summary["regions"]},
        "cost": {"device": device if device == "cpu" else f"cuda:{device}", "precision": "16-mixed" if args["amp"] else "32-true",
                 "train_images_per_s": (fit.train_images / fit.fit_s) if fit.fit_s > 0 else None, "train_images": int(fit.train_images),
                 "inference_ms_per_image": latency, "wall_s": {"total": time.perf_counter() - t_start, "fit": fit.fit_s, "test": test_s}},
        "data": {"root": str(root), "truncated": report.get("truncated", []),
                 "dataset_sha256": {"before": data.digest_before, "after": digest_after, "unchanged": data.digest_before == digest_after,
                                    "files": len(data.files)},
                 "label_disagreements": int(report["label_check"].get("n_disagreements", 0) or 0)},
        "files": {"config": "config.yaml", "split": "split.csv", "detections": "detections.csv", "ground_truth": "ground_truth.csv",
                  "images": "images.csv", "history": os.path.relpath(results_csv, run_dir), "data_report": "data_report.json",
                  "environment": "environment.json", "best_checkpoint": os.path.relpath(best, run_dir),
                  "last_checkpoint": os.path.relpath(last, run_dir), "plots": _plots(ultra_dir, run_dir)},
        "sweep": sweep,
        "tags": list(cfg.tags),
    }
    write_record(run_dir, record)
    log.info("detection run %s complete: test %s", run_id, {k: round(v, 4) for k, v in metrics.get("test", {}).items() if isinstance(v, float)})
    return {"status": "complete", "run_id": run_id, "run_dir": str(run_dir), "objective": metrics["val"]["map50"], "record": record}


def _prepare_data(cfg: DictConfig, run_dir: Path) -> _DetectionData:
    """The detection table (generated first for a tiny_* config), its label check, the link tree
    in the run folder and the digest of the dataset files the run reads."""
    from bench.detection.data import build_link_tree, check_labels, files_digest, load_detection_table

    d = cfg.data
    root = Path(str(d.root)).expanduser()
    if not (root / "dataset.csv").is_file() and d.get("generate_if_missing"):
        from bench.detection.fixtures import make_detection_fixture

        make_detection_fixture(root, seed=int(d.get("fixture_seed", 0)))
    split_cfg = OmegaConf.to_container(d.get("split"), resolve=True) if d.get("split") else {}
    table, report = load_detection_table(root, protocol=str(d.protocol), split=split_cfg, split_seed=int(cfg.split_seed),
                                         split_file=d.get("split_file"), truncated=str(d.get("truncated", "load")))
    report["label_check"] = check_labels(root, table, min_iou=float(d.get("label_check_min_iou", 0.5)))
    if d.get("label_disagreements", "report") == "error" and report["label_check"].get("n_disagreements"):
        first = report["label_check"]["disagreements"][0]
        raise BenchError(f"{root}: YOLO and COCO boxes disagree ({report['label_check']['n_disagreements']}, first {first['image_id']}: "
                         f"{first['kind']}); set data.label_disagreements=report to train on the YOLO boxes anyway")
    run_dir.mkdir(parents=True, exist_ok=True)
    tree = build_link_tree(table, run_dir / "yolo_data")
    files = list(table["path"]) + [p for p in table["label_path"] if os.path.isfile(p)]
    return _DetectionData(root, table, report, split_cfg, tree, files, files_digest(files))


def _fit(cfg: DictConfig, args: dict, ultra_dir: Path, table: pd.DataFrame) -> _Fit:
    """Ultralytics' DetectionTrainer: fresh, resumed from ``last.pt``, or skipped when a finished
    training left its marker (evaluation only)."""
    from ultralytics.models.yolo.detect import DetectionTrainer

    from bench.checkpoints import load_ultralytics

    last = ultra_dir / "weights" / "last.pt"
    done_marker = ultra_dir / "train_complete.json"
    fit = _Fit()
    if done_marker.is_file() and last.is_file() and cfg.resume:
        fit.resume_from = "training finished earlier: evaluation only"
        return fit
    if cfg.resume and last.is_file():
        _discard_incomplete_last(ultra_dir)
    if cfg.resume and last.is_file():
        ckpt = load_ultralytics(last)
        fit.resume_from = "training finished earlier: evaluation only" if int(ckpt.get("epoch", -1)) < 0 else str(last)
        if fit.resume_from == str(last):
            _trim_history(ultra_dir / "results.csv", int(ckpt["epoch"]) + 1)
    elif ultra_dir.exists():
        shutil.rmtree(ultra_dir)
    if fit.resume_from is None or fit.resume_from == str(last):
        overrides = {**args, "resume": str(last)} if fit.resume_from else args
        t_fit = time.perf_counter()
        try:
            trainer = DetectionTrainer(overrides=overrides)
        except (SyntaxError, KeyError) as exc:  # Ultralytics' message for a bad argument
            raise BenchError(f"model.ultralytics: {first_line(exc)}") from None
        trainer.train()
        fit.fit_s = time.perf_counter() - t_fit
        epochs_this_time = max(0, int(trainer.epoch) + 1 - int(trainer.start_epoch))
        fit.train_images = epochs_this_time * int((table["split"] == "train").sum())
    atomic_write_json(done_marker, {"finished_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")})
    return fit


def _write_evaluation(run_dir: Path, summary: dict) -> dict:
    """detections / ground_truth / images CSVs; the metrics with torchmetrics' mAP beside Ultralytics'."""
    from bench.detection.metrics import torchmetrics_map

    det, gt, images = summary["detections"], summary["ground_truth"], summary["images"]
    atomic_write_text(run_dir / "detections.csv", det.to_csv(index=False))
    atomic_write_text(run_dir / "ground_truth.csv", gt.to_csv(index=False))
    atomic_write_text(run_dir / "images.csv", images.to_csv(index=False))
    metrics = summary["metrics"]
    for split in ("val", "test"):
        if split in metrics:
            ids = list(images.loc[images["split"] == split, "image_id"])
            rec = torchmetrics_map(det[det["split"] == split], gt[gt["split"] == split], ids)
            metrics[split]["map50_torchmetrics"] = rec["map50"]
            metrics[split]["map50_95_torchmetrics"] = rec["map50_95"]
    return metrics


def _cost(cfg: DictConfig, best_ckpt: dict, image_size: int, device: str) -> tuple[int, float | None, float | None]:
    """Parameters, GMACs and (with measure_latency) inference latency of the best network."""
    from bench.models.cost import count_params, gmacs, inference_latency_ms

    net = best_ckpt.get("ema") or best_ckpt.get("model")
    net = net.float().eval()
    params = count_params(net)
    try:
        macs = gmacs(net, image_size)
    except Exception:  # noqa: BLE001 - a cost figure must never fail a finished run
        macs = None
    latency = inference_latency_ms(net, image_size, device="cpu" if device == "cpu" else "cuda") if cfg.measure_latency else None
    return params, macs, latency


def _discard_incomplete_last(ultra_dir: Path) -> bool:
    """Ultralytics writes last.pt in place: a kill (preemption, OOM) during the write leaves a
    file without the zip directory torch writes last. Nothing can resume from it; rather than
    stop the sweep on a corrupt-file error, the run's Ultralytics folder is removed and the run
    trains again from the start (logged). A complete file is left to the loader, whose refusal of
    a file naming foreign code stays an error."""
    import zipfile

    last = ultra_dir / "weights" / "last.pt"
    if zipfile.is_zipfile(last):
        return False
    log.warning("%s is incomplete (the process was killed while writing it): training this run again from the start", last)
    shutil.rmtree(ultra_dir)
    return True


def _trim_history(results_csv: Path, last_epoch: int) -> None:
    """Drop the rows of epochs after ``last_epoch`` (1-based, as results.csv counts) before a resume.

    Ultralytics writes an epoch's results line before it saves last.pt, and a resumed training
    appends: a kill between the two left that epoch twice in the history (seen under load)."""
    if not results_csv.is_file():
        return
    lines = results_csv.read_text(encoding="utf-8").splitlines(keepends=True)

    def epoch(line: str) -> float:
        try:
            return float(line.split(",", 1)[0])
        except ValueError:
            return float("inf")  # a torn last line: dropped with the epochs after the checkpoint

    kept = lines[:1] + [ln for ln in lines[1:] if ln.strip() and epoch(ln) <= last_epoch]
    if kept != lines:
        atomic_write_text(results_csv, "".join(kept))


def _history(results_csv: Path) -> tuple[pd.DataFrame, pd.Series, int | None]:
    """Ultralytics' per-epoch results, its fitness per epoch and the best epoch by it."""
    hist = pd.read_csv(results_csv) if results_csv.is_file() else pd.DataFrame()
    hist.columns = [c.strip() for c in hist.columns]
    fitness = (0.1 * hist["metrics/mAP50(B)"] + 0.9 * hist["metrics/mAP50-95(B)"]) if len(hist) else pd.Series(dtype=float)
    best_epoch = int(hist["epoch"].iloc[int(fitness.to_numpy().argmax())]) if len(hist) else None
    return hist, fitness, best_epoch


def _plots(ultra_dir: Path, run_dir: Path) -> dict:
    plots = {p.stem: os.path.relpath(p, run_dir) for p in sorted(ultra_dir.glob("*.png"))}
    for split in ("val", "test"):
        for p in sorted((ultra_dir / f"eval_{split}").glob("*.png")):
            plots[f"{split}_{p.stem}"] = os.path.relpath(p, run_dir)
    return plots


def _jsonable(args: dict) -> dict:
    return {k: (v if isinstance(v, (str, int, float, bool, type(None))) else str(v)) for k, v in args.items()}


def _scan_results(tree_root: Path) -> dict:
    """Ultralytics' own scan outcome per split from its label caches (found/missing/empty/corrupt)."""
    out = {}
    for cache in sorted((tree_root / "labels").glob("*.cache")):
        try:
            from ultralytics.data.utils import load_dataset_cache_file

            c = load_dataset_cache_file(cache)
            nf, nm, ne, nc, n = c["results"]
            out[cache.stem] = {"found": int(nf), "missing": int(nm), "empty": int(ne), "corrupt": int(nc), "images": int(n),
                               "messages": [str(m) for m in c.get("msgs", [])][:50]}
        except Exception as exc:  # noqa: BLE001 - a report entry, not a reason to fail
            out[cache.stem] = {"error": f"{type(exc).__name__}: {exc}"}
    return out


def _read_predictions(path: Path, split: str) -> list[dict]:
    if not path.is_file():
        return []
    rows = []
    for p in json.loads(path.read_text()):
        image_id = Path(p["file_name"]).name
        x, y, w, h = p["bbox"]
        rows.append({"image_id": image_id, "split": split, "x1": x, "y1": y, "x2": x + w, "y2": y + h, "score": p["score"]})
    return rows


def _evaluate(cfg: DictConfig, tree: dict, table: pd.DataFrame, best: Path, image_size: int, device: str, ultra_dir: Path) -> dict:
    """Ultralytics' validator on val and test (with every box it keeps, as ``detections.csv``) and
    on each region's images of each split."""
    from ultralytics import YOLO

    from bench.detection.data import yolo_boxes_pixels

    yolo = YOLO(str(best), task="detect")
    common = {"imgsz": image_size, "batch": int(cfg.data.batch_size), "device": device, "conf": CONF, "iou": NMS_IOU,
              "workers": int(cfg.data.get("num_workers") or 0), "verbose": False, "project": str(ultra_dir), "exist_ok": True}
    metrics, regions, det_rows = {}, {}, []
    splits = [s for s in ("val", "test") if (table["split"] == s).any()]
    for split in splits:
        part = table[table["split"] == split]
        res = yolo.val(data=tree["yaml"]["main"], split=split, save_json=True, plots=True, name=f"eval_{split}", **common)
        metrics[split] = {**_metrics_of(res), "n_images": int(len(part)), "n_boxes": int(part["n_boxes"].sum())}
        det_rows += _read_predictions(ultra_dir / f"eval_{split}" / "predictions.json", split)
    # Before the per-region passes, which rewrite labels/<split>.cache for their image lists.
    scan = _scan_results(Path(tree["root"]))
    for split in splits:
        part = table[table["split"] == split]
        regions[split] = {}
        for region in sorted(table["region"].unique()):
            rp = part[part["region"] == region]
            entry = {"n_images": int(len(rp)), "n_boxes": int(rp["n_boxes"].sum())}
            key = f"{split}_{region}"
            if len(rp) and entry["n_boxes"] and key in tree["yaml"]:
                r = yolo.val(data=tree["yaml"][key], split="val", save_json=False, plots=False, name=f"eval_{key}", **common)
                entry.update({k: v for k, v in _metrics_of(r).items() if k in METRIC_KEYS})
            else:
                entry.update({k: None for k in METRIC_KEYS})  # no boxes: AP is undefined
            regions[split][region] = entry
    det = pd.DataFrame(det_rows, columns=["image_id", "split", "x1", "y1", "x2", "y2", "score"])
    gt_rows = []
    for r in table[table["split"].isin(["val", "test"])].itertuples():
        for b in yolo_boxes_pixels(r.boxes, r.width, r.height):
            gt_rows.append({"image_id": r.image_id, "split": r.split, "x1": b[0], "y1": b[1], "x2": b[2], "y2": b[3]})
    gt = pd.DataFrame(gt_rows, columns=["image_id", "split", "x1", "y1", "x2", "y2"])
    images = table.loc[table["split"].isin(["val", "test"]), ["image_id", "split", "region", "width", "height", "n_boxes"]]
    return {"metrics": metrics, "regions": regions, "detections": det, "ground_truth": gt, "images": images.reset_index(drop=True),
            "scan": scan}
