"""Render leaderboards: Markdown and CSV per task, ``runs.csv``, ``report.md`` and a static site.

Everything written is a function of the run records only (no clocks, sorted everywhere), so the
same input renders byte-identical output, and an incremental re-render (cache hits) equals a
fresh one. Files go through ``bench.record.atomic_write_bytes`` and are rewritten only when their
bytes change; files from a previous render that are no longer produced are removed.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import jinja2
from markupsafe import Markup
import pandas as pd

from bench.errors import BenchError
from bench.leaderboard import templates
from bench.leaderboard.collect import CACHE_FILE, Collection, collect, load_cache, save_cache
from bench.leaderboard.stats import ALPHA
from bench.leaderboard.table import COST_COLS, DISPLAY_METRICS, TaskTable, build_tables
from bench.record import atomic_write_bytes

METRIC_LABEL = {"auroc": "ROC-AUC", "accuracy": "Accuracy", "precision": "Precision", "recall": "Recall",
                "specificity": "Specificity", "f1": "F1", "kappa": "Kappa"}
MACRO_LABEL = {"precision": "Precision (macro)", "recall": "Recall (macro)", "f1": "F1 (macro)",
               "auroc": "ROC-AUC (macro OvR)"}
COST_LABEL = {"params": "Params (M)", "gmacs": "GMACs", "train_images_per_s": "Train img/s",
              "latency_ms": "Latency ms/img"}


@dataclass
class RenderResult:
    out_dir: Path
    collection: Collection
    tables: dict[str, TaskTable]
    problems: list[dict]
    files: list[str] = field(default_factory=list)  # relative paths produced
    written: int = 0  # files whose bytes changed
    timings: dict[str, float] = field(default_factory=dict)
    ci_computed: int = 0
    unchanged_summary: str | None = None  # set when nothing changed since the last render

    def summary(self, body_only: bool = False) -> str:
        c = self.collection
        if self.unchanged_summary is not None:
            return (f"{len(c.runs)} runs -> {self.out_dir}: unchanged since the last render"
                    f" ({c.cached} record(s) from cache)\n{self.unchanged_summary}").rstrip("\n")
        head = (f"{len(c.runs)} runs in {len(self.tables)} task table(s) -> {self.out_dir}"
                f" ({self.written} file(s) changed; {c.parsed} record(s) parsed, {c.cached} from cache;"
                f" {self.ci_computed} bootstrap CI(s) computed)")
        lines = []
        for t in self.tables.values():
            ours = t.rows[t.rows["source"] == "this benchmark"]
            if len(ours):
                b = ours.iloc[0]
                lines.append(f"  {t.task}: {len(ours)} row(s), best {b['model']} "
                             f"{METRIC_LABEL[t.primary]} {_f(b[f'{t.metric_split}_{t.primary}_mean'])}")
        for s in c.skipped:
            lines.append(f"  skipped {s['path']}: {s['reason']}")
        for d in c.duplicates:
            lines.append(f"  duplicate {d['run_id']}: {d['path']} (kept {d['kept']})")
        for p in self.problems:
            lines.append(f"  problem {p['path']}: {p['reason']}")
        return "\n".join(lines if body_only else [head] + lines)


# --------------------------------------------------------------------------- formatting


def _isnum(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _f(x, d: int = 3) -> str:
    return f"{x:.{d}f}" if _isnum(x) else "—"


def _mean_std(mean, std, n=None, d: int = 3) -> str:
    if not _isnum(mean):
        return "—"
    s = f"{mean:.{d}f}"
    if _isnum(std):
        s += f" ± {std:.{d}f}"
    return s


def _ci(value, low, high, d: int = 3) -> str:
    if not (_isnum(low) and _isnum(high)):
        return "—"
    return f"{_f(value, d)} [{low:.{d}f}, {high:.{d}f}]"


def _v(x) -> str | None:
    """Sort key attribute: full-precision number or None."""
    return repr(float(x)) if _isnum(x) else None


def slug(text: str, with_hash: bool = True) -> str:
    """A file-name-safe slug; the hash keeps distinct names distinct after slugging."""
    s = re.sub(r"[^A-Za-z0-9._-]+", "-", str(text)).strip("-._")[:60] or "x"
    if with_hash:
        s += "-" + hashlib.sha256(str(text).encode("utf-8")).hexdigest()[:8]
    return s


def task_slug(task: str) -> str:
    plain = slug(task, with_hash=False)
    return plain if plain == task else slug(task)


def _md(text) -> str:
    s = "" if text is None or (isinstance(text, float) and math.isnan(text)) else str(text)
    s = s.replace("\\", "\\\\").replace("|", "\\|").replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return s.replace("\n", " ").replace("*", "\\*").replace("_", "\\_").replace("`", "\\`")


def _mark(row) -> str:
    if row.get("source") != "this benchmark":
        return ""
    if row.get("is_best"):
        return "★"
    vs = str(row.get("vs_best") or "")
    if vs == "not significantly different":
        return "≈"
    if vs == "significantly worse":
        return "↓"
    return "n/c" if vs.startswith("not comparable") else ""


_SHORT = {"★": "★ best", "≈": "≈ n.s.", "↓": "↓ worse"}


def _metric_label(m: str, kind: str) -> str:
    return MACRO_LABEL.get(m, METRIC_LABEL[m]) if kind == "multiclass" else METRIC_LABEL[m]


def _other_metrics(t: TaskTable) -> list[str]:
    present = [m for m in DISPLAY_METRICS if f"{t.metric_split}_{m}_mean" in t.rows.columns]
    if t.kind == "multiclass":
        present = [m for m in present if m != "specificity"]
    return [m for m in present if m != t.primary]


def _explain_cols(t: TaskTable) -> list[str]:
    return sorted(c[:-5] for c in t.rows.columns if c.startswith("explain_") and c.endswith("_mean"))


def _clean(v):
    if isinstance(v, float) and math.isnan(v):
        return None
    return v


# --------------------------------------------------------------------------- Markdown / CSV


def task_markdown(t: TaskTable, runs_df: pd.DataFrame) -> str:
    prim = f"{t.metric_split}_{t.primary}"
    others = _other_metrics(t)
    head = ["Rank", "Model", "Source", "Protocol", "Seeds", f"{_metric_label(t.primary, t.kind)} mean ± std",
            "95% CI (ref. run)", "vs best", f"p ({t.test_name})"]
    head += [_metric_label(m, t.kind) for m in others] + ["Params (M)", "GMACs"]
    lines = [f"## {_md(t.task)}", ""]
    lines.append(f"- Task: {_md(t.task)} ({t.kind}{', study level: metrics over studies, bootstrap over patients' if t.study_level else ''}),"
                 f" metrics from `metrics.{t.metric_split}` of each run record.")
    lines.append(f"- Ranked by mean {_metric_label(t.primary, t.kind)} over seeds; mean ± sample std (ddof=1).")
    lines.append("- 95% CI: bootstrap (BCa, percentile fallback) over the test set of the reference run (lowest seed).")
    lines.append(f"- vs best: paired {t.test_name} test against the best row on the same test items (same split sha256);"
                 f" ≈ = not significantly different (p ≥ {ALPHA}), ↓ = significantly worse, n/c = not comparable.")
    ours = t.rows[t.rows["source"] == "this benchmark"]
    splits = sorted(set(runs_df["split_sha256"]))
    lines.append(f"- Test splits (sha256, first 12): {', '.join(s[:12] or '?' for s in splits)};"
                 f" seeds: {', '.join(sorted(set(ours['seeds'])))}.")
    for key in sorted(set(ours["protocol_key"])):
        pj = runs_df.loc[runs_df["protocol_key"] == key, "protocol_json"].iloc[0]
        lines.append(f"- Protocol `{key}`: {_md(_protocol_text(pj))}")
    for n in t.notes:
        lines.append(f"- Note: {_md(n)}")
    lit = t.rows[t.rows["source"] != "this benchmark"]
    for src in sorted(set(lit["source"])):
        sub = lit[lit["source"] == src]
        cites = "; ".join(dict.fromkeys(sub["citation"]))
        lines.append(f"- *{_md(src)}*: {_md(sub['protocol_text'].iloc[0])}. {_md(cites)}.")
    lines += ["", "| " + " | ".join(head) + " |", "|" + "|".join("---:" if i in (0, 4) or i >= 5 else "---"
                                                                 for i in range(len(head))) + "|"]
    for r in t.rows.to_dict("records"):
        r = {k: _clean(v) for k, v in r.items()}
        is_lit = r["source"] != "this benchmark"
        cells = [
            "" if is_lit or r.get("rank") is None else str(int(r["rank"])),
            _md(r["model"]) + (f" {_mark(r)}" if _mark(r) else ""),
            f"**reported elsewhere** ({_md(r['source'].split(': ', 1)[-1])})" if is_lit else "this benchmark",
            ("as published (see note above)" + (f"; {_md(r['note'])}" if r.get("note") else "")) if is_lit else _md(f"{r.get('protocol_experiment') or ''} ({r['protocol_key']})"),
            "" if is_lit else str(int(r["n_seeds"])),
            _mean_std(r.get(f"{prim}_mean"), r.get(f"{prim}_std")),
            "" if is_lit else _ci(r.get(f"ref_ci_{t.primary}_value"), r.get(f"ref_ci_{t.primary}_low"),
                                  r.get(f"ref_ci_{t.primary}_high")),
            "" if is_lit else _md(r.get("vs_best")),
            "" if is_lit else _f(r.get("p_vs_best"), 4),
        ]
        cells += [_mean_std(r.get(f"{t.metric_split}_{m}_mean"), r.get(f"{t.metric_split}_{m}_std")) for m in others]
        cells += [_f(r["params_mean"] / 1e6, 2) if _isnum(r.get("params_mean")) else "—", _f(r.get("gmacs_mean"), 2)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _protocol_text(protocol_json: str) -> str:
    try:
        p = json.loads(protocol_json)
    except (TypeError, ValueError):
        return ""
    return ", ".join(f"{k}={p[k]}" for k in sorted(p)) if isinstance(p, dict) else ""


def _csv_bytes(df: pd.DataFrame) -> bytes:
    return df.to_csv(index=False, lineterminator="\n").encode("utf-8")


def task_csv(t: TaskTable) -> bytes:
    df = t.rows.copy()
    front = [c for c in ("rank", "model", "source", "protocol_key", "protocol_experiment", "protocol_text",
                         "n_seeds", "seeds", "n_splits", "ref_run_id", "ref_seed", "is_best", "vs_best",
                         "p_vs_best", "p_delong", "p_mcnemar", "pair_runs") if c in df.columns]
    rest = sorted(c for c in df.columns if c not in front)
    df = df[front + rest]
    df.insert(0, "task", t.task)
    return _csv_bytes(df)


# --------------------------------------------------------------------------- site


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    # compiled once per process; autoescape everything (names and paths come from configs)
    env = jinja2.Environment(loader=jinja2.DictLoader({"index.html": templates.INDEX, "run.html": templates.RUN}),
                             autoescape=True, trim_blocks=False, lstrip_blocks=False,
                             undefined=jinja2.StrictUndefined)
    return env


# CSS and JS are constants of this package (trusted); everything else is escaped.


def _cell(text, v=None, num=False, title=None, badge=None, links=None) -> dict:
    return {"text": "" if text is None else str(text), "v": v, "num": num, "title": title, "badge": badge,
            "links": links}


def _index_table(t: TaskTable, run_pages: dict[str, str]) -> dict:
    prim = f"{t.metric_split}_{t.primary}"
    others = _other_metrics(t)
    ex = _explain_cols(t)
    cols = [("rank", "Rank", "num"), ("model", "Model", "text"), ("source", "Source", "text"),
            ("primary", f"{_metric_label(t.primary, t.kind)} mean ± std", "num"),
            ("ci", "95% CI (ref. run)", "num"), ("mark", "vs best", "text"), ("p", f"p ({t.test_name})", "num"),
            ("seeds", "Seeds", "num")]
    cols += [(m, _metric_label(m, t.kind), "num") for m in others]
    cols += [(c, COST_LABEL[c], "num") for c in COST_COLS if f"{c}_mean" in t.rows.columns]
    cols += [(c, c.replace("explain_", "").replace("_", " "), "num") for c in ex]
    cols += [("protocol", "Protocol", "text")]
    rows = []
    for r in t.rows.to_dict("records"):
        r = {k: _clean(v) for k, v in r.items()}
        is_lit = r["source"] != "this benchmark"
        links = None if is_lit else [{"href": run_pages[rid], "text": f"s{seed}"}
                                     for rid, seed in _runs_with_seeds(r, t) if rid in run_pages]
        c: dict[str, dict] = {
            "rank": _cell("" if is_lit or r.get("rank") is None else int(r["rank"]), _v(r.get("rank")), True),
            "model": _cell(r["model"], links=links),
            "source": _cell("", badge=r["source"], title=r.get("citation")),
            "primary": _cell(_mean_std(r.get(f"{prim}_mean"), r.get(f"{prim}_std")), _v(r.get(f"{prim}_mean")), True),
            "ci": _cell("" if is_lit else _ci(r.get(f"ref_ci_{t.primary}_value"), r.get(f"ref_ci_{t.primary}_low"),
                                              r.get(f"ref_ci_{t.primary}_high")),
                        None if is_lit else _v(r.get(f"ref_ci_{t.primary}_value")), True,
                        title=None if is_lit else f"reference run {r.get('ref_run_id')}"),
            "mark": _cell("" if is_lit else _SHORT.get(_mark(r), f"{_mark(r)} {r.get('vs_best') or ''}".strip()),
                          title=" ".join(x for x in (r.get("vs_best"), r.get("pair_runs")) if x) or None),
            "p": _cell("" if is_lit else _f(r.get("p_vs_best"), 4), _v(r.get("p_vs_best")), True),
            "seeds": _cell("" if is_lit else int(r["n_seeds"]), None if is_lit else _v(float(r["n_seeds"])), True,
                           title=None if is_lit else f"seeds {r['seeds']}"),
            "protocol": _cell(("as published (below)" + (f"; {r['note']}" if r.get("note") else "")) if is_lit
                              else f"{r.get('protocol_experiment') or ''} ({r['protocol_key']})",
                              title=r.get("protocol_text") if is_lit else None),
        }
        for m in others:
            c[m] = _cell(_mean_std(r.get(f"{t.metric_split}_{m}_mean"), r.get(f"{t.metric_split}_{m}_std")),
                         _v(r.get(f"{t.metric_split}_{m}_mean")), True)
        for k in COST_COLS:
            if f"{k}_mean" in t.rows.columns:
                val = r.get(f"{k}_mean")
                c[k] = _cell(_f(val / 1e6 if (k == "params" and _isnum(val)) else val, 2), _v(val), True)
        for k in ex:
            c[k] = _cell(_f(r.get(f"{k}_mean")), _v(r.get(f"{k}_mean")), True)
        cells = [c[k] for k, _, _ in cols]
        cls = "lit" if is_lit else ("best" if r.get("is_best") else "")
        rows.append({"cls": cls, "model": r["model"], "cells": cells})
    lit = t.rows[t.rows["source"] != "this benchmark"]
    literature = [{"source": s, "protocol": lit.loc[lit["source"] == s, "protocol_text"].iloc[0],
                   "citation": "; ".join(dict.fromkeys(lit.loc[lit["source"] == s, "citation"]))}
                  for s in sorted(set(lit["source"]))]
    return {"task": t.task, "slug": task_slug(t.task), "kind": t.kind, "study_level": t.study_level,
            "primary_label": _metric_label(t.primary, t.kind), "test_name": t.test_name, "notes": t.notes,
            "columns": [{"key": k, "label": l, "type": ty} for k, l, ty in cols], "rows": rows,
            "literature": literature}


def _runs_with_seeds(r: dict, t: TaskTable):
    ids = (r.get("run_ids") or "").split()
    sub = t.runs[t.runs["run_id"].isin(ids)]
    return [(rid, "?" if pd.isna(s) else int(s)) for rid, s in zip(sub["run_id"], sub["seed"])]


def _run_page(row: dict, t: TaskTable, page_slug: str, assets: dict) -> str:
    # NaN (absent in this run) -> None; only the keys the page reads are checked
    row = {k: (None if isinstance(v, float) and v != v else v) for k, v in row.items()}
    splits = [s for s in ("test", "val", "test_study") if _isnum(row.get(f"{s}_accuracy")) or _isnum(row.get(f"{s}_n"))]
    names = [m for m in DISPLAY_METRICS if any(_isnum(row.get(f"{s}_{m}")) for s in splits)]
    metric_rows = []
    for s in ("test", "test_study", "val"):
        if s not in splits:
            continue
        vals = [_f(row.get(f"{s}_{m}")) for m in names]
        metric_rows.append({"split": s, "vals": vals + [_f(row.get(f"{s}_loss")), _f(row.get(f"{s}_n"), 0)]})
        if s == t.metric_split and any(_isnum(row.get(f"ci_{m}_low")) for m in names):
            metric_rows.append({"split": f"{s} 95% CI", "vals": [
                f"[{_f(row.get(f'ci_{m}_low'))}, {_f(row.get(f'ci_{m}_high'))}]" if _isnum(row.get(f"ci_{m}_low")) else "—"
                for m in names] + ["", ""]})
    methods = sorted({str(row.get(f"ci_{m}_method")) for m in names if row.get(f"ci_{m}_method")})
    if methods:
        ci_note = (f"CI: bootstrap over {'patients' if t.study_level else 'duplicate groups / images'} of the "
                   f"{t.metric_split} set ({int(row.get('ci_n_units') or 0)} units), method {', '.join(methods)}.")
    else:
        ci_note = "No bootstrap CI for this run (predictions missing, or CIs limited to reference runs)."
    classes = json.loads(row.get("classes") or "[]")
    cms = []
    for s in ("test", "test_study", "val"):
        raw = row.get(f"{s}_confusion_matrix")
        if raw:
            try:
                m = json.loads(raw)
                cms.append({"split": s, "rows": [{"name": classes[i] if i < len(classes) else str(i), "vals": v}
                                                 for i, v in enumerate(m)]})
            except (ValueError, TypeError):
                pass
    explain = [(c.replace("explain_", "").replace("_", " "), _f(row.get(c))) for c in sorted(row)
               if c.startswith("explain_") and _isnum(row.get(c))]
    cost = ", ".join(f"{COST_LABEL[c]} {_f(row[c] / 1e6 if c == 'params' else row[c], 2)}" for c in COST_COLS
                     if _isnum(row.get(c)))
    if row.get("device"):
        cost += f" ({row['device']})"
    env = environment()
    return env.get_template("run.html").render(
        r=row, css=Markup(templates.CSS), task_slug=task_slug(t.task), protocol=_protocol_text(row.get("protocol_json")),
        counts={k: _f(row.get(f"n_{k}"), 0) for k in ("train", "val", "test")},
        best_epoch=_f(row.get("best_epoch"), 0), cost=cost, metric_names=names + ["loss", "n"],
        metric_rows=metric_rows, ci_note=ci_note, classes=classes, cms=cms, explain=explain,
        plots=assets["plots"], heatmaps=assets["heatmaps"])


def _place_asset(src: Path, dest: Path, fresh: bool) -> None:
    """Put a copy of ``src`` at ``dest``: a hard link when both are on one file system (a copy
    that costs no space or time), else a byte copy. ``fresh``: ``dest`` is in a folder being
    built (nothing to replace); otherwise through a temp name and os.replace (atomic)."""
    target = dest if fresh else dest.with_name(f".{dest.name}.tmp")
    try:
        if not fresh:
            target.unlink(missing_ok=True)
        try:
            os.link(src, target)
        except FileNotFoundError:
            return  # the run's plot vanished: the page shows a broken image, the render goes on
        except OSError:
            shutil.copyfile(src, target)
        if not fresh:
            os.replace(target, dest)
    finally:
        if not fresh:
            target.unlink(missing_ok=True)


class _Writer:
    """Atomic writes (bench.record.atomic_write_bytes), skipped when the bytes on disk are the
    same; fsyncs run in threads, where the file system overlaps them."""

    def __init__(self, out: Path):
        self.out = out
        self.files: list[str] = []
        self.changed = 0
        self.pool = ThreadPoolExecutor(max_workers=8)
        self.futures = []

    def write(self, rel: str, data: bytes) -> None:
        self.files.append(rel)
        path = self.out / rel
        try:
            if path.stat().st_size == len(data) and path.read_bytes() == data:
                return
        except OSError:
            pass
        self.changed += 1
        self.futures.append(self.pool.submit(atomic_write_bytes, path, data))

    def close(self) -> None:
        for f in self.futures:
            f.result()
        self.pool.shutdown()


RENDER_VERSION = "render-v1"  # bump when an output format changes: forces a full re-render
PAGE_VERSION = hashlib.sha256((templates.RUN + templates.CSS + "page-v1").encode()).hexdigest()[:12]


def _write_run_pages(out: Path, tables: dict[str, TaskTable], cache: dict) -> tuple[list[str], int]:
    """Run pages and their images under ``out/runs``.

    A page is re-rendered only when its inputs changed (record stat key, CI cache key, task
    table settings, template version: ``cache["pages"]``). When ``runs/`` does not exist yet (a
    cold render), the whole folder is built as ``.runs.tmp`` with plain writes and renamed into
    place at once: readers see no site pages or all of them, and 10,000 pages do not pay 10,000
    fsyncs. Images go to ``runs/<slug>/`` with flat names (one folder per run: creating folders
    is what costs most on a busy disk). Returns (relative paths produced, pages written)."""
    runs_dir = out / "runs"
    fresh = not runs_dir.is_dir()
    base = out / ".runs.tmp" if fresh else runs_dir
    if fresh:
        shutil.rmtree(base, ignore_errors=True)  # left over from an interrupted render
        base.mkdir(parents=True)
    existing = set() if fresh else set(os.listdir(runs_dir))
    old_pages = cache.get("pages", {})
    new_pages: dict[str, list] = {}
    files: list[str] = []
    written = 0
    pool = ThreadPoolExecutor(max_workers=8)
    futures = []
    for t in tables.values():
        tkey = json.dumps([t.task, t.kind, t.metric_split, t.study_level, PAGE_VERSION])
        df = t.runs
        cks = df["_ci_key"].fillna("") if "_ci_key" in df else [""] * len(df)
        todo = []
        for i, (rid, rk, ck, p) in enumerate(zip(df["run_id"], df["_record_key"], cks, df["path"])):
            sl = slug(rid)
            key = json.dumps([rk, ck, p, tkey])
            old = old_pages.get(sl)
            if not fresh and old and old[0] == key and f"{sl}.html" in existing:
                new_pages[sl] = old
                files.extend(old[1])
            else:
                todo.append((i, sl, key))
        if not todo:
            continue
        sub = df.iloc[[i for i, _, _ in todo]]
        sub = sub.drop(columns=[c for c in sub.columns if c.startswith("_")]).to_dict("records")
        for (i, sl, key), row in zip(todo, sub):
            run_dir = Path(row["abs_path"])
            plots = json.loads(row.get("plots") or "{}")
            items = [(name, plots[name]) for name in sorted(plots)]
            items += [(None, h) for h in json.loads(row.get("heatmap_files") or "[]")]
            assets = {"plots": [], "heatmaps": []}
            page_files = [f"runs/{sl}.html"]
            made = False
            for name, src_rel in items:
                flat = _safe_rel(src_rel)
                if not flat:
                    continue
                if not made:
                    (base / sl).mkdir(exist_ok=True)
                    made = True
                page_files.append(f"runs/{sl}/{flat}")
                caption = name.replace("_", " ") if name else src_rel.removeprefix("explain/")
                assets["plots" if name else "heatmaps"].append({"src": f"{sl}/{flat}", "caption": caption})
                futures.append(pool.submit(_place_asset, run_dir / src_rel, base / sl / flat, fresh))
            data = _run_page(row, t, sl, assets).encode("utf-8")
            if fresh:
                (base / f"{sl}.html").write_bytes(data)
            else:
                futures.append(pool.submit(atomic_write_bytes, base / f"{sl}.html", data))
            written += 1
            new_pages[sl] = [key, page_files]
            files.extend(page_files)
    for f in futures:
        f.result()
    pool.shutdown()
    if fresh:
        os.replace(base, runs_dir)
    cache["pages"] = new_pages
    return files, written


def _safe_rel(rel: str) -> str | None:
    """A run-relative image path as one safe flat file name (``explain/gradcam/a.png`` ->
    ``explain--gradcam--a.png``); None for paths that leave the run folder."""
    parts = [p for p in rel.replace("\\", "/").split("/") if p]
    if not parts or any(p in (".", "..") for p in parts):
        return None
    stem, dot, ext = parts[-1].rpartition(".")
    if not dot or ("." + ext.lower()) not in (".png", ".jpg", ".jpeg", ".svg", ".webp", ".gif"):
        return None
    name = "--".join([slug(p, with_hash=False) for p in parts[:-1]] + [slug(stem, with_hash=False)])
    return f"{name}.{ext.lower()}"


def report_markdown(coll: Collection, problems: list[dict]) -> str:
    lines = ["# Leaderboard collection report", "",
             f"- complete runs: {len(coll.runs)}",
             f"- skipped (incomplete or corrupt): {len(coll.skipped)}",
             f"- duplicates (same run_id in two places; one kept): {len(coll.duplicates)}",
             f"- problems (run listed, statistics missing): {len(problems)}", ""]
    if coll.skipped:
        lines += ["## Skipped", "", "| run folder | reason |", "|---|---|"]
        lines += [f"| {_md(s['path'])} | {_md(s['reason'])} |" for s in coll.skipped] + [""]
    if coll.duplicates:
        lines += ["## Duplicates", "", "| run_id | skipped copy | kept copy |", "|---|---|---|"]
        lines += [f"| {_md(d['run_id'])} | {_md(d['path'])} | {_md(d['kept'])} |" for d in coll.duplicates] + [""]
    if problems:
        lines += ["## Problems", "", "| run folder | problem |", "|---|---|"]
        lines += [f"| {_md(p['path'])} | {_md(p['reason'])} |" for p in problems] + [""]
    return "\n".join(lines)


def render_leaderboard(runs_dirs, out_dir="leaderboards", *, n_resamples: int = 1000, seed: int = 0,
                       site: bool = True, ci_scope: str = "all", primary: dict[str, str] | None = None,
                       max_depth: int = 3, use_cache: bool = True) -> RenderResult:
    """Collect the run records under ``runs_dirs`` and write the leaderboards to ``out_dir``.

    ``runs_dirs``: one folder or a list (each a ``bench_runs/`` or a folder holding several).
    ``n_resamples``/``seed``: bootstrap settings. ``site``: also write the static HTML site.
    ``ci_scope``: "all" runs, only each row's "reference" run, or "none". ``primary``: override
    the ranking metric per kind, e.g. ``{"multiclass": "accuracy"}``. Raises BenchError on bad
    input; incomplete/corrupt/duplicate runs are reported in the result and ``report.md``."""
    if isinstance(runs_dirs, (str, os.PathLike)):
        runs_dirs = [runs_dirs]
    runs_dirs = [str(r) for r in runs_dirs]
    for k, m in (primary or {}).items():
        if k not in ("binary", "multiclass") or m not in DISPLAY_METRICS:
            raise BenchError(f"primary metric {k}={m}: kind must be binary/multiclass, metric one of {', '.join(DISPLAY_METRICS)}")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise BenchError(f"--out {out}: exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    tm: dict[str, float] = {}
    t0 = time.perf_counter()
    cache = load_cache(out / CACHE_FILE if use_cache else None)
    coll = collect(runs_dirs, cache, max_depth=max_depth)
    tm["collect_s"] = time.perf_counter() - t0
    # Same records, same options, outputs in place: nothing to do. Records are written last
    # (docs/run_record.md), so a run whose record.json did not change did not change.
    digest = hashlib.sha256(json.dumps([
        PAGE_VERSION, RENDER_VERSION, n_resamples, seed, site, ci_scope, sorted((primary or {}).items()),
        list(zip(coll.runs.get("path", []), coll.runs.get("_record_key", []))), coll.skipped, coll.duplicates,
    ]).encode()).hexdigest()
    if use_cache and cache.get("digest") == digest and _outputs_present(out, cache.get("outputs", [])):
        tm["total_s"] = time.perf_counter() - t0
        return RenderResult(out_dir=out, collection=coll, tables={}, problems=[], files=cache["outputs"],
                            written=0, timings=tm, unchanged_summary=cache.get("summary", ""))
    t1 = time.perf_counter()
    tables, problems, info = build_tables(coll.runs, cache, n_resamples=n_resamples, seed=seed,
                                          ci_scope=ci_scope, primary=primary)
    tm["stats_s"] = time.perf_counter() - t1
    t2 = time.perf_counter()
    w = _Writer(out)
    runs_all = []
    for name, t in tables.items():
        s = task_slug(name)
        w.write(f"{s}.md", task_markdown(t, t.runs).encode("utf-8"))
        w.write(f"{s}.csv", task_csv(t))
        runs_all.append(t.runs)
    md_all = "# Leaderboards\n\nGenerated by `bench-leaderboard` from run records; see docs/leaderboards.md.\n\n"
    md_all += "\n".join(task_markdown(t, t.runs) for t in tables.values())
    w.write("README.md", md_all.encode("utf-8"))
    runs_df = pd.concat(runs_all, ignore_index=True) if runs_all else pd.DataFrame()
    if not runs_df.empty:
        runs_df = runs_df.drop(columns=["abs_path"] + [c for c in runs_df.columns if c.startswith("_")])
        runs_df = runs_df[sorted(runs_df.columns, key=lambda c: (c not in ("task", "model", "seed", "run_id"),
                                                                ("task", "model", "seed", "run_id").index(c)
                                                                if c in ("task", "model", "seed", "run_id") else 0, c))]
    w.write("runs.csv", _csv_bytes(runs_df))
    w.write("report.md", report_markdown(coll, problems).encode("utf-8"))
    tm["tables_s"] = time.perf_counter() - t2
    t3 = time.perf_counter()
    pages_written = 0
    if site:
        run_pages: dict[str, str] = {}
        for t in tables.values():
            for rid in t.runs["run_id"]:
                run_pages[rid] = f"runs/{slug(rid)}.html"
        index_tables = [_index_table(t, run_pages) for t in tables.values()]
        html = environment().get_template("index.html").render(
            tables=index_tables, css=Markup(templates.CSS), js=Markup(templates.SORT_JS), n_runs=len(coll.runs),
            n_skipped=len(coll.skipped) + len(coll.duplicates), alpha=ALPHA)
        w.write("index.html", html.encode("utf-8"))
        page_files, pages_written = _write_run_pages(out, tables, cache)
        w.files.extend(page_files)
    else:
        cache["pages"] = {}
    w.close()
    tm["site_s"] = time.perf_counter() - t3
    # remove what an earlier render produced and this one did not (vanished runs or tasks)
    produced = set(w.files)
    for old in cache.get("outputs", []):
        if old not in produced:
            p = out / old
            try:
                p.unlink()
            except (FileNotFoundError, IsADirectoryError):
                pass
            parent = p.parent
            while parent != out and parent.is_dir() and not any(parent.iterdir()):
                parent.rmdir()
                parent = parent.parent
    cache["outputs"] = sorted(produced)
    result = RenderResult(out_dir=out, collection=coll, tables=tables, problems=problems, files=sorted(produced),
                          written=w.changed + pages_written, timings=tm, ci_computed=info.get("ci_computed", 0))
    cache["digest"] = digest
    cache["summary"] = result.summary(body_only=True)
    if use_cache:
        save_cache(out / CACHE_FILE, cache)
    tm["total_s"] = time.perf_counter() - t0
    return result


def _outputs_present(out: Path, outputs: list[str]) -> bool:
    if not outputs:
        return False
    pages = {o[len("runs/"):] for o in outputs if o.startswith("runs/") and o.count("/") == 1}
    if pages:
        try:
            if not pages <= set(os.listdir(out / "runs")):
                return False
        except OSError:
            return False
    return all((out / o).is_file() for o in outputs if not o.startswith("runs/"))
