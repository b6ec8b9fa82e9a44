"""Path confinement, in one place: config values become safe path components (``slug``) and every
path the harness writes is checked to lie under its configured folder (``confined``).

Run ids are built from config values (``data.name``, ``model.name``...). Unsanitised, a value such
as ``../../escaped`` would put a whole run (checkpoints, record, W&B files) outside
``paths.runs_dir``. ``slug`` reduces a value to ``[A-Za-z0-9_.-]`` without ``..``; ``confined``
then checks, after resolving symlinks and ``..``, that the result is inside the folder.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from bench.errors import BenchError

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")
_DOTS = re.compile(r"\.{2,}")
_DASHES = re.compile(r"-{2,}")
MAX_SLUG = 80


def slug(value: object, what: str = "value") -> str:
    """``value`` as one safe path component: letters, digits, ``_ . -``; no ``..``, no leading dot
    or dash (no hidden files, nothing read as an option), at most 80 characters.

    >>> slug("../../escaped")
    'escaped'
    >>> slug("fracatlas_binary")
    'fracatlas_binary'
    """
    text = _UNSAFE.sub("-", str(value))
    text = _DOTS.sub("-", text)
    text = _DASHES.sub("-", text).strip("-.")[:MAX_SLUG].strip("-.")
    if not text:
        raise BenchError(f"{what}={value!r} gives an empty name for a path: use letters, digits, '_', '-' or '.'")
    return text


def confined(base: str | os.PathLike, *parts: str | os.PathLike, what: str = "path") -> Path:
    """``base/parts...``, resolved, after checking that it lies inside ``base`` (resolved too).

    Raises ``BenchError`` naming both paths when it would not (``..`` in a part, an absolute part,
    a symlink inside ``base`` that points elsewhere).
    """
    root = Path(base).expanduser().resolve()
    target = root.joinpath(*[str(p) for p in parts]).resolve()
    if target != root and root not in target.parents:
        raise BenchError(f"{what} {target} is outside its folder {root}: use a plain name (no '..', '/' or links out of the folder)")
    return target


def is_inside(path: str | os.PathLike, base: str | os.PathLike) -> bool:
    """True when ``path`` (resolved) is ``base`` or lies under it."""
    root = Path(base).expanduser().resolve()
    target = Path(path).expanduser().resolve()
    return target == root or root in target.parents
