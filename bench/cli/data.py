"""bench-data: write a tiny synthetic dataset in the FracAtlas or MURA-v1.1 layout."""

from __future__ import annotations

import argparse
import sys

from bench.errors import BenchError


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="bench-data",
        description="Generate a tiny synthetic dataset in the exact FracAtlas or MURA-v1.1 layout (for tests, "
                    "the quickstart and trying bench-check). The images are generated, not radiographs.")
    p.add_argument("dataset", choices=["fracatlas", "mura"], help="which layout to write")
    p.add_argument("--out", required=True, help="folder to create (FracAtlas root, or the folder that will contain MURA-v1.1/)")
    p.add_argument("--n", type=int, default=None, help="images (fracatlas, default 200) or patients (mura, default 60)")
    p.add_argument("--seed", type=int, default=0, help="random seed of the generated images and labels (default 0)")
    p.add_argument("--no-bad-files", action="store_true", help="leave out the truncated JPEG, duplicate and label conflict")
    args = p.parse_args(argv)
    from bench.testing import fixtures

    try:
        if args.dataset == "fracatlas":
            info = fixtures.make_fracatlas(args.out, n=args.n or 200, seed=args.seed, bad_files=not args.no_bad_files)
        else:
            info = fixtures.make_mura(args.out, n_patients=args.n or 60, seed=args.seed, bad_files=not args.no_bad_files)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {args.dataset} fixture with {info['n_images']} images to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
