"""Cost of the dataset fingerprint per 1,000 images: cold (nothing remembered: every file is read
and hashed) vs warm (the digest cache knows every file: one stat each), on a real dataset.

    .venv/bin/python benchmarks/fingerprint.py --root ../shared/data/fracatlas [--repeats 3] [--evict]

``--evict`` asks the kernel to drop the files from the page cache before each cold pass
(``posix_fadvise(DONTNEED)``, no root needed), so cold includes reading from disk; without it
cold is hashing from memory. Prints median seconds, ms per 1,000 images, the warm/cold ratio
and a linear extrapolation to MURA v1.1 (40,005 images).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.data.fingerprint import dataset_files, fingerprint_files  # noqa: E402
from bench.data.fracatlas import load_fracatlas  # noqa: E402

MURA_IMAGES = 40_005  # MURA v1.1: 36,808 train + 3,197 valid images


def _evict(paths: list[str]) -> None:
    for p in paths:
        fd = os.open(p, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "fracatlas"))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--workers", type=int, default=None, help="hashing threads (default 1: fastest for small local files)")
    ap.add_argument("--evict", action="store_true", help="drop the files from the page cache before each cold pass")
    args = ap.parse_args(argv)

    table, info = load_fracatlas(args.root)
    files = dataset_files("fracatlas", table, info)
    n_images = len(table)
    cold, warm = [], []
    digest = None
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory(prefix="fp-bench-") as cache:
            if args.evict:
                _evict(files)
            t = time.perf_counter()
            fp = fingerprint_files(files, info["root"], cache, args.workers)
            cold.append(time.perf_counter() - t)
            assert fp.hashed_now == fp.n_files
            t = time.perf_counter()
            again = fingerprint_files(files, info["root"], cache, args.workers)
            warm.append(time.perf_counter() - t)
            assert again.hashed_now == 0 and again.digest == fp.digest
            digest = fp.digest
    c, w = statistics.median(cold), statistics.median(warm)
    per_k = lambda s: 1000 * s / n_images * 1000  # noqa: E731 - ms per 1,000 images
    print(f"dataset: {args.root}  images: {n_images}  files hashed: {fp.n_files} ({fp.n_bytes / 1e6:.1f} MB)  "
          f"CPUs: {os.cpu_count()}  page cache: {'evicted' if args.evict else 'as it was'}  repeats: {args.repeats}")
    print(f"fingerprint: {digest}")
    print(f"cold: {c:.3f} s  = {per_k(c):.0f} ms per 1,000 images  (runs: {', '.join(f'{x:.3f}' for x in cold)})")
    print(f"warm: {w:.3f} s  = {per_k(w):.0f} ms per 1,000 images  (runs: {', '.join(f'{x:.3f}' for x in warm)})")
    print(f"warm/cold ratio: {w / c:.3f}")
    # What a run pays in setup: the loader (CSV, folders, symlink screen, boxes) plus the above.
    from bench.data import FractureDataModule

    with tempfile.TemporaryDirectory(prefix="fp-bench-") as cache:
        dm_times = []
        for _ in range(2):
            dm = FractureDataModule(dataset="fracatlas", root=args.root, cache_dir=cache, decode_workers=args.workers)
            t = time.perf_counter()
            dm.compute_data_fingerprint()
            dm_times.append(time.perf_counter() - t)
    print(f"dm.compute_data_fingerprint() incl. loading the dataset (duplicate check + fingerprint): "
          f"cold {dm_times[0]:.2f} s, warm {dm_times[1]:.2f} s")
    scale = MURA_IMAGES / n_images
    print(f"MURA v1.1 ({MURA_IMAGES} images), linear by image count: cold ~{c * scale:.1f} s, warm ~{w * scale:.2f} s "
          f"(cold also grows with the bytes per image; this copy: {fp.n_bytes / n_images / 1e3:.0f} kB per image incl. its label file)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
