"""The results store: what a leaderboard is rendered from, kept under the leaderboard folder.

Run folders hold checkpoints (hundreds of MB) and are not committed; a leaderboard rendered from
them alone loses every result whose folder is not on this machine. So ``bench-leaderboard``
first copies what the tables and pages need from each run into ``<out>/store/<run-slug>/``
(kilobytes: the record and the test predictions) and then renders from the whole store.
Removal is explicit (:func:`remove_runs`).

Per stored run:

- ``record.json``: the run record, upgraded to the current schema (``bench.record`` upgrade
  function when there is one), written with sorted keys;
- detection runs (``task.kind: detection``): ``detections.csv`` (test boxes with score >=
  :data:`DETECTION_MIN_SCORE`, the evaluation's floor), ``ground_truth.csv``, ``images.csv``
  (test rows) instead of the predictions below;
- ``predictions.csv``: test rows only (``image_id,label,pred,prob_<class>...,group``; ``group``
  is the duplicate/patient group of ``split.csv``, the bootstrap's resampling unit);
  study-level tasks: ``predictions_study.csv`` (test studies);
- ``meta.json``: where it came from (the folder as given), git commit and package version of the
  run (from ``environment.json``);
- figures (``plots/*.png``, ``explain/**.png``) only for datasets whose licence allows
  redistributing derived images (:data:`IMAGE_REDISTRIBUTABLE`): nothing derived from MURA images
  is ever written here.

Runs on generated data (``record.data.generated`` true, or a task name starting ``tiny_``) are not
stored unless asked (``include_generated``); they are then rendered in their own section.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from bench.errors import BenchError
from bench.record import RECORD_FILE, atomic_write_bytes

STORE_DIR = "store"
STORE_VERSION = 1
#: Datasets whose licence allows publishing figures drawn from their images (FracAtlas: CC BY 4.0).
#: Any other dataset (MURA: research use, no redistribution) gets numbers only.
IMAGE_REDISTRIBUTABLE = frozenset({"fracatlas"})
IMAGE_EXT = (".png", ".jpg", ".jpeg", ".svg", ".webp", ".gif")
MAX_FIGURES = 200
#: Plots drawn from numbers only (curves, matrices): safe for every dataset.
NUMERIC_PLOTS = ("plots",)


@dataclass
class IngestResult:
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: int = 0
    generated_skipped: list[str] = field(default_factory=list)  # run ids left out (generated data)
    skipped: list[dict] = field(default_factory=list)  # {"path", "reason"} from collection
    duplicates: list[dict] = field(default_factory=list)


def upgrade(record: dict) -> dict:
    """The record in the current schema: ``bench.record``'s upgrade function when it has one
    (older records gain the new keys as null, so the tables show "—"), else as read."""
    import bench.record as rec_mod

    for name in ("upgrade_record", "upgrade"):
        fn = getattr(rec_mod, name, None)
        if callable(fn):
            try:
                out = fn(dict(record))
            except Exception as e:  # noqa: BLE001 - an unreadable old record is a listed problem
                raise ValueError(f"cannot upgrade schema {record.get('schema_version')!r}: {e}") from None
            return out if isinstance(out, dict) else record
    return record


def is_generated(record: dict) -> bool:
    data = record.get("data") if isinstance(record.get("data"), dict) else {}
    task = record.get("task") if isinstance(record.get("task"), dict) else {}
    return bool(data.get("generated")) or str(task.get("name") or "").startswith("tiny_")


def store_slug(run_id: str) -> str:
    from bench.leaderboard.render import slug

    return slug(run_id)


def _json_bytes(obj) -> bytes:
    return (json.dumps(obj, indent=1, sort_keys=True, ensure_ascii=False, default=str) + "\n").encode("utf-8")


def _write_if_changed(path: Path, data: bytes) -> bool:
    try:
        if path.stat().st_size == len(data) and path.read_bytes() == data:
            return False
    except OSError:
        pass
    atomic_write_bytes(path, data)
    return True


def _test_predictions(run_dir: Path, record: dict) -> dict[str, bytes]:
    """Test predictions (bytes per file name) with the resampling group; {} when missing."""
    task = record.get("task") or {}
    out: dict[str, bytes] = {}
    if task.get("study_level"):
        p = run_dir / "predictions_study.csv"
        if p.is_file():
            out["predictions_study.csv"] = p.read_bytes()
        return out
    p = run_dir / "predictions.csv"
    if not p.is_file():
        return out
    try:
        df = pd.read_csv(p, dtype={"image_id": str, "split": str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError):
        out["predictions.csv"] = p.read_bytes()  # kept as is: the loader lists it as a problem
        return out
    if "split" in df.columns:
        df = df[df["split"] == "test"].drop(columns="split")
    sp = run_dir / "split.csv"
    if sp.is_file() and "image_id" in df.columns and "group" not in df.columns:
        try:
            s = pd.read_csv(sp, dtype={"image_id": str, "group": str}, usecols=lambda c: c in ("image_id", "group"))
            if "group" in s.columns:
                g = df["image_id"].map(dict(zip(s["image_id"], s["group"])))
                if not g.isna().any():
                    df = df.assign(group=g)
        except (ValueError, pd.errors.ParserError, pd.errors.EmptyDataError):
            pass
    if "image_id" in df.columns:
        df = df.sort_values("image_id", kind="stable")
    out["predictions.csv"] = df.to_csv(index=False, lineterminator="\n").encode("utf-8")
    return out


#: Detection runs: stored boxes are the test split's with at least this score, which is the
#: evaluation's own confidence floor (bench.detection.run.CONF): every box that counted toward AP.
DETECTION_MIN_SCORE = 0.001
DETECTION_FILES = ("detections.csv", "ground_truth.csv", "images.csv")


def _detection_files(run_dir: Path) -> dict[str, bytes]:
    """Test rows of a detection run's ``detections.csv`` (score >= DETECTION_MIN_SCORE),
    ``ground_truth.csv`` and ``images.csv``: what the detection table's bootstrap reads."""
    out: dict[str, bytes] = {}
    for name in DETECTION_FILES:
        p = run_dir / name
        if not p.is_file():
            continue
        try:
            df = pd.read_csv(p, dtype={"image_id": str, "split": str})
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError):
            out[name] = p.read_bytes()  # kept as is: the table lists its interval as "—"
            continue
        if "split" in df.columns:
            df = df[df["split"] == "test"]
        if name == "detections.csv" and "score" in df.columns:
            df = df[df["score"] >= DETECTION_MIN_SCORE]
        out[name] = df.to_csv(index=False, lineterminator="\n").encode("utf-8")
    return out


def _figures(run_dir: Path, record: dict) -> list[str]:
    """Run-relative figure paths to store: numeric plots always; image-derived figures
    (``explain/``) only for datasets in IMAGE_REDISTRIBUTABLE."""
    rels: list[str] = []
    plots = (record.get("files") or {}).get("plots") if isinstance(record.get("files"), dict) else None
    if isinstance(plots, dict):
        rels += [str(v) for _, v in sorted(plots.items())]
    dataset = str((record.get("task") or {}).get("dataset") or "").lower()
    if dataset in IMAGE_REDISTRIBUTABLE and (run_dir / "explain").is_dir():
        for dirpath, dirnames, filenames in os.walk(run_dir / "explain"):
            dirnames.sort()
            for f in sorted(filenames):
                if f.lower().endswith(IMAGE_EXT):
                    rels.append(str((Path(dirpath) / f).relative_to(run_dir)).replace(os.sep, "/"))
    safe = []
    for r in rels:
        parts = r.replace("\\", "/").split("/")
        if parts and all(p not in ("", ".", "..") for p in parts) and r.lower().endswith(IMAGE_EXT):
            safe.append("/".join(parts))
    return sorted(dict.fromkeys(safe))[:MAX_FIGURES]


def _meta(run_dir: Path, shown: str) -> dict:
    env = {}
    try:
        env = json.loads((run_dir / "environment.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        pass
    versions = env.get("versions") if isinstance(env.get("versions"), dict) else {}
    return {"store_version": STORE_VERSION, "source": shown,
            "git_commit": env.get("git_commit") if isinstance(env.get("git_commit"), str) else None,
            "harness_version": versions.get("fracture-bench") or versions.get("bench") or env.get("bench_version")}


def store_run(run_dir: Path, record: dict, store: Path, shown: str) -> str:
    """Copy one run into the store. Returns "added", "updated" or "unchanged"."""
    dest = store / store_slug(record["run_id"])
    existed = (dest / RECORD_FILE).is_file()
    files: dict[str, bytes] = {RECORD_FILE: _json_bytes(upgrade(record))}
    if (record.get("task") or {}).get("kind") == "detection":
        files.update(_detection_files(run_dir))
    else:
        files.update(_test_predictions(run_dir, record))
    files["meta.json"] = _json_bytes(_meta(run_dir, shown))
    report = run_dir / "data_report.json"
    if report.is_file() and report.stat().st_size <= 256_000:  # counts and exclusions, for the reporting page
        files["data_report.json"] = report.read_bytes()
    figs = _figures(run_dir, record)
    changed = False
    for name, data in sorted(files.items()):
        changed |= _write_if_changed(dest / name, data)
    for rel in figs:
        src = run_dir / rel
        try:
            data = src.read_bytes()
        except OSError:
            continue
        changed |= _write_if_changed(dest / rel, data)
    keep = set(files) | set(figs)
    for dirpath, _, filenames in os.walk(dest):  # files of an earlier version of this run
        for f in filenames:
            rel = str((Path(dirpath) / f).relative_to(dest)).replace(os.sep, "/")
            if rel not in keep:
                (Path(dirpath) / f).unlink()
                changed = True
    _prune_empty(dest)
    if not existed:
        return "added"
    return "updated" if changed else "unchanged"


def _prune_empty(root: Path) -> None:
    for dirpath, dirnames, filenames in sorted(os.walk(root), key=lambda t: -len(t[0])):
        if Path(dirpath) != root and not dirnames and not filenames:
            try:
                os.rmdir(dirpath)
            except OSError:
                pass


def ingest(runs_dirs: list[str | os.PathLike], store: Path, *, include_generated: bool = False,
           max_depth: int = 3) -> IngestResult:
    """Add or update the complete runs under ``runs_dirs`` in ``store`` (never removes a run)."""
    from bench.leaderboard.collect import collect

    res = IngestResult()
    if not runs_dirs:
        return res
    store = Path(store)
    store_abs = store.resolve()
    for r in runs_dirs:
        rp = Path(r).resolve()
        if rp == store_abs or store_abs in rp.parents:
            raise BenchError(f"--runs {r}: is the results store itself; give the run folders (bench_runs/)")
    coll = collect([str(r) for r in runs_dirs], cache={"records": {}}, max_depth=max_depth)
    res.skipped, res.duplicates = coll.skipped, coll.duplicates
    if coll.runs.empty:
        return res
    store.mkdir(parents=True, exist_ok=True)
    todo = []
    for rid, abs_path, shown, gen in zip(coll.runs["run_id"], coll.runs["abs_path"], coll.runs["path"],
                                         coll.runs["generated"]):
        if gen and not include_generated:
            res.generated_skipped.append(rid)
            continue
        todo.append((rid, Path(abs_path), shown))

    def one(item):
        rid, run_dir, shown = item
        record = json.loads((run_dir / RECORD_FILE).read_text(encoding="utf-8"))
        return rid, store_run(run_dir, record, store, shown)

    # threads: the fsyncs of atomic writes and the CSV parsing overlap (a cold ingest of 10,000 runs)
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=8) as pool:
        for rid, what in pool.map(one, todo):
            if what == "added":
                res.added.append(rid)
            elif what == "updated":
                res.updated.append(rid)
            else:
                res.unchanged += 1
    return res


def stored_ids(store: Path) -> dict[str, Path]:
    """run_id -> stored folder."""
    out = {}
    if not Path(store).is_dir():
        return out
    for d in sorted(Path(store).iterdir()):
        try:
            rid = json.loads((d / RECORD_FILE).read_text(encoding="utf-8")).get("run_id")
        except (OSError, ValueError, AttributeError):
            continue
        if isinstance(rid, str):
            out[rid] = d
    return out


def remove_runs(store: Path, run_ids: list[str]) -> list[str]:
    """Delete runs from the store by run id; an id not in the store is an error (typo guard)."""
    have = stored_ids(store)
    missing = [r for r in run_ids if r not in have]
    if missing:
        raise BenchError(f"--remove {missing[0]}: no such run in {store} (stored run ids are in runs.csv)")
    for r in run_ids:
        shutil.rmtree(have[r])
    return list(run_ids)


# --------------------------------------------------------------------------- legacy import


def _unflatten(name: str) -> str:
    """``plots--roc.png`` -> ``plots/roc.png`` (the flat names of the earlier site)."""
    return "/".join(name.split("--"))


def import_runs_csv(runs_csv: Path, site_runs: Path | None, store: Path) -> list[str]:
    """Rebuild store entries from an earlier render's ``runs.csv`` (when the run folders are gone).

    The record is rebuilt from the flat columns (schema_version 0, ``imported`` says from where);
    per-run CIs come from the CSV's ``ci_*`` columns; predictions do not exist, so the row
    interval and the paired tests show "—". Figures come from the earlier site's run folders
    (FracAtlas only). Returns the run ids written."""
    df = pd.read_csv(runs_csv, dtype={"run_id": str})
    written = []
    for r in df.to_dict("records"):
        r = {k: v for k, v in r.items() if not (isinstance(v, float) and v != v)}
        classes = json.loads(r.get("classes") or "[]")
        metrics: dict = {}
        for sp in ("test_study", "test", "val"):
            for k, v in r.items():
                if k.startswith(sp + "_") and not (sp == "test" and k.startswith("test_study_")):
                    key = k[len(sp) + 1:]
                    if key == "confusion_matrix":
                        v = json.loads(v)
                    metrics.setdefault(sp, {})[key] = v
        explain = {}
        for k, v in r.items():
            if k.startswith("explain_"):
                rest = k[len("explain_"):]
                for score in ("pointing_game", "energy", "iou"):
                    if rest.endswith("_" + score):
                        explain.setdefault(rest[: -len(score) - 1], {})[score] = v
        ci = {}
        for k, v in r.items():
            if k.startswith("ci_") and k != "ci_n_units":
                m, _, part = k[3:].rpartition("_")
                ci.setdefault(m, {})[part] = v
        for m in ci:
            ci[m]["n"] = r.get("ci_n_units")
        record = {
            "schema_version": 0, "status": "complete", "run_id": r["run_id"], "created_at": r.get("created_at"),
            "imported": {"from": str(runs_csv), "note": "rebuilt from an earlier leaderboard's runs.csv; "
                         "the run folder and its predictions were not kept"},
            "task": {"name": r["task"], "dataset": r.get("dataset"), "kind": r.get("task_kind"), "classes": classes,
                     "positive_index": r.get("positive_index"), "study_level": bool(r.get("study_level"))},
            "protocol": json.loads(r.get("protocol_json") or "{}"),
            "model": {"name": r["model"], "family": r.get("model_family"), "pretrained": bool(r.get("pretrained")),
                      "params": r.get("params"), "gmacs": r.get("gmacs"), "input_size": r.get("input_size")},
            "seed": r.get("seed"),
            "split": {"sha256": r.get("split_sha256"), "method": r.get("split_method"),
                      "counts": {s: r.get(f"n_{s}") for s in ("train", "val", "test")}},
            "best": {"epoch": r.get("best_epoch")},
            "metrics": metrics,
            "cost": {"device": r.get("device"), "precision": r.get("precision_mode"),
                     "train_images_per_s": r.get("train_images_per_s"),
                     "inference_ms_per_image": r.get("latency_ms"), "wall_s": {"total": r.get("wall_s")}},
            "tags": [t for t in str(r.get("tags") or "").split(",") if t],
            "sweep": {"id": r.get("sweep_id")} if r.get("sweep_id") else {},
            "leaderboard_ci": ci,
        }
        if explain:
            record["explain"] = {"summary": explain}
        dest = store / store_slug(r["run_id"])
        plots = {}
        src_dir = None
        if site_runs is not None:
            from bench.leaderboard.render import slug

            cand = site_runs / slug(r["run_id"])
            src_dir = cand if cand.is_dir() else None
        figs = []
        if src_dir is not None:
            for f in sorted(os.listdir(src_dir)):
                rel = _unflatten(f)
                if rel.startswith("plots/"):
                    plots[Path(rel).stem] = rel
                elif not (rel.startswith("explain/") and str(r.get("dataset")).lower() in IMAGE_REDISTRIBUTABLE):
                    continue
                figs.append((src_dir / f, rel))
        record["files"] = {"plots": plots}
        _write_if_changed(dest / RECORD_FILE, _json_bytes(record))
        _write_if_changed(dest / "meta.json", _json_bytes({"store_version": STORE_VERSION, "source": str(runs_csv),
                                                           "git_commit": None, "harness_version": None}))
        for src, rel in figs:
            _write_if_changed(dest / rel, src.read_bytes())
        written.append(r["run_id"])
    return written
