"""Decode any radiograph file to one format: single-channel float32 in [0, 1], EXIF-applied.

Truncated JPEGs (FracAtlas has 59 that strict Pillow cannot read) follow a policy:
``load`` decodes them leniently and flags them, ``skip`` raises :class:`SkippedImage` for the
index builder to count, ``error`` stops with a one-line :class:`BenchError`.

Pillow's decompression-bomb guard stays on; its limit is ``data.max_image_pixels``: a larger
image is :class:`UnreadableImage` (reason ``too_many_pixels``), counted, never a traceback.
"""

from __future__ import annotations

import os
import re
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from bench.errors import BenchError

TRUNCATED_POLICIES = ("load", "skip", "error")
# Pillow's own default (Image.MAX_IMAGE_PIXELS): about 9,459 x 9,459.
DEFAULT_MAX_IMAGE_PIXELS = 89_478_485

# Modes that Pillow converts to 8-bit luminance without losing range.
_EIGHT_BIT_MODES = {"L", "RGB", "RGBA", "RGBX", "P", "PA", "LA", "La", "CMYK", "YCbCr", "LAB", "HSV", "1"}


class SkippedImage(Exception):
    """Signal (not an error): the image is truncated and the policy is ``skip``."""

    def __init__(self, path: str, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class TruncatedImageError(BenchError):
    """A truncated file under policy ``error``."""


class UnreadableImage(BenchError):
    """A file that is left out and listed; ``reason`` is a short code for the report."""

    def __init__(self, message: str, reason: str):
        super().__init__(message)
        self.reason = reason



def _pil_open():
    """Pillow's own ``Image.open``: importing ultralytics replaces it with a wrapper that, on an
    unidentified file, tries to install and register a HEIF plugin (``pi_heif``) and then fails with
    ModuleNotFoundError: a text file named .jpg must stay 'not an image', whoever imported what."""
    opener = Image.open
    if getattr(opener, "__module__", "").startswith("ultralytics"):
        import sys

        opener = getattr(sys.modules.get(opener.__module__), "_image_open", opener)
    return opener

def check_max_image_pixels(value) -> int:
    """``data.max_image_pixels`` as a positive int (None: Pillow's default)."""
    if value is None:
        return DEFAULT_MAX_IMAGE_PIXELS
    if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value or value < 1:
        raise BenchError(f"data.max_image_pixels={value!r}: give a positive whole number of pixels "
                         f"(default {DEFAULT_MAX_IMAGE_PIXELS}, Pillow's decompression-bomb limit)")
    return int(value)


@dataclass(frozen=True)
class DecodedImage:
    array: np.ndarray  # float32, H x W, values in [0, 1]
    truncated: bool


class _TruncationLock:
    """Readers-writer lock around Pillow's process-global LOAD_TRUNCATED_IMAGES.

    Strict decodes (shared) must never run while a lenient decode (exclusive) has the flag set,
    or a truncated file would silently decode as "not truncated" in another thread.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writer = False

    @contextmanager
    def strict(self) -> Iterator[None]:
        with self._cond:
            while self._writer:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                self._cond.notify_all()

    @contextmanager
    def lenient(self) -> Iterator[None]:
        with self._cond:
            while self._writer or self._readers:
                self._cond.wait()
            self._writer = True
        previous = ImageFile.LOAD_TRUNCATED_IMAGES
        ImageFile.LOAD_TRUNCATED_IMAGES = True
        try:
            yield
        finally:
            ImageFile.LOAD_TRUNCATED_IMAGES = previous
            with self._cond:
                self._writer = False
                self._cond.notify_all()


_LOCK = _TruncationLock()


def _is_truncation(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and "truncated" in str(exc)


def _too_many_pixels(path: str, what: str, max_pixels: int) -> UnreadableImage:
    return UnreadableImage(
        f"{path}: {what} is over data.max_image_pixels={max_pixels} (Pillow's decompression-bomb guard): "
        f"remove the file, or raise data.max_image_pixels if the image is genuine", "too_many_pixels")


def _open_loaded(path: str, max_pixels: int) -> Image.Image:
    with _pil_open()(path) as img:
        # Pillow itself only raises above twice its limit (and warns between): check before load().
        if img.width * img.height > max_pixels:
            raise _too_many_pixels(path, f"{img.width}x{img.height} = {img.width * img.height} pixels", max_pixels)
        img.load()
        # exif_transpose first: FracAtlas boxes are in the displayed (rotated) frame.
        out = ImageOps.exif_transpose(img)
        if out is img:
            out = img.copy()
        return out


def _read(path: str | os.PathLike, truncated: str, max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS) -> tuple[Image.Image, bool]:
    """Open, fully load and EXIF-transpose ``path``; returns (image, was_truncated)."""
    if truncated not in TRUNCATED_POLICIES:
        raise BenchError(f"data.truncated={truncated!r} is not a policy: use one of {', '.join(TRUNCATED_POLICIES)}")
    max_pixels = check_max_image_pixels(max_pixels)
    # Process-global in Pillow; every decode of a build passes the same value.
    Image.MAX_IMAGE_PIXELS = max_pixels
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise UnreadableImage(f"{path}: image file not found: check the dataset root and its CSV files", "missing")
    try:
        with _LOCK.strict():
            return _open_loaded(path, max_pixels), False
    except Image.DecompressionBombError as exc:
        found = re.search(r"\((\d+) pixels\)", str(exc))  # Pillow raised before giving us the size
        raise _too_many_pixels(path, f"{found[1]} pixels" if found else str(exc), max_pixels) from None
    except (UnidentifiedImageError, SyntaxError) as exc:
        raise UnreadableImage(f"{path}: not a readable image ({exc}): replace or remove the file", "not_an_image") from None
    except (ValueError, EOFError) as exc:  # e.g. a broken header Pillow rejects with ValueError
        raise UnreadableImage(f"{path}: cannot decode ({exc}): replace or remove the file", "cannot_decode") from None
    except OSError as exc:
        if not _is_truncation(exc):
            raise UnreadableImage(f"{path}: cannot decode ({exc}): replace or remove the file", "cannot_decode") from None
    # The file is truncated.
    if truncated == "skip":
        raise SkippedImage(path, "truncated")
    if truncated == "error":
        raise TruncatedImageError(
            f"{path}: image file is truncated: set data.truncated=load (decode leniently) "
            f"or data.truncated=skip (leave it out)"
        )
    try:
        with _LOCK.lenient():
            return _open_loaded(path, max_pixels), True
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise UnreadableImage(f"{path}: truncated and unreadable even leniently ({exc}): replace or remove the file",
                              "truncated_unreadable") from None


def _to_gray(img: Image.Image, path: str | os.PathLike = "image") -> Image.Image:
    """One channel: mode ``L`` (8-bit sources) or ``F`` with values in [0, 1] (deeper sources)."""
    mode = img.mode
    if mode == "L":
        return img
    if mode in _EIGHT_BIT_MODES:
        if mode in ("P", "PA"):
            img = img.convert("RGBA" if "transparency" in img.info or mode == "PA" else "RGB")
        # Radiographs are gray: ITU-R 601 luminance, alpha dropped.
        return img.convert("L")
    arr = np.asarray(img)
    if mode.startswith("I;16") or arr.dtype in (np.uint16, np.dtype(">u2"), np.dtype("<u2")):
        out = arr.astype(np.float32) / 65535.0
    elif mode == "I":
        # 32-bit integer mode: Pillow opens some 16-bit PNGs as "I"; values are 0..65535.
        out = np.clip(arr.astype(np.float32), 0, 65535) / 65535.0
    elif mode == "F":
        out = arr.astype(np.float32)
        lo, hi = float(np.nanmin(out)), float(np.nanmax(out))
        if lo < 0.0 or hi > 1.0:
            # Float data outside [0, 1] has no fixed scale: stretch its own range.
            out = (out - lo) / (hi - lo) if hi > lo else np.zeros_like(out)
        out = np.nan_to_num(out, nan=0.0)
    elif arr.ndim == 3:  # e.g. 16-bit RGB modes
        out = arr.astype(np.float32).mean(axis=2) / float(np.iinfo(arr.dtype).max)
    else:
        raise UnreadableImage(f"{os.fspath(path)}: image mode {mode!r} is not supported: convert the file to PNG or JPEG", "unsupported_mode")
    return Image.fromarray(np.ascontiguousarray(out, dtype=np.float32), mode="F")


def decode_image(path: str | os.PathLike, truncated: str = "load", max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS) -> DecodedImage:
    """Decode ``path`` to a float32 HxW array in [0, 1] (EXIF-applied, single channel)."""
    img, was_truncated = _read(path, truncated, max_pixels)
    gray = _to_gray(img, path)
    if gray.mode == "L":
        arr = np.asarray(gray, dtype=np.float32) / 255.0
    else:
        arr = np.asarray(gray, dtype=np.float32)
    return DecodedImage(np.clip(arr, 0.0, 1.0), was_truncated)


def decode_resized_uint8(path: str | os.PathLike, size: int, truncated: str = "load",
                         max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS) -> tuple[np.ndarray, bool]:
    """Decode and resize to a square ``size`` x ``size`` uint8 array (as both papers do)."""
    img, was_truncated = _read(path, truncated, max_pixels)
    gray = _to_gray(img, path)
    # Pillow's BILINEAR resize widens its support when shrinking, i.e. it antialiases; 8-bit
    # sources stay 8-bit, deeper ones are resized in float before the single rounding.
    small = gray.resize((int(size), int(size)), Image.Resampling.BILINEAR)
    if small.mode == "L":
        return np.asarray(small, dtype=np.uint8).copy(), was_truncated
    arr = np.asarray(small, dtype=np.float32)
    return np.clip(np.rint(arr * 255.0), 0, 255).astype(np.uint8), was_truncated
