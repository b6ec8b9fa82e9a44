"""Data stage: the dataset registry (``bench.data.registry``, one module a dataset in
``bench/data/datasets/``), FracAtlas / MURA loading, decoding, cache, splits, balancing, augmentation, report.

Names are imported lazily so that ``bench.data.cache`` or ``bench-data`` do not pay for importing
torch and Lightning (the datamodule does).
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "FractureDataModule": "bench.data.datamodule",
    "DatasetSource": "bench.data.registry",
    "register_dataset": "bench.data.registry",
    "get_dataset": "bench.data.registry",
    "dataset_names": "bench.data.registry",
    "DecodedImage": "bench.data.decode",
    "SkippedImage": "bench.data.decode",
    "decode_image": "bench.data.decode",
    "decode_resized_uint8": "bench.data.decode",
    "load_fracatlas": "bench.data.fracatlas",
    "load_mura": "bench.data.mura",
    "build_cache": "bench.data.cache",
    "balance_indices": "bench.data.balance",
    "make_split": "bench.data.splits",
    "read_split": "bench.data.splits",
    "write_split": "bench.data.splits",
    "split_hash": "bench.data.splits",
    "check_leakage": "bench.data.splits",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'bench.data' has no attribute {name!r}")
