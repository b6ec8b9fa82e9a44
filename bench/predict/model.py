"""A finished run, loaded for scoring new images: its model with the best checkpoint's weights
(read as data, ``weights_only=True``), classes, input size, normalisation, operating threshold
and the test performance recorded at that threshold. The run's dataset is not needed."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from bench.errors import BenchError, first_line
from bench.record import read_record

__all__ = ["RunForPredict", "load_for_predict", "operating_point", "test_performance", "best_cam_layer"]


@dataclass
class RunForPredict:
    run_dir: Path
    record: dict
    model: torch.nn.Module
    classes: list[str]
    positive_index: int | None
    kind: str  # binary | multiclass
    image_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    truncated: str
    precision: str
    channels_last: bool
    device: str
    threshold: float | None
    threshold_rule: str
    threshold_source: str  # "record" or why the default applies
    performance: dict = field(default_factory=dict)

    @property
    def run_id(self) -> str:
        return str(self.record.get("run_id"))

    @property
    def model_name(self) -> str:
        m = self.record.get("model") or {}
        return str(m.get("paper_name") or m.get("name") or "?")


def _num(v) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) else f


def operating_point(record: dict) -> tuple[float, str, str]:
    """(threshold, rule, source): the record's ``operating_point``, else 0.5 (and say so)."""
    op = record.get("operating_point")
    if isinstance(op, dict) and _num(op.get("threshold")) is not None:
        rule = str(op.get("rule") or "recorded")
        if op.get("target_sensitivity") is not None:
            rule += f" {float(op['target_sensitivity']):g}"
        return float(op["threshold"]), f"{rule}, chosen on {op.get('split', 'val')}", "record"
    if isinstance(op, dict) and op.get("note"):
        return 0.5, "default 0.5", f"the run's operating point is undefined ({op['note']}): threshold 0.5 is used"
    return 0.5, "default 0.5", "the run records no operating_point: threshold 0.5 is used"


def _ci(m: dict, *keys: str):
    """A CI in the shapes a metrics section may use: ``ci: {key: {low, high}}`` (bench.evaluation.
    operating), ``ci: {key: [lo, hi]}``, ``key_ci: [lo, hi]`` or ``key: {value, ci}``."""
    ci = m.get("ci") if isinstance(m.get("ci"), dict) else {}
    for key in keys:
        for cand in (ci.get(key), m.get(f"{key}_ci"), (m.get(key) or {}).get("ci") if isinstance(m.get(key), dict) else None):
            if isinstance(cand, (list, tuple)) and len(cand) == 2:
                return [_num(cand[0]), _num(cand[1])], None
            if isinstance(cand, dict):
                lo, hi = cand.get("low", cand.get("lo")), cand.get("high", cand.get("hi"))
                if lo is not None and hi is not None:
                    return [_num(lo), _num(hi)], cand.get("method")
    return None, None


def _value(m: dict, *keys: str):
    for key in keys:
        v = m.get(key)
        if isinstance(v, dict):
            v = v.get("value", v.get("estimate"))
        if _num(v) is not None:
            return _num(v)
    return None


def test_performance(record: dict, source: str) -> dict:
    """Sensitivity and specificity on the run's test split at the threshold used, with CIs
    where the record has them (``metrics.test_operating``); at 0.5, ``metrics.test``."""
    metrics = record.get("metrics") or {}
    if source == "record" and isinstance(metrics.get("test_operating"), dict):
        m, where = metrics["test_operating"], "metrics.test_operating"
    else:
        m, where = metrics.get("test") or {}, "metrics.test (threshold 0.5, argmax)"
    sens_ci, method = _ci(m, "sensitivity", "recall")
    spec_ci, method2 = _ci(m, "specificity")
    return {"source": where, "sensitivity": _value(m, "sensitivity", "recall"), "sensitivity_ci": sens_ci,
            "specificity": _value(m, "specificity"), "specificity_ci": spec_ci, "n": m.get("n"),
            "ci_method": method or method2}


def best_cam_layer(record: dict, method: str) -> tuple[str | None, str]:
    """The layer the run's explain results rank best for ``method`` (mean pointing game, then
    energy), or (None, why) when there are none."""
    ex = record.get("explain") or {}
    per_layer = ((ex.get("localisation") or {}).get("per_layer") or {}).get(method)
    if not per_layer:
        return None, f"no explain localisation scores for {method} in the record: final layer"
    scored = [(name, _num(s.get("pointing_game")), _num(s.get("energy"))) for name, s in per_layer.items()
              if isinstance(s, dict) and s.get("n")]
    scored = [t for t in scored if t[1] is not None]
    if not scored:
        return None, f"explain scored no layer for {method}: final layer"
    order = {n: i for i, n in enumerate(per_layer)}
    # Highest pointing game, then energy; the later (deeper) layer on a tie.
    name, pg, en = max(scored, key=lambda t: (t[1], t[2] if t[2] is not None else -1.0, order[t[0]]))
    return name, f"best of the run's explain results ({method}: pointing game {pg:.2f}, energy {en if en is None else round(en, 3)})"


def _checkpoint_state(path: Path) -> dict:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise BenchError(f"{path}: cannot load the checkpoint as data ({type(exc).__name__}: "
                         f"{first_line(exc)}): re-train the run") from None
    sd = state.get("state_dict", state) if isinstance(state, dict) else None
    if not isinstance(sd, dict):
        raise BenchError(f"{path}: not a Lightning checkpoint with a state_dict: re-train the run")
    return sd


def load_for_predict(run_dir, device: str | None = None) -> RunForPredict:
    """Everything needed to score images with ``run_dir``'s model; a BenchError for a run that
    is not complete or not a classification run."""
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise BenchError(f"{run_dir}: not a run folder (no such directory)")
    record = read_record(run_dir)
    if record is None:
        raise BenchError(f"{run_dir}: no complete run record (record.json missing, corrupt or not 'complete'): "
                         "train the run to the end or pick a finished run")
    task = record.get("task") or {}
    kind = task.get("kind")
    if kind not in ("binary", "multiclass"):
        raise BenchError(f"{run_dir}: a {kind} run (task.kind={kind}): bench-predict scores classification runs "
                         "(binary or multiclass)")
    classes = list(task.get("classes") or [])
    if len(classes) < 2:
        raise BenchError(f"{run_dir}/record.json: task.classes={classes}: the record is incomplete")
    cfg_path = run_dir / "config.yaml"
    if not cfg_path.is_file():
        raise BenchError(f"{cfg_path}: missing; the run folder is incomplete (copy the whole run folder)")
    ckpt = run_dir / (record.get("files") or {}).get("best_checkpoint", "checkpoints/best.ckpt")
    if not ckpt.resolve().is_relative_to(run_dir.resolve()):
        raise BenchError(f"{run_dir}/record.json: files.best_checkpoint={ckpt} is outside the run folder")
    if not ckpt.is_file():
        raise BenchError(f"{ckpt}: the run's best checkpoint is missing; the run folder is incomplete")
    cfg = OmegaConf.load(cfg_path)
    image_size = int((record.get("model") or {}).get("input_size") or (record.get("protocol") or {}).get("image_size") or 0)
    if image_size < 1:
        raise BenchError(f"{run_dir}/record.json: model.input_size is missing: the record is incomplete")
    try:
        # The checkpoint holds every weight: no pretrained file is read (or needed) again.
        model = instantiate(cfg.model, num_classes=len(classes), pretrained=False, weights=None)
    except BenchError:
        raise
    except Exception as exc:
        raise BenchError(f"{cfg_path}: cannot build model {cfg.model.get('name')!r} "
                         f"({type(exc).__name__}: {first_line(exc)})") from None
    sd = _checkpoint_state(ckpt)
    weights = {k[len("model."):]: v for k, v in sd.items() if k.startswith("model.")}
    try:
        model.load_state_dict(weights or sd, strict=True)
    except RuntimeError as exc:
        raise BenchError(f"{ckpt}: weights do not fit model {cfg.model.get('name')!r} "
                         f"({first_line(exc)}): the checkpoint belongs to another model") from None
    channels_last = bool((cfg.get("accel") or {}).get("channels_last", False))
    if device is None:
        recorded = str((record.get("cost") or {}).get("device") or "cpu")
        device = recorded if (not recorded.startswith("cuda") or torch.cuda.is_available()) else "cpu"
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise BenchError(f"--device {device}: CUDA is not available here; use --device cpu")
    model = model.eval().to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    threshold, rule, source = operating_point(record) if kind == "binary" else (None, "argmax", "multiclass: argmax")
    mean = tuple(getattr(model, "mean", None) or (0.485, 0.456, 0.406))
    std = tuple(getattr(model, "std", None) or (0.229, 0.224, 0.225))
    return RunForPredict(
        run_dir=run_dir, record=record, model=model, classes=classes,
        positive_index=task.get("positive_index") if kind == "binary" else None, kind=kind,
        image_size=image_size, mean=mean, std=std,
        truncated=str((cfg.get("data") or {}).get("truncated", "load")),
        precision=str((cfg.get("trainer") or {}).get("precision", "32")), channels_last=channels_last,
        device=str(device), threshold=threshold, threshold_rule=rule, threshold_source=source,
        performance=test_performance(record, source) if kind == "binary" else {},
    )


def describe(run: RunForPredict) -> dict[str, Any]:
    return {"run_id": run.run_id, "model": run.model_name, "task": (run.record.get("task") or {}).get("name"),
            "classes": run.classes, "threshold": run.threshold, "threshold_rule": run.threshold_rule,
            "image_size": run.image_size, "device": run.device}
