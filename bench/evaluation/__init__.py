from bench.evaluation.metrics import ClassificationMetrics, compute_metrics, aggregate_by_study

__all__ = ["ClassificationMetrics", "compute_metrics", "aggregate_by_study"]
