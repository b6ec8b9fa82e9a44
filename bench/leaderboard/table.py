"""Per-task leaderboard tables: seed aggregates, reference-run CIs, paired tests vs the best row.

Definitions (also in docs/leaderboards.md):

- A table row is one (model, protocol) of a task, aggregated over its seeds (mean ± sample std, n).
- Its *reference run* is the run with the lowest seed; its bootstrap CI is shown in the table
  (every run's CI is on its own page).
- The *best* row has the highest mean primary metric (ties: model name, then protocol).
- Each other row is compared with the best on the same test items: a run of the row and a run of
  the best with the same split sha256 (same seed preferred, then the lowest seed). No shared
  split: "not comparable". Tables ranked by ROC-AUC (binary) use DeLong; the others (multi-class,
  ranked by macro-F1, or any other --primary) McNemar on per-item correctness (no standard
  paired test exists for macro-F1; McNemar tests accuracy).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from bench.errors import BenchError
from bench.leaderboard import stats
from bench.leaderboard.collect import load_predictions, prediction_key
from bench.leaderboard.literature import literature_for

DISPLAY_METRICS = ("auroc", "accuracy", "precision", "recall", "specificity", "f1", "kappa")
COST_COLS = ("params", "gmacs", "train_images_per_s", "latency_ms")
GROUP = ["model", "protocol_key"]


@dataclass
class TaskTable:
    task: str
    kind: str  # "binary" | "multiclass"
    dataset: str
    study_level: bool
    metric_split: str  # "test" or "test_study"
    primary: str
    test_name: str  # paired test used for the significance mark
    rows: pd.DataFrame  # ours (ranked) then literature rows
    runs: pd.DataFrame  # runs of this task with per-run CI columns
    notes: list[str] = field(default_factory=list)


def _ci_cache_key(row, n_resamples: int, seed: int, kind: str) -> str:
    return json.dumps([row["abs_path"], prediction_key(row), n_resamples, seed, kind, int(bool(row["study_level"]))])


class _LazyRows:
    """run_id -> row (a Series) on demand: converting 10,000 rows to dicts up front costs seconds."""

    def __init__(self, df: pd.DataFrame):
        self.df = df
        self.pos = {rid: i for i, rid in enumerate(df["run_id"])}
        self._rows: dict[str, pd.Series] = {}

    def __getitem__(self, rid: str) -> pd.Series:
        if rid not in self._rows:
            self._rows[rid] = self.df.iloc[self.pos[rid]]
        return self._rows[rid]


class _Stats:
    """CI and paired-test computations through the cache; prediction files read at most once."""

    def __init__(self, cache: dict, n_resamples: int, seed: int, problems: list[dict]):
        self.cache = cache
        self.n_resamples = n_resamples
        self.seed = seed
        self.problems = problems
        self._preds: dict[str, stats.PredictionSet | None] = {}
        self.used_ci: set[str] = set()
        self.used_pairs: set[str] = set()
        self.computed = 0

    def preds(self, row):
        p = row["abs_path"]
        if p not in self._preds:
            try:
                ps = load_predictions(row)
                k = ps.prob.shape[1]
                if ps.n and (ps.label.min() < 0 or ps.label.max() >= k or ps.pred.min() < 0 or ps.pred.max() >= k):
                    raise BenchError(f"{row['path']}: label/pred outside 0..{k - 1} in the predictions")
                self._preds[p] = ps
            except (BenchError, ValueError, KeyError, TypeError) as e:
                # a bad predictions file costs the run its CI and tests, not the leaderboard
                self._preds[p] = None
                self.problems.append({"path": row["path"], "reason": str(e).splitlines()[0] if str(e) else type(e).__name__})
        return self._preds[p]

    def _cached(self, store: str, key: str, compute):
        """Cached result of ``compute()``; problems met while computing are cached with it and
        reported again on a hit, so a warm render lists the same problems as a cold one."""
        hit = self.cache[store].get(key)
        if hit is None:
            before = len(self.problems)
            res = compute()
            hit = {"result": res, "problems": self.problems[before:]}
            self.cache[store][key] = hit
        else:
            self.problems.extend(hit.get("problems", []))
        return hit.get("result") or None

    def ci(self, row, kind: str) -> dict | None:
        key = _ci_cache_key(row, self.n_resamples, self.seed, kind)
        self.used_ci.add(key)

        def compute():
            ps = self.preds(row)
            if ps is None:
                return {}
            try:
                res = stats.bootstrap_ci(ps, kind, n_resamples=self.n_resamples, seed=self.seed)
            except BenchError as e:
                self.problems.append({"path": row["path"], "reason": str(e)})
                return {}
            self.computed += 1
            return res

        return self._cached("ci", key, compute)

    def pair(self, a, b, kind: str) -> dict | None:
        key = json.dumps([a["abs_path"], prediction_key(a), b["abs_path"], prediction_key(b), kind])
        self.used_pairs.add(key)

        def compute():
            pa, pb = self.preds(a), self.preds(b)
            if pa is None or pb is None:
                return {}
            try:
                return stats.paired_tests(pa, pb, kind)
            except BenchError as e:
                return {"comparable": False, "reason": str(e)}

        return self._cached("pairs", key, compute)

    def prune(self) -> None:
        # keep the cache the size of the current input
        self.cache["ci"] = {k: v for k, v in self.cache["ci"].items() if k in self.used_ci}
        self.cache["pairs"] = {k: v for k, v in self.cache["pairs"].items() if k in self.used_pairs}


def _pick_pair(g_runs: pd.DataFrame, b_runs: pd.DataFrame):
    """(run of the row, run of the best) on the same split: same seed first, then lowest seeds,
    then run ids. Linear in the number of runs (sweeps can have hundreds of seeds per row)."""
    exact: dict[tuple, str] = {}
    lowest: dict[str, tuple] = {}
    for r, s, sp in zip(b_runs["run_id"], b_runs["seed"], b_runs["split_sha256"]):
        if not sp:
            continue
        k = (_seed_key(s), r)
        exact[(_seed_key(s), sp)] = min(exact.get((_seed_key(s), sp), r), r)
        if sp not in lowest or k < lowest[sp]:
            lowest[sp] = k
    best = None
    for r, s, sp in zip(g_runs["run_id"], g_runs["seed"], g_runs["split_sha256"]):
        if sp not in lowest:
            continue
        sk = _seed_key(s)
        if (sk, sp) in exact:
            cand = (0, sk, sk, r, exact[(sk, sp)])
        else:
            cand = (1, sk, lowest[sp][0], r, lowest[sp][1])
        if best is None or cand < best:
            best = cand
    return None if best is None else (best[3], best[4])


def _seed_key(s):
    return (1, 0) if s is None or (isinstance(s, float) and np.isnan(s)) else (0, float(s))


def build_tables(runs: pd.DataFrame, cache: dict, *, n_resamples: int = 1000, seed: int = 0,
                 ci_scope: str = "all", primary: dict[str, str] | None = None,
                 alpha: float = stats.ALPHA) -> tuple[dict[str, TaskTable], list[dict], dict]:
    """Tables per task. Returns (tables, problems, info); ``cache`` gets CIs and paired tests."""
    if ci_scope not in ("all", "reference", "none"):
        raise BenchError(f"ci_scope must be all, reference or none (got {ci_scope!r})")
    if n_resamples < 100:
        raise BenchError(f"n_resamples must be at least 100 (got {n_resamples})")
    primary_by_kind = {**stats.PRIMARY_METRIC, **(primary or {})}
    problems: list[dict] = []
    st = _Stats(cache, n_resamples, seed, problems)
    tables: dict[str, TaskTable] = {}
    if runs.empty:
        st.prune()
        return tables, problems, {"ci_computed": 0}
    for task in sorted(runs["task"].unique()):
        tr = runs[runs["task"] == task].copy()
        kinds = sorted(set(tr["task_kind"]))
        kind = stats.kind_of(kinds[0])
        notes = []
        if len(kinds) > 1:
            notes.append(f"records disagree on the task kind ({', '.join(kinds)}); using {kinds[0]}")
        study = bool(tr["study_level"].any())
        split = "test_study" if study else "test"
        prim = primary_by_kind[kind]
        mcols = [f"{split}_{m}" for m in DISPLAY_METRICS if f"{split}_{m}" in tr.columns]
        if f"{split}_{prim}" not in tr.columns:
            problems.append({"path": task, "reason": f"no run of task {task} has metrics.{split}.{prim} "
                                                      "(the primary metric): table skipped"})
            continue
        ecols = sorted(c for c in tr.columns if c.startswith("explain_") and tr[c].notna().any())
        ccols = [c for c in COST_COLS if c in tr.columns]
        agg = stats.aggregate_seeds(tr, GROUP, mcols + ccols + ecols)
        first = tr.sort_values(["seed", "run_id"], na_position="last", kind="stable").groupby(GROUP, sort=True).first()
        agg = agg.merge(first[["run_id", "seed", "protocol_experiment", "split_sha256"]]
                        .rename(columns={"run_id": "ref_run_id", "seed": "ref_seed", "split_sha256": "ref_split"}),
                        left_on=GROUP, right_index=True, how="left")
        seeds = tr.groupby(GROUP, sort=True)["seed"].apply(lambda s: ",".join(str(int(x)) for x in sorted(s.dropna())))
        splits = tr.groupby(GROUP, sort=True)["split_sha256"].nunique()
        runs_of = tr.groupby(GROUP, sort=True)["run_id"].apply(lambda s: " ".join(sorted(s)))
        agg = agg.merge(seeds.rename("seeds"), left_on=GROUP, right_index=True) \
                 .merge(splits.rename("n_splits"), left_on=GROUP, right_index=True) \
                 .merge(runs_of.rename("run_ids"), left_on=GROUP, right_index=True)
        pm = f"{split}_{prim}_mean"
        agg["rank"] = stats.rank_desc(agg[pm])
        agg = agg.sort_values(["rank", "model", "protocol_key"], na_position="last", kind="stable").reset_index(drop=True)
        agg["source"] = "this benchmark"

        # per-run CIs
        by_id = _LazyRows(tr)
        ref_ids = set(agg["ref_run_id"])
        ci_rows = []
        for rid in tr["run_id"]:
            want = ci_scope == "all" or (ci_scope == "reference" and rid in ref_ids)
            ci = st.ci(by_id[rid], kind) if want else None
            flat = {"run_id": rid, "_ci_key": _ci_cache_key(by_id[rid], n_resamples, seed, kind) if want else ""}
            for m, v in (ci or {}).items():
                flat.update({f"ci_{m}_value": v["value"], f"ci_{m}_low": v["low"], f"ci_{m}_high": v["high"],
                             f"ci_{m}_method": v["method"]})
                flat["ci_n_units"] = v["n"]
            ci_rows.append(flat)
        ci_df = pd.DataFrame(ci_rows)
        tr = tr.merge(ci_df, on="run_id", how="left")
        for m in DISPLAY_METRICS:
            if f"ci_{m}_low" in tr.columns:
                cols = [f"ci_{m}_value", f"ci_{m}_low", f"ci_{m}_high"]
                ref = tr.set_index("run_id")[cols]
                agg = agg.merge(ref.rename(columns={c: f"ref_{c}" for c in cols}),
                                left_on="ref_run_id", right_index=True, how="left")

        # paired test against the best row
        # DeLong tests ROC-AUC; any other primary metric gets McNemar (per-item correctness)
        test_name = "DeLong" if (kind == "binary" and prim == "auroc") else "McNemar"
        agg["is_best"] = False
        agg["p_delong"] = np.nan
        agg["p_mcnemar"] = np.nan
        agg["p_vs_best"] = np.nan
        agg["vs_best"] = ""
        agg["pair_runs"] = ""
        if agg[pm].notna().any():
            agg.loc[0, "is_best"] = True
            agg.loc[0, "vs_best"] = "best"
            best = agg.iloc[0]
            b_runs = tr[(tr["model"] == best["model"]) & (tr["protocol_key"] == best["protocol_key"])]
            for i in range(1, len(agg)):
                g = agg.iloc[i]
                if pd.isna(g[pm]):
                    continue
                g_runs = tr[(tr["model"] == g["model"]) & (tr["protocol_key"] == g["protocol_key"])]
                pair = _pick_pair(g_runs[["run_id", "seed", "split_sha256"]], b_runs[["run_id", "seed", "split_sha256"]])
                if pair is None:
                    agg.loc[i, "vs_best"] = "not comparable (different test split)"
                    continue
                agg.loc[i, "pair_runs"] = f"{pair[0]} vs {pair[1]}"
                res = st.pair(by_id[pair[0]], by_id[pair[1]], kind)
                if not res:
                    agg.loc[i, "vs_best"] = "no predictions"
                    continue
                if not res.get("comparable"):
                    agg.loc[i, "vs_best"] = f"not comparable ({res.get('reason', '')})"
                    continue
                if "delong" in res:
                    agg.loc[i, "p_delong"] = res["delong"]["p"]
                agg.loc[i, "p_mcnemar"] = res["mcnemar"]["p"]
                p = res["delong"]["p"] if test_name == "DeLong" else res["mcnemar"]["p"]
                agg.loc[i, "p_vs_best"] = p
                agg.loc[i, "vs_best"] = "not significantly different" if p >= alpha else "significantly worse"
        agg["not_sig_worse"] = (agg["vs_best"] == "not significantly different") | agg["is_best"]

        dataset = str(tr["dataset"].iloc[0])
        lit = literature_for(dataset, kind)
        lit_rows = pd.DataFrame()
        if not lit.empty:
            lit_rows = pd.DataFrame({"model": lit["model"], "source": lit["source"], "citation": lit["citation"],
                                     "protocol_text": lit["protocol"], "note": lit["note"]})
            for m in DISPLAY_METRICS:
                if m in lit.columns:
                    lit_rows[f"{split}_{m}_mean"] = lit[m].astype(float)
        if agg["protocol_experiment"].nunique(dropna=False) < agg["protocol_key"].nunique():
            notes.append("several protocols share an experiment name: the protocol key tells them apart")
        if (agg["n_splits"] > 1).any():
            notes.append("some rows were trained on more than one split (see n_splits); seeds then also vary the test set")
        rows = pd.concat([agg, lit_rows], ignore_index=True) if not lit_rows.empty else agg
        tables[task] = TaskTable(task=task, kind=kind, dataset=dataset, study_level=study, metric_split=split,
                                 primary=prim, test_name=test_name, rows=rows,
                                 runs=tr.sort_values(["model", "protocol_key", "seed", "run_id"], kind="stable")
                                 .reset_index(drop=True), notes=notes)
    st.prune()
    problems.sort(key=lambda p: (p["path"], p["reason"]))
    # the same problem may be met twice (CI and pair): list it once
    uniq = [p for i, p in enumerate(problems) if i == 0 or problems[i - 1] != p]
    return tables, uniq, {"ci_computed": st.computed}
