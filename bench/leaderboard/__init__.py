"""Leaderboards from run records: collect -> statistics -> Markdown / CSV / static site.

Public API: :func:`render_leaderboard` (what ``bench-leaderboard`` and the training code call),
:func:`bench.leaderboard.collect.collect`, :mod:`bench.leaderboard.stats`,
:func:`bench.leaderboard.literature.literature_table`, :func:`bench.testing.synthetic.make_run`.
"""

from bench.leaderboard.render import RenderResult, render_leaderboard

__all__ = ["RenderResult", "render_leaderboard"]
