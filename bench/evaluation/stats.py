"""Statistics over test predictions: bootstrap CIs, paired tests, seed aggregates, ranks (the run
record's operating point and subgroups, and the leaderboard).

Bootstrap CIs go through ``scipy.stats.bootstrap`` with the *indices* of the test items as the
data: the statistic turns a batch of resampled index vectors into per-resample counts and
computes every metric from those counts with matrix products. No per-resample sort or Python
loop, so 1,000 BCa resamples of a 400-image test set take a few milliseconds.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as sps

from bench.errors import BenchError

#: Metrics with a bootstrap CI, by task kind (names as in ``record.json``).
CI_METRICS: dict[str, tuple[str, ...]] = {
    "binary": ("auroc", "accuracy", "precision", "recall", "specificity", "f1", "kappa"),
    "multiclass": ("auroc", "accuracy", "precision", "recall", "f1", "kappa"),
}

#: Primary metric per task kind: what ranks a table and picks its best row.
#: Binary: ROC-AUC (threshold-free; the contract's headline for fracture detection).
#: Multi-class: macro-F1 (the region task is very imbalanced; accuracy rewards the majority class).
PRIMARY_METRIC: dict[str, str] = {"binary": "auroc", "multiclass": "f1"}

ALPHA = 0.05


def kind_of(task_kind: str) -> str:
    return "binary" if task_kind == "binary" else "multiclass"


# --------------------------------------------------------------------------- metric kernels


@dataclass(frozen=True)
class PredictionSet:
    """Test-set labels, hard predictions and class probabilities of one run (one row per item;
    items are images, or studies for study-level tasks)."""

    ids: np.ndarray  # str item ids (image_id or study_id), for pairing runs
    label: np.ndarray  # int (n,)
    pred: np.ndarray  # int (n,)
    prob: np.ndarray  # float (n, K)
    positive_index: int = 1
    groups: np.ndarray | None = None  # resampling unit per item (patient id) or None = item

    @property
    def n(self) -> int:
        return int(self.label.shape[0])

    @property
    def n_classes(self) -> int:
        return int(self.prob.shape[1])


def _counts(idx: np.ndarray, n: int, dtype=np.float64) -> np.ndarray:
    """(R, m) resampled indices -> (R, n) float multiplicities, via one flat bincount."""
    r = idx.shape[0]
    flat = (idx + (np.arange(r, dtype=np.int64) * n)[:, None]).ravel()
    return np.bincount(flat, minlength=r * n).reshape(r, n).astype(dtype)


def _weight_dtype(units: np.ndarray | None, n_units: int) -> type:
    """float32 resample weights where every sum the kernels take is exact in float32, else float64.

    A resample's total weight is at most T = units drawn x largest unit; the kernels' sums are
    whole or half numbers no larger than T^2 / 4 (the AUC's numerator), exact in float32 while
    T^2 / 2 < 2^24. Then every metric is the same bits as in float64, at half the memory traffic
    and twice the matrix-product speed; the divisions are done in float64 either way."""
    largest = 1 if units is None else int(np.bincount(units).max())
    total = n_units * largest
    return np.float32 if total * total < 2**25 else np.float64


def _both_dtypes(x: np.ndarray) -> dict:
    """A kernel's fixed matrix in the two weight dtypes (:func:`_weight_dtype`)."""
    return {np.dtype(np.float64): x, np.dtype(np.float32): x.astype(np.float32)}


class _AucKernel:
    """Weighted ROC-AUC (Mann-Whitney with half credit for ties) for many weight vectors at once.

    Each positive earns the weight of the negatives scored below it plus half of those tied with
    it. Up to :data:`PAIRWISE_MAX` positive-negative pairs that credit is one matrix product of
    the negatives' weights with the fixed (negatives x positives) 0 / 0.5 / 1 matrix; above it,
    negatives are sorted by score once and the credit is a cumulative sum over them gathered at
    ``searchsorted`` positions (linear in the items, no per-resample sort). ``score`` may be
    (S, n): S runs scored on the same items with the same labels (the seeds of a leaderboard row),
    computed in the same array operations. Weights are resample counts, so every sum is exact and
    both ways give the same bits."""

    # where the two cost about the same: at 300 items and 1,000 resamples the product took 0.2 ms a
    # run and the sums 1.45 ms; the product grows with positives x negatives, the sums with items
    PAIRWISE_MAX = 1 << 18

    def __init__(self, score: np.ndarray, positive: np.ndarray):
        positive = np.asarray(positive, dtype=bool)
        self.stacked = np.ndim(score) == 2
        sc = np.atleast_2d(score)
        self.pos_idx = np.flatnonzero(positive)
        neg_idx = np.flatnonzero(~positive)
        self.pairs = None
        if self.pos_idx.size * neg_idx.size <= self.PAIRWISE_MAX:
            sp, sn = sc[:, self.pos_idx][:, :, None], sc[:, neg_idx][:, None, :]
            self.neg_idx = neg_idx
            pairs = ((sn < sp) + 0.5 * (sn == sp)).reshape(-1, neg_idx.size).T  # (n_neg, S * n_pos)
            self.pairs = _both_dtypes(pairs)
            return
        self.neg_idx = neg_idx[np.argsort(sc[:, neg_idx], axis=1, kind="stable")]  # (S, n_neg)
        neg_sorted = np.take_along_axis(sc, self.neg_idx, axis=1)
        ps = sc[:, self.pos_idx]
        self.lo = [np.searchsorted(ns, x, side="left") for ns, x in zip(neg_sorted, ps)]  # strictly below
        self.hi = [np.searchsorted(ns, x, side="right") for ns, x in zip(neg_sorted, ps)]  # ... or tied

    def __call__(self, w: np.ndarray) -> np.ndarray:
        """(R, n) weights -> (R,) AUCs, or (S, R) when stacked."""
        r = w.shape[0]
        if self.pairs is None:
            w = w.astype(np.float64, copy=False)  # long cumulative sums: float64
        wp = w[:, self.pos_idx]
        if self.pairs is not None:
            wn = w[:, self.neg_idx]
            credit = (wn @ self.pairs[w.dtype]).reshape(r, -1, self.pos_idx.size)  # (R, S, n_pos)
            total_neg = wn.sum(axis=1)[:, None]
        else:  # one run at a time: (R, S, n_neg) cumulative sums run slower than S of (R, n_neg)
            credit = np.empty((r, len(self.lo), self.pos_idx.size))
            total_neg = np.empty((r, len(self.lo)))
            for j, (order, lo, hi) in enumerate(zip(self.neg_idx, self.lo, self.hi)):
                cum0 = np.zeros((r, order.size + 1))
                np.cumsum(w[:, order], axis=1, out=cum0[:, 1:])
                below = cum0[:, lo]
                credit[:, j] = below + 0.5 * (cum0[:, hi] - below)
                total_neg[:, j] = cum0[:, -1]
        num = np.matmul(credit, wp[:, :, None])[..., 0]  # per (resample, run): sum over positives
        den = wp.sum(axis=1)[:, None] * total_neg
        with np.errstate(invalid="ignore", divide="ignore"):
            out = num.astype(np.float64) / den.astype(np.float64)  # (R, S)
        return out.T if self.stacked else out[:, 0]


def _div(a, b):
    with np.errstate(invalid="ignore", divide="ignore"):
        out = a / b
    return np.where(b > 0, out, 0.0)  # zero_division=0, like scikit-learn/torchmetrics


def _confusion_metrics(cm: np.ndarray, kind: str, positive_index: int) -> dict[str, np.ndarray]:
    """Every CI metric but AUROC from N weighted confusion matrices laid out ``(..., K, K, N)``
    (true class, predicted class, weight vector); each value has shape ``(..., N)``.

    The weight vectors come last because NumPy sums over a short trailing axis one element at a
    time and over a leading one a whole row at a time (a region-task row interval of 139 seeds:
    65 -> 37 ms). Counts are whole numbers, so those sums are exact; the macro means are taken over a
    contiguous class axis, so every value is the same bits as with the classes last."""
    k = cm.shape[-2]
    f64 = np.float64
    rows = cm.sum(axis=-2).astype(f64, copy=False)  # (..., K, N): per true class (exact sums, any dtype)
    cols = cm.sum(axis=-3).astype(f64, copy=False)  # per predicted class
    total = rows.sum(axis=-2)
    diag = cm[..., np.arange(k), np.arange(k), :].astype(f64, copy=False)
    acc = _div(diag.sum(axis=-2), total)
    pe = _div((rows * cols).sum(axis=-2), total**2)
    out: dict[str, np.ndarray] = {"accuracy": acc, "kappa": _div(acc - pe, 1.0 - pe)}
    if kind == "binary":
        p = positive_index
        tp = cm[..., p, p, :].astype(f64, copy=False)
        fp = cols[..., p, :] - tp
        fn = rows[..., p, :] - tp
        tn = total - tp - fp - fn
        prec = _div(tp, tp + fp)
        rec = _div(tp, tp + fn)
        out.update(precision=prec, recall=rec, specificity=_div(tn, tn + fp), f1=_div(2 * prec * rec, prec + rec))
    else:
        prec = _div(diag, cols)
        rec = _div(diag, rows)
        f1 = _div(2 * prec * rec, prec + rec)
        out.update({name: np.ascontiguousarray(np.swapaxes(x, -1, -2)).mean(axis=-1) for name, x in
                    (("precision", prec), ("recall", rec), ("f1", f1))})
    return out


def _onehot_cells(ps: PredictionSet) -> np.ndarray:
    """(n, K*K): item i's cell (true, predicted) of the confusion matrix."""
    k = ps.n_classes
    onehot = np.zeros((ps.n, k * k))
    onehot[np.arange(ps.n), ps.label.astype(np.int64) * k + ps.pred.astype(np.int64)] = 1.0
    return onehot


def _auc_kernels(score: np.ndarray, label: np.ndarray, kind: str, positive_index: int) -> list[_AucKernel]:
    """``score``: (n, K) probabilities, or (S, n, K) stacked. Binary: the positive class's AUC;
    multi-class: one kernel per class (one-vs-rest), macro-averaged by the caller."""
    classes = [positive_index] if kind == "binary" else range(score.shape[-1])
    return [_AucKernel(score[..., c], label == c) for c in classes]


class MetricKernel:
    """All CI metrics of one prediction set for a batch of item weight vectors."""

    def __init__(self, ps: PredictionSet, kind: str, names: tuple[str, ...] | None = None):
        """``names``: the metrics to compute (default all of ``CI_METRICS[kind]``)."""
        self.ps = ps
        self.kind = kind
        self.names = tuple(names) if names else CI_METRICS[kind]
        self.k = ps.n_classes
        self.onehot = _both_dtypes(_onehot_cells(ps))
        self.auc = _auc_kernels(ps.prob, ps.label, kind, ps.positive_index)

    def __call__(self, w: np.ndarray) -> np.ndarray:
        """(R, n) weights -> (len(names), R) metric values."""
        out: dict[str, np.ndarray] = {}
        if self.names != ("auroc",):
            cm = (self.onehot[w.dtype].T @ w.T).reshape(self.k, self.k, -1)  # (K, K, R)
            out = _confusion_metrics(cm, self.kind, self.ps.positive_index)
        if "auroc" in self.names:
            out["auroc"] = np.mean([a(w) for a in self.auc], axis=0)
        return np.stack([out[m] for m in self.names])

    def point(self) -> dict[str, float]:
        vals = self(np.ones((1, self.ps.n)))[:, 0]
        return {m: float(v) for m, v in zip(self.names, vals)}


def bootstrap_ci(ps: PredictionSet, kind: str, n_resamples: int = 1000, seed: int = 0,
                 confidence_level: float = 0.95) -> dict[str, dict]:
    """95% bootstrap CI of every metric in ``CI_METRICS[kind]`` over the test items.

    Resamples ``ps.groups`` (patients / studies) when given, so correlated items move together;
    otherwise items. BCa where it gives finite bounds, percentile otherwise.
    Returns ``{metric: {"value", "low", "high", "method"}}``.
    """
    if ps.n < 2:
        raise BenchError(f"bootstrap needs at least 2 test items, got {ps.n}")
    kernel = MetricKernel(ps, kind)
    if ps.groups is None:
        units = None
        n_units = ps.n
    else:
        _, units = np.unique(ps.groups, return_inverse=True)
        units = units.ravel()
        n_units = int(units.max()) + 1
    dtype = _weight_dtype(units, n_units)

    def statistic(idx, axis=-1):
        idx = np.moveaxis(np.asarray(idx), axis, -1)
        lead = idx.shape[:-1]
        flat = idx.reshape(-1, idx.shape[-1])
        w = _counts(flat, n_units, dtype)
        if units is not None:
            w = w[:, units]  # an item weighs what its unit (patient / duplicate group) was drawn
        vals = kernel(w)
        return vals.reshape((vals.shape[0],) + lead)

    data = (np.arange(n_units),)
    point = statistic(data[0][None, :])[:, 0]
    out: dict[str, dict] = {}
    results = {}
    res = None
    for method in ("BCa", "percentile"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # degenerate resamples: handled by the fallback
            # the percentile interval reuses the BCa call's resamples (scipy's bootstrap_result,
            # n_resamples=0): the same distribution a second seeded call would draw, not recomputed
            res = sps.bootstrap(data, statistic, n_resamples=n_resamples if res is None else 0, vectorized=True,
                                method=method, confidence_level=confidence_level, bootstrap_result=res,
                                rng=np.random.default_rng(seed), batch=max(1, 4_000_000 // max(n_units, 1) // 8))
        results[method] = (np.asarray(res.confidence_interval.low), np.asarray(res.confidence_interval.high))
        if method == "BCa" and np.all(np.isfinite(results["BCa"][0]) & np.isfinite(results["BCa"][1])):
            break
    for j, m in enumerate(kernel.names):
        lo, hi = results["BCa"][0][j], results["BCa"][1][j]
        meth = "BCa"
        if not (np.isfinite(lo) and np.isfinite(hi)) and "percentile" in results:
            lo, hi = results["percentile"][0][j], results["percentile"][1][j]
            meth = "percentile"
        out[m] = {"value": _f(point[j]), "low": _f(lo), "high": _f(hi), "method": meth,
                  "n": int(n_units), "n_resamples": int(n_resamples)}
    return out


def _f(x) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


# --------------------------------------------------------------------------- paired tests


def fast_delong(scores: np.ndarray, positive: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """AUCs and their covariance for k classifiers scored on the same items.

    The fast DeLong algorithm of Sun & Xu (2014, IEEE SPL 21(11):1389), O(k n log n) via midranks.
    Written here because neither scikit-learn nor statsmodels/scipy provides a DeLong test.
    ``scores``: (k, n); ``positive``: bool (n,). Returns (aucs (k,), cov (k, k)).
    """
    scores = np.atleast_2d(np.asarray(scores, dtype=np.float64))
    positive = np.asarray(positive, dtype=bool)
    x = scores[:, positive]
    y = scores[:, ~positive]
    m, n = x.shape[1], y.shape[1]
    if m < 2 or n < 2:
        raise BenchError(f"DeLong needs at least 2 positive and 2 negative items (got {m} and {n})")
    tx = sps.rankdata(x, axis=1)  # midranks ("average") within positives
    ty = sps.rankdata(y, axis=1)
    tz = sps.rankdata(np.concatenate([x, y], axis=1), axis=1)
    aucs = tz[:, :m].sum(axis=1) / m / n - (m + 1.0) / (2.0 * n)
    v01 = (tz[:, :m] - tx) / n  # structural components of the positives
    v10 = 1.0 - (tz[:, m:] - ty) / m  # ... of the negatives
    sx = np.atleast_2d(np.cov(v01))
    sy = np.atleast_2d(np.cov(v10))
    return aucs, sx / m + sy / n


def delong_test(score_a: np.ndarray, score_b: np.ndarray, positive: np.ndarray) -> dict:
    """Two-sided DeLong test of AUC(a) == AUC(b) on the same items."""
    aucs, cov = fast_delong(np.vstack([score_a, score_b]), positive)
    return delong_result(aucs, cov)


def delong_result(aucs: np.ndarray, cov: np.ndarray) -> dict:
    """The DeLong test's answer from two AUCs and their 2x2 covariance."""
    var = cov[0, 0] + cov[1, 1] - 2 * cov[0, 1]
    diff = aucs[0] - aucs[1]
    if var <= 0:
        p = 1.0 if diff == 0 else 0.0
        z = 0.0 if diff == 0 else math.copysign(math.inf, diff)
    else:
        z = diff / math.sqrt(var)
        p = float(2 * sps.norm.sf(abs(z)))
    return {"test": "DeLong", "auc_a": float(aucs[0]), "auc_b": float(aucs[1]), "z": float(z), "p": p}


def mcnemar_test(correct_a: np.ndarray, correct_b: np.ndarray, exact_below: int = 25) -> dict:
    """McNemar's test on paired correctness (statsmodels); exact binomial when the discordant
    count is below ``exact_below``, chi-square with continuity correction otherwise."""
    from statsmodels.stats.contingency_tables import mcnemar

    a = np.asarray(correct_a, dtype=bool)
    b = np.asarray(correct_b, dtype=bool)
    table = np.array([[np.sum(a & b), np.sum(a & ~b)], [np.sum(~a & b), np.sum(~a & ~b)]])
    disc = int(table[0, 1] + table[1, 0])
    exact = disc < exact_below
    if disc == 0:
        p = 1.0
    else:
        p = float(mcnemar(table, exact=exact, correction=True).pvalue)
    return {"test": "McNemar exact" if exact else "McNemar chi2", "b": int(table[0, 1]),
            "c": int(table[1, 0]), "p": p}


def paired_tests(a: PredictionSet, b: PredictionSet, kind: str) -> dict:
    """DeLong (binary) and McNemar of run ``a`` vs run ``b`` on their common test items.

    The items must be the same set (checked by id); otherwise ``comparable`` is False."""
    if a.n != b.n or set(a.ids.tolist()) != set(b.ids.tolist()):
        return {"comparable": False, "reason": "different test items"}
    ob = pd.Index(b.ids).get_indexer(a.ids)
    if (ob < 0).any() or not np.array_equal(a.label, b.label[ob]):
        return {"comparable": False, "reason": "labels differ for the same items"}
    out: dict = {"comparable": True, "n": a.n}
    out["mcnemar"] = mcnemar_test(a.pred == a.label, b.pred[ob] == b.label[ob])
    if kind == "binary":
        p = a.positive_index
        out["delong"] = delong_test(a.prob[:, p], b.prob[ob, p], a.label == p)
    return out


# --------------------------------------------------------------------------- seed aggregates


def aggregate_seeds(runs: pd.DataFrame, group_cols: list[str], metric_cols: list[str]) -> pd.DataFrame:
    """Mean, sample std (ddof=1; NaN for one seed) and n over seeds of each group."""
    if runs.empty:
        return pd.DataFrame(columns=group_cols)
    g = runs.groupby(group_cols, sort=True, dropna=False)
    parts = [g.size().rename("n_seeds")]
    for c in metric_cols:
        col = pd.to_numeric(runs[c], errors="coerce").groupby([runs[k] for k in group_cols], sort=True, dropna=False)
        parts += [col.mean().rename(f"{c}_mean"), col.std(ddof=1).rename(f"{c}_std"),
                  col.count().rename(f"{c}_n")]
    return pd.concat(parts, axis=1).reset_index()


def rank_desc(values: pd.Series) -> pd.Series:
    """Competition ranks (1, 2, 2, 4), higher is better; NaN values get no rank."""
    return values.rank(ascending=False, method="min")


# --------------------------------------------------------------------------- row interval


class _SeedStack:
    """One metric of S runs scored on the same items with the same labels (the seeds of a
    leaderboard row), for a batch of weight vectors: one matrix product or one stacked AUC pass
    for all S instead of S kernels, and only the one metric the row is ranked by."""

    def __init__(self, sets: list[PredictionSet], kind: str, metric: str):
        first = sets[0]
        self.s, self.k, self.kind, self.metric, self.p = len(sets), first.n_classes, kind, metric, first.positive_index
        if metric == "auroc":
            self.auc = _auc_kernels(np.stack([ps.prob for ps in sets]), first.label, kind, first.positive_index)
        else:
            self.onehot = _both_dtypes(np.concatenate([_onehot_cells(ps) for ps in sets], axis=1))  # (n, S*K*K)

    @staticmethod
    def key(ps: PredictionSet) -> tuple:
        """Runs with equal keys can share a stack."""
        return ps.label.tobytes(), ps.n_classes, ps.positive_index

    def __call__(self, w: np.ndarray) -> np.ndarray:
        """(R, n) weights -> (S, R) metric values."""
        if self.metric == "auroc":
            return np.mean([a(w) for a in self.auc], axis=0)
        cm = (self.onehot[w.dtype].T @ w.T).reshape(self.s, self.k, self.k, -1)  # (S, K, K, R)
        return _confusion_metrics(cm, self.kind, self.p)[self.metric]


def seed_image_interval(sets: list[PredictionSet], kind: str, metric: str, n_resamples: int = 1000,
                        seed: int = 0, confidence_level: float = 0.95) -> dict:
    """Interval of a row's seed-mean metric that covers both seeds and test images.

    Two-level (hierarchical) percentile bootstrap: each resample draws the seeds with replacement
    and the test images (their resampling groups) with replacement, and takes the mean over the
    drawn seeds of the metric on the drawn images. Runs scored on the same test items are paired:
    one image draw is applied to every seed, so the interval does not count the test set's
    variance once per seed. Runs on different test items get their own image draws. One seed:
    the image bootstrap alone. Returns ``{"value", "low", "high", "method", "n_seeds", "n_units"}``
    where ``value`` is the mean over seeds of the metric recomputed from the predictions."""
    if not sets:
        raise BenchError("no prediction sets")
    if metric not in CI_METRICS[kind]:
        raise BenchError(f"no bootstrap kernel for metric {metric!r}")
    rng = np.random.default_rng(seed)
    s = len(sets)

    def unit_index(ps: PredictionSet):
        if ps.groups is None:
            return None, ps.n
        _, inv = np.unique(ps.groups, return_inverse=True)
        inv = inv.ravel()
        return inv, int(inv.max()) + 1

    # pair runs on identical item ids (load_predictions sorts by id, so equal ids align)
    blocks: dict[tuple, list[int]] = {}
    for i, ps in enumerate(sets):
        blocks.setdefault(tuple(ps.ids.tolist()), []).append(i)
    per_seed = np.empty((s, n_resamples))
    points = np.empty(s)
    n_units_all = []
    n_max = max(max(p.n for p in sets), 1)
    batch = max(1, min(n_resamples, 2_000_000 // n_max))
    per_stack = max(1, 4_000_000 // (batch * n_max))  # seeds per stack: arrays of batch x seeds x items
    for members in blocks.values():
        units, n_units = unit_index(sets[members[0]])
        n_units_all.append(n_units)
        dtype = _weight_dtype(units, n_units)
        by_key: dict[tuple, list[int]] = {}
        for i in members:
            by_key.setdefault(_SeedStack.key(sets[i]), []).append(i)
        stacks = [(ids, _SeedStack([sets[i] for i in ids], kind, metric))
                  for group in by_key.values() for ids in (group[c:c + per_stack] for c in range(0, len(group), per_stack))]
        for ids, st in stacks:
            points[ids] = st(np.ones((1, sets[ids[0]].n)))[:, 0]
        for start in range(0, n_resamples, batch):
            r = min(batch, n_resamples - start)
            idx = rng.integers(0, n_units, (r, n_units))
            w = _counts(idx, n_units, dtype)
            if units is not None:
                w = w[:, units]
            for ids, st in stacks:
                per_seed[ids, start:start + r] = st(w)
    if s > 1:
        # seeds drawn with replacement, as counts per seed (a flat bincount: rng.multinomial per
        # resample cost 5 ms a row of 139 seeds)
        draws = _counts(rng.integers(0, s, (n_resamples, s)), s)  # (R, S)
        vals = (draws * per_seed.T).sum(axis=1) / s
    else:
        vals = per_seed[0]
    vals = vals[np.isfinite(vals)]
    if vals.size < n_resamples * 0.5:
        raise BenchError(f"row interval: {metric} undefined in most resamples")
    a = (1 - confidence_level) / 2
    lo, hi = np.quantile(vals, [a, 1 - a])
    return {"value": _f(points.mean()), "low": _f(lo), "high": _f(hi), "method": "percentile, seeds x images",
            "n_seeds": s, "n_units": int(max(n_units_all)), "n_resamples": int(n_resamples)}


def holm(pvalues: list[float]) -> list[float]:
    """Holm-adjusted p-values (statsmodels), NaN kept in place."""
    from statsmodels.stats.multitest import multipletests

    p = np.asarray(pvalues, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    if ok.any():
        out[ok] = multipletests(p[ok], method="holm")[1]
    return out.tolist()
