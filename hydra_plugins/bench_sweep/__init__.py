"""fracture-bench's Hydra plugins: a basic sweeper and an Optuna sweeper that go on after a failed
job, and a SLURM launcher that reports cancelled / timed-out jobs instead of aborting the sweep.
``hydra_plugins`` itself is a namespace package shared with other plugins: it has no __init__.py."""
