"""The run record: the one contract between training and everything that reads its results.

The record is defined here, as typed sections (pydantic models), and nowhere else: writers build
it, :func:`write_record` validates it and writes it atomically, readers get it back validated
(:func:`load_record`, or :func:`read_record` where a missing run is not an error). Unknown keys
are kept, not dropped, so a record written by a newer stage survives a read-modify-write by an
older one. Records of an older schema version are read through :func:`upgrade_record`.

A run directory is complete when ``record.json`` exists in it with ``"status": "complete"``.
``record.json`` is always written last and atomically (temp file + ``os.replace``), so a crashed
or killed run never looks complete. Prose and examples: ``docs/run_record.md`` (checked against
this module by ``tests/test_record.py``).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from bench.errors import BenchError

SCHEMA_VERSION = 2
RECORD_FILE = "record.json"
TASK_KINDS = ("binary", "multiclass", "detection")
DETECTION_METRICS = ("precision", "recall", "map50", "map50_95")
_UMASK = os.umask(0)
os.umask(_UMASK)


# --------------------------------------------------------------------------- atomic writes


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` so readers see the old file or the new one, never half of it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp makes 0600 files; records on shared storage must be readable like any other file.
        os.fchmod(fd, 0o666 & ~_UMASK)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def _json_default(obj: Any) -> Any:
    # numpy scalars/arrays and paths appear in metrics and configs.
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


# --------------------------------------------------------------------------- run folder files


def prob_column(class_name: str) -> str:
    """The ``predictions.csv`` column of one class's probability."""
    return f"prob_{class_name}"


def prob_columns(classes: list[str]) -> list[str]:
    """The probability columns of ``predictions.csv``, in class-index order."""
    return [prob_column(c) for c in classes]


# --------------------------------------------------------------------------- the record


class Section(BaseModel):
    """A record section: the keys readers rely on are typed; any other key is kept as written."""

    model_config = ConfigDict(extra="allow", protected_namespaces=())


class Task(Section):
    name: str = Field(min_length=1)
    dataset: str | None = None
    kind: Literal["binary", "multiclass", "detection"] = "binary"
    classes: list[str] = []
    positive_index: int | None = None
    study_level: bool = False


class ModelInfo(Section):
    name: str = Field(min_length=1)
    family: str | None = None
    arch: str | None = None
    paper_name: str | None = None
    pretrained: bool = False
    params: int | None = None
    gmacs: float | None = None
    input_size: int | None = None
    cam_layers: list[str] = []


class SplitInfo(Section):
    file: str = "split.csv"
    sha256: str | None = None
    seed: int | None = None
    counts: dict[str, int] = {}


class Best(Section):
    monitor: str | None = None
    mode: Literal["min", "max"] | None = None
    epoch: int | None = None
    score: float | None = None
    tie_break: Any = None


class MetricSet(Section):
    """Metrics of one split. Classification and detection share the record; new metric keys
    (numbers, or ``{class: number}``) are kept as extra keys."""

    n: int | None = None
    loss: float | None = None
    accuracy: float | None = None
    precision: float | None = None
    recall: float | None = None
    specificity: float | None = None
    f1: float | None = None
    auroc: float | None = None
    kappa: float | None = None
    confusion_matrix: list[list[int]] | None = None
    per_class_accuracy: dict[str, float | None] | None = None  # None: class absent from the labels
    map50: float | None = None
    map50_95: float | None = None


class Metrics(Section):
    val: MetricSet | None = None
    test: MetricSet | None = None
    test_study: MetricSet | None = None
    test_operating: MetricSet | None = None
    test_study_operating: MetricSet | None = None


class Cost(Section):
    device: str | None = None
    precision: str | None = None
    train_images_per_s: float | None = None
    train_images: int | None = None
    inference_ms_per_image: float | None = None
    wall_s: dict[str, float | None] = {}


class DataInfo(Section):
    root: str | None = None
    truncated: list[str] | None = None
    fingerprint: str | None = None
    generated: Any = None


class ExplainSummary(Section):
    """Final-layer localisation scores of one CAM method (as ``bench.explain`` writes them)."""

    pointing_game: float | None = None
    energy: float | None = None
    iou: float | None = None
    n: int | None = None
    final_layer: str | None = None
    skipped: str | None = None


class Explain(Section):
    version: int | None = None
    methods: list[str] = []
    layers: list[str] = []
    summary: dict[str, ExplainSummary] = {}
    human_rating: Any = None


class Record(Section):
    """``record.json`` of a complete run (schema version :data:`SCHEMA_VERSION`)."""

    schema_version: int = SCHEMA_VERSION
    status: Literal["complete"] = "complete"
    run_id: str = Field(min_length=1)
    created_at: str | None = None
    task: Task
    protocol: dict[str, Any] = {}
    model: ModelInfo
    seed: int | None = None
    split: SplitInfo | None = None
    best: Best | None = None
    epochs_run: int | None = None
    resumed_from: str | None = None
    metrics: Metrics = Metrics()
    operating_point: dict[str, Any] | None = None
    flags: list[str] = []
    subgroups: Any = None
    cost: Cost | None = None
    data: DataInfo | None = None
    files: dict[str, Any] = {}
    sweep: dict[str, Any] = {}
    tags: list[str | int] = []
    explain: Explain | None = None

    @model_validator(mode="after")
    def _detection_has_detection_metrics(self) -> Record:
        if self.task.kind == "detection" and self.metrics.test is not None:
            missing = [k for k in DETECTION_METRICS if getattr(self.metrics.test, k) is None]
            if missing:
                raise ValueError(f"task.kind=detection but metrics.test has no {', '.join(missing)}")
        return self

    def to_dict(self) -> dict:
        """The record as JSON-ready plain data: the keys that were given, unknown ones included."""
        return self.model_dump(exclude_unset=True)


# --------------------------------------------------------------------------- reading


def upgrade_record(obj: dict) -> dict:
    """A record of an older schema version, in the current shape (the one place that knows the
    old shapes; readers never see them). Version 1 (records written before this module typed the
    record) had the same sections; ``task.kind`` could be missing and synthetic runs wrote
    explain scores as ``{layer: score}`` where ``bench.explain`` writes the final layer's score."""
    obj = dict(obj)
    version = obj.get("schema_version", 1)
    if version == 1:
        task = obj.get("task")
        if isinstance(task, dict) and "kind" not in task:
            obj["task"] = {**task, "kind": "binary" if len(task.get("classes") or [0, 1]) == 2 else "multiclass"}
        explain = obj.get("explain")
        if isinstance(explain, dict) and isinstance(explain.get("summary"), dict):
            cam_layers = (obj.get("model") or {}).get("cam_layers") or []
            obj["explain"] = {**explain, "summary": {m: _upgrade_explain_summary(s, cam_layers)
                                                     for m, s in explain["summary"].items()}}
        obj["schema_version"] = SCHEMA_VERSION
    return obj


def _upgrade_explain_summary(entry: Any, cam_layers: list) -> Any:
    if not isinstance(entry, dict):
        return entry
    final = entry.get("final_layer") or (cam_layers[-1] if cam_layers else None)
    out = dict(entry)
    for score in ("pointing_game", "energy", "iou"):
        value = entry.get(score)
        if isinstance(value, dict) and value:
            out[score] = value.get(final, value[list(value)[-1]])  # dict order = layer order
            out.setdefault("final_layer", final if final in value else list(value)[-1])
    return out


def parse_record(obj: Any, source: str | os.PathLike = RECORD_FILE) -> Record:
    """Validate a parsed ``record.json`` (any schema version up to ours) into a :class:`Record`.
    A bad record raises one line naming the file, the key and what is wrong."""
    if not isinstance(obj, dict):
        raise BenchError(f"{source}: not a run record (a JSON object is expected, got {type(obj).__name__})")
    version = obj.get("schema_version", 1)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise BenchError(f"{source}: schema_version={version!r} is not a record schema version")
    if version > SCHEMA_VERSION:
        raise BenchError(f"{source}: schema_version {version} is newer than this bench ({SCHEMA_VERSION}); upgrade fracture-bench to read it")
    try:
        return Record.model_validate(upgrade_record(obj))
    except ValidationError as exc:
        raise BenchError(f"{source}: invalid run record: {_first_error(exc)} (schema: docs/run_record.md)") from None


def _first_error(exc: ValidationError) -> str:
    errors = exc.errors()
    err = errors[0]
    where = ".".join(str(p) for p in err["loc"]) or "record"
    more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{where}: {err['msg']}{more}"


def _read_json(path: Path) -> Any:
    """The parsed file, or None when it is missing or not JSON (a run being written or killed)."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    # OSError: missing, a folder, unreadable; RecursionError: absurdly nested JSON (fuzzed).
    except (OSError, json.JSONDecodeError, UnicodeDecodeError, RecursionError):
        return None


def load_record(run_dir: str | os.PathLike) -> Record:
    """The validated record of a complete run; a missing, incomplete or bad one is a BenchError."""
    path = Path(run_dir) / RECORD_FILE
    obj = _read_json(path)
    if not isinstance(obj, dict) or obj.get("status") != "complete":
        raise BenchError(f"{run_dir}: no complete run record ({RECORD_FILE} missing, corrupt or not 'complete'); "
                         "train it first or pick a finished run")
    return parse_record(obj, path)


def read_record(run_dir: str | os.PathLike) -> dict | None:
    """The validated record of a complete run as plain data, or None when the run is missing,
    incomplete or its file corrupt (for callers where that is not an error: resume, sweeps).
    A complete record of a bad shape raises (see :func:`parse_record`)."""
    path = Path(run_dir) / RECORD_FILE
    obj = _read_json(path)
    if not isinstance(obj, dict) or obj.get("status") != "complete":
        return None
    return parse_record(obj, path).to_dict()


# --------------------------------------------------------------------------- writing


def write_record(run_dir: str | os.PathLike, record: Record | dict) -> Path:
    """Validate and mark a run complete: call this after every other file of the run is in place."""
    path = Path(run_dir) / RECORD_FILE
    if isinstance(record, Record):
        record = record.to_dict()
    data = {**record, "schema_version": SCHEMA_VERSION, "status": "complete"}
    try:
        Record.model_validate(data)
    except ValidationError as exc:
        raise BenchError(f"{path}: refusing to write an invalid run record: {_first_error(exc)}") from None
    # The dict as given (not the model's dump): writers' numbers and key order reach the file as
    # they were, NaN included (pydantic's JSON mode would turn NaN into null).
    atomic_write_json(path, data)
    return path


def update_record(run_dir: str | os.PathLike, **sections: Any) -> dict:
    """Add or replace top-level sections of a complete record (e.g. ``explain``), atomically."""
    record = read_record(run_dir)
    if record is None:
        raise BenchError(f"{Path(run_dir) / RECORD_FILE}: no complete run record here")
    record.update(sections)
    write_record(run_dir, record)
    return record


# --------------------------------------------------------------------------- the docs' field table


def field_table() -> str:
    """The Markdown table of every typed key, in ``docs/run_record.md`` (kept equal by a test):
    ``python -c "import bench.record as r; print(r.field_table())"``."""
    rows = ["| key | type |", "| --- | --- |"]
    shared = {MetricSet: "metrics.<split>", ExplainSummary: "explain.summary.<method>"}
    done: set[type] = set()

    def walk(model: type[BaseModel], prefix: str) -> None:
        for name, info in model.model_fields.items():
            path = f"{prefix}{name}"
            nested = _nested_model(info.annotation)
            rows.append(f"| `{path}` | {_type_name(info.annotation, info.is_required())} |")
            if nested is not None and nested not in done:
                done.add(nested)
                walk(nested, f"{shared.get(nested, path)}.")

    walk(Record, "")
    return "\n".join(rows)


def _nested_model(annotation: Any) -> type[BaseModel] | None:
    import typing

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _nested_model(arg)
        if found is not None:
            return found
    return None


_JSON_NAMES = {str: "string", int: "integer", float: "number", bool: "boolean", type(None): "null"}


def _type_name(annotation: Any, required: bool = False) -> str:
    """``int | None`` -> ``integer or null``: the JSON types a reader of the file sees."""
    import types
    import typing

    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation is Any:
        text = "any"
    elif origin in (typing.Union, types.UnionType):
        text = " or ".join(_type_name(a) for a in args)
    elif origin is Literal:
        text = "one of " + ", ".join(f"`{a}`" for a in args)
    elif origin is list:
        text = f"list of {_type_name(args[0])}"
    elif origin is dict:
        text = f"object of {_type_name(args[1])}"
    elif isinstance(annotation, type) and issubclass(annotation, BaseModel):
        text = "object"
    else:
        text = _JSON_NAMES.get(annotation, str(annotation))
    return f"{text}, **required**" if required else text
