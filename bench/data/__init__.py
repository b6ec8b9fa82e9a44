"""Data stage: FracAtlas / MURA loading, decoding, cache, splits, balancing, augmentation, report."""

from bench.data.datamodule import FractureDataModule
from bench.data.decode import DecodedImage, SkippedImage, decode_image, decode_resized_uint8
from bench.data.fracatlas import load_fracatlas
from bench.data.mura import load_mura
from bench.data.splits import check_leakage, make_split, read_split, split_hash, write_split

__all__ = [
    "FractureDataModule", "DecodedImage", "SkippedImage", "decode_image", "decode_resized_uint8",
    "load_fracatlas", "load_mura", "make_split", "read_split", "write_split", "split_hash", "check_leakage",
]
