"""Moved to :mod:`bench.evaluation.stats` (issue 10): evaluation's operating point and subgroups
use its bootstrap, and importing it from here made evaluation <-> leaderboard a cycle. Re-exported
for the leaderboard modules and their tests until they import bench.evaluation.stats."""

from bench.evaluation.stats import *  # noqa: F401,F403
from bench.evaluation.stats import ALPHA, CI_METRICS, PRIMARY_METRIC  # noqa: F401
