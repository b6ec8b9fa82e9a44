"""One training run: config -> data + model -> fit -> evaluate best checkpoint -> run record.

The run directory is derived from the config (``run_id``), so launching the same config again
skips a complete run and resumes an interrupted one from ``checkpoints/last.ckpt``.
"""

from __future__ import annotations

import datetime as dt
import inspect
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import pandas as pd
import torch
from omegaconf import DictConfig, OmegaConf

from bench.checkpoints import load_checkpoint
from bench.env import use_cache_dir
from bench.errors import BenchError
from bench.paths import confined
from bench.provenance import environment as _environment
from bench.provenance import sweep_info as _sweep_info
# The run id and its hash live in bench.run_folder (importable without torch: bench-train --plan);
# re-exported here for bench.detection.run and the tests.
from bench.run_folder import NON_RESULT_KEYS, config_hash, run_id_for  # noqa: F401
from bench.run_folder import absolute_paths as _absolute_paths
from bench.evaluation.metrics import VAL_METRICS, aggregate_by_study, compute_metrics
from bench.evaluation.plots import plot_confusion, plot_learning_curves, plot_roc
from bench.evaluation.operating import validate_config as validate_operating_point
from bench.evaluation.results import evaluate_extras
from bench.evaluation.wandb_results import log_results, wandb_run_id
from bench.record import atomic_write_json, atomic_write_text, prob_column, prob_columns, read_record, write_record
from bench.training.best_checkpoint import best_section
from bench.training.callbacks import EpochSeeder, HistoryWriter, LastCheckpoint, ThroughputMeter
from bench.training.config_checks import check_config
from bench.training.epoch_log import EpochLine, output_is_terminal
from bench.training.lock import RunLock, RunLocked
from bench.training.resume import apply_retention, resume_checkpoint
from bench.models.cost import count_params, gmacs, inference_latency_ms
from bench.spec import RunSpec, resolve_spec
from bench.tasks import CLASSIFICATION, check_run_keys, task_kind
from bench.spec import instantiate as _instantiate
from bench.training.module import OPTIMIZERS, FractureClassifier

log = logging.getLogger(__name__)



def validate(cfg: DictConfig) -> None:
    """Settings that Hydra's struct mode cannot check: fail at start, naming the key."""
    if task_kind(cfg) != CLASSIFICATION:
        raise BenchError(f"data={cfg.data.name} model={cfg.model.name} is a detection run: start it with bench-train "
                         f"(bench.pipeline.run_pipeline hands it to bench.detection.run), not bench.training.run")
    check_config(cfg, VAL_METRICS)  # types and ranges of every value, callbacks' monitors included
    check_run_keys(cfg)
    if not isinstance(cfg.image_size, int) or not 32 <= cfg.image_size <= 2048:
        raise BenchError(f"image_size={cfg.image_size!r}: give an integer number of pixels between 32 and 2048")
    if cfg.monitor.metric not in VAL_METRICS:
        raise BenchError(f"monitor.metric={cfg.monitor.metric!r}: choose a validation metric, one of {', '.join(VAL_METRICS)} (test metrics never pick checkpoints)")
    if cfg.monitor.mode not in ("min", "max"):
        raise BenchError(f"monitor.mode={cfg.monitor.mode!r}: use 'min' or 'max'")
    if cfg.monitor.metric == "val/loss" and cfg.monitor.mode != "min":
        raise BenchError("monitor.mode must be 'min' when monitor.metric=val/loss")
    if str(cfg.optim.name).lower() not in OPTIMIZERS:
        raise BenchError(f"optim.name={cfg.optim.name!r} is not supported; use one of {', '.join(sorted(OPTIMIZERS))}")
    validate_operating_point(cfg.get("operating_point"))
    # Pretrained weights available (local file, cache, or an allowed download)? Before any data is read.
    from bench.models.pretrained import preflight

    preflight(cfg.model)


def _loggers(cfg: DictConfig, run_dir: Path, run_id: str, sweep: dict) -> list:
    loggers = []
    for name, node in (cfg.get("logger") or {}).items():
        if node is None or "_target_" not in node:
            continue
        target = node["_target_"]
        if target.endswith("WandbLogger"):
            # One W&B run per run id: a resumed run continues it (bench/evaluation/wandb_results.py).
            tags = list(dict.fromkeys([*(node.get("tags") or []), cfg.data.name, cfg.model.name, str(cfg.get("experiment_name") or "default")]))
            wandb_logger = _instantiate(node, "logger", name=run_id, save_dir=str(run_dir), group=sweep.get("id", run_id),
                                        id=wandb_run_id(run_id), resume="allow", tags=tags)
            # Lightning passes anonymous=None to wandb.init, which W&B warns about on every run
            # ("The anonymous setting has no effect"): not passed at all, nothing is lost.
            getattr(wandb_logger, "_wandb_init", {}).pop("anonymous", None)
            loggers.append(wandb_logger)  # its hyperparameters are logged once the run folder is locked
        elif target.endswith("CSVLogger"):
            loggers.append(_instantiate(node, "logger", save_dir=str(run_dir)))
        else:
            loggers.append(_instantiate(node, f"logger.{name}"))
    return loggers


def _finish_wandb(loggers: list) -> None:
    # Under multirun every job must close its own W&B run, or later jobs log into the first one.
    if any(type(lg).__name__ == "WandbLogger" for lg in loggers):
        import wandb

        wandb.finish()


def _predict(module: FractureClassifier, dm, split: str, trainer: L.Trainer) -> pd.DataFrame:
    loader = dm.dataloader(split)
    outputs = trainer.predict(module, dataloaders=loader)
    probs = torch.cat([o["probs"] for o in outputs]).numpy()
    labels = torch.cat([o["labels"] for o in outputs]).numpy()
    rows = torch.cat([o["rows"] for o in outputs]).numpy()
    table = dm.table.iloc[rows]
    df = pd.DataFrame({"image_id": table["image_id"].to_numpy(), "split": split, "label": labels, "pred": probs.argmax(1)})
    for c, name in enumerate(dm.classes):
        df[prob_column(name)] = probs[:, c]
    for col in ("study_id", "patient_id"):
        if col in table.columns:
            df[col] = table[col].to_numpy()
    if not (df["label"].to_numpy() == table["label"].to_numpy()).all():
        raise RuntimeError("prediction rows do not line up with the data table")
    return df


def _probs(df: pd.DataFrame, classes: list[str]) -> np.ndarray:
    return df[prob_columns(classes)].to_numpy()


def run(cfg: DictConfig) -> dict:
    """Train and evaluate one classification configuration; returns a summary with the validation
    objective. A detection config is bench.detection.run's (bench.pipeline dispatches by task kind)."""
    validate(cfg)  # every config value, before anything is written (bench.training.config_checks)
    _absolute_paths(cfg)
    use_cache_dir(cfg.paths.cache_dir)  # W&B logs / torch hub under the cache folder, never $HOME
    t_start = time.perf_counter()
    L.seed_everything(cfg.seed, workers=True)

    spec = resolve_spec(cfg)  # model entry, input size, normalisation, protocol: once, here
    dm = _instantiate(cfg.data, "data", **spec.data_kwargs())
    # The run id includes the dataset's fingerprint (the files read, after selection; hashed
    # without decoding): the same command on a copy of the data with other content is another run.
    if hasattr(dm, "compute_data_fingerprint"):
        dm.compute_data_fingerprint()
    data_fingerprint = getattr(dm, "data_fingerprint", None)
    run_id = run_id_for(cfg, data_fingerprint)
    run_dir = confined(cfg.paths.runs_dir, run_id, what="run folder")
    existing = read_record(run_dir)
    if existing is not None and cfg.resume:
        return _skip_complete(cfg, run_id, run_dir, existing)
    dm.prepare_data()
    dm.setup("fit")
    model = _instantiate(cfg.model, "model", num_classes=dm.num_classes)
    if cfg.accel.channels_last:
        model = model.to(memory_format=torch.channels_last)
    module = FractureClassifier(model, dm.classes, dm.positive_index, OmegaConf.to_container(cfg.optim, resolve=True),
                                dm.class_weights, channels_last=cfg.accel.channels_last)
    if cfg.accel.compile:
        module.compile_model()

    sweep = _sweep_info()
    ckpt_dir = confined(run_dir, "checkpoints", what="checkpoint folder")
    history = HistoryWriter(run_dir / "history.csv")
    meter = ThroughputMeter(run_started=t_start)
    callbacks = [history, meter, EpochSeeder(cfg.seed)]
    if not output_is_terminal():
        callbacks.append(EpochLine())  # a log file gets one line per epoch, not the bar's last frame
    ckpt_cb = None
    for name, node in (cfg.get("callbacks") or {}).items():
        if node is None or "_target_" not in node:
            continue
        if node["_target_"].endswith("ProgressBar") and not cfg.trainer.get("enable_progress_bar", True):
            continue  # Lightning refuses a progress-bar callback when bars are off
        if node["_target_"].endswith("ModelCheckpoint"):
            # last.ckpt is LastCheckpoint's (every epoch); Lightning's save_last follows top-k only.
            ckpt_cb = _instantiate(node, f"callbacks.{name}", dirpath=str(ckpt_dir), save_last=False)
            callbacks.append(ckpt_cb)
        else:
            callbacks.append(_instantiate(node, f"callbacks.{name}"))
    if ckpt_cb is None:
        raise BenchError("callbacks: a ModelCheckpoint is required (the run record keeps the best checkpoint); use callbacks=default")
    callbacks.append(LastCheckpoint(ckpt_dir))  # after ModelCheckpoint: Lightning keeps Checkpoint order
    loggers = _loggers(cfg, run_dir, run_id, sweep)  # lazy: W&B starts at log_hyperparams below
    trainer = _instantiate(cfg.trainer, "trainer", callbacks=callbacks, logger=loggers or False, default_root_dir=str(run_dir))

    # One writer per run folder (bench.training.lock); DDP's other ranks run under rank 0's lock.
    lock_cfg = OmegaConf.to_container(cfg.run_lock, resolve=True) if cfg.get("run_lock") else {}
    lock = RunLock(run_dir, **lock_cfg) if _launch_rank() == 0 else None
    created = not run_dir.exists()
    try:
        if lock is not None:
            lock.acquire()
    except RunLocked as busy:
        log.warning("%s", busy)
        return {"status": "skipped", "reason": str(busy), "run_id": run_id, "run_dir": str(run_dir), "objective": float("nan")}
    try:
        existing = read_record(run_dir)  # finished by another process while this one set up
        if existing is not None and cfg.resume:
            return _skip_complete(cfg, run_id, run_dir, existing)
        if not cfg.resume:
            for stale in ("record.json", "checkpoints/last.ckpt", "checkpoints/best.ckpt", "history.csv"):
                (run_dir / stale).unlink(missing_ok=True)
        resume_from = resume_checkpoint(run_dir) if cfg.resume else None
        for lg in loggers:
            if type(lg).__name__ == "WandbLogger":
                lg.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
        atomic_write_text(run_dir / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
        dm.write_split(run_dir / "split.csv")
        t_fit = time.perf_counter()
        # weights_only: last.ckpt is read as data (Lightning >= 2.5 takes the flag; torch's default otherwise)
        data_only = {"weights_only": True} if "weights_only" in inspect.signature(trainer.fit).parameters else {}
        trainer.fit(module, datamodule=dm, ckpt_path=resume_from, **data_only)
        # A resumed run's cost figures cover the whole run: the attempts before count up to their
        # last checkpoint (carried in it by ThroughputMeter).
        fit_s = time.perf_counter() - t_fit + meter.prior_fit_s
        t_start -= meter.prior_total_s
        if not trainer.is_global_zero:
            return {"status": "worker"}
        summary = _evaluate_and_record(cfg, run_id, run_dir, dm, module, trainer, ckpt_cb, meter, history,
                                       sweep, spec, resume_from, t_start, fit_s)
        log_results(loggers, summary["record"], run_dir)
        apply_retention(run_dir, cfg.get("retention", "keep_all"), summary["record"]["files"].get("best_checkpoint"))
    except BaseException:
        # A start that failed before it had anything to resume from leaves no folder behind.
        if created and lock is not None and not (run_dir / "checkpoints" / "last.ckpt").is_file():
            _finish_wandb(loggers)
            lock.release()
            shutil.rmtree(run_dir, ignore_errors=True)
        raise
    finally:
        _finish_wandb(loggers)
        if lock is not None:
            lock.release()
    return summary  # explain and the leaderboard follow in bench.pipeline, from the run folder


def _launch_rank() -> int:
    """Global rank of this process as set by the launcher (Lightning DDP, srun); 0 otherwise."""
    for key in ("RANK", "SLURM_PROCID", "LOCAL_RANK"):
        value = os.environ.get(key)
        if value not in (None, ""):
            try:
                if int(value) != 0:
                    return int(value)
            except ValueError:
                continue
    return 0


def _skip_complete(cfg: DictConfig, run_id: str, run_dir: Path, existing: dict) -> dict:
    log.info("run %s is complete: skipped (set resume=false to train it again)", run_id)
    apply_retention(run_dir, cfg.get("retention", "keep_all"), (existing.get("files") or {}).get("best_checkpoint"))
    return {"status": "skipped", "run_id": run_id, "run_dir": str(run_dir), "objective": _objective(existing, cfg)}


def _objective(record: dict, cfg: DictConfig) -> float:
    key = cfg.monitor.metric.split("/", 1)[1]
    value = record.get("metrics", {}).get("val", {}).get(key)
    return float("nan") if value is None else float(value)


def _evaluate_and_record(cfg, run_id, run_dir, dm, module, trainer, ckpt_cb, meter, history, sweep,
                         spec: RunSpec, resume_from, t_start, fit_s) -> dict:
    image_size = spec.input_size
    best_path = ckpt_cb.best_model_path or str(run_dir / "checkpoints" / "last.ckpt")
    if not Path(best_path).is_file():
        raise BenchError(f"{best_path}: no checkpoint was written; check monitor.metric={cfg.monitor.metric} is logged")
    state = load_checkpoint(best_path)  # data only: a crafted pickle is refused, never run
    module.load_state_dict(state["state_dict"])
    best_epoch = int(state.get("epoch", -1))
    # Evaluation on one device, whatever the training strategy (DDP gathers are not needed).
    eval_trainer = L.Trainer(accelerator="gpu" if module.device.type == "cuda" else "cpu", devices=1, precision=cfg.trainer.precision, logger=False, enable_progress_bar=False,
                             enable_model_summary=False, enable_checkpointing=False)
    t_test = time.perf_counter()
    preds = pd.concat([_predict(module, dm, s, eval_trainer) for s in ("val", "test")], ignore_index=True)
    test_s = time.perf_counter() - t_test
    classes = list(dm.classes)
    metrics = {}
    for split in ("val", "test"):
        part = preds[preds["split"] == split]
        metrics[split] = compute_metrics(_probs(part, classes), part["label"].to_numpy(), dm.positive_index, classes)
    files = {"config": "config.yaml", "split": "split.csv", "predictions": "predictions.csv", "history": "history.csv",
             "data_report": "data_report.json", "environment": "environment.json",
             "best_checkpoint": os.path.relpath(best_path, run_dir),
             "plots": {"roc": "plots/roc.png", "confusion_matrix": "plots/confusion_matrix.png",
                       "learning_curves": "plots/learning_curves.png"}}
    atomic_write_text(run_dir / "predictions.csv", preds.to_csv(index=False))
    test = preds[preds["split"] == "test"]
    if getattr(dm, "study_level", False):
        studies = aggregate_by_study(test, classes)
        metrics["test_study"] = compute_metrics(_probs(studies, classes), studies["label"].to_numpy(), dm.positive_index, classes)
        atomic_write_text(run_dir / "predictions_study.csv", studies.to_csv(index=False))
        files["predictions_study"] = "predictions_study.csv"
    plots = run_dir / "plots"
    plot_roc(_probs(test, classes), test["label"].to_numpy(), classes, dm.positive_index, plots / "roc.png", title=f"ROC (test) {run_id}")
    plot_confusion(metrics["test"]["confusion_matrix"], classes, plots / "confusion_matrix.png")
    hist_path = run_dir / "history.csv"
    hist = pd.read_csv(hist_path) if hist_path.is_file() else pd.DataFrame({"epoch": []})
    plot_learning_curves(hist, plots / "learning_curves.png", cfg.monitor.metric)
    op_cfg = OmegaConf.to_container(cfg.operating_point, resolve=True) if cfg.get("operating_point") else None
    extras = evaluate_extras(op_cfg, preds, metrics, dm, run_dir, title=f"Reliability (test) {run_id}")
    metrics.update(extras["metrics"])
    files["plots"].update(extras["plots"])
    atomic_write_json(run_dir / "data_report.json", dm.report)
    device = str(module.device)
    atomic_write_json(run_dir / "environment.json", _environment(cfg, device))

    net = module.model
    latency = inference_latency_ms(net, image_size, device=device) if cfg.measure_latency else None
    cam_layers = [name for name, _ in net.cam_layers()] if hasattr(net, "cam_layers") else []
    split_counts = dm.table["split"].value_counts().to_dict()
    split_cfg = OmegaConf.to_container(cfg.data.get("split"), resolve=True) if cfg.data.get("split") else {}
    record = {
        "run_id": run_id,
        "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "task": {"name": cfg.data.name, "dataset": cfg.data.dataset, "kind": "binary" if dm.num_classes == 2 else "multiclass",
                 "classes": classes, "positive_index": dm.positive_index, "study_level": bool(getattr(dm, "study_level", False))},
        "protocol": dict(spec.protocol),
        "model": {"name": cfg.model.name, "family": spec.model.family, "arch": spec.model.arch,
                  "paper_name": spec.model.paper_name, "pretrained": bool(cfg.model.get("pretrained", False)),
                  "params": count_params(net), "gmacs": gmacs(net, image_size), "input_size": image_size, "cam_layers": cam_layers},
        "seed": int(cfg.seed),
        "split": {"file": "split.csv", "sha256": dm.split_hash, "seed": int(cfg.split_seed), **split_cfg,
                  "counts": {k: int(split_counts.get(k, 0)) for k in ("train", "val", "test")}},
        "best": best_section(ckpt_cb, cfg.monitor.mode, best_epoch, hist),
        "operating_point": extras["operating_point"], "flags": extras["flags"], "subgroups": extras["subgroups"],
        "calibration": extras["calibration"],
        "epochs_run": int(len(history.rows)),
        "resumed_from": resume_from,
        "metrics": metrics,
        "cost": {"device": device, "precision": str(cfg.trainer.precision), "train_images_per_s": meter.images_per_s,
                 "train_images": meter.all_images, "inference_ms_per_image": latency,
                 "wall_s": {"total": time.perf_counter() - t_start, "fit": fit_s, "test": test_s}},
        "data": {"root": str(cfg.data.get("root")), "fingerprint": getattr(dm, "data_fingerprint", None),
                 "generated": bool(getattr(dm, "generated", cfg.data.get("generate_if_missing", False))),
                 "truncated": dm.report.get("truncated", []) if isinstance(dm.report, dict) else None},
        "files": files,
        "sweep": sweep,
        "tags": list(cfg.tags),
    }
    write_record(run_dir, record)
    log.info("run %s complete: test %s", run_id, {k: round(v, 4) for k, v in metrics["test"].items() if isinstance(v, float)})
    return {"status": "complete", "run_id": run_id, "run_dir": str(run_dir), "objective": _objective(record, cfg), "record": record}
