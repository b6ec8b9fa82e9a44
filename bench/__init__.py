"""fracture-bench: a benchmarking harness for fracture X-ray classification."""

__version__ = "0.1.0"
