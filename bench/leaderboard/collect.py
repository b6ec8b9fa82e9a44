"""Collect run records (``docs/run_record.md``) into one table, one row per complete run.

Only ``record.json`` is read here (plus the prediction files later, for statistics). Runs may
sit directly in a ``bench_runs/`` folder or one or two levels below the folders given (several
``bench_runs/`` copied together from cluster nodes). Incomplete, corrupt and duplicate runs are
skipped and listed, never fatal.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import io
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from bench.errors import BenchError
from bench.record import RECORD_FILE, atomic_write_bytes

CACHE_FILE = ".leaderboard_cache.json"
CACHE_VERSION = 3  # 3: explain_meta carries the localisation chance baseline
# Files that only a run directory holds: a folder with one of them but no complete record.json
# is an incomplete run (crashed, killed or still running), not a container of runs.
RUN_MARKERS = (RECORD_FILE, "config.yaml", "split.csv", "predictions.csv", "history.csv", "checkpoints")
SPLITS = ("test", "val", "test_study")
COST_FIELDS = {"params": ("model", "params"), "gmacs": ("model", "gmacs"),
               "train_images_per_s": ("cost", "train_images_per_s"),
               "latency_ms": ("cost", "inference_ms_per_image"), "wall_s": ("cost", "wall_s", "total"),
               "device": ("cost", "device"), "precision_mode": ("cost", "precision")}
PROTOCOL_FIELDS = ("experiment", "image_size", "size_policy", "balance", "augment", "epochs",
                   "batch_size", "optimizer", "lr", "monitor")
EXPLAIN_SCORES = ("pointing_game", "energy", "iou")  # as bench.explain writes them


@dataclass
class Collection:
    runs: pd.DataFrame
    skipped: list[dict] = field(default_factory=list)  # {"path", "reason"}
    duplicates: list[dict] = field(default_factory=list)  # {"run_id", "path", "kept"}
    parsed: int = 0  # records parsed this time (not from the cache)
    cached: int = 0  # rows taken from the cache


# --------------------------------------------------------------------------- discovery


def _is_run_dir(names: set[str]) -> bool:
    return any(m in names for m in RUN_MARKERS)


def find_run_dirs(roots: list[str | os.PathLike], max_depth: int = 3) -> list[tuple[str, Path, list[int] | None]]:
    """Run directories under each root: the root itself, or up to ``max_depth`` levels below it.

    Returns ``(display_path, absolute_path, record_stat_key)`` triples, sorted; ``display_path``
    is the root as given joined with the relative path (outputs stay the same wherever the tree is
    mounted); the stat key is None when there is no record.json."""
    found: list[tuple[str, Path, list[int] | None]] = []
    for root in roots:
        root_p = Path(root)
        if not root_p.is_dir():
            raise BenchError(f"--runs {root}: not a directory")

        def walk(p: str, depth: int, shown: str) -> None:
            # one stat finds a complete-looking run without listing its folder (fast for 10k runs);
            # plain strings, not pathlib: this runs once per run folder
            key = stat_key(os.path.join(p, RECORD_FILE))
            if key is not None:
                found.append((shown, Path(p), key))
                return
            try:
                entries = list(os.scandir(p))
            except OSError:
                return
            names = {e.name for e in entries}
            if _is_run_dir(names):
                found.append((shown, Path(p), None))
                return
            if depth >= max_depth:
                return
            for e in sorted(entries, key=lambda e: e.name):
                if e.is_dir(follow_symlinks=True) and not e.name.startswith("."):
                    walk(e.path, depth + 1, f"{shown}/{e.name}")

        walk(os.path.abspath(root_p), 0, str(root).rstrip("/") or "/")
    return sorted(found, key=lambda f: (f[0], str(f[1])))


# --------------------------------------------------------------------------- one record -> row


def _get(d, *keys):
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            return None
        d = d[k]
    return d


def _num(x):
    if isinstance(x, bool) or x is None:
        return None
    if isinstance(x, (int, float)):
        return float(x) if math.isfinite(float(x)) else None
    return None


def explain_scores(record: dict) -> dict[str, float | None]:
    """Final-layer localisation scores per CAM method from ``record["explain"]["summary"]``:
    ``{method: {"pointing_game": x, "energy": y, "iou": z, "final_layer": name}}`` as
    bench.explain writes it (older shapes are upgraded by ``bench.record.upgrade_record``).
    The explain section is optional."""
    summary = _get(record, "explain", "summary")
    if not isinstance(summary, dict):
        return {}
    return {f"explain_{_slug_key(method)}_{score}": _num(entry[score])
            for method, entry in sorted(summary.items()) if isinstance(entry, dict)
            for score in EXPLAIN_SCORES if score in entry}


def explain_meta(record: dict) -> dict:
    """What a run page says about its heatmaps: CAM target, final layer, n and degenerate maps
    per method (``record["explain"]`` as bench-explain writes it; {} without one)."""
    ex = record.get("explain")
    if not isinstance(ex, dict):
        return {}
    summary = ex.get("summary") if isinstance(ex.get("summary"), dict) else {}
    loc = ex.get("localisation") if isinstance(ex.get("localisation"), dict) else {}
    degenerate = loc.get("degenerate_maps") if isinstance(loc.get("degenerate_maps"), dict) else {}
    methods = {}
    for m in sorted(summary):
        e = summary[m] if isinstance(summary[m], dict) else {}
        methods[m] = {"n": _num(e.get("n")), "final_layer": e.get("final_layer") if isinstance(e.get("final_layer"), str) else None,
                      "degenerate": _num(degenerate.get(m)), "skipped": e.get("skipped") if isinstance(e.get("skipped"), str) else None}
    layers = ex.get("layers") if isinstance(ex.get("layers"), list) else []
    chance = loc.get("chance") if isinstance(loc.get("chance"), dict) else {}  # absent before bench-explain recorded it
    return {"target": ex.get("target") if isinstance(ex.get("target"), str) else None,
            "n_images": _num(ex.get("n_images")), "layers": [str(x) for x in layers], "methods": methods,
            "iou_threshold": _num(loc.get("iou_threshold")), "iou_top_percent": _num(loc.get("iou_top_percent")),
            "chance": {k: _num(chance.get(k)) for k in ("energy", "pointing_game")}}


def _flags(record: dict) -> list:
    """``record["flags"]``; a record from before flags existed gets them derived from its metrics
    by the evaluation's own rule (bench.evaluation.flags), so an old degenerate run is not ranked."""
    if isinstance(record.get("flags"), list):
        return record["flags"]
    if _get(record, "task", "kind") == "detection":
        return []  # the rule is about classifiers (val AUROC, constant predictions)
    metrics = record.get("metrics")
    if not isinstance(metrics, dict):
        return []
    try:
        from bench.evaluation.flags import run_flags
    except ImportError:  # pragma: no cover - older harness
        return []
    try:
        return run_flags(metrics)
    except (TypeError, ValueError, KeyError):
        return []


def _read_json(path: str | os.PathLike) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            d = json.load(f)
    except (OSError, ValueError):
        return {}
    return d if isinstance(d, dict) else {}


def _is_generated(record: dict) -> bool:
    from bench.leaderboard.store import is_generated

    return is_generated(record)


def _slug_key(s: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in str(s).lower()).strip("_") or "method"


def protocol_key(protocol: dict | None) -> str:
    blob = json.dumps(protocol or {}, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:8]


def record_to_row(record: dict, display_path: str, abs_path: Path) -> dict:
    """Flatten one complete record into a row of scalars (JSON-serialisable, for the cache)."""
    task = record.get("task")
    if not isinstance(task, dict) or not task.get("name"):
        raise ValueError("no task.name")
    model = record.get("model") or {}
    if not isinstance(model, dict) or not model.get("name"):
        raise ValueError("no model.name")
    run_id = record.get("run_id")
    if not isinstance(run_id, str) or not run_id:
        raise ValueError("no run_id")
    protocol = record.get("protocol") if isinstance(record.get("protocol"), dict) else {}
    split = record.get("split") if isinstance(record.get("split"), dict) else {}
    counts = split.get("counts") if isinstance(split.get("counts"), dict) else {}
    seed = record.get("seed")
    row: dict = {
        "run_id": run_id,
        "task": str(task["name"]),
        "dataset": str(task.get("dataset") or ""),
        "task_kind": str(task.get("kind") or "binary"),
        "classes": json.dumps(task.get("classes") or []),
        "positive_index": int(task.get("positive_index", 1) if task.get("positive_index") is not None else 1),
        "study_level": bool(task.get("study_level", False)),
        "model": str(model["name"]),
        "model_family": str(model.get("family") or ""),
        "pretrained": bool(model.get("pretrained", False)),
        "input_size": _num(model.get("input_size")),
        "seed": int(seed) if isinstance(seed, (int, float)) and not isinstance(seed, bool) else None,
        "protocol_key": protocol_key(protocol),
        "protocol_json": json.dumps(protocol, sort_keys=True, default=str),
        "split_sha256": str(split.get("sha256") or ""),
        "split_method": str(split.get("method") or ""),
        "n_train": _num(counts.get("train")),
        "n_val": _num(counts.get("val")),
        "n_test": _num(counts.get("test")),
        "best_epoch": _num(_get(record, "best", "epoch")),
        "created_at": str(record.get("created_at") or ""),
        "sweep_id": str(_get(record, "sweep", "id") or ""),
        "tags": ",".join(sorted(str(t) for t in record.get("tags") or [] if isinstance(t, (str, int)))),
        "path": display_path,
        "abs_path": str(abs_path),
        "has_explain": isinstance(record.get("explain"), dict),
        "schema_version": _num(record.get("schema_version")),
        "generated": _is_generated(record),
        "imported": isinstance(record.get("imported"), dict),
        # H3's degenerate-model flags (e.g. constant_predictions): shown, never best
        "flags": ",".join(sorted(str(f) for f in _flags(record) if isinstance(f, (str, int)))),
        "stored_ci": json.dumps(record["leaderboard_ci"], sort_keys=True) if isinstance(record.get("leaderboard_ci"), dict) else "",
        "explain_meta": json.dumps(explain_meta(record), sort_keys=True),
        # for the reporting page (issue 12's operating point and subgroups), when the record has them
        "operating_point_json": json.dumps(record.get("operating_point"), sort_keys=True, default=str)
        if isinstance(record.get("operating_point"), dict) else "",
        "subgroups_json": json.dumps(record.get("subgroups"), sort_keys=True, default=str)
        if isinstance(record.get("subgroups"), (dict, list)) else "",
        "test_operating_json": json.dumps(_get(record, "metrics", "test_operating"), sort_keys=True, default=str)
        if isinstance(_get(record, "metrics", "test_operating"), dict) else "",
    }
    run_dir = str(abs_path)  # plain strings below: this runs once per record (10,000 in a cold render)
    meta = _read_json(os.path.join(run_dir, "meta.json"))
    row["git_commit"] = str(meta.get("git_commit") or "")
    row["harness_version"] = str(meta.get("harness_version") or "")
    for f in PROTOCOL_FIELDS:
        v = protocol.get(f)
        row[f"protocol_{f}"] = v if isinstance(v, (int, float, str)) and not isinstance(v, bool) else (None if v is None else str(v))
    metrics = record.get("metrics") if isinstance(record.get("metrics"), dict) else {}
    for sp in SPLITS:
        m = metrics.get(sp)
        if not isinstance(m, dict):
            continue
        for k in sorted(m):
            v = _num(m[k])
            if v is not None:
                row[f"{sp}_{k}"] = v
        cm = m.get("confusion_matrix")
        if isinstance(cm, list):
            row[f"{sp}_confusion_matrix"] = json.dumps(cm)
    for name, keys in COST_FIELDS.items():
        v = _get(record, *keys)
        row[name] = v if isinstance(v, str) else _num(v)
    row.update(explain_scores(record))
    plots = _get(record, "files", "plots")
    row["heatmap_files"] = json.dumps(_heatmap_files(run_dir))
    row["plots"] = json.dumps({str(k): str(v) for k, v in sorted(plots.items())} if isinstance(plots, dict) else {})
    return row


IMAGE_EXT = (".png", ".jpg", ".jpeg", ".svg", ".webp", ".gif")
MAX_HEATMAPS = 200


def _heatmap_files(run_dir: str | os.PathLike) -> list[str]:
    """Images under ``explain/`` (relative paths, sorted, at most MAX_HEATMAPS)."""
    run_dir = os.fspath(run_dir)
    root = os.path.join(run_dir, "explain")
    found = []
    for dirpath, dirnames, filenames in os.walk(root):  # nothing when there is no explain/
        dirnames.sort()
        rel = os.path.relpath(dirpath, run_dir).replace(os.sep, "/")
        found += [f"{rel}/{f}" for f in sorted(filenames) if f.lower().endswith(IMAGE_EXT)]
    return sorted(found)[:MAX_HEATMAPS]


# --------------------------------------------------------------------------- cache


def load_cache(path: Path | None) -> dict:
    if path is None or not path.is_file():
        return {"version": CACHE_VERSION, "records": {}, "ci": {}, "pairs": {}}
    try:
        cache = json.loads(path.read_text(encoding="utf-8"))
        if cache.get("version") != CACHE_VERSION:
            raise ValueError
    except (ValueError, OSError, AttributeError):
        return {"version": CACHE_VERSION, "records": {}, "ci": {}, "pairs": {}}
    for k in ("records", "ci", "pairs"):
        cache.setdefault(k, {})
    return cache


def save_cache(path: Path, cache: dict) -> None:
    # compact: the cache of 10,000 runs is tens of MB and indenting doubles the write time
    atomic_write_bytes(path, json.dumps(cache, separators=(",", ":"), allow_nan=False).encode("utf-8"))


def stat_key(path: str | os.PathLike) -> list[int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_mtime_ns, st.st_size]


# --------------------------------------------------------------------------- collect


def _dedupe_rank(row: dict):
    # Keep the most finished copy (explain section added), then the newest, then the first path.
    return (not row.get("has_explain"), _neg_str(row.get("created_at") or ""), row["path"])


def _neg_str(s: str) -> tuple:
    return tuple(-ord(c) for c in s) + (0,)


#: Records to parse before the work is spread over worker processes (forking costs ~50 ms).
PARALLEL_MIN_RECORDS = 1000


def parse_run(item: tuple[str, Path]) -> tuple[int, dict | None, str]:
    """``(parsed, row, reason)`` for one run folder: the row of a complete record, or None and
    why it is skipped; ``parsed`` is 1 when record.json was read as JSON."""
    shown, run_dir = item
    try:
        with open(os.path.join(run_dir, RECORD_FILE), encoding="utf-8") as f:
            record = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        return 0, None, f"corrupt record.json: {type(e).__name__} at char {getattr(e, 'pos', '?')}"
    except OSError as e:
        return 0, None, f"unreadable record.json: {e.strerror}"
    if not isinstance(record, dict):
        return 1, None, "corrupt record.json: not an object"
    if record.get("status") != "complete":
        return 1, None, f"incomplete: status={record.get('status')!r}"
    from bench.leaderboard.store import upgrade

    try:
        return 1, record_to_row(upgrade(record), shown, run_dir), ""
    except (ValueError, TypeError) as e:
        return 1, None, f"invalid record.json: {e}"


def collect(roots: list[str | os.PathLike], cache: dict | None = None, max_depth: int = 3) -> Collection:
    """All complete runs under ``roots`` as a DataFrame (one row per run_id, sorted by task,
    model, seed, run_id). ``cache`` (see :func:`load_cache`) is read and updated in place:
    rows of records whose (path, mtime_ns, size) did not change are not parsed again."""
    if not roots:
        raise BenchError("no run folders given (--runs DIR)")
    cache = cache if cache is not None else {"records": {}}
    records_cache = cache.setdefault("records", {})
    seen: set[str] = set()
    rows: list[dict] = []
    skipped: list[dict] = []
    parsed = cached = 0
    misses: list[tuple[str, Path, list[int], str]] = []  # (shown, run dir, stat key, cache key)
    for shown, run_dir, key in find_run_dirs(roots, max_depth=max_depth):
        if key is None:
            skipped.append({"path": shown, "reason": "incomplete: no record.json"})
            continue
        ck = str(run_dir / RECORD_FILE)
        hit = records_cache.get(ck)
        if hit and hit.get("key") == key and hit.get("path") == shown:
            rows.append({**hit["row"], "_record_key": key})
            seen.add(ck)
            cached += 1
        else:
            misses.append((shown, run_dir, key, ck))
    from bench.leaderboard.parallel import pmap

    # a cold collect of 10,000 records: ~2 s in one process, parsed in workers above this many
    for (shown, run_dir, key, ck), (was_parsed, row, reason) in zip(
            misses, pmap(parse_run, [(s_, d) for s_, d, _, _ in misses], parallel=len(misses) >= PARALLEL_MIN_RECORDS)):
        parsed += was_parsed
        if row is None:
            skipped.append({"path": shown, "reason": reason})
            continue
        records_cache[ck] = {"key": key, "path": shown, "row": row}
        seen.add(ck)
        rows.append({**row, "_record_key": key})
    for ck in [k for k in records_cache if k not in seen]:
        del records_cache[ck]  # runs that disappeared

    by_id: dict[str, list[dict]] = {}
    for r in rows:
        by_id.setdefault(r["run_id"], []).append(r)
    kept: list[dict] = []
    duplicates: list[dict] = []
    for rid in sorted(by_id):
        cands = sorted(by_id[rid], key=_dedupe_rank)
        kept.append(cands[0])
        for other in cands[1:]:
            duplicates.append({"run_id": rid, "path": other["path"], "kept": cands[0]["path"]})
    df = pd.DataFrame(kept)
    if not df.empty:
        df = df.sort_values(["task", "model", "protocol_key", "seed", "run_id"], na_position="last", kind="stable")
        df = df.reset_index(drop=True)
        df = df[sorted(df.columns, key=_column_order)]
    skipped.sort(key=lambda s: (s["path"], s["reason"]))
    return Collection(runs=df, skipped=skipped, duplicates=duplicates, parsed=parsed, cached=cached)


_FIRST = ["task", "model", "seed", "run_id", "dataset", "task_kind", "protocol_key", "protocol_experiment",
          "split_sha256"]


def _column_order(c: str):
    if c in _FIRST:
        return (0, _FIRST.index(c), c)
    for i, p in enumerate(("protocol_", "test_study_", "test_", "val_", "n_", "explain_")):
        if c.startswith(p):
            return (1 + i, 0, c)
    return (9, 0, c)


def _read_columns(path: Path, shown: str) -> dict[str, list[str]]:
    """A CSV as ``{column: [str, ...]}``. Not pandas: ``pd.read_csv`` costs about 1 ms per call
    whatever the size, which was 12 of the 14 s that the statistics of 10,000 stored runs took.
    A file without a quote character or a bare carriage return is split on commas and newlines
    (no field can then hold either, so that is the CSV parse, at half the stdlib reader's cost);
    any other goes through the stdlib reader."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        raise BenchError(f"{shown}: missing (needed for confidence intervals)") from None
    except UnicodeDecodeError as e:
        raise BenchError(f"{shown}: unreadable CSV ({type(e).__name__})") from None
    text_lf = text.replace("\r\n", "\n")
    if '"' in text or "\r" in text_lf:
        try:
            rows = list(csv.reader(io.StringIO(text, newline="")))
        except csv.Error as e:
            raise BenchError(f"{shown}: unreadable CSV ({type(e).__name__})") from None
    else:
        rows = [line.split(",") if line else [] for line in text_lf.split("\n")]
        if rows and not rows[-1]:
            rows.pop()  # the final newline
    header, body = (rows[0], rows[1:]) if rows else (None, [])
    if not header:
        raise BenchError(f"{shown}: unreadable CSV (EmptyDataError)")
    width = len(header)
    lengths = set(map(len, body))
    if 0 in lengths:
        body = [r for r in body if r]  # blank lines, as pandas skips them
        lengths.discard(0)
    if lengths - {width}:
        bad = next(i for i, r in enumerate(body) if len(r) != width)
        raise BenchError(f"{shown}: unreadable CSV (line {bad + 2} has {len(body[bad])} fields, header {width})")
    cols = list(zip(*body)) if body else [()] * width
    return {name.strip(): list(col) for name, col in zip(header, cols)}


@functools.lru_cache(maxsize=256)
def _classes(raw: str) -> tuple:
    """The ``classes`` column's JSON list (one string per task: parsed once, not per run)."""
    return tuple(json.loads(raw))


def _ints(values: list[str], shown: str, column: str) -> np.ndarray:
    try:
        x = np.asarray(values, dtype=np.float64)  # "1" and "1.0" alike
    except ValueError:
        raise BenchError(f"{shown}: column {column} has a non-numeric value") from None
    if not np.all(np.isfinite(x)) or np.any(x != np.round(x)):
        raise BenchError(f"{shown}: column {column} must hold whole numbers")
    return x.astype(np.int64)


def load_predictions(row: dict | pd.Series, test_only: bool = True):
    """The test predictions of a run as a :class:`bench.leaderboard.stats.PredictionSet`.

    Study-level tasks (MURA) read ``predictions_study.csv`` and resample patients; image-level
    tasks read ``predictions.csv`` and resample the duplicate/patient ``group`` of ``split.csv``
    when present. Raises BenchError when the files are missing or malformed."""
    from bench.leaderboard.stats import PredictionSet

    run_dir = Path(row["abs_path"])
    classes = _classes(row["classes"]) if row.get("classes") else ()
    study = bool(row.get("study_level"))
    fname = "predictions_study.csv" if study else "predictions.csv"
    shown = f"{row.get('path') or run_dir}/{fname}"  # messages name the stored folder, not this machine's path
    id_col = "study_id" if study else "image_id"
    cols = _read_columns(run_dir / fname, shown)
    if not study and "split" in cols and test_only:
        keep = [i for i, s in enumerate(cols["split"]) if s == "test"]
        cols = {c: [v[i] for i in keep] for c, v in cols.items()}
    prob_cols = [f"prob_{c}" for c in classes] if classes and all(f"prob_{c}" in cols for c in classes) \
        else [c for c in cols if c.startswith("prob_")]
    missing = [c for c in (id_col, "label", "pred") if c not in cols]
    if missing or not prob_cols:
        raise BenchError(f"{shown}: missing columns {missing or ['prob_<class>']}")
    ids = np.asarray(cols[id_col], dtype=object)
    # sorted by id (runs on the same items then align); stored files already are
    id_list = cols[id_col]
    order = slice(None) if all(a <= b for a, b in zip(id_list, id_list[1:])) else np.argsort(ids, kind="stable")
    try:
        prob = np.asarray([cols[c] for c in prob_cols], dtype=np.float64).T.reshape(len(ids), len(prob_cols))
    except ValueError:
        raise BenchError(f"{shown}: a prob_ column has a non-numeric value") from None
    groups = None
    if study and "patient_id" in cols:
        groups = np.asarray(cols["patient_id"], dtype=object)
    elif not study and "group" in cols and all(cols["group"]):
        groups = np.asarray(cols["group"], dtype=object)  # stored predictions carry the group
    elif not study:
        split_path = run_dir / "split.csv"
        if split_path.is_file() and "group" not in cols:
            try:
                sp = _read_columns(split_path, str(split_path))
            except BenchError:
                sp = {}
            if "image_id" in sp and "group" in sp:
                by_id = dict(zip(sp["image_id"], sp["group"]))
                g = [by_id.get(i) for i in cols[id_col]]
                if all(g):
                    groups = np.asarray(g, dtype=object)
    return PredictionSet(ids=ids[order], label=_ints(cols["label"], shown, "label")[order],
                         pred=_ints(cols["pred"], shown, "pred")[order], prob=prob[order],
                         positive_index=int(row.get("positive_index") or 1),
                         groups=None if groups is None else groups[order])


def prediction_key(row: dict | pd.Series) -> list | None:
    run_dir = str(row["abs_path"])  # plain strings: called once per run and render
    fname = "predictions_study.csv" if row.get("study_level") else "predictions.csv"
    k = stat_key(os.path.join(run_dir, fname))
    s = stat_key(os.path.join(run_dir, "split.csv"))
    return None if k is None else k + (s or [])
