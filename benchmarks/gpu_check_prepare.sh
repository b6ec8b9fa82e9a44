#!/usr/bin/env bash
# Prepare what benchmarks/gpu_check.py needs on a lent GPU machine that has no internet and its own
# torch: (1) real FracAtlas re-encoded at 256 px in .gpu_carry/fracatlas (same layout, about 40 MB),
# (2) wheels of the packages that machine lacks, for its Python 3.12, in .whl/. Both are ignored by
# git and travel with the device tool's `carry` (64 MiB in all). Then, on the device:
#   bash benchmarks/gpu_check_device.sh        (carry: .gpu_carry .whl)
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=${1:-../shared/data/fracatlas}
grep -qx '/.gpu_carry/' .git/info/exclude 2>/dev/null || echo /.gpu_carry/ >> .git/info/exclude
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo /.whl/ >> .git/info/exclude
.venv/bin/python - "$SRC" <<'PY'
import shutil, sys
from pathlib import Path
from PIL import Image, ImageOps
src, dst = Path(sys.argv[1]), Path(".gpu_carry/fracatlas")
for rel in ("dataset.csv", "Utilities", "Annotations/YOLO"):
    s = src / rel
    if s.is_dir():
        shutil.copytree(s, dst / rel, dirs_exist_ok=True)
    elif s.is_file():
        (dst / rel).parent.mkdir(parents=True, exist_ok=True); shutil.copy2(s, dst / rel)
n = 0
for img in sorted((src / "images").rglob("*.jpg")):
    out = dst / img.relative_to(src)
    if out.is_file():
        continue
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        with Image.open(img) as im:
            im = ImageOps.exif_transpose(im).convert("L")  # boxes are in the displayed frame
            im.thumbnail((256, 256))
            im.save(out, quality=85)
        n += 1
    except OSError as exc:  # a truncated original stays out of the timing copy; listed here
        print(f"skipped {img.name}: {exc}")
print(f"re-encoded {n} images into {dst}")
PY
# Wheels the device's image lacks (its list: the device tool's KINDS.md); versions as installed here.
mkdir -p .whl
for pkg in ultralytics ultralytics-thop grad-cam ttach hydra-core omegaconf antlr4-python3-runtime polars; do
  ver=$(.venv/bin/pip show "$pkg" 2>/dev/null | awk '/^Version:/{print $2}')
  [ -n "$ver" ] || continue
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d .whl "$pkg==$ver" || python3 -m pip download -q --no-deps -d .whl "$pkg==$ver" || echo "no wheel for $pkg==$ver"
done
du -sh .gpu_carry .whl
