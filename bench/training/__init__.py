from bench.training.module import FractureClassifier
from bench.training.run import load_run, run, run_id_for

__all__ = ["FractureClassifier", "load_run", "run", "run_id_for"]
