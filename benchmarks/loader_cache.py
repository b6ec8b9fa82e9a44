"""Images/s of the cached loader vs decoding every epoch (same run, same images, same transform).

    .venv/bin/python benchmarks/loader_cache.py [--n 500] [--size 224] [--epochs 2] [--root DIR]

Uses the real FracAtlas (../shared/data/fracatlas) when present, else a generated fixture. The
"decode each epoch" loader is what a naive Dataset does: open + decode + resize in __getitem__.
Both loaders run the same eval transform and the same DataLoader settings (num_workers=0, so
the figures are per core); this machine is noisy, so compare the ratio, not absolute values.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.data.cache import build_cache  # noqa: E402
from bench.data.datamodule import CachedImageDataset  # noqa: E402
from bench.data.decode import decode_resized_uint8  # noqa: E402
from bench.data.fracatlas import load_fracatlas  # noqa: E402
from bench.data.transforms import eval_transform, train_transform  # noqa: E402

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


class DecodeEachTime(Dataset):
    def __init__(self, paths, labels, size, transform):
        self.paths, self.labels, self.size, self.transform = paths, labels, size, transform

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        arr, _ = decode_resized_uint8(self.paths[i], self.size, "load")
        return self.transform(torch.from_numpy(arr).unsqueeze(0)), int(self.labels[i]), i


def _epoch_rate(loader, epochs):
    n, t = 0, time.perf_counter()
    for _ in range(epochs):
        for x, _, _ in loader:
            n += x.shape[0]
    return n / (time.perf_counter() - t)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", default=str(REPO.parent / "shared" / "data" / "fracatlas"))
    p.add_argument("--n", type=int, default=500)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--workers", type=int, default=0, help="DataLoader workers of the augmented loader")
    p.add_argument("--augment", default="seed000", help="augmentation preset of the augmented loader")
    args = p.parse_args()
    torch.set_num_threads(1)

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.root)
        if not (root / "dataset.csv").is_file():
            from bench.testing.fixtures import make_fracatlas

            root = Path(tmp) / "fracatlas"
            make_fracatlas(root, n=args.n, seed=0, image_size=(454, 373))
            print(f"real FracAtlas not found: generated a {args.n}-image fixture (454x373 JPEGs)")
        table, _ = load_fracatlas(root)
        table = table.iloc[np.linspace(0, len(table) - 1, min(args.n, len(table))).astype(int)].reset_index(drop=True)
        paths, labels = table["path"].tolist(), table["label"].to_numpy()
        tf = eval_transform(MEAN, STD)

        t = time.perf_counter()
        cache = build_cache(paths, Path(tmp) / "cache", root, args.size, "load")
        build_s = time.perf_counter() - t
        images = np.ascontiguousarray(cache.images[cache.rows])
        cached = DataLoader(CachedImageDataset(images, labels, np.arange(len(paths)), tf), batch_size=args.batch_size)
        naive = DataLoader(DecodeEachTime(paths, labels, args.size, tf), batch_size=args.batch_size)

        rate_cached = _epoch_rate(cached, args.epochs)
        augmented = DataLoader(CachedImageDataset(images, labels, np.arange(len(paths)), train_transform(args.augment, MEAN, STD)),
                               batch_size=args.batch_size, num_workers=args.workers, persistent_workers=args.workers > 0)
        rate_aug = _epoch_rate(augmented, args.epochs)
        rate_naive = _epoch_rate(naive, args.epochs)
        print(f"images: {len(paths)} from {root} at {args.size}px, {args.epochs} epochs, batch {args.batch_size}, 1 worker thread")
        print(f"cache build (parallel decode, once): {build_s:.2f} s ({len(paths) / build_s:.0f} img/s)")
        print(f"decode each epoch : {rate_naive:8.0f} img/s")
        print(f"cached uint8      : {rate_cached:8.0f} img/s")
        print(f"ratio cached/decode: {rate_cached / rate_naive:.1f}x")
        print(f"cached + {args.augment} augmentation ({args.workers} workers): {rate_aug:.0f} img/s")


if __name__ == "__main__":
    main()
