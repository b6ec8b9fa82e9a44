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

import gc
import json
from contextlib import contextmanager
from pathlib import Path
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from bench.errors import BenchError, first_line
from bench.leaderboard import stats
from bench.leaderboard.collect import load_predictions, prediction_key
from bench.leaderboard.literature import literature_for, literature_metric_columns
from bench.leaderboard.pairs import PairedTests
from bench.leaderboard.parallel import pmap

from bench.leaderboard.columns import DISPLAY_METRICS, LOWER_IS_BETTER  # noqa: E402  (one column table)
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
    rows: pd.DataFrame  # ours: unflagged rows ranked, then flagged rows (never ranked, never best)
    runs: pd.DataFrame  # runs of this task with per-run CI columns
    notes: list[str] = field(default_factory=list)
    literature: pd.DataFrame = field(default_factory=pd.DataFrame)  # published rows, never ranked
    generated: bool = False  # runs on generated data: their own section
    key: str = ""  # file/section name: the task, plus "__generated" for generated data
    pairs: dict = field(default_factory=dict)  # "i|j" (row positions) -> paired test, for the compare view


def _ci_cache_key(row, n_resamples: int, seed: int, kind: str, pkey=prediction_key) -> str:
    return json.dumps([row["abs_path"], pkey(row), n_resamples, seed, kind, int(bool(row["study_level"]))])


#: What the statistics read of a run: one small dict per run (a pandas row per run costs ~0.1 ms).
STAT_FIELDS = ("run_id", "abs_path", "path", "imported", "classes", "study_level", "positive_index", "stored_ci")


def _stat_rows(tr: pd.DataFrame) -> dict[str, dict]:
    cols = [c for c in STAT_FIELDS if c in tr.columns]
    return {r["run_id"]: r for r in tr[cols].to_dict("records")}


@contextmanager
def _gc_frozen():
    """statsmodels' Holm step calls gc.collect(), which walks every object alive (the parsed rows of
    10,000 runs: about a second per call); frozen objects are skipped."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


#: Below these counts the work is done here: forking workers costs more than it saves
#: (runs in the row intervals of a table; per-run CIs to compute, ~4 ms each).
PARALLEL_MIN_RUNS = 256
PARALLEL_MIN_CIS = 64


def load_checked(row) -> tuple[stats.PredictionSet | None, dict | None]:
    """A run's test predictions, or None and the problem to list: a bad predictions file costs the
    run its CI and tests, not the leaderboard. Runs imported from an earlier render without
    predictions give None and no problem (their values show as "—")."""
    p = row["abs_path"]
    if bool(row.get("imported")) and not (Path(p) / "predictions.csv").is_file():
        return None, None
    try:
        ps = load_predictions(row)
        k = ps.prob.shape[1]
        if ps.n and (ps.label.min() < 0 or ps.label.max() >= k or ps.pred.min() < 0 or ps.pred.max() >= k):
            raise BenchError(f"{row['path']}: label/pred outside 0..{k - 1} in the predictions")
        return ps, None
    except (BenchError, ValueError, KeyError, TypeError) as e:
        return None, {"path": row["path"], "reason": first_line(e)}


def run_ci(ps, row, kind: str, n_resamples: int, seed: int) -> tuple[dict, list[dict]]:
    """A run's bootstrap CIs from its predictions (None: not readable, {}), and the problems met."""
    if ps is None:
        return {}, []
    try:
        return stats.bootstrap_ci(ps, kind, n_resamples=n_resamples, seed=seed), []
    except BenchError as e:
        return {}, [{"path": row["path"], "reason": str(e)}]


def ci_job(job: tuple) -> tuple[dict, list[dict]]:
    """One run's bootstrap CIs and the problems met (a worker's unit of work)."""
    row, kind, n_resamples, seed = job
    ps, problem = load_checked(row)
    res, problems = run_ci(ps, row, kind, n_resamples, seed)
    return res, ([problem] if problem else []) + problems


def row_interval_job(job: tuple) -> tuple[dict, list[dict]]:
    """One row's interval and the problems met (a worker's unit of work: module level, picklable)."""
    rows, kind, metric, n_resamples, seed = job
    problems: list[dict] = []
    sets = []
    for r in rows:
        ps, problem = load_checked(r)
        problems += [problem] if problem else []
        sets.append(ps)
    if any(ps is None for ps in sets):
        return {}, problems
    try:
        return stats.seed_image_interval(sets, kind, metric, n_resamples=n_resamples, seed=seed), problems
    except BenchError as e:
        return {}, problems + [{"path": rows[0]["path"], "reason": str(e)}]


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
        self._pkeys: dict[str, list | None] = {}
        self._paired = PairedTests()

    def pkey(self, row) -> list | None:
        """prediction_key (two stats) once per run and render."""
        p = row["abs_path"]
        if p not in self._pkeys:
            self._pkeys[p] = prediction_key(row)
        return self._pkeys[p]

    def preds(self, row):
        p = row["abs_path"]
        if p not in self._preds:
            self._preds[p], problem = load_checked(row)
            if problem:
                self.problems.append(problem)
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
        key = _ci_cache_key(row, self.n_resamples, self.seed, kind, self.pkey)
        self.used_ci.add(key)

        def compute():
            res, problems = run_ci(self.preds(row), row, kind, self.n_resamples, self.seed)
            self.problems.extend(problems)
            self.computed += bool(res)
            return res

        return self._cached("ci", key, compute)

    def prefetch_cis(self, rows: list, kind: str) -> None:
        """Compute the per-run CIs of ``rows`` not cached yet, in worker processes when there are
        many (a cold ``--ci-scope all`` render of a large store); :meth:`ci` then reads them."""
        todo = {}
        for row in rows:
            key = _ci_cache_key(row, self.n_resamples, self.seed, kind, self.pkey)
            if key not in self.cache["ci"]:
                todo[key] = row
        if len(todo) < PARALLEL_MIN_CIS:
            return  # computed one by one by ci()
        jobs = [(row, kind, self.n_resamples, self.seed) for row in todo.values()]
        for key, (res, problems) in zip(todo, pmap(ci_job, jobs)):
            self.cache["ci"][key] = {"result": res, "problems": problems}
            self.computed += bool(res)

    def pair(self, a, b, kind: str) -> dict | None:
        key = json.dumps([a["abs_path"], self.pkey(a), b["abs_path"], self.pkey(b), kind])
        self.used_pairs.add(key)

        def compute():
            pa, pb = self.preds(a), self.preds(b)
            if pa is None or pb is None:
                return {}
            try:
                return self._paired(pa, pb, kind)
            except BenchError as e:
                return {"comparable": False, "reason": str(e)}

        return self._cached("pairs", key, compute)

    def row_intervals(self, row_sets: list[list], kind: str, metric: str) -> list[dict | None]:
        """The seeds x images interval of each row (its runs' stat rows); the ones not cached
        are computed in worker processes when there is enough work (:mod:`.parallel`)."""
        keys = [json.dumps(["row", [[r["abs_path"], self.pkey(r)] for r in rows], self.n_resamples, self.seed,
                            kind, metric]) for rows in row_sets]
        self.used_ci.update(keys)
        todo = {k: rows for k, rows in zip(keys, row_sets) if k not in self.cache["ci"]}
        jobs = [(rows, kind, metric, self.n_resamples, self.seed) for rows in todo.values()]
        outs = pmap(row_interval_job, jobs, parallel=sum(len(r) for r in todo.values()) >= PARALLEL_MIN_RUNS)
        for k, (res, problems) in zip(todo, outs):
            self.cache["ci"][k] = {"result": res, "problems": problems}
        return [self._cached("ci", k, dict) for k in keys]  # all cached now; replays their problems

    def prune(self) -> None:
        # keep the cache the size of the current input
        self.cache["ci"] = {k: v for k, v in self.cache["ci"].items() if k in self.used_ci}
        self.cache["pairs"] = {k: v for k, v in self.cache["pairs"].items() if k in self.used_pairs}


class _RowRuns:
    """A row's runs as the pair picking reads them: (seed key, split, run id) per run, and per
    split the lowest (seed key, run id) and per (seed key, split) the first run id. Built once
    per row: a table's pairs then cost a lookup per run, not a pass over the other row's runs."""

    def __init__(self, runs):
        self.runs = [(_seed_key(s), sp, r) for r, s, sp in zip(runs["run_id"], runs["seed"], runs["split_sha256"])]
        self.exact: dict[tuple, str] = {}
        self.lowest: dict[str, tuple] = {}
        for sk, sp, r in self.runs:
            if not sp:
                continue
            self.exact[(sk, sp)] = min(self.exact.get((sk, sp), r), r)
            if sp not in self.lowest or (sk, r) < self.lowest[sp]:
                self.lowest[sp] = (sk, r)


def _pick_pair(g_runs, b_runs):
    """(run of the row, run of the best) on the same split: same seed first, then lowest seeds,
    then run ids. ``g_runs``/``b_runs``: :class:`_RowRuns` or anything with run_id, seed and
    split_sha256 columns. Linear in the row's runs (sweeps can have hundreds of seeds per row)."""
    g = g_runs if isinstance(g_runs, _RowRuns) else _RowRuns(g_runs)
    b = b_runs if isinstance(b_runs, _RowRuns) else _RowRuns(b_runs)
    best = None
    for sk, sp, r in g.runs:
        if sp not in b.lowest:
            continue
        if (sk, sp) in b.exact:
            cand = (0, sk, sk, r, b.exact[(sk, sp)])
        else:
            cand = (1, sk, b.lowest[sp][0], r, b.lowest[sp][1])
        if best is None or cand < best:
            best = cand
    return None if best is None else (best[3], best[4])


def _seed_key(s):
    return (1, 0) if s is None or (isinstance(s, float) and np.isnan(s)) else (0, float(s))


MAX_COMPARE_ROWS = 25  # pairwise tests for the compare view: all pairs of up to this many rows


def _protocol_label(experiment, size, epochs, pretrained, device) -> str:
    """Short protocol text beside every row: preset · size · epochs · weights · hardware."""
    experiment, device = (None if isinstance(x, float) and x != x else x for x in (experiment, device))
    parts = [str(experiment) if experiment else "—"]
    parts.append(f"{int(size)} px" if isinstance(size, (int, float)) and size == size else "— px")
    parts.append(f"{int(epochs)} ep" if isinstance(epochs, (int, float)) and epochs == epochs else "— ep")
    parts.append({True: "pretrained", False: "from scratch"}.get(pretrained, "mixed weights"))
    parts.append(str(device).upper() if device else "device —")
    return " · ".join(parts)


def _one(values):
    vals = {v.item() if hasattr(v, "item") else v for v in values
            if v is not None and not (isinstance(v, float) and v != v)}
    return next(iter(vals)) if len(vals) == 1 else (None if not vals else "mixed")


def build_tables(runs: pd.DataFrame, cache: dict, *, n_resamples: int = 1000, seed: int = 0,
                 ci_scope: str = "all", primary: dict[str, str] | None = None,
                 alpha: float = stats.ALPHA) -> tuple[dict[str, TaskTable], list[dict], dict]:
    """Tables per task (and per task on generated data). Returns (tables, problems, info);
    ``cache`` gets CIs and paired tests."""
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
    if "task_kind" in runs.columns:  # detection runs have their own tables (bench.detection.leaderboard)
        runs = runs[runs["task_kind"] != "detection"]
    runs = runs.copy()
    if runs.empty:
        st.prune()
        return tables, problems, {"ci_computed": 0}
    if "generated" not in runs.columns:
        runs["generated"] = False
    runs["generated"] = runs["generated"].fillna(False).astype(bool)
    if "flags" not in runs.columns:
        runs["flags"] = ""
    runs["flags"] = runs["flags"].fillna("").astype(str)
    for (gen, task), tr in sorted(runs.groupby(["generated", "task"], sort=True), key=lambda kv: (kv[0][0], kv[0][1])):
        key = f"{task}__generated" if gen else str(task)
        t = _build_one(tr.copy(), str(task), bool(gen), key, st, problems, primary_by_kind, ci_scope, n_resamples,
                       seed, alpha)
        if t is not None:
            tables[key] = t
    st.prune()
    problems.sort(key=lambda p: (p["path"], p["reason"]))
    # the same problem may be met twice (CI and pair): list it once
    uniq = [p for i, p in enumerate(problems) if i == 0 or problems[i - 1] != p]
    return tables, uniq, {"ci_computed": st.computed}


def _stored_ci(row) -> dict:
    raw = row.get("stored_ci") if hasattr(row, "get") else None
    if not raw or not isinstance(raw, str):
        return {}
    try:
        d = json.loads(raw)
    except ValueError:
        return {}
    return {m: v for m, v in d.items() if isinstance(v, dict)}


def _build_one(tr, task, gen, key, st, problems, primary_by_kind, ci_scope, n_resamples, seed, alpha):
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
        return None
    ecols = sorted(c for c in tr.columns if c.startswith("explain_") and c != "explain_meta" and tr[c].notna().any())
    ccols = [c for c in COST_COLS if c in tr.columns]
    agg = stats.aggregate_seeds(tr, GROUP, mcols + ccols + ecols)
    first = tr.sort_values(["seed", "run_id"], na_position="last", kind="stable").groupby(GROUP, sort=True).first()
    agg = agg.merge(first[["run_id", "seed", "protocol_experiment", "split_sha256"]]
                    .rename(columns={"run_id": "ref_run_id", "seed": "ref_seed", "split_sha256": "ref_split"}),
                    left_on=GROUP, right_index=True, how="left")
    g = tr.groupby(GROUP, sort=True)
    extra = pd.DataFrame({
        "seeds": g["seed"].apply(lambda s: ",".join(str(int(x)) for x in sorted(s.dropna()))),
        "n_splits": g["split_sha256"].nunique(),
        "run_ids": g["run_id"].apply(lambda s: " ".join(sorted(s))),
        "flags": g["flags"].apply(lambda s: ",".join(sorted({f for v in s for f in v.split(",") if f}))),
        "flagged_runs": g["flags"].apply(lambda s: int((s != "").sum())),
        "pretrained": g["pretrained"].apply(lambda s: _one(bool(x) for x in s)),
        "device": g["device"].apply(lambda s: _one(s)) if "device" in tr.columns else None,
        "protocol_image_size": g["protocol_image_size"].apply(_one) if "protocol_image_size" in tr.columns else None,
        "protocol_epochs": g["protocol_epochs"].apply(_one) if "protocol_epochs" in tr.columns else None,
    })
    agg = agg.merge(extra, left_on=GROUP, right_index=True)
    agg["protocol_label"] = [_protocol_label(e, s_, ep, p, d) for e, s_, ep, p, d in zip(
        agg["protocol_experiment"], agg["protocol_image_size"], agg["protocol_epochs"], agg["pretrained"], agg["device"])]
    agg["flagged"] = agg["flags"] != ""
    pm = f"{split}_{prim}_mean"
    higher = prim not in LOWER_IS_BETTER
    # flagged rows (a degenerate run among the seeds) are listed after the others, without a rank
    agg["_score"] = agg[pm] if higher else -agg[pm]
    agg["rank"] = stats.rank_desc(agg["_score"].where(~agg["flagged"]))
    agg = agg.sort_values(["flagged", "rank", "_score", "model", "protocol_key"], ascending=[True, True, False, True, True],
                          na_position="last", kind="stable").drop(columns="_score").reset_index(drop=True)
    agg["source"] = "this benchmark"
    agg["generated"] = gen

    # per-run CIs (stored ones for imported runs without predictions)
    by_id = _stat_rows(tr)
    ref_ids = set(agg["ref_run_id"])
    ci_rows = []
    stored_col = tr["stored_ci"] if "stored_ci" in tr.columns else [""] * len(tr)
    st.prefetch_cis([by_id[rid] for rid, raw in zip(tr["run_id"], stored_col)
                     if not raw and (ci_scope == "all" or (ci_scope == "reference" and rid in ref_ids))], kind)
    for rid, raw in zip(tr["run_id"], stored_col):
        want = ci_scope == "all" or (ci_scope == "reference" and rid in ref_ids)
        stored = _stored_ci({"stored_ci": raw}) if raw else {}
        if not want and not stored:
            ci_rows.append({"run_id": rid, "_ci_key": ""})
            continue
        row = by_id[rid]
        ci = stored if stored else st.ci(row, kind)
        flat = {"run_id": rid, "_ci_key": _ci_cache_key(row, n_resamples, seed, kind, st.pkey) if want and not stored else ""}
        for m, v in (ci or {}).items():
            flat.update({f"ci_{m}_value": v.get("value"), f"ci_{m}_low": v.get("low"), f"ci_{m}_high": v.get("high"),
                         f"ci_{m}_method": v.get("method")})
            flat["ci_n_units"] = v.get("n")
        ci_rows.append(flat)
    tr = tr.merge(pd.DataFrame(ci_rows), on="run_id", how="left")
    for m in DISPLAY_METRICS:
        if f"ci_{m}_low" in tr.columns:
            cols = [f"ci_{m}_value", f"ci_{m}_low", f"ci_{m}_high"]
            ref = tr.set_index("run_id")[cols]
            agg = agg.merge(ref.rename(columns={c: f"ref_{c}" for c in cols}),
                            left_on="ref_run_id", right_index=True, how="left")

    # the row's interval: seeds and test images (issue 12 item 6)
    for c in ("row_ci_value", "row_ci_low", "row_ci_high"):
        agg[c] = np.nan
    agg["row_ci_method"] = ""
    if prim in stats.CI_METRICS[kind] and ci_scope != "none":
        vals = agg[["row_ci_value", "row_ci_low", "row_ci_high"]].to_numpy(dtype=float, copy=True)
        methods = list(agg["row_ci_method"])
        wanted = [(i, rows) for i, rows in ((i, [by_id[r] for r in ids.split()]) for i, ids in enumerate(agg["run_ids"]))
                  if not any(_stored_ci(r) for r in rows)]  # imported without predictions: not derivable
        for (i, _), res in zip(wanted, st.row_intervals([rows for _, rows in wanted], kind, prim)):
            if res:
                vals[i] = [res["value"], res["low"], res["high"]]
                methods[i] = res["method"]
        agg[["row_ci_value", "row_ci_low", "row_ci_high"]] = vals
        agg["row_ci_method"] = methods

    # paired test against the best row, Holm-corrected over the rows compared
    # DeLong tests ROC-AUC; any other primary metric gets McNemar (per-item correctness)
    test_name = "DeLong" if (kind == "binary" and prim == "auroc") else "McNemar"
    # one block per merged column by now: consolidate once (pandas warns on each insert otherwise)
    agg = pd.concat([agg, pd.DataFrame({"is_best": False, **{c: np.nan for c in ("p_delong", "p_mcnemar", "p_vs_best",
                     "p_holm")}, "vs_best": "", "pair_runs": ""}, index=agg.index)], axis=1).copy()
    eligible = agg.index[(~agg["flagged"]) & agg[pm].notna()]
    # each row's runs (positions in tr), from one groupby instead of a filter per row and pair
    positions = tr.groupby(GROUP, sort=False, dropna=False).indices
    run_ids, run_seeds, run_splits = (tr[c].to_numpy() for c in ("run_id", "seed", "split_sha256"))

    row_index: dict[int, _RowRuns] = {}

    def row_runs(i: int) -> _RowRuns:
        if i not in row_index:
            pos = positions[(agg.at[i, "model"], agg.at[i, "protocol_key"])]
            row_index[i] = _RowRuns({"run_id": run_ids[pos], "seed": run_seeds[pos], "split_sha256": run_splits[pos]})
        return row_index[i]

    if len(eligible):
        b = int(eligible[0])
        agg.loc[b, "is_best"] = True
        agg.loc[b, "vs_best"] = "best"
        b_runs = row_runs(b)
        vs_best, pair_runs = list(agg["vs_best"]), list(agg["pair_runs"])
        p_cols = {c: agg[c].to_numpy(dtype=float, copy=True) for c in ("p_delong", "p_mcnemar", "p_vs_best")}
        for i, score in enumerate(agg[pm]):
            if i == b or pd.isna(score):
                continue
            pair = _pick_pair(row_runs(i), b_runs)
            if pair is None:
                vs_best[i] = "not comparable (different test split)"
                continue
            pair_runs[i] = f"{pair[0]} vs {pair[1]}"
            res = st.pair(by_id[pair[0]], by_id[pair[1]], kind)
            if not res:
                vs_best[i] = "no predictions"
                continue
            if not res.get("comparable"):
                vs_best[i] = f"not comparable ({res.get('reason', '')})"
                continue
            if "delong" in res:
                p_cols["p_delong"][i] = res["delong"]["p"]
            p_cols["p_mcnemar"][i] = res["mcnemar"]["p"]
            p_cols["p_vs_best"][i] = res["delong"]["p"] if test_name == "DeLong" else res["mcnemar"]["p"]
        agg["vs_best"], agg["pair_runs"] = vs_best, pair_runs
        for c, v in p_cols.items():
            agg[c] = v
        with _gc_frozen():
            agg["p_holm"] = stats.holm(agg["p_vs_best"].tolist())
        tested = agg["p_holm"].notna()
        agg.loc[tested, "vs_best"] = np.where(agg.loc[tested, "p_holm"] >= alpha, "not significantly different",
                                              "significantly worse")
    agg["not_sig_worse"] = (agg["vs_best"] == "not significantly different") | agg["is_best"]

    # every pair of rows, for the compare view (small tables only)
    pairs: dict[str, dict] = {}
    if len(agg) <= MAX_COMPARE_ROWS:
        runs_of = [row_runs(i) for i in range(len(agg))]
        for i in range(len(agg)):
            for j in range(i + 1, len(agg)):
                pair = _pick_pair(runs_of[i], runs_of[j])
                if pair is None:
                    pairs[f"{i}|{j}"] = {"comparable": False, "reason": "different test split"}
                    continue
                res = st.pair(by_id[pair[0]], by_id[pair[1]], kind) or {"comparable": False, "reason": "no predictions"}
                pairs[f"{i}|{j}"] = {**res, "runs": list(pair)}

    dataset = str(tr["dataset"].iloc[0])
    lit = literature_for(dataset, kind) if not gen else pd.DataFrame()
    lit_rows = pd.DataFrame()
    if not lit.empty:
        lit_rows = pd.DataFrame({"model": lit["model"], "source": lit["source"], "citation": lit["citation"],
                                 "protocol_text": lit["protocol"], "note": lit["note"]})
        # A published number sits in the column of its own level (image vs study), not the task's.
        lit_rows = pd.concat([lit_rows, literature_metric_columns(lit, DISPLAY_METRICS)], axis=1)
    if agg["protocol_experiment"].nunique(dropna=False) < agg["protocol_key"].nunique():
        notes.append("several protocols share an experiment name: the protocol key tells them apart")
    if (agg["n_splits"] > 1).any():
        notes.append("some rows were trained on more than one split (see n_splits); seeds then also vary the test set")
    if tr["imported"].fillna(False).astype(bool).any() if "imported" in tr.columns else False:
        notes.append("some runs were imported from an earlier leaderboard without their predictions: their row "
                     "interval and paired tests cannot be derived (—); their per-run CIs are the ones computed then")
    return TaskTable(task=task, kind=kind, dataset=dataset, study_level=study, metric_split=split,
                     primary=prim, test_name=test_name, rows=agg,
                     runs=tr.sort_values(["model", "protocol_key", "seed", "run_id"], kind="stable")
                     .reset_index(drop=True), notes=notes, literature=lit_rows, generated=gen, key=key, pairs=pairs)
