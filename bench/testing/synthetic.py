"""Synthetic run directories that follow ``docs/run_record.md`` exactly, for tests and benchmarks.

A generated run is indistinguishable (to readers of the contract) from a real one: same files,
same columns, ``record.json`` written last via ``bench.record.write_record``. Metrics in the
record are computed from the generated predictions with scikit-learn (so they agree with the
files), unless ``metrics`` overrides them.
"""

from __future__ import annotations

import hashlib
import io
import json
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from bench.record import prob_column, prob_columns, write_record

TASKS: dict[str, dict] = {
    "fracatlas_binary": {"name": "fracatlas_binary", "dataset": "fracatlas", "kind": "binary",
                         "classes": ["non_fractured", "fractured"], "positive_index": 1, "study_level": False},
    "fracatlas_region": {"name": "fracatlas_region", "dataset": "fracatlas", "kind": "multiclass",
                         "classes": ["hand", "hip", "leg", "mixed", "shoulder"], "positive_index": None,
                         "study_level": False},
    "mura_hand": {"name": "mura_hand", "dataset": "mura", "kind": "binary",
                  "classes": ["normal", "abnormal"], "positive_index": 1, "study_level": True},
}


@lru_cache(maxsize=16)
def _png(color: tuple[int, int, int], size: tuple[int, int] = (8, 6)) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="PNG")
    return buf.getvalue()


def _metrics(label: np.ndarray, pred: np.ndarray, prob: np.ndarray, task: dict) -> dict:
    from sklearn import metrics as skm

    k = prob.shape[1]
    out: dict = {"accuracy": float(skm.accuracy_score(label, pred)),
                 "kappa": float(skm.cohen_kappa_score(label, pred, labels=list(range(k)))),
                 "n": int(label.size),
                 "confusion_matrix": skm.confusion_matrix(label, pred, labels=list(range(k))).tolist()}
    if task["kind"] == "binary":
        p = task["positive_index"]
        out["precision"] = float(skm.precision_score(label, pred, pos_label=p, zero_division=0))
        out["recall"] = float(skm.recall_score(label, pred, pos_label=p, zero_division=0))
        out["specificity"] = float(skm.recall_score(label, pred, pos_label=1 - p, zero_division=0))
        out["f1"] = float(skm.f1_score(label, pred, pos_label=p, zero_division=0))
        out["auroc"] = float(skm.roc_auc_score(label == p, prob[:, p]))
    else:
        out["precision"] = float(skm.precision_score(label, pred, average="macro", zero_division=0))
        out["recall"] = float(skm.recall_score(label, pred, average="macro", zero_division=0))
        out["f1"] = float(skm.f1_score(label, pred, average="macro", zero_division=0))
        out["auroc"] = float(skm.roc_auc_score(label, prob, multi_class="ovr", average="macro",
                                               labels=list(range(k))))
        out["per_class_accuracy"] = {c: float(np.mean(pred[label == i] == i)) if np.any(label == i) else 0.0
                                     for i, c in enumerate(task["classes"])}
    out["loss"] = float(skm.log_loss(label, np.clip(prob, 1e-7, 1), labels=list(range(k))))
    return out


def _hash8(*parts) -> str:
    return hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:8]


def make_run(root: str | Path, task: str = "fracatlas_binary", model: str = "resnet18", seed: int = 0, *,
             skill: float = 1.0, metrics: dict | None = None, predictions: pd.DataFrame | None = None,
             n_images: int = 400, test_fraction: float = 0.25, split_seed: int = 0, experiment: str = "default",
             run_id: str | None = None, explain: dict | bool | None = None, cost: dict | None = None,
             params: int = 11_177_538, gmacs: float = 1.82, created_at: str = "2026-11-23T01:02:03+00:00",
             plots: bool = True, extra: dict | None = None) -> Path:
    """Write one complete run directory under ``root`` and return it.

    ``skill`` sets how well the generated probabilities separate the classes. ``predictions``
    (columns as in ``predictions.csv``: image_id, split, label, pred, prob_<class>...) replaces
    the generated ones. ``metrics`` overrides keys of ``metrics.test``. ``split_seed`` fixes the
    split (and its sha256): runs with the same ``split_seed`` and ``n_images`` share test images.
    ``explain``: True for a generated explain section and heatmap images, or a dict for
    ``record["explain"]``."""
    spec = TASKS[task]
    classes = spec["classes"]
    k = len(classes)
    protocol = {"experiment": experiment, "image_size": 224, "size_policy": "protocol", "balance": "none",
                "augment": "light", "epochs": 30, "batch_size": 32, "optimizer": "adam", "lr": 0.001,
                "monitor": "val/auroc"}
    run_id = run_id or f"{task}__{model}__s{seed}__{_hash8(task, model, seed, experiment, split_seed, n_images)}"
    run_dir = Path(root) / run_id
    (run_dir / "plots").mkdir(parents=True, exist_ok=True)
    (run_dir / "checkpoints").mkdir(exist_ok=True)

    srng = np.random.default_rng([split_seed, n_images])
    ids = np.array([f"IMG{i:07d}.jpg" for i in range(n_images)], dtype=object)
    labels = srng.integers(0, k, n_images)
    u = srng.random(n_images)
    split = np.where(u < test_fraction, "test", np.where(u < test_fraction + 0.15, "val", "train"))
    if spec["study_level"]:
        study = np.array([f"patient{i // 6:05d}/study{(i // 3) % 2 + 1}_{'positive' if labels[i - i % 3] else 'negative'}"
                          for i in range(n_images)], dtype=object)
        # one label and one split per study (3 images per study, 2 studies per patient)
        first = np.arange(n_images) - np.arange(n_images) % 3
        labels = labels[first]
        split = split[np.arange(n_images) - np.arange(n_images) % 6]
        patient = np.array([s.split("/")[0] for s in study], dtype=object)
        group = patient
    else:
        group = np.array([f"g{i:07d}" for i in range(n_images)], dtype=object)
        group[1::50] = group[0::50][: len(group[1::50])]  # a few duplicate groups, same side
        split[1::50] = split[0::50][: len(split[1::50])]
    split_df = pd.DataFrame({"image_id": ids, "split": split, "group": group})
    split_bytes = split_df.to_csv(index=False, lineterminator="\n").encode()
    (run_dir / "split.csv").write_bytes(split_bytes)

    if predictions is None:
        mrng = np.random.default_rng([seed, int(_hash8(model, experiment), 16)])
        ev = ~np.isin(split, ["train"])
        lab = labels[ev]
        logits = mrng.normal(0.0, 1.0, (lab.size, k))
        logits[np.arange(lab.size), lab] += skill
        prob = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        prob = np.round(prob, 6)
        prob[:, -1] = np.round(1.0 - prob[:, :-1].sum(axis=1), 6)
        predictions = pd.DataFrame({"image_id": ids[ev], "split": split[ev], "label": lab,
                                    "pred": prob.argmax(axis=1)})
        for i, c in enumerate(classes):
            predictions[prob_column(c)] = prob[:, i]
        if spec["study_level"]:
            predictions["study_id"] = study[ev]
            predictions["patient_id"] = patient[ev]
    predictions = predictions.reset_index(drop=True)
    predictions.to_csv(run_dir / "predictions.csv", index=False, lineterminator="\n")
    prob_cols = prob_columns(classes)

    def split_metrics(df: pd.DataFrame) -> dict:
        return _metrics(df["label"].to_numpy(), df["pred"].to_numpy(), df[prob_cols].to_numpy(), spec)

    test = predictions[predictions["split"] == "test"]
    val = predictions[predictions["split"] == "val"]
    record_metrics = {"val": split_metrics(val), "test": split_metrics(test)}
    if spec["study_level"]:
        st = test.groupby(["study_id", "patient_id"], sort=True)[prob_cols + ["label"]].mean().reset_index()
        st["label"] = st["label"].round().astype(int)
        st["pred"] = st[prob_cols].to_numpy().argmax(axis=1)
        st = st[["study_id", "patient_id", "label", "pred"] + prob_cols]
        st.to_csv(run_dir / "predictions_study.csv", index=False, lineterminator="\n")
        record_metrics["test_study"] = split_metrics(st)
    if metrics:
        record_metrics["test"].update(metrics)

    epochs = 3
    hist = pd.DataFrame({"epoch": range(epochs), "train_loss": np.linspace(0.7, 0.4, epochs),
                         "val_loss": np.linspace(0.72, 0.5, epochs),
                         "val_auroc": np.linspace(0.6, record_metrics["val"]["auroc"], epochs)})
    hist.to_csv(run_dir / "history.csv", index=False, lineterminator="\n")
    (run_dir / "config.yaml").write_text(
        f"task: {task}\nmodel:\n  name: {json.dumps(model)}\nseed: {seed}\nexperiment: {json.dumps(experiment)}\n",
        encoding="utf-8")
    (run_dir / "data_report.json").write_text(json.dumps({"counts": {"total": n_images}}), encoding="utf-8")
    (run_dir / "environment.json").write_text(json.dumps({"python": "3", "hostname": "synthetic"}), encoding="utf-8")
    for ck in ("best.ckpt", "last.ckpt"):
        (run_dir / "checkpoints" / ck).write_bytes(b"synthetic checkpoint placeholder\n")
    plot_files = {}
    if plots:
        for name, color in (("roc", (200, 30, 30)), ("confusion_matrix", (30, 200, 30)),
                            ("learning_curves", (30, 30, 200))):
            (run_dir / "plots" / f"{name}.png").write_bytes(_png(color))
            plot_files[name] = f"plots/{name}.png"

    counts = {s: int((split == s).sum()) for s in ("train", "val", "test")}
    record = {
        "run_id": run_id,
        "created_at": created_at,
        "task": dict(spec),
        "protocol": protocol,
        "model": {"name": model, "family": "timm", "arch": model, "pretrained": False, "params": params,
                  "gmacs": gmacs, "input_size": 224, "cam_layers": ["layer3", "layer4"]},
        "seed": seed,
        "split": {"file": "split.csv", "sha256": hashlib.sha256(split_bytes).hexdigest(), "method": "ratio",
                  "ratios": [0.6, 0.15, 0.25], "counts": counts},
        "best": {"monitor": "val/auroc", "mode": "max", "epoch": epochs - 1, "score": record_metrics["val"]["auroc"]},
        "metrics": record_metrics,
        "cost": cost or {"device": "cpu", "precision": "32-true", "train_images_per_s": 40.0,
                         "inference_ms_per_image": 5.0, "wall_s": {"total": 100.0, "fit": 90.0, "test": 5.0}},
        "files": {"config": "config.yaml", "split": "split.csv", "predictions": "predictions.csv",
                  "history": "history.csv", "data_report": "data_report.json",
                  "environment": "environment.json", "best_checkpoint": "checkpoints/best.ckpt",
                  "plots": plot_files},
        "sweep": {"id": "synthetic", "job": 0},
        "tags": ["synthetic"],
    }
    if spec["study_level"]:
        record["files"]["predictions_study"] = "predictions_study.csv"
    if explain is True:
        (run_dir / "explain" / "gradcam").mkdir(parents=True, exist_ok=True)
        for layer, color in (("layer3", (250, 200, 0)), ("layer4", (250, 100, 0))):
            (run_dir / "explain" / "gradcam" / f"grid_{layer}.png").write_bytes(_png(color, (12, 8)))
        # The shape bench.explain writes: the final layer's scores per method.
        explain = {"version": 1, "methods": ["gradcam"], "layers": ["layer3", "layer4"],
                   "summary": {"gradcam": {"pointing_game": 0.62, "energy": 0.35, "iou": None, "n": 8,
                                           "final_layer": "layer4"}}}
    if isinstance(explain, dict):
        record["explain"] = explain
    if extra:
        record.update(extra)
    write_record(run_dir, record)
    return run_dir
