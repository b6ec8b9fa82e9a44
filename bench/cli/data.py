"""bench-data: write a tiny synthetic dataset in the FracAtlas or MURA-v1.1 layout."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench.data.registry import dataset_names, get_dataset
from bench.errors import BenchError


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="bench-data",
        description="Generate a tiny synthetic dataset in the exact FracAtlas or MURA-v1.1 layout (for tests, "
                    "the quickstart and trying bench-check). The images are generated, not radiographs.")
    p.add_argument("dataset", choices=dataset_names(), help="which layout to write")
    p.add_argument("--out", required=True, help="folder to create (FracAtlas root, or the folder that will contain MURA-v1.1/)")
    sizes = "; ".join(f"{n}: {get_dataset(n).fixture_size}, default {get_dataset(n).fixture_default_n}" for n in dataset_names())
    p.add_argument("--n", type=int, default=None, help=f"how many ({sizes})")
    p.add_argument("--seed", type=int, default=0, help="random seed of the generated images and labels (default 0)")
    p.add_argument("--no-bad-files", action="store_true", help="leave out the truncated JPEG, duplicate and label conflict")
    args = p.parse_args(argv)
    try:
        info = get_dataset(args.dataset).make_fixture(Path(args.out), n=args.n, seed=args.seed,
                                                      bad_files=not args.no_bad_files)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {args.dataset} fixture with {info['n_images']} images to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
