"""Evaluation: metrics (torchmetrics), statistics, operating points, calibration, subgroups, flags.

The metric classes load lazily: the leaderboard reads flags and statistics from here without
importing torch (20 s on two cores)."""

__all__ = ["ClassificationMetrics", "compute_metrics", "aggregate_by_study"]


def __getattr__(name: str):
    if name in __all__:
        from bench.evaluation import metrics

        return getattr(metrics, name)
    raise AttributeError(f"module 'bench.evaluation' has no attribute {name!r}")
