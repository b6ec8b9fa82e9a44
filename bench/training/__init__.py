from bench.training.module import FractureClassifier
from bench.training.run import run, run_id_for

__all__ = ["FractureClassifier", "run", "run_id_for"]
