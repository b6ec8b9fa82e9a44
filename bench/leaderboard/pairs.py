"""Paired tests for many pairs of runs at once, with the results of
:func:`bench.evaluation.stats.paired_tests` bit for bit.

A leaderboard table compares every row with the best and, for the compare view, every pair of
rows: hundreds of pairs over a few dozen runs. ``paired_tests`` ranks both runs' scores again for
each pair (three ``rankdata`` calls) and re-checks the item sets; here each run's DeLong
components (midranks, AUC, structural components, Sun & Xu 2014) are computed once and each pair
only takes the 2x2 covariance of its two runs' components, with the same NumPy calls as
``fast_delong`` on those two rows, so the p-values are identical. Runs that are not on exactly the
same item ids (sorted by the loader) go through ``paired_tests`` itself. Hand-written like
``fast_delong``: no library offers a DeLong test.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.stats as sps

from bench.errors import BenchError
from bench.evaluation.stats import PredictionSet, delong_result, mcnemar_test, paired_tests


class _Components:
    __slots__ = ("auc", "v01", "v10", "m", "n", "error")

    def __init__(self, score: np.ndarray, positive: np.ndarray):
        x = score[positive]
        y = score[~positive]
        self.m, self.n = x.shape[0], y.shape[0]
        self.error = None
        if self.m < 2 or self.n < 2:
            self.error = f"DeLong needs at least 2 positive and 2 negative items (got {self.m} and {self.n})"
            return
        # the per-row steps of bench.evaluation.stats.fast_delong
        tx = sps.rankdata(x)
        ty = sps.rankdata(y)
        tz = sps.rankdata(np.concatenate([x, y]))
        m, n = self.m, self.n
        self.auc = tz[:m].sum() / m / n - (m + 1.0) / (2.0 * n)
        self.v01 = (tz[:m] - tx) / n
        self.v10 = 1.0 - (tz[m:] - ty) / m


def _delong(a: _Components, b: _Components) -> dict:
    """bench.evaluation.stats.delong_test from two runs' components."""
    if a.error:
        raise BenchError(a.error)
    sx = np.atleast_2d(np.cov(np.vstack([a.v01, b.v01])))
    sy = np.atleast_2d(np.cov(np.vstack([a.v10, b.v10])))
    cov = sx / a.m + sy / a.n
    return delong_result(np.array([a.auc, b.auc]), cov)


class PairedTests:
    """``paired_tests(a, b, kind)`` for many pairs, each run's DeLong components computed once."""

    def __init__(self):
        self._comp: dict[int, _Components] = {}
        self._correct: dict[int, np.ndarray] = {}
        self._mcnemar: dict[tuple[int, int], dict] = {}

    def _mcnemar_test(self, a: PredictionSet, b: PredictionSet) -> dict:
        """mcnemar_test's result depends on the discordant counts only: once per (b, c)."""
        ca, cb = (self._correct.setdefault(id(ps), ps.pred == ps.label) for ps in (a, b))
        key = (int(np.sum(ca & ~cb)), int(np.sum(~ca & cb)))
        if key not in self._mcnemar:
            self._mcnemar[key] = mcnemar_test(ca, cb)
        return dict(self._mcnemar[key])

    def _components(self, ps: PredictionSet) -> _Components:
        c = self._comp.get(id(ps))
        if c is None:
            p = ps.positive_index
            c = self._comp[id(ps)] = _Components(ps.prob[:, p], ps.label == p)
        return c

    def __call__(self, a: PredictionSet, b: PredictionSet, kind: str) -> dict:
        same = a is b or (a.n == b.n and np.array_equal(a.ids, b.ids) and np.array_equal(a.label, b.label))
        if not same or (kind == "binary" and a.positive_index != b.positive_index):
            return paired_tests(a, b, kind)
        out: dict = {"comparable": True, "n": a.n}
        out["mcnemar"] = self._mcnemar_test(a, b)
        if kind == "binary":
            out["delong"] = _delong(self._components(a), self._components(b))
        return out
