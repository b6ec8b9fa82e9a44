"""Sweeps: sweep summary (Hydra callback), fault-tolerant sweepers/launcher (``hydra_plugins.bench_sweep``),
plugin discovery for source checkouts. See ``docs/cluster.md``."""
