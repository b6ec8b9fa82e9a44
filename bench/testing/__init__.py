"""Generated data for tests, benchmarks and the quickstart; nothing here reads real results.

- :mod:`bench.testing.fixtures`: tiny datasets in the exact FracAtlas / MURA-v1.1 layouts
  (``bench-data``, and ``data.generate_if_missing`` for the ``tiny_*`` data configs);
- :mod:`bench.testing.synthetic`: complete run directories that follow docs/run_record.md,
  written through :mod:`bench.record` (leaderboard tests and benchmarks).
"""
