"""Render leaderboards from the results store: Markdown and CSV per task, ``runs.csv``,
``report.md`` and a static site (index, definitions, model, run, reporting pages, cost plots).

``render_leaderboard`` first adds or updates the given runs in ``<out>/store`` (see
:mod:`bench.leaderboard.store`) and then renders from the whole store, so a render from one new
run keeps every stored result. Everything written is a function of the store only (no clocks,
sorted everywhere): the same store renders byte-identical output, and an incremental re-render
(cache hits) equals a fresh one. Files go through ``bench.record.atomic_write_bytes`` and are
rewritten only when their bytes change; outputs of an earlier render that are no longer produced
are removed (never anything under ``store/``).
"""

from __future__ import annotations

import functools
import gc
import hashlib
import json
import math
import os
import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import jinja2
import pandas as pd
from markupsafe import Markup

import bench
from bench.errors import BenchError
from bench.leaderboard import templates
from bench.leaderboard.collect import CACHE_FILE, Collection, collect, load_cache, save_cache
from bench.leaderboard.columns import (COSTS, DISPLAY_METRICS, METRIC, METRICS, Column,
                                       explain_label, fmt_p, method_label, fnum, glossary, interval, isnum, mark, mean_sd,
                                       metric_label, sortval, table_columns)
from bench.leaderboard.stats import ALPHA
from bench.leaderboard.store import STORE_DIR, IngestResult, import_runs_csv, ingest, remove_runs
from bench.leaderboard.table import TaskTable, build_tables
from bench.record import atomic_write_bytes

FRACATLAS_CREDIT = ("FracAtlas: Abedeen et al., “FracAtlas: a dataset for fracture classification, localization "
                    "and segmentation of musculoskeletal radiographs”, Scientific Data 10, 521 (2023), CC BY 4.0. "
                    "Figures on these pages that show X-rays are derived from FracAtlas images.")
MURA_NOTE = "MURA (Stanford) may not be redistributed: only numbers derived from it appear here, never images."
DOCS_PAGE = "docs/leaderboards.md"


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
    ingest: IngestResult = field(default_factory=IngestResult)
    removed: list[str] = field(default_factory=list)
    detection_runs: int = 0  # stored detection runs, in detection_*.md/.csv and detection.html

    def _ingest_lines(self) -> list[str]:
        i = self.ingest
        lines = []
        if i.added or i.updated or i.unchanged or self.removed:
            lines.append(f"  store: {len(i.added)} added, {len(i.updated)} updated, {i.unchanged} unchanged,"
                         f" {len(self.removed)} removed")
        if i.generated_skipped:
            lines.append(f"  not stored (generated data; --include-generated to add them): {len(i.generated_skipped)}"
                         f" run(s), e.g. {i.generated_skipped[0]}")
        for s in i.skipped:
            lines.append(f"  skipped {s['path']}: {s['reason']}")
        for d in i.duplicates:
            lines.append(f"  duplicate {d['run_id']}: {d['path']} (kept {d['kept']})")
        return lines

    def summary(self, body_only: bool = False) -> str:
        c = self.collection
        if self.unchanged_summary is not None:
            return "\n".join([f"{len(c.runs)} stored runs -> {self.out_dir}: unchanged since the last render"
                              f" ({c.cached} record(s) from cache)"] + self._ingest_lines()
                             + [self.unchanged_summary]).rstrip("\n")
        head = (f"{len(c.runs)} runs in {len(self.tables)} task table(s) -> {self.out_dir}"
                f" ({self.written} file(s) changed; {c.parsed} record(s) parsed, {c.cached} from cache;"
                f" {self.ci_computed} bootstrap CI(s) computed)")
        lines = []
        for t in self.tables.values():
            lines.append(f"  {t.key}: {answer_text(t)}")
        if self.detection_runs:
            lines.append(f"  detection: {self.detection_runs} run(s) in detection_set1/set2/regions (.md, .csv)")
        for s in c.skipped:
            lines.append(f"  skipped {s['path']}: {s['reason']}")
        for p in self.problems:
            lines.append(f"  problem {p['path']}: {p['reason']}")
        if body_only:
            return "\n".join(lines)
        return "\n".join([head] + self._ingest_lines() + lines)


# --------------------------------------------------------------------------- helpers


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


def _clean(v):
    if isinstance(v, float) and math.isnan(v):
        return None
    return v


def _records(df: pd.DataFrame) -> list[dict]:
    return [{k: _clean(v) for k, v in r.items()} for r in df.to_dict("records")]


def _protocol_text(protocol_json: str) -> str:
    try:
        p = json.loads(protocol_json)
    except (TypeError, ValueError):
        return ""
    return ", ".join(f"{k}={p[k]}" for k in sorted(p)) if isinstance(p, dict) else ""


def _csv_bytes(df: pd.DataFrame) -> bytes:
    return df.to_csv(index=False, lineterminator="\n").encode("utf-8")


def model_page(t: TaskTable, r: dict) -> str:
    name = "__".join((t.key, str(r["model"]), str(r["protocol_key"])))
    return f"models/{slug(name)}.html"


def run_page(run_id: str) -> str:
    return f"runs/{slug(run_id)}.html"


def answer_text(t: TaskTable) -> str:
    """One line: best model, primary mean ± sd over n seeds, its interval, protocol in words."""
    best = t.rows[t.rows["is_best"]]
    label = metric_label(t.primary, t.kind)
    if best.empty:
        return f"no unflagged row with {label}"
    b = {k: _clean(v) for k, v in best.iloc[0].items()}
    pm = f"{t.metric_split}_{t.primary}"
    n = int(b["n_seeds"])
    ties = t.rows[(t.rows["vs_best"] == "not significantly different")]
    score = mean_sd(b.get(pm + "_mean"), b.get(pm + "_std"))
    s = (f"best {b['model']}: {label} {score} over {n} seed{'s' * (n != 1)}"
         f", 95% interval (seeds + images) {interval(b.get('row_ci_low'), b.get('row_ci_high'))}; protocol "
         f"{protocol_words(b)}")
    if len(ties):
        s += f"; not significantly different (Holm): {', '.join(ties['model'].astype(str))}"
    return s


def protocol_words(r: dict) -> str:
    r = {k: _clean(v) for k, v in r.items()}
    parts = [f"preset {r.get('protocol_experiment') or '—'}"]
    size = r.get("protocol_image_size")
    parts.append(f"{int(size)} px images" if isnum(size) else "image size —")
    ep = r.get("protocol_epochs")
    parts.append(f"{int(ep)} epochs" if isnum(ep) else "epochs —")
    parts.append({True: "ImageNet-pretrained", False: "trained from scratch"}.get(r.get("pretrained"), "mixed weights"))
    parts.append(f"on {str(r['device']).upper()}" if r.get("device") else "hardware —")
    return ", ".join(parts)


# --------------------------------------------------------------------------- Markdown / CSV


def _md_table(cols: list[Column], rows: list[dict], t: TaskTable) -> list[str]:
    head = [c.label(t) for c in cols]
    out = ["| " + " | ".join(_md(h) for h in head) + " |",
           "|" + "|".join("---:" if c.kind == "num" else "---" for c in cols) + "|"]
    for r in rows:
        cells = []
        for c in cols:
            text = c.cell(r, t)["text"]
            if c.key == "model" and mark(r) in ("★", "⚑"):
                text += f" {mark(r)}"
            cells.append(_md(text))
        out.append("| " + " | ".join(cells) + " |")
    return out


def task_markdown(t: TaskTable) -> str:
    cols = [c for c in table_columns(t) if "md" in c.places]
    title = f"{t.task} (generated data, not a result)" if t.generated else t.task
    lines = [f"## {_md(title)}", "", f"**Answer:** {_md(answer_text(t))}.", ""]
    lines.append(f"- Task: {_md(t.task)} ({t.kind}{', study level: metrics over studies, bootstrap over patients' if t.study_level else ''}),"
                 f" metrics from `metrics.{t.metric_split}` of each run record; column definitions in"
                 f" {DOCS_PAGE} and on the site's definitions page.")
    lines.append(f"- Ranked by mean {_md(metric_label(t.primary, t.kind))} over seeds (mean ± sample sd); flagged rows"
                 " (⚑, degenerate runs) are listed last and never ranked or best.")
    lines.append("- 95% interval: two-level bootstrap of the seed-mean over seeds and test images (paired on the"
                 " shared split); per-run CIs are on the run pages and in runs.csv.")
    lines.append(f"- vs best: paired {t.test_name} test against the best row on the same test items,"
                 f" Holm-adjusted over the rows compared; ≈ = not significantly different (p ≥ {ALPHA}),"
                 " ↓ = significantly worse, n/c = not comparable."
                 + (" McNemar tests accuracy, not the primary metric." if t.test_name == "McNemar" else
                    " DeLong tests ROC-AUC."))
    for n in t.notes:
        lines.append(f"- Note: {_md(n)}")
    if t.dataset == "fracatlas":
        lines.append(f"- Data: {_md(FRACATLAS_CREDIT)}")
    elif t.dataset == "mura":
        lines.append(f"- Data: {_md(MURA_NOTE)}")
    lines += [""] + _md_table(cols, _records(t.rows), t)
    if not t.literature.empty:
        lines += ["", f"### {_md(t.task)}: reported elsewhere (not ranked, other protocols)", ""]
        lines += [f"- {_md(x)}" for x in literature_notes(t)]
        lines += [""] + _literature_md(t)
    return "\n".join(lines) + "\n"


def literature_notes(t: TaskTable) -> list[str]:
    lit = t.literature
    out = []
    for src in sorted(set(lit["source"])):
        sub = lit[lit["source"] == src]
        cites = "; ".join(dict.fromkeys(sub["citation"]))
        out.append(f"{src}: {sub['protocol_text'].iloc[0]}. {cites}.")
    present = _lit_metric_cols(t)
    thr = [m for m in present if m != "auroc"]
    out.append("Comparable with our columns only in definition, not in protocol: different splits and class balance, "
               "single runs, no intervals. " + (f"{', '.join(metric_label(m, t.kind) for m in thr)} depend on the "
                                                "test set's class balance and the threshold, so they are not comparable "
                                                "with ours in value" if thr else "")
               + ("; ROC-AUC is threshold- and prevalence-free, the closest to comparable." if "auroc" in present else "."))
    return out


def _lit_metric_cols(t: TaskTable) -> list[str]:
    return [m for m in DISPLAY_METRICS if f"{t.metric_split}_{m}_mean" in t.literature.columns
            and t.literature[f"{t.metric_split}_{m}_mean"].notna().any()]


def _literature_md(t: TaskTable) -> list[str]:
    ms = _lit_metric_cols(t)
    out = ["| Model | Source | " + " | ".join(metric_label(m, t.kind) for m in ms) + " | Note |",
           "|---|---|" + "---:|" * len(ms) + "---|"]
    for r in _records(t.literature):
        out.append(f"| {_md(r['model'])} | {_md(r['source'])} | "
                   + " | ".join(fnum(r.get(f"{t.metric_split}_{m}_mean")) for m in ms) + f" | {_md(r.get('note'))} |")
    return out


def task_csv(t: TaskTable) -> bytes:
    ours = t.rows.copy()
    front: list[str] = []
    for c in table_columns(t):
        for f in c.fields(t):
            if f in ours.columns and f not in front:
                front.append(f)
    for f in ("source", "generated"):
        if f not in front:
            front.append(f)
    df = pd.concat([ours, t.literature], ignore_index=True) if not t.literature.empty else ours
    rest = sorted(c for c in df.columns if c not in front)
    df = df[[c for c in front if c in df.columns] + rest]
    df.insert(0, "task", t.task)
    return _csv_bytes(df)


# --------------------------------------------------------------------------- site


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    # compiled once per process; autoescape everything (names and paths come from configs)
    env = jinja2.Environment(loader=jinja2.DictLoader(templates.PAGES), autoescape=True,
                             undefined=jinja2.StrictUndefined)
    return env


def _page_common(depth: int, commits: list[str]) -> dict:
    up = "../" * depth
    return {"css": Markup(templates.CSS), "favicon": Markup(templates.FAVICON), "up": up,
            "version": bench.__version__, "commits": commits, "credit": FRACATLAS_CREDIT, "mura_note": MURA_NOTE}


def _header_cells(cols: list[Column], t: TaskTable) -> list[dict]:
    return [{"key": c.key, "label": c.label(t), "definition": c.definition(t), "type": c.kind} for c in cols]


def _index_table(t: TaskTable, run_pages: set[str]) -> dict:
    cols = [c for c in table_columns(t) if "index" in c.places]
    rows = []
    for r in _records(t.rows):
        links = [{"href": run_page(rid), "text": f"s{seed}"} for rid, seed in _runs_with_seeds(r, t)
                 if run_page(rid) in run_pages]
        cells = []
        for c in cols:
            cell = dict(c.cell(r, t))
            cell["num"] = c.kind == "num"
            cell["key"] = c.key
            if c.key == "model":
                cell["href"] = model_page(t, r)
                cell["links"] = links
                cell["flag"] = r.get("flags") or ""
            cells.append(cell)
        rows.append({"cls": "flagged" if r.get("flags") else ("best" if r.get("is_best") else ""),
                     "model": r["model"], "cells": cells})
    lit_cols = _lit_metric_cols(t) if not t.literature.empty else []
    lit_rows = [{"model": r["model"], "source": r["source"], "citation": r.get("citation"), "note": r.get("note") or "",
                 "vals": [{"text": fnum(r.get(f"{t.metric_split}_{m}_mean")), "v": sortval(r.get(f"{t.metric_split}_{m}_mean"))}
                          for m in lit_cols]}
                for r in _records(t.literature)] if lit_cols else []
    compare = {"metrics": [], "rows": [], "pairs": t.pairs, "test": t.test_name}
    shown = [c for c in cols if c.key not in ("rank", "model", "mark", "p", "flags")]
    compare["metrics"] = [c.label(t) for c in shown]
    for r in _records(t.rows):
        compare["rows"].append({"model": r["model"], "protocol": r.get("protocol_label") or "",
                                "vals": [c.cell(r, t)["text"] for c in shown]})
    return {"key": t.key, "slug": task_slug(t.key), "task": t.task, "kind": t.kind, "study_level": t.study_level,
            "generated": t.generated, "primary_label": metric_label(t.primary, t.kind), "test_name": t.test_name,
            "notes": t.notes, "answer": answer_text(t), "columns": _header_cells(cols, t), "rows": rows,
            "literature": literature_notes(t) if lit_rows else [], "lit_columns": [metric_label(m, t.kind) for m in lit_cols],
            "lit_rows": lit_rows, "dataset": t.dataset, "compare": compare,
            "cost_plot": f"plots/{task_slug(t.key)}_cost.svg" if _has_cost(t) else None,
            "report": f"report-{task_slug(t.key)}.html"}


def _runs_with_seeds(r: dict, t: TaskTable):
    ids = (r.get("run_ids") or "").split()
    sub = t.runs[t.runs["run_id"].isin(ids)]
    return [(rid, "?" if pd.isna(s) else int(s)) for rid, s in zip(sub["run_id"], sub["seed"])]


def _has_cost(t: TaskTable) -> bool:
    pm = f"{t.metric_split}_{t.primary}_mean"
    return any(f"{c}_mean" in t.rows.columns and (t.rows[f"{c}_mean"].notna() & t.rows[pm].notna()).any()
               for c in ("gmacs", "train_images_per_s"))


def cost_plot_svg(t: TaskTable) -> bytes:
    """Primary metric against GMACs and against measured training images/s, Pareto front marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams["svg.hashsalt"] = "bench-leaderboard"  # deterministic ids: same data, same bytes
    plt.rcParams["svg.fonttype"] = "none"  # text as text: smaller files, faster, readable in dark mode too
    pm = f"{t.metric_split}_{t.primary}_mean"
    rows = _records(t.rows)
    devices = sorted({str(r.get("device")).upper() for r in rows if r.get("device")}) or ["hardware not recorded"]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    fig.subplots_adjust(left=0.08, right=0.98, bottom=0.15, top=0.88, wspace=0.25)
    for ax, (key, label, lower_better) in zip(axes, (("gmacs_mean", "GMACs per image (lower is cheaper)", True),
                                                    ("train_images_per_s_mean", "training images/s (higher is faster)", False))):
        pts = [(r[key], r[pm], r["model"], bool(r.get("flags"))) for r in rows if isnum(r.get(key)) and isnum(r.get(pm))]
        ok = [p for p in pts if not p[3]]
        front = []
        for p in sorted(ok, key=lambda p: (p[0] if lower_better else -p[0], -p[1])):
            if not front or p[1] > front[-1][1]:
                front.append(p)
        ax.scatter([p[0] for p in ok], [p[1] for p in ok], s=22, color="#1f6fb4", label="rows", zorder=3)
        bad = [p for p in pts if p[3]]
        if bad:
            ax.scatter([p[0] for p in bad], [p[1] for p in bad], s=30, marker="x", color="#b42318", label="flagged")
        if front:
            ax.step([p[0] for p in front], [p[1] for p in front], where="post", color="#d97706", lw=1.5,
                    label="Pareto front", zorder=2)
        for p in pts[:30]:
            ax.annotate(str(p[2])[:24], (p[0], p[1]), fontsize=7, xytext=(3, 3), textcoords="offset points")
        ax.set_xlabel(label)
        ax.set_ylabel(f"{metric_label(t.primary, t.kind)} (mean over seeds)")
        ax.grid(alpha=0.3)
        if not pts:
            ax.text(0.5, 0.5, "not recorded", ha="center", va="center", transform=ax.transAxes)
        ax.legend(fontsize=7, loc="lower right")
    fig.suptitle(f"{t.task}: score against cost (measured on {', '.join(devices)})", fontsize=10)
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
    plt.close(fig)
    return buf.getvalue()


def _store_rel(row: dict, depth: int) -> str:
    """Path prefix from a page ``depth`` folders down to the run's stored folder."""
    return "../" * depth + f"{STORE_DIR}/{Path(row['abs_path']).name}/"


PLOT_CAPTION = {"roc": "ROC curve ({split} set)", "confusion_matrix": "confusion matrix ({split} set)",
                "learning_curves": "learning curves (training and validation, per epoch)",
                "reliability": "reliability diagram ({split} set)"}
_CASE_WORDS = {"tp": "true positive", "fp": "false positive", "fn": "false negative", "tn": "true negative",
               "most_confident": "most confident", "least_confident": "least confident"}


def _figure_caption(rel: str) -> str:
    name = rel.rsplit("/", 1)[-1].rsplit(".", 1)[0]
    if rel.startswith("explain/grids/"):
        cases, _, image = name.partition("__")
        words = ", ".join(_CASE_WORDS.get(c, c.replace("_", " ")) for c in re.split(r"[+-](?=[a-z])", cases))
        return f"Per-layer heatmaps of {image} ({words}): one row per CAM method, one column per layer"
    if rel.startswith("explain/overlays/"):
        image, _, method = name.partition("__")
        return f"{method_label(method)} heatmap of the final layer over {image}"
    return name.replace("_", " ")


def _run_page(row: dict, t: TaskTable, commits: list[str]) -> str:
    row = {k: _clean(v) for k, v in row.items()}
    splits = [s for s in ("test", "test_study", "val") if isnum(row.get(f"{s}_accuracy")) or isnum(row.get(f"{s}_n"))]
    metrics = [m for m in METRICS if any(isnum(row.get(f"{s}_{m.key}")) for s in splits)]
    metric_rows = []
    for s in splits:
        metric_rows.append({"split": s, "vals": [fnum(row.get(f"{s}_{m.key}")) for m in metrics]
                            + [fnum(row.get(f"{s}_loss")), fnum(row.get(f"{s}_n"), 0)]})
        if s == t.metric_split and any(isnum(row.get(f"ci_{m.key}_low")) for m in metrics):
            metric_rows.append({"split": f"{s} 95% CI", "vals": [
                interval(row.get(f"ci_{m.key}_low"), row.get(f"ci_{m.key}_high")) for m in metrics] + ["", ""]})
    methods = sorted({str(row.get(f"ci_{m.key}_method")) for m in metrics if row.get(f"ci_{m.key}_method")})
    if methods:
        ci_note = (f"CI: bootstrap over {'patients' if t.study_level else 'duplicate groups / images'} of the "
                   f"{t.metric_split} set ({int(row.get('ci_n_units') or 0)} units), method {', '.join(methods)}, 95%"
                   + ("; computed by an earlier render (the predictions were not kept)." if row.get("imported") else "."))
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
    meta = json.loads(row.get("explain_meta") or "{}")
    target = meta.get("target")
    positive = classes[int(row.get("positive_index") or 1)] if t.kind == "binary" and classes else None
    target_text = {"pred": "the predicted class of each image", "positive": f"the positive class ({positive})"}.get(
        target, "not recorded")
    ch = meta.get("chance") or {}
    chance = (f"energy {fnum(ch['energy'], 4)}, pointing {fnum(ch['pointing_game'], 4)}"
              if isnum(ch.get("energy")) and isnum(ch.get("pointing_game")) else "")
    loc = []
    for m, info in sorted((meta.get("methods") or {}).items()):
        vals = {s: row.get(f"explain_{re.sub(r'[^a-z0-9]+', '_', m.lower()).strip('_')}_{s}") for s in ("pointing_game", "energy", "iou")}
        loc.append({"method": method_label(m), "layer": info.get("final_layer") or "—",
                    "n": fnum(info.get("n"), 0), "degenerate": fnum(info.get("degenerate"), 0),
                    "skipped": info.get("skipped"), **{k: fnum(v) for k, v in vals.items()}})
    if not loc:  # older summaries: scores without the method details
        for c in sorted(k for k in row if k.startswith("explain_") and k.endswith("_pointing_game") and isnum(row[k])):
            base = c[: -len("_pointing_game")]
            loc.append({"method": explain_label(c).rsplit(" pointing", 1)[0], "layer": "—", "n": "—", "degenerate": "—",
                        "skipped": None, **{s: fnum(row.get(f"{base}_{s}")) for s in ("pointing_game", "energy", "iou")}})
    pre = _store_rel(row, 1)
    plots = json.loads(row.get("plots") or "{}")
    plot_figs = [{"src": pre + rel, "caption": PLOT_CAPTION.get(name, name.replace("_", " ")).format(split=t.metric_split)}
                 for name, rel in sorted(plots.items())]
    heat = [{"src": pre + rel, "caption": _figure_caption(rel)} for rel in json.loads(row.get("heatmap_files") or "[]")]
    cost = ", ".join(f"{c.label} {fnum(row[c.key] * c.scale, c.digits)}" for c in COSTS if isnum(row.get(c.key)))
    if row.get("device"):
        cost += f" (measured on {str(row['device']).upper()})"
    commit = row.get("git_commit") or ""
    return environment().get_template("run.html").render(
        r=row, task_slug=task_slug(t.key), protocol=_protocol_text(row.get("protocol_json")),
        counts={k: fnum(row.get(f"n_{k}"), 0) for k in ("train", "val", "test")},
        best_epoch=fnum(row.get("best_epoch"), 0), cost=cost, metric_names=[metric_label(m.key, t.kind) for m in metrics] + ["loss", "n"],
        metric_defs=[m.definition for m in metrics] + ["Cross-entropy of the predicted probabilities.", "Items scored."],
        metric_rows=metric_rows, ci_note=ci_note, classes=classes, cms=cms, loc=loc, target_text=target_text, chance=chance,
        layers=meta.get("layers") or [], n_explained=fnum(meta.get("n_images"), 0), plots=plot_figs, heatmaps=heat,
        dataset=t.dataset, run_commit=commit, run_version=row.get("harness_version") or "",
        flags=row.get("flags") or "", generated=bool(row.get("generated")), **_page_common(1, commits))


def _model_runs(t: TaskTable) -> dict[str, list[dict]]:
    """Per row (its ``run_ids``), the columns a model page shows of its runs, in ``t.runs`` order:
    one conversion per table, not a filter and a full-width conversion per model page."""
    cols = [c for c in ["run_id", "seed", "flags", f"ci_{t.primary}_low", f"ci_{t.primary}_high"]
            + [f"{t.metric_split}_{m.key}" for m in METRICS] if c in t.runs.columns]
    recs = _records(t.runs[cols])
    pos = {x["run_id"]: i for i, x in enumerate(recs)}
    return {ids: [recs[i] for i in sorted(pos[x] for x in ids.split() if x in pos)]
            for ids in t.rows["run_ids"].fillna("")}


def _model_page(t: TaskTable, r: dict, commits: list[str], runs: list[dict]) -> str:
    """``runs``: the row's runs from :func:`_model_runs`."""
    shown = [m for m in METRICS if any(x.get(f"{t.metric_split}_{m.key}") is not None for x in runs)]
    per_seed = []
    for x in runs:
        per_seed.append({"seed": x.get("seed"), "href": "../" + run_page(x["run_id"]), "run_id": x["run_id"],
                         "flags": x.get("flags") or "",
                         "ci": interval(x.get(f"ci_{t.primary}_low"), x.get(f"ci_{t.primary}_high")),
                         "vals": [fnum(x.get(f"{t.metric_split}_{m.key}")) for m in shown]})
    cols = [c for c in table_columns(t) if "model" in c.places and c.key not in ("rank", "model")]
    summary = [{"label": c.label(t), "definition": c.definition(t), "text": c.cell(r, t)["text"]} for c in cols]
    return environment().get_template("model.html").render(
        t={"task": t.task, "slug": task_slug(t.key), "primary_label": metric_label(t.primary, t.kind)}, r=r,
        summary=summary, metric_names=[metric_label(m.key, t.kind) for m in shown],
        metric_defs=[m.definition for m in shown], per_seed=per_seed, protocol=protocol_words(r),
        **_page_common(1, commits))


REPORT_RUN_COLUMNS = ("run_id", "classes", "split_sha256", "split_method", "n_train", "n_val", "n_test", "abs_path",
                      "git_commit", "test_confusion_matrix", "test_study_confusion_matrix")


def _report_page(t: TaskTable, commits: list[str]) -> str:
    """What a harness can fill of CLAIM 2024 / TRIPOD+AI / STARD for one task."""
    # the few columns read of every run (a full-width conversion of 10,000 runs took 1.5 s)
    runs = _records(t.runs[[c for c in REPORT_RUN_COLUMNS if c in t.runs.columns]])
    classes = json.loads(runs[0].get("classes") or "[]") if runs else []
    splits = sorted({(x.get("split_sha256") or "")[:12] for x in runs})
    flow = []
    for sha in splits:
        x = next(r for r in runs if (r.get("split_sha256") or "")[:12] == sha)
        cm = json.loads(x.get(f"{'test_study' if t.study_level else 'test'}_confusion_matrix") or "null")
        per_class = [sum(row) for row in cm] if isinstance(cm, list) else []
        flow.append({"sha": sha or "—", "method": x.get("split_method") or "—",
                     "train": fnum(x.get("n_train"), 0), "val": fnum(x.get("n_val"), 0), "test": fnum(x.get("n_test"), 0),
                     "test_classes": ", ".join(f"{classes[i] if i < len(classes) else i}: {n}" for i, n in enumerate(per_class)) or "—",
                     "runs": sum(1 for r in runs if (r.get("split_sha256") or "")[:12] == sha)})
    exclusions = []
    for x in runs[:1]:
        rep = {}
        try:
            rep = json.loads((Path(x["abs_path"]) / "data_report.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            pass
        for k in ("unreadable", "truncated", "label_conflicts", "excluded", "duplicates"):
            v = rep.get(k)
            if isinstance(v, (list, dict)):
                exclusions.append({"what": k.replace("_", " "), "n": len(v)})
            elif isnum(v):
                exclusions.append({"what": k.replace("_", " "), "n": int(v)})
    best = next((r for r in _records(t.rows) if r.get("is_best")), None)
    best_run = None
    if best is not None:
        ids = (best.get("run_ids") or "").split()
        first = next((r["run_id"] for r in runs if r["run_id"] in ids), None)
        best_run = _records(t.runs[t.runs["run_id"] == first])[0] if first is not None else None
    op = json.loads(best_run.get("operating_point_json") or "null") if best_run else None
    test_op = json.loads(best_run.get("test_operating_json") or "null") if best_run else None
    subgroups = json.loads(best_run.get("subgroups_json") or "null") if best_run else None
    sub_rows = []
    if isinstance(subgroups, dict):
        for kind, groups in sorted(subgroups.items()):
            if isinstance(groups, dict):
                for name, g in sorted(groups.items()):
                    if isinstance(g, dict):
                        m_ = g.get("metrics") if isinstance(g.get("metrics"), dict) else g  # H3: {n, metrics, ci | note}
                        ci = g.get("ci") if isinstance(g.get("ci"), dict) else {}
                        vals = {}
                        for m in ("auroc", "accuracy", "recall", "specificity"):
                            c = ci.get(m) if isinstance(ci.get(m), dict) else {}
                            vals[m] = fnum(m_.get(m)) + (f" {interval(c.get('low'), c.get('high'))}" if c else "")
                        sub_rows.append({"by": kind, "group": name, "n": fnum(g.get("n"), 0), "vals": vals,
                                         "note": g.get("note") or ""})
    calib = []
    if best_run:
        for m in ("brier", "ece"):
            calib.append({"label": METRIC[m].label, "text": fnum(best_run.get(f"{t.metric_split}_{m}")),
                          "definition": METRIC[m].definition})
    plots = json.loads(best_run.get("plots") or "{}") if best_run else {}
    reliability = next((_store_rel(best_run, 0) + rel for n, rel in sorted(plots.items()) if "reliab" in n), None)
    gallery = []
    if best_run and t.dataset == "fracatlas":
        for rel in json.loads(best_run.get("heatmap_files") or "[]"):
            if rel.startswith("explain/grids/") and re.search(r"(^|[+/-])(fn|fp)", rel.rsplit("/", 1)[-1]):
                gallery.append({"src": _store_rel(best_run, 0) + rel, "caption": _figure_caption(rel)})
    return environment().get_template("report.html").render(
        t={"task": t.task, "key": t.key, "slug": task_slug(t.key), "kind": t.kind, "dataset": t.dataset,
           "primary_label": metric_label(t.primary, t.kind), "test_name": t.test_name},
        flow=flow, exclusions=exclusions, best=best, best_run=best_run, answer=answer_text(t),
        op=op, test_op=test_op, sub_rows=sub_rows, calib=calib, reliability=reliability, gallery=gallery,
        commits=commits, run_commits=sorted({r.get("git_commit") for r in runs if r.get("git_commit")}),
        **{k: v for k, v in _page_common(0, commits).items() if k != "commits"})


def _definitions_page(tables: dict[str, TaskTable], commits: list[str], docs_href: str | None) -> str:
    seen: dict[str, dict] = {}
    for t in tables.values():
        for c in table_columns(t):
            seen.setdefault(c.label(t), {"label": c.label(t), "definition": c.definition(t)})
    return environment().get_template("definitions.html").render(
        cols=[seen[k] for k in seen], glossary=glossary(), docs_href=docs_href, **_page_common(0, commits))


# --------------------------------------------------------------------------- detection


def _detection_runs(runs: pd.DataFrame) -> list[tuple[Path, dict]]:
    """The store's detection runs (``task.kind: detection``) as (folder, record): their tables
    come from bench.detection.leaderboard, not from the classification tables. Runs on
    generated data are left out (they are stored only on request)."""
    if runs.empty or "task_kind" not in runs.columns:
        return []
    det = runs[(runs["task_kind"] == "detection") & ~runs["generated"].fillna(False).astype(bool)]
    out = []
    for abs_path in det["abs_path"]:
        try:
            out.append((Path(abs_path), json.loads((Path(abs_path) / "record.json").read_text(encoding="utf-8"))))
        except (OSError, ValueError):
            continue  # read once already by collect(): vanished meanwhile
    return out


def _detection_key(det_runs: list[tuple[Path, dict]]) -> list:
    """Stat keys of the stored files the detection tables read (the bootstrap's input)."""
    from bench.leaderboard.collect import stat_key
    from bench.leaderboard.store import DETECTION_FILES

    return [[d.name] + [stat_key(d / f) for f in DETECTION_FILES] for d, _ in det_runs]


def _detection_page(det_tables: dict[str, pd.DataFrame], n_runs: int, commits: list[str]) -> str:
    from bench.detection.leaderboard import COLUMN_DEFINITIONS, NOTE, TITLES

    defs = {}
    for k, v in COLUMN_DEFINITIONS.items():
        for name in k.split(" / "):
            defs[name] = v
    tables = []
    for name, df in det_tables.items():
        cols = [{"label": c, "definition": defs.get(c, "")} for c in df.columns]
        rows = []
        for r in df.itertuples(index=False):
            cells = ["" if v is None or (isinstance(v, float) and not math.isfinite(v)) else
                     (str(int(v)) if isinstance(v, float) and v.is_integer() else str(v)) for v in r]
            rows.append({"cells": cells, "lit": str(getattr(r, "source", "")).startswith("reported elsewhere")})
        tables.append({"name": name, "title": TITLES[name], "columns": cols, "rows": rows})
    return environment().get_template("detection.html").render(
        tables=tables, n_runs=n_runs, note=NOTE, definitions=list(COLUMN_DEFINITIONS.items()), **_page_common(0, commits))


# --------------------------------------------------------------------------- writing


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


RENDER_VERSION = "render-v2"  # bump when an output format changes: forces a full re-render
# the leaderboard's own code is an input too: a changed formatter re-renders (pages included)
CODE_VERSION = hashlib.sha256(b"".join(p.read_bytes() for p in sorted(Path(__file__).parent.glob("*.py")))).hexdigest()[:12]
PAGE_VERSION = hashlib.sha256((json.dumps(templates.PAGES, sort_keys=True) + templates.CSS + "page-v2"
                               + CODE_VERSION).encode()).hexdigest()[:12]


def report_markdown(coll: Collection, problems: list[dict], ingest_res: IngestResult) -> str:
    lines = ["# Leaderboard collection report", "",
             f"- stored runs rendered: {len(coll.runs)}",
             f"- skipped (incomplete or corrupt): {len(coll.skipped) + len(ingest_res.skipped)}",
             f"- duplicates (same run_id in two places; one kept): {len(ingest_res.duplicates)}",
             f"- problems (run listed, statistics missing): {len(problems)}", ""]
    skipped = sorted(coll.skipped + ingest_res.skipped, key=lambda s: (s["path"], s["reason"]))
    if skipped:
        lines += ["## Skipped", "", "| run folder | reason |", "|---|---|"]
        lines += [f"| {_md(s['path'])} | {_md(s['reason'])} |" for s in skipped] + [""]
    if ingest_res.duplicates:
        lines += ["## Duplicates", "", "| run_id | skipped copy | kept copy |", "|---|---|---|"]
        lines += [f"| {_md(d['run_id'])} | {_md(d['path'])} | {_md(d['kept'])} |" for d in ingest_res.duplicates] + [""]
    if problems:
        lines += ["## Problems", "", "| run folder | problem |", "|---|---|"]
        lines += [f"| {_md(p['path'])} | {_md(p['reason'])} |" for p in problems] + [""]
    return "\n".join(lines)


def _validate(primary, n_resamples, ci_scope):
    for k, m in (primary or {}).items():
        if k not in ("binary", "multiclass") or m not in DISPLAY_METRICS or METRIC[m].lower_is_better:
            ok = ", ".join(x for x in DISPLAY_METRICS if not METRIC[x].lower_is_better)
            raise BenchError(f"primary metric {k}={m}: kind must be binary/multiclass, metric one of {ok}")
    if ci_scope not in ("all", "reference", "none"):
        raise BenchError(f"ci_scope must be all, reference or none (got {ci_scope!r})")
    if n_resamples < 100:
        raise BenchError(f"n_resamples must be at least 100 (got {n_resamples})")


def _gc_paused(fn):
    """Run ``fn`` with the cyclic garbage collector off. A cold render builds about a million
    long-lived objects (10,000 parsed rows) that hold no reference cycles; the collector's full
    passes over them cost 0.15-0.4 s of CPU and free nothing (peak memory measured the same)."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        was_enabled = gc.isenabled()
        gc.disable()
        try:
            return fn(*args, **kwargs)
        finally:
            if was_enabled:
                gc.enable()
    return wrapper


@_gc_paused
def render_leaderboard(runs_dirs=(), out_dir="leaderboards", *, n_resamples: int = 1000, seed: int = 0,
                       site: bool = True, ci_scope: str = "all", primary: dict[str, str] | None = None,
                       max_depth: int = 3, use_cache: bool = True, include_generated: bool = False,
                       remove: list[str] | None = None, import_csv: str | os.PathLike | None = None) -> RenderResult:
    """Add the runs under ``runs_dirs`` to the store in ``out_dir`` and render it all.

    ``runs_dirs``: folders of runs (each a ``bench_runs/`` or a folder holding several); may be
    empty to re-render the store. ``remove``: run ids to delete from the store first.
    ``include_generated``: also store runs on generated data (rendered in their own section).
    ``import_csv``: rebuild store entries from an earlier render's ``runs.csv``.
    ``n_resamples``/``seed``: bootstrap settings. ``site``: also write the static HTML site.
    ``ci_scope``: per-run CIs for "all" runs, only each row's "reference" run, or "none".
    ``primary``: the ranking metric per kind, e.g. ``{"multiclass": "accuracy"}``. Raises
    BenchError on bad input (before anything is written); incomplete/corrupt/duplicate runs are
    reported in the result and ``report.md``."""
    if isinstance(runs_dirs, (str, os.PathLike)):
        runs_dirs = [runs_dirs]
    runs_dirs = [str(r) for r in runs_dirs]
    _validate(primary, n_resamples, ci_scope)
    for r in runs_dirs:
        if not Path(r).is_dir():
            raise BenchError(f"--runs {r}: not a directory")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise BenchError(f"--out {out}: exists and is not a directory")
    store = out / STORE_DIR
    if not runs_dirs and not remove and not import_csv and not store.is_dir():
        raise BenchError(f"nothing to render: {store} does not exist; give run folders with --runs DIR")
    tm: dict[str, float] = {}
    t0 = time.perf_counter()
    removed = remove_runs(store, list(remove)) if remove else []
    if import_csv:
        p = Path(import_csv)
        if not p.is_file():
            raise BenchError(f"--import-runs-csv {p}: not a file")
        import_runs_csv(p, p.parent / "runs", store)
    ing = ingest(runs_dirs, store, include_generated=include_generated, max_depth=max_depth)
    tm["ingest_s"] = time.perf_counter() - t0
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    cache = load_cache(out / CACHE_FILE if use_cache else None)
    coll = collect([store], cache, max_depth=1) if store.is_dir() else Collection(runs=pd.DataFrame())
    if not coll.runs.empty:  # shown relative to the output folder: the same wherever it is checked out
        coll.runs["path"] = [f"{STORE_DIR}/{Path(a).name}" for a in coll.runs["abs_path"]]
    tm["collect_s"] = time.perf_counter() - t0
    docs_href = "../" + DOCS_PAGE if (out.resolve().parent / DOCS_PAGE).is_file() else None
    det_runs = _detection_runs(coll.runs)
    # Same records, same options, outputs in place: nothing to do.
    digest = hashlib.sha256(json.dumps([
        PAGE_VERSION, RENDER_VERSION, bench.__version__, n_resamples, seed, site, ci_scope,
        sorted((primary or {}).items()), docs_href,
        list(zip(coll.runs.get("path", []), coll.runs.get("_record_key", []))), coll.skipped,
        ing.skipped, ing.duplicates, _detection_key(det_runs),
    ]).encode()).hexdigest()
    if use_cache and cache.get("digest") == digest and _outputs_present(out, cache.get("outputs", [])):
        tm["total_s"] = time.perf_counter() - t0
        return RenderResult(out_dir=out, collection=coll, tables={}, problems=[], files=cache["outputs"],
                            written=0, timings=tm, unchanged_summary=cache.get("summary", ""), ingest=ing,
                            removed=removed)
    t1 = time.perf_counter()
    tables, problems, info = build_tables(coll.runs, cache, n_resamples=n_resamples, seed=seed,
                                          ci_scope=ci_scope, primary=primary)
    tm["stats_s"] = time.perf_counter() - t1
    t2 = time.perf_counter()
    w = _Writer(out)
    runs_all = []
    for t in tables.values():
        s = task_slug(t.key)
        w.write(f"{s}.md", task_markdown(t).encode("utf-8"))
        w.write(f"{s}.csv", task_csv(t))
        runs_all.append(t.runs)
    det_tables = None
    if det_runs:
        from bench.detection.leaderboard import detection_files, detection_tables, table_markdown

        det_tables = detection_tables(runs=det_runs, n_resamples=n_resamples, seed=seed)
        for rel, data in detection_files(det_tables).items():
            w.write(rel, data)
    real = [t for t in tables.values() if not t.generated]
    gen = [t for t in tables.values() if t.generated]
    md_all = ("# Leaderboards\n\nGenerated by `bench-leaderboard` from the results store (`store/`); column "
              f"definitions: {DOCS_PAGE}. {FRACATLAS_CREDIT}\n\n")
    md_all += "\n".join(task_markdown(t) for t in real)
    if det_tables:
        md_all += ("\n# Fracture detection (task.kind: detection)\n\nColumn definitions: detection_set1.md and "
                   "docs/detection.md.\n\n" + "\n".join(table_markdown(n, df) for n, df in det_tables.items()))
    if gen:
        md_all += "\n# Generated data (tests and quickstart; not results)\n\n" + "\n".join(task_markdown(t) for t in gen)
    w.write("README.md", md_all.encode("utf-8"))
    runs_df = pd.concat(runs_all, ignore_index=True) if runs_all else pd.DataFrame()
    if not runs_df.empty:
        drop = ["abs_path", "stored_ci", "explain_meta", "operating_point_json", "subgroups_json", "test_operating_json"]
        runs_df = runs_df.drop(columns=[c for c in drop if c in runs_df.columns] + [c for c in runs_df.columns if c.startswith("_")])
        first = ["task", "model", "seed", "run_id", "flags", "generated"]
        metric_cols = [f"{s}_{m}" for s in ("test_study", "test", "val") for m in DISPLAY_METRICS]
        ordered = [c for c in first + metric_cols if c in runs_df.columns]
        runs_df = runs_df[ordered + sorted(c for c in runs_df.columns if c not in ordered)]
    w.write("runs.csv", _csv_bytes(runs_df))
    w.write("report.md", report_markdown(coll, problems, ing).encode("utf-8"))
    tm["tables_s"] = time.perf_counter() - t2
    t3 = time.perf_counter()
    pages_written = 0
    if site:
        commits = sorted({c[:12] for c in coll.runs.get("git_commit", []) if isinstance(c, str) and c})
        run_pages = {run_page(rid) for t in tables.values() for rid in t.runs["run_id"]}
        index_tables = [_index_table(t, run_pages) for t in tables.values()]
        html = environment().get_template("index.html").render(
            tables=[x for x in index_tables if not x["generated"]], generated=[x for x in index_tables if x["generated"]],
            js=Markup(templates.JS), n_runs=len(coll.runs), docs_href=docs_href,
            detection=f"{len(det_runs)} run(s), Set 1, Set 2 and per region" if det_tables else "",
            n_skipped=len(coll.skipped) + len(ing.skipped) + len(ing.duplicates), alpha=ALPHA, **_page_common(0, commits))
        w.write("index.html", html.encode("utf-8"))
        w.write("definitions.html", _definitions_page(tables, commits, docs_href).encode("utf-8"))
        if det_tables:
            w.write("detection.html", _detection_page(det_tables, len(det_runs), commits).encode("utf-8"))
        tm["index_s"] = time.perf_counter() - t3  # the index and definitions; pages below are incremental
        for t, it in zip(tables.values(), index_tables):
            if it["cost_plot"]:
                # drawing costs ~0.5 s a plot: redraw only when the plotted rows changed
                pkey = hashlib.sha256(json.dumps([PAGE_VERSION, t.key, _records(t.rows[["model", "flags", "device"] + [
                    c for c in (f"{t.metric_split}_{t.primary}_mean", "gmacs_mean", "train_images_per_s_mean")
                    if c in t.rows.columns]])], default=str).encode()).hexdigest()
                plots_cache = cache.setdefault("plots", {})
                target = out / it["cost_plot"]
                if plots_cache.get(it["cost_plot"]) == pkey and target.is_file():
                    w.files.append(it["cost_plot"])
                else:
                    w.write(it["cost_plot"], cost_plot_svg(t))
                    plots_cache[it["cost_plot"]] = pkey
            w.write(it["report"], _report_page(t, commits).encode("utf-8"))
            # model pages: re-rendered only when what they show changed (their row, their runs)
            model_cache = cache.setdefault("model_pages", {})
            runs_of = _model_runs(t)
            tkey = [PAGE_VERSION, bench.__version__, commits, t.key, t.kind, t.primary, t.metric_split, t.study_level,
                    sorted(t.rows.columns)]
            for r in _records(t.rows):
                rel, runs = model_page(t, r), runs_of.get(r.get("run_ids") or "", [])
                mkey = hashlib.sha256(json.dumps([tkey, r, runs], default=str).encode()).hexdigest()
                if model_cache.get(rel) == mkey and (out / rel).is_file():
                    w.files.append(rel)
                else:
                    w.write(rel, _model_page(t, r, commits, runs).encode("utf-8"))
                    model_cache[rel] = mkey
        page_files, pages_written = _write_run_pages(out, tables, cache, commits)
        w.files.extend(page_files)
    else:
        cache["pages"] = {}
    w.close()
    tm["site_s"] = time.perf_counter() - t3
    # remove what an earlier render produced and this one did not (vanished runs or tasks)
    produced = set(w.files)
    for old in cache.get("outputs", []):
        if old not in produced and not old.startswith(STORE_DIR + "/"):
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
    cache["model_pages"] = {k: v for k, v in cache.get("model_pages", {}).items() if k in produced}
    result = RenderResult(out_dir=out, collection=coll, tables=tables, problems=problems, files=sorted(produced),
                          written=w.changed + pages_written, timings=tm, ci_computed=info.get("ci_computed", 0),
                          ingest=ing, removed=removed, detection_runs=len(det_runs))
    cache["digest"] = digest
    cache["summary"] = result.summary(body_only=True)
    if use_cache:
        save_cache(out / CACHE_FILE, cache)
    tm["total_s"] = time.perf_counter() - t0
    return result


def _write_run_pages(out: Path, tables: dict[str, TaskTable], cache: dict, commits: list[str]) -> tuple[list[str], int]:
    """Run pages under ``out/runs``, re-rendered only when their inputs changed (record stat key,
    CI cache key, task table settings, template version, commits: ``cache["pages"]``). Figures
    are not copied: pages link the stored files under ``store/``."""
    runs_dir = out / "runs"
    runs_dir.mkdir(parents=True, exist_ok=True)
    existing = set(os.listdir(runs_dir))
    old_pages = cache.get("pages", {})
    new_pages: dict[str, list] = {}
    files: list[str] = []
    written = 0
    pool = ThreadPoolExecutor(max_workers=8)
    futures = []
    for t in tables.values():
        # every page prints the harness version: a new one rewrites the pages kept from the last render
        tkey = json.dumps([t.key, t.kind, t.metric_split, t.study_level, PAGE_VERSION, bench.__version__, commits])
        df = t.runs
        cks = df["_ci_key"].fillna("") if "_ci_key" in df else [""] * len(df)
        todo = []
        for i, (rid, rk, ck, p) in enumerate(zip(df["run_id"], df["_record_key"], cks, df["path"])):
            sl = slug(rid)
            key = json.dumps([rk, ck, p, tkey])
            old = old_pages.get(sl)
            if old and old[0] == key and f"{sl}.html" in existing:
                new_pages[sl] = old
                files.append(f"runs/{sl}.html")
            else:
                todo.append((i, sl, key))
        if not todo:
            continue
        sub = df.iloc[[i for i, _, _ in todo]]
        sub = sub.drop(columns=[c for c in sub.columns if c.startswith("_")]).to_dict("records")
        for (i, sl, key), row in zip(todo, sub):
            data = _run_page(row, t, commits).encode("utf-8")
            futures.append(pool.submit(atomic_write_bytes, runs_dir / f"{sl}.html", data))
            written += 1
            new_pages[sl] = [key]
            files.append(f"runs/{sl}.html")
    for f in futures:
        f.result()
    pool.shutdown()
    cache["pages"] = new_pages
    return files, written


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
