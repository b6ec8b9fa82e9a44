"""fracture-bench: a benchmarking harness for fracture X-ray classification."""

from bench.env import apply_defaults as _apply_env_defaults

_apply_env_defaults()

__version__ = "0.1.0"
