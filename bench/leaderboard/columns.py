"""The one column table of the leaderboard: every Markdown, CSV, index, model and run page reads it.

A column is one :class:`Column` entry: its header label, the definition shown on the page (a
tooltip reachable by keyboard, the definitions page, docs/leaderboards.md), the raw fields it
puts in the CSV, and how a row's cell reads. Metrics and costs are entries of :data:`METRICS`
and :data:`COSTS`; adding one there adds it to every output.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from typing import Callable


@dataclass(frozen=True)
class Metric:
    key: str  # as in record.json metrics
    label: str
    definition: str
    macro_label: str | None = None  # multi-class label (macro one-vs-rest averages)
    lower_is_better: bool = False
    binary_only: bool = False


METRICS: tuple[Metric, ...] = (
    Metric("auroc", "ROC-AUC", "Area under the ROC curve: the chance that a random positive image scores above a "
           "random negative one (0.5 = chance, 1 = perfect); needs no threshold.", "ROC-AUC (macro OvR)"),
    Metric("auprc", "AUPRC", "Average precision, the area under the precision-recall curve; chance level is the "
           "prevalence of the positive class, so it shows what ROC-AUC hides on rare positives.", "AUPRC (macro OvR)"),
    Metric("accuracy", "Accuracy", "Share of test items classified correctly at threshold 0.5 (argmax); on an "
           "imbalanced test set a model predicting the majority class scores high."),
    Metric("balanced_accuracy", "Balanced acc.", "Mean of the per-class recalls (sensitivity and specificity for "
           "binary tasks): accuracy as if the classes were balanced."),
    Metric("precision", "Precision", "Share of items predicted positive that are positive (PPV), threshold 0.5; "
           "— when nothing is predicted positive (undefined).", "Precision (macro)"),
    Metric("recall", "Sensitivity", "Recall of the positive class: share of positive (fractured / abnormal) items "
           "found, threshold 0.5.", "Recall (macro)"),
    Metric("specificity", "Specificity", "Share of negative items called negative, threshold 0.5.", binary_only=True),
    Metric("f1", "F1", "Harmonic mean of precision and sensitivity, threshold 0.5.", "F1 (macro)"),
    Metric("kappa", "Kappa", "Cohen's kappa: agreement with the labels beyond what chance agreement gives "
           "(0 = chance)."),
    Metric("sensitivity_at_spec90", "Sens. @ spec 0.90", "Highest sensitivity whose specificity reaches 0.90 on "
           "the test ROC curve.", binary_only=True),
    Metric("sensitivity_at_spec95", "Sens. @ spec 0.95", "Highest sensitivity whose specificity reaches 0.95 on "
           "the test ROC curve.", binary_only=True),
    Metric("brier", "Brier", "Brier score: mean squared error of the predicted probabilities (lower is better).",
           lower_is_better=True),
    Metric("ece", "ECE", "Expected calibration error: 15 equal-width confidence bins, L1 gap between confidence "
           "and accuracy (lower is better).", lower_is_better=True),
)
METRIC = {m.key: m for m in METRICS}
DISPLAY_METRICS = tuple(m.key for m in METRICS)
LOWER_IS_BETTER = frozenset(m.key for m in METRICS if m.lower_is_better)


@dataclass(frozen=True)
class Cost:
    key: str
    label: str
    definition: str
    scale: float = 1.0
    digits: int = 2


COSTS: tuple[Cost, ...] = (
    Cost("params", "Params (M)", "Trainable and frozen parameters of the model, millions.", 1e-6),
    Cost("gmacs", "GMACs", "Multiply-accumulates of one forward pass at the model's input size, billions "
         "(torch.utils.flop_counter)."),
    Cost("train_images_per_s", "Train img/s", "Training throughput measured in the run, data loading included, on "
         "the run's hardware (see the protocol label).", digits=1),
    Cost("latency_ms", "Latency ms/img", "Median batch-1 inference time per image on the run's hardware.", digits=1),
)
COST = {c.key: c for c in COSTS}

EXPLAIN_SCORE_TEXT = {
    "pointing_game": "share of heatmaps whose maximum falls inside a fracture box (FracAtlas boxes)",
    "energy": "share of the heatmap's energy inside the fracture boxes; a uniform map scores the boxes' area share",
    "iou": "IoU of the heatmap's top pixels with the fracture boxes",
}
METHOD_LABEL = {"gradcam": "Grad-CAM", "gradcampp": "Grad-CAM++", "eigencam": "EigenCAM"}


# --------------------------------------------------------------------------- formatting


def isnum(x) -> bool:
    # numpy scalars count (pandas hands them out); booleans do not
    return isinstance(x, numbers.Real) and not isinstance(x, bool) and type(x).__name__ != "bool_" and math.isfinite(x)


def fnum(x, d: int = 3) -> str:
    return f"{x:.{d}f}" if isnum(x) else "—"


def fmt_p(p) -> str:
    """p-values: 4 decimals; below 1e-4 "< 0.0001" (never "0.0000"); undefined "—"."""
    if not isnum(p):
        return "—"
    return "< 0.0001" if p < 1e-4 else f"{p:.4f}"


def mean_sd(mean, sd, d: int = 3) -> str:
    if not isnum(mean):
        return "—"
    return f"{mean:.{d}f}" + (f" ± {sd:.{d}f}" if isnum(sd) else "")


def interval(low, high, d: int = 3) -> str:
    return f"[{low:.{d}f}, {high:.{d}f}]" if isnum(low) and isnum(high) else "—"


def sortval(x) -> str | None:
    return repr(float(x)) if isnum(x) else None


def metric_label(key: str, kind: str) -> str:
    m = METRIC[key]
    return (m.macro_label or m.label) if kind == "multiclass" else m.label


def method_label(method: str) -> str:
    return METHOD_LABEL.get(method, method)


def explain_label(col: str) -> str:
    """``explain_gradcampp_pointing_game`` -> ``Grad-CAM++ pointing game``."""
    rest = col[len("explain_"):]
    for score in EXPLAIN_SCORE_TEXT:
        if rest.endswith("_" + score):
            method = rest[: -len(score) - 1]
            return f"{METHOD_LABEL.get(method, method)} {score.replace('_', ' ')}"
    return rest.replace("_", " ")


def explain_definition(col: str) -> str:
    for score, text in EXPLAIN_SCORE_TEXT.items():
        if col.endswith("_" + score):
            return f"Final CAM layer, mean over seeds: {text}."
    return "Localisation score of the final CAM layer."


MARK = {"best": "★", "not significantly different": "≈", "significantly worse": "↓"}
MARK_TEXT = {"★": "★ best", "≈": "≈ n.s.", "↓": "↓ worse"}


def mark(row: dict) -> str:
    if row.get("flags"):
        return "⚑"
    vs = str(row.get("vs_best") or "")
    if vs in MARK:
        return MARK[vs]
    return "n/c" if vs.startswith("not comparable") else ""


# --------------------------------------------------------------------------- the column table


@dataclass(frozen=True)
class Column:
    key: str
    label: Callable  # (t) -> str
    definition: Callable  # (t) -> str
    fields: Callable  # (t) -> tuple of row fields written to the CSV
    cell: Callable  # (row, t) -> dict(text=..., v=..., title=...)
    kind: str = "num"  # "num" sorts numerically
    places: frozenset = field(default_factory=lambda: frozenset({"index", "md", "csv", "model"}))


def _c(text, v=None, title=None) -> dict:
    return {"text": "" if text is None else str(text), "v": v, "title": title}


def _pm(t) -> str:
    return f"{t.metric_split}_{t.primary}"


def _test_def(t) -> str:
    what = ("DeLong test of the two ROC-AUCs on the same test images" if t.test_name == "DeLong" else
            "McNemar test on per-item correctness (it tests accuracy at 0.5, not the primary metric; no standard "
            "paired test exists for macro-F1)")
    return (f"Paired test of this row against the best row: {what}, one run of each on the same test split "
            f"(same seed preferred). p-values Holm-adjusted over all rows compared with the best; "
            f"p below 0.0001 prints as < 0.0001; — when no shared split or no predictions.")


def _static(x):
    return lambda t: x


def table_columns(t) -> list[Column]:
    """The columns of a task table, in display order (index, Markdown, model pages, CSV)."""
    pm = _pm(t)
    primary_m = METRIC[t.primary]
    cols = [
        Column("rank", _static("Rank"), _static("Competition rank (1, 2, 2, 4) by the mean primary metric over "
                                                 "seeds. Flagged rows are not ranked."),
               _static(("rank",)), lambda r, t: _c("" if not isnum(r.get("rank")) else int(r["rank"]),
                                                   sortval(r.get("rank")))),
        Column("model", _static("Model"), _static("The backbone. Links: its model page (all seeds) and each seed's "
                                                   "run page (s0, s1, ...). ⚑ = flagged run(s)."),
               _static(("model", "run_ids")), lambda r, t: _c(r["model"]), kind="text"),
        Column("primary", lambda t: f"{metric_label(t.primary, t.kind)} mean ± sd",
               lambda t: f"Primary metric (ranks the table). {primary_m.definition} Mean over seeds ± sample "
                         f"standard deviation (ddof = 1; no sd for one seed).",
               lambda t: (f"{pm}_mean", f"{pm}_std", f"{pm}_n"),
               lambda r, t: _c(mean_sd(r.get(f"{_pm(t)}_mean"), r.get(f"{_pm(t)}_std")), sortval(r.get(f"{_pm(t)}_mean")))),
        Column("interval", _static("95% interval (seeds + images)"),
               lambda t: "Interval of the seed-mean primary metric covering both sources of variation: a two-level "
                         "bootstrap that redraws the seeds and the test images (patients / duplicate groups), paired "
                         "on the shared test split; percentile, 95%. — when predictions are missing.",
               _static(("row_ci_value", "row_ci_low", "row_ci_high", "row_ci_method")),
               lambda r, t: _c(interval(r.get("row_ci_low"), r.get("row_ci_high")), sortval(r.get("row_ci_low")))),
        Column("mark", _static("vs best"),
               _static("★ best row (never a flagged one); ≈ not significantly different from the best (Holm-adjusted "
                       "p ≥ 0.05); ↓ significantly worse; n/c not comparable (no run on the same test split); "
                       "⚑ flagged: a degenerate run, listed but never ranked or best."),
               _static(("is_best", "vs_best", "not_sig_worse")),
               lambda r, t: _c(MARK_TEXT.get(mark(r), mark(r) or ("—" if not r.get("is_best") else "")),
                               title=" ".join(x for x in (r.get("vs_best"), r.get("pair_runs")) if x) or None),
               kind="text"),
        Column("p", lambda t: f"p ({t.test_name}, Holm)", _test_def,
               _static(("p_holm", "p_vs_best", "p_delong", "p_mcnemar", "pair_runs")),
               lambda r, t: _c(fmt_p(r.get("p_holm")), sortval(r.get("p_holm")),
                               title=f"unadjusted p {fmt_p(r.get('p_vs_best'))}" if isnum(r.get("p_vs_best")) else None)),
        Column("seeds", _static("Seeds"), _static("Number of seeds (runs) in the row; the seeds are in the tooltip."),
               _static(("n_seeds", "seeds", "n_splits")),
               lambda r, t: _c(int(r["n_seeds"]), sortval(float(r["n_seeds"])), title=f"seeds {r.get('seeds')}")),
        Column("protocol", _static("Protocol"),
               _static("Preset · image size · epochs · ImageNet-pretrained or from scratch · hardware of the runs. "
                       "Rows with different protocols are different experiments; the full protocol is on the run "
                       "pages (the protocol key, a hash of it, in the tooltip)."),
               _static(("protocol_label", "protocol_key", "protocol_experiment", "pretrained", "device")),
               lambda r, t: _c(r.get("protocol_label") or "—", title=f"protocol key {r.get('protocol_key')}"), kind="text"),
    ]
    for m in METRICS:
        if m.key == t.primary or (m.binary_only and t.kind != "binary"):
            continue
        if f"{t.metric_split}_{m.key}_mean" not in t.rows.columns:
            continue
        cols.append(Column(
            m.key, (lambda m: lambda t: metric_label(m.key, t.kind))(m),
            (lambda m: lambda t: f"{m.definition} Mean over seeds ± sd."
             + (" Macro average over classes (one-vs-rest)." if t.kind == "multiclass" and m.macro_label else ""))(m),
            (lambda m: lambda t: tuple(f"{t.metric_split}_{m.key}_{s}" for s in ("mean", "std", "n")))(m),
            (lambda m: lambda r, t: _c(mean_sd(r.get(f"{t.metric_split}_{m.key}_mean"), r.get(f"{t.metric_split}_{m.key}_std")),
                                       sortval(r.get(f"{t.metric_split}_{m.key}_mean"))))(m)))
    for c in COSTS:
        if f"{c.key}_mean" not in t.rows.columns:
            continue
        cols.append(Column(
            c.key, _static(c.label), _static(c.definition + " Mean over seeds."),
            (lambda c: lambda t: (f"{c.key}_mean", f"{c.key}_std"))(c),
            (lambda c: lambda r, t: _c(fnum(r[f"{c.key}_mean"] * c.scale, c.digits) if isnum(r.get(f"{c.key}_mean")) else "—",
                                       sortval(r.get(f"{c.key}_mean"))))(c)))
    for e in sorted(x[:-5] for x in t.rows.columns if x.startswith("explain_") and x.endswith("_mean")):
        cols.append(Column(
            e, _static(explain_label(e)), _static(explain_definition(e)), _static((f"{e}_mean", f"{e}_std")),
            (lambda e: lambda r, t: _c(fnum(r.get(f"{e}_mean")), sortval(r.get(f"{e}_mean"))))(e)))
    cols.append(Column("flags", _static("Flags"),
                       _static("Set by the evaluation on a degenerate run: constant predictions on test, or a "
                               "validation ROC-AUC within 0.05 of 0.5. A flagged row is listed, never ranked or best."),
                       _static(("flags", "flagged_runs")),
                       lambda r, t: _c(f"⚑ {r['flags']} ({int(r.get('flagged_runs') or 0)}/{int(r['n_seeds'])} runs)"
                                       if r.get("flags") else "", None), kind="text"))
    cols.append(Column("ref_ci", _static("95% CI (ref. run)"),
                       _static("Bootstrap CI of the reference run (lowest seed) on its own test set; per-run CIs are "
                               "on the run pages."),
                       lambda t: ("ref_run_id", "ref_seed") + tuple(f"ref_ci_{m}_{s}" for m in DISPLAY_METRICS
                                                                  for s in ("value", "low", "high")),
                       lambda r, t: _c(interval(r.get(f"ref_ci_{t.primary}_low"), r.get(f"ref_ci_{t.primary}_high"))),
                       places=frozenset({"csv"})))
    return cols


def glossary() -> list[tuple[str, str]]:
    """(term, definition) for the definitions page and docs/leaderboards.md."""
    return [
        ("DeLong test", "Paired test of two ROC-AUCs on the same items (Sun & Xu 2014 fast algorithm). Used when "
                        "the primary metric is ROC-AUC."),
        ("McNemar test", "Paired test on per-item correctness (exact binomial below 25 discordant pairs, chi-square "
                         "with continuity correction otherwise). It tests accuracy at the 0.5 threshold, not macro-F1."),
        ("Holm correction", "Each row is tested against the best row; with k such tests the p-values are "
                            "Holm-adjusted (step-down Bonferroni), so ≈ / ↓ control the family-wise error at 0.05."),
        ("95% interval (seeds + images)", "Two-level percentile bootstrap of the seed-mean: seeds redrawn with "
                                          "replacement, test images (their groups) redrawn with replacement, the same "
                                          "image draw applied to every seed on a shared split."),
        ("Per-run CI", "On each run page: BCa bootstrap (percentile fallback) over that run's test images or patients."),
        ("—", "Undefined or not derivable (e.g. precision with no positive predictions; intervals of runs imported "
              "without predictions)."),
        ("Flagged (⚑)", "A degenerate run: constant predictions on test or validation ROC-AUC within 0.05 of 0.5. "
                        "Listed, never ranked or best."),
    ]
