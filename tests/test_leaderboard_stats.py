"""Leaderboard statistics against independent computations (plain numpy, O(n^2) DeLong,
scikit-learn, statsmodels, hand counts)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps
from sklearn import metrics as skm

from bench.errors import BenchError
from bench.evaluation import stats as kernels  # the kernels behind the re-exported functions
from bench.leaderboard import stats


def _binary(n=300, seed=0, skill=1.0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    s = np.round(1 / (1 + np.exp(-(rng.normal(0, 1, n) + skill * (2 * y - 1)))), 2)  # rounded: ties
    prob = np.c_[1 - s, s]
    return stats.PredictionSet(ids=np.array([f"i{i}" for i in range(n)], dtype=object), label=y,
                               pred=(s > 0.5).astype(int), prob=prob)


def test_point_estimates_match_sklearn():
    ps = _binary()
    pt = stats.MetricKernel(ps, "binary").point()
    y, p1, pred = ps.label, ps.prob[:, 1], ps.pred
    assert pt["auroc"] == pytest.approx(skm.roc_auc_score(y, p1), abs=1e-12)
    assert pt["f1"] == pytest.approx(skm.f1_score(y, pred), abs=1e-12)
    assert pt["kappa"] == pytest.approx(skm.cohen_kappa_score(y, pred), abs=1e-12)
    assert pt["specificity"] == pytest.approx(skm.recall_score(y, pred, pos_label=0), abs=1e-12)
    rng = np.random.default_rng(3)
    k = 5
    y = rng.integers(0, k, 250)
    pr = rng.dirichlet(np.ones(k), 250)
    pr[np.arange(250), y] += 0.4
    pr /= pr.sum(1, keepdims=True)
    ps = stats.PredictionSet(ids=np.arange(250).astype(str), label=y, pred=pr.argmax(1), prob=pr)
    pt = stats.MetricKernel(ps, "multiclass").point()
    assert pt["f1"] == pytest.approx(skm.f1_score(y, pr.argmax(1), average="macro"), abs=1e-12)
    assert pt["auroc"] == pytest.approx(skm.roc_auc_score(y, pr, multi_class="ovr", average="macro"), abs=1e-12)
    assert pt["accuracy"] == pytest.approx(skm.accuracy_score(y, pr.argmax(1)), abs=1e-12)


def test_bootstrap_ci_matches_plain_numpy_percentile_bootstrap():
    ps = _binary(n=300, seed=1)
    ci = stats.bootstrap_ci(ps, "binary", n_resamples=4000, seed=0)
    # independent: resample items with numpy, AUC from the rank-sum (Mann-Whitney U) of each
    # resample, percentile CI
    rng = np.random.default_rng(12345)
    aucs, accs = [], []
    for _ in range(3000):
        i = rng.integers(0, ps.n, ps.n)
        y, sc = ps.label[i], ps.prob[i, 1]
        m, n = y.sum(), (1 - y).sum()
        aucs.append((sps.rankdata(sc)[y == 1].sum() - m * (m + 1) / 2) / (m * n))
        accs.append(np.mean(ps.label[i] == ps.pred[i]))
    for name, vals in (("auroc", aucs), ("accuracy", accs)):
        lo, hi = np.percentile(vals, [2.5, 97.5])
        assert ci[name]["method"] == "BCa"
        # BCa and percentile differ a little; Monte Carlo error ~0.005 at these sizes
        assert ci[name]["low"] == pytest.approx(lo, abs=0.015), name
        assert ci[name]["high"] == pytest.approx(hi, abs=0.015), name
        assert ci[name]["low"] < ci[name]["value"] < ci[name]["high"]
    assert ci["auroc"]["value"] == pytest.approx(skm.roc_auc_score(ps.label, ps.prob[:, 1]))


def test_bootstrap_is_seeded_and_group_resampling_is_wider():
    ps = _binary(n=240, seed=2)
    a = stats.bootstrap_ci(ps, "binary", n_resamples=500, seed=7)
    b = stats.bootstrap_ci(ps, "binary", n_resamples=500, seed=7)
    assert a == b
    # 4 copies of 60 items: resampling items pretends 240 independent items, groups do not
    base = _binary(n=60, seed=5)
    rep = stats.PredictionSet(ids=np.arange(240).astype(str), label=np.tile(base.label, 4),
                              pred=np.tile(base.pred, 4), prob=np.tile(base.prob, (4, 1)))
    grouped = stats.PredictionSet(ids=rep.ids, label=rep.label, pred=rep.pred, prob=rep.prob,
                                  groups=np.tile(np.arange(60), 4))
    w_items = stats.bootstrap_ci(rep, "binary", 1000, 0)["accuracy"]
    w_groups = stats.bootstrap_ci(grouped, "binary", 1000, 0)["accuracy"]
    w_base = stats.bootstrap_ci(base, "binary", 1000, 0)["accuracy"]
    width = lambda c: c["high"] - c["low"]  # noqa: E731
    assert w_groups["n"] == 60 and w_items["n"] == 240
    assert width(w_groups) == pytest.approx(width(w_base), rel=0.25)
    assert width(w_groups) > 1.5 * width(w_items)


def test_bootstrap_degenerate_falls_back_to_percentile():
    # every prediction correct: BCa has no spread to work with, percentile gives [1, 1]
    n = 50
    y = np.r_[np.zeros(25, int), np.ones(25, int)]
    prob = np.c_[1 - y * 0.9 - 0.05, y * 0.9 + 0.05]
    ps = stats.PredictionSet(ids=np.arange(n).astype(str), label=y, pred=y, prob=prob)
    ci = stats.bootstrap_ci(ps, "binary", 200, 0)
    assert ci["accuracy"]["low"] == 1.0 and ci["accuracy"]["high"] == 1.0
    assert ci["accuracy"]["method"] == "percentile"


def _delong_slow(s1, s2, y):
    """O(m n) DeLong (DeLong, DeLong & Clarke-Pearson 1988) from the Mann-Whitney kernel."""
    out = []
    for s in (s1, s2):
        x, z = s[y == 1], s[y == 0]
        psi = (x[:, None] > z[None, :]) + 0.5 * (x[:, None] == z[None, :])
        out.append((psi.mean(), psi.mean(axis=1), psi.mean(axis=0)))
    m, n = (y == 1).sum(), (y == 0).sum()
    v10 = np.vstack([o[1] for o in out])
    v01 = np.vstack([o[2] for o in out])
    cov = np.cov(v10) / m + np.cov(v01) / n
    diff = out[0][0] - out[1][0]
    z = diff / np.sqrt(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1])
    return out[0][0], out[1][0], 2 * sps.norm.sf(abs(z))


def test_delong_matches_slow_implementation_and_sklearn():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    s1 = np.round(rng.normal(0, 1, 200) + 1.0 * y, 1)  # rounded: ties exercise the midranks
    s2 = np.round(0.3 * s1 + rng.normal(0, 1, 200) + 0.1 * y, 1)
    r = stats.delong_test(s1, s2, y == 1)
    a1, a2, p = _delong_slow(s1, s2, y)
    assert r["auc_a"] == pytest.approx(skm.roc_auc_score(y, s1), abs=1e-12)
    assert r["auc_b"] == pytest.approx(a2, abs=1e-12)
    assert r["p"] == pytest.approx(p, rel=1e-9)
    assert 0.0 < r["p"] < 0.05  # the two scores really differ here
    same = stats.delong_test(s1, s1, y == 1)
    assert same["p"] == 1.0
    with pytest.raises(BenchError):
        stats.delong_test(s1[:3], s2[:3], np.array([True, False, False]))


def test_mcnemar_against_statsmodels_and_hand_counts():
    from statsmodels.stats.contingency_tables import mcnemar

    a = np.array([1] * 40 + [1] * 12 + [0] * 3 + [0] * 5, bool)
    b = np.array([1] * 40 + [0] * 12 + [1] * 3 + [0] * 5, bool)
    r = stats.mcnemar_test(a, b)
    assert (r["b"], r["c"]) == (12, 3)
    assert r["test"] == "McNemar exact"
    # exact two-sided binomial: 2 * P(X <= 3), X ~ Bin(15, 0.5)
    assert r["p"] == pytest.approx(2 * sps.binom.cdf(3, 15, 0.5), rel=1e-12)
    big_a = np.r_[np.ones(100, bool), np.ones(30, bool), np.zeros(10, bool)]
    big_b = np.r_[np.ones(100, bool), np.zeros(30, bool), np.ones(10, bool)]
    r = stats.mcnemar_test(big_a, big_b)
    ref = mcnemar([[100, 30], [10, 0]], exact=False, correction=True).pvalue
    assert r["test"] == "McNemar chi2" and r["p"] == pytest.approx(ref)
    assert r["p"] == pytest.approx(sps.chi2.sf((abs(30 - 10) - 1) ** 2 / 40, 1))


def test_paired_tests_need_the_same_items():
    a = _binary(n=100, seed=1)
    b = _binary(n=100, seed=2)
    assert stats.paired_tests(a, b, "binary")["comparable"] is False  # same ids, different labels
    c = stats.PredictionSet(ids=a.ids[::-1].copy(), label=a.label[::-1].copy(), pred=a.pred[::-1].copy(),
                            prob=a.prob[::-1].copy())
    r = stats.paired_tests(a, c, "binary")  # same items in another order: aligned by id
    assert r["comparable"] and r["delong"]["p"] == 1.0 and r["mcnemar"]["p"] == 1.0


def test_aggregate_seeds_mean_std_n():
    df = pd.DataFrame({"model": ["a", "a", "a", "b"], "protocol_key": ["p"] * 4,
                       "test_auroc": [0.8, 0.9, 0.7, 0.75]})
    agg = stats.aggregate_seeds(df, ["model", "protocol_key"], ["test_auroc"]).set_index("model")
    assert agg.loc["a", "test_auroc_mean"] == pytest.approx(0.8)
    assert agg.loc["a", "test_auroc_std"] == pytest.approx(0.1)  # sample std, ddof=1
    assert agg.loc["a", "n_seeds"] == 3
    assert np.isnan(agg.loc["b", "test_auroc_std"])


def test_seed_image_interval_matches_an_independent_two_level_bootstrap():
    # three seeds scored on the same 300 items: one image draw shared by the seeds, seeds redrawn
    sets = [_binary(n=300, seed=s, skill=0.6 + 0.4 * s) for s in range(3)]
    ids = sets[0].ids
    sets = [stats.PredictionSet(ids=ids, label=sets[0].label, pred=ps.pred, prob=ps.prob) for ps in sets]
    got = stats.seed_image_interval(sets, "binary", "auroc", n_resamples=4000, seed=0)
    rng = np.random.default_rng(99)
    y = sets[0].label
    vals = []
    for _ in range(3000):
        i = rng.integers(0, 300, 300)
        seeds = rng.integers(0, 3, 3)
        aucs = []
        for s in seeds:
            yy, sc = y[i], sets[s].prob[i, 1]
            m, n = yy.sum(), (1 - yy).sum()
            aucs.append((sps.rankdata(sc)[yy == 1].sum() - m * (m + 1) / 2) / (m * n))
        vals.append(np.mean(aucs))
    lo, hi = np.percentile(vals, [2.5, 97.5])
    assert got["low"] == pytest.approx(lo, abs=0.012) and got["high"] == pytest.approx(hi, abs=0.012)
    point = np.mean([skm.roc_auc_score(y, ps.prob[:, 1]) for ps in sets])
    assert got["value"] == pytest.approx(point, abs=1e-12)
    assert got["n_seeds"] == 3 and got["n_units"] == 300
    # wider than the image-only interval of one seed: the seed spread is in it
    one = stats.seed_image_interval(sets[1:2], "binary", "auroc", n_resamples=4000, seed=0)
    assert (got["high"] - got["low"]) > (one["high"] - one["low"])


def test_holm_matches_the_step_down_definition():
    p = [0.01, 0.04, float("nan"), 0.03, 0.2]
    got = stats.holm(p)
    assert np.isnan(got[2])
    # sorted 0.01, 0.03, 0.04, 0.2 (m = 4): 0.04, max(0.09, .04), max(0.08, 0.09), max(0.2, 0.09)
    assert got[0] == pytest.approx(0.04) and got[3] == pytest.approx(0.09)
    assert got[1] == pytest.approx(0.09) and got[4] == pytest.approx(0.2)


def test_batched_paired_tests_equal_paired_tests_bit_for_bit():
    """The leaderboard's per-run DeLong components give exactly paired_tests' results (the cached
    and the fresh render print the same p), and fall back to it for runs on other items."""
    from bench.evaluation.stats import PredictionSet, paired_tests
    from bench.leaderboard.pairs import PairedTests

    rng = np.random.default_rng(3)
    ids = np.array([f"i{k:03d}" for k in range(90)], dtype=object)
    label = rng.integers(0, 2, 90)

    def run(skill, ids=ids, label=label):
        p1 = np.clip(0.5 + skill * (label - 0.5) + rng.normal(0, 0.3, len(label)), 0, 1)
        p1[:5] = 0.5  # ties
        prob = np.stack([1 - p1, p1], axis=1)
        return PredictionSet(ids=ids, label=label, pred=(p1 >= 0.5).astype(np.int64), prob=prob, positive_index=1)

    sets = [run(s) for s in (0.1, 0.3, 0.5, 0.5, 0.8)]
    other = run(0.4, ids=np.array([f"j{k:03d}" for k in range(90)], dtype=object))
    batched = PairedTests()
    for kind in ("binary", "multiclass"):
        for a in sets + [other]:
            for b in sets + [other]:
                assert batched(a, b, kind) == paired_tests(a, b, kind)
    assert batched(sets[0], other, "binary") == {"comparable": False, "reason": "different test items"}


def test_weighted_auroc_both_ways_match_sklearn_with_sample_weights(monkeypatch):
    """The AUC kernel's matrix product (small test sets) and its sorted cumulative sums (large
    ones) are two computations of the same number: both against scikit-learn's weighted AUC."""
    ps = _binary(n=200, seed=4)
    w = np.random.default_rng(5).integers(0, 4, (6, ps.n)).astype(float)
    y, s = ps.label, ps.prob[:, 1]
    want = [skm.roc_auc_score(y, s, sample_weight=wi) for wi in w]
    pairwise = stats.MetricKernel(ps, "binary", names=("auroc",))(w)[0]
    monkeypatch.setattr(kernels._AucKernel, "PAIRWISE_MAX", 0)
    cumulative = stats.MetricKernel(ps, "binary", names=("auroc",))(w)[0]
    assert pairwise == pytest.approx(want, abs=1e-12) and cumulative == pytest.approx(want, abs=1e-12)
    assert (pairwise == cumulative).all()  # resample counts are whole numbers: the sums are exact


@pytest.mark.parametrize("kind,metric", [("binary", "auroc"), ("binary", "f1"), ("multiclass", "f1"),
                                         ("multiclass", "auroc"), ("multiclass", "kappa")])
def test_row_interval_of_stacked_seeds_equals_one_kernel_per_seed(kind, metric, monkeypatch):
    """The row interval computes the seeds of a row together (one product for all of them); each
    seed's metric per resample must be what that seed's own kernel gives."""
    rng = np.random.default_rng(7)
    n, k = 120, (2 if kind == "binary" else 5)
    y = rng.integers(0, k, n)
    sets = []
    for s in range(4):
        pr = rng.dirichlet(np.ones(k), n)
        pr[np.arange(n), y] += 0.3 * s
        pr = np.round(pr / pr.sum(1, keepdims=True), 2)  # rounded: ties
        sets.append(stats.PredictionSet(ids=np.arange(n).astype(str), label=y, pred=pr.argmax(1), prob=pr))
    w = rng.integers(0, 3, (9, n)).astype(float)
    stacked = kernels._SeedStack(sets, kind, metric)(w)
    # float32 weights (what the bootstraps use when every sum stays exact) give the same bits
    assert kernels._weight_dtype(None, n) == np.float32
    assert (kernels._SeedStack(sets, kind, metric)(w.astype(np.float32)) == stacked).all()
    for i, ps in enumerate(sets):
        assert (stacked[i] == stats.MetricKernel(ps, kind)(w)[stats.CI_METRICS[kind].index(metric)]).all()
        assert (stats.MetricKernel(ps, kind)(w.astype(np.float32)) == stats.MetricKernel(ps, kind)(w)).all()
    got = stats.seed_image_interval(sets, kind, metric, n_resamples=300, seed=1)
    monkeypatch.setattr(kernels._AucKernel, "PAIRWISE_MAX", 0)
    assert stats.seed_image_interval(sets, kind, metric, n_resamples=300, seed=1) == got
