"""Resume and retention of a run folder's checkpoints.

- ``resume_checkpoint``: the ``last.ckpt`` to resume from, checked first. A torn or unreadable one
  (a node died mid-write on a file system without atomic rename, a copy cut short) is moved aside
  to ``last.ckpt.corrupt-<UTC time>`` with a one-line warning and the run restarts from scratch,
  instead of every re-run failing in Lightning's zip reader.
- ``apply_retention``: ``retention=keep_best`` deletes ``last.ckpt`` (and moved-aside copies) once
  the run is complete; ``best.ckpt`` and every file that explain, predict and leaderboards read
  (record, predictions, split, config, history, plots) stay.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from pathlib import Path

from bench.checkpoints import is_readable_checkpoint

log = logging.getLogger(__name__)

LAST = "last.ckpt"


def resume_checkpoint(run_dir: str | os.PathLike) -> str | None:
    """Path of a loadable ``checkpoints/last.ckpt``, or None (none there, or moved aside)."""
    last = Path(run_dir) / "checkpoints" / LAST
    if not last.is_file():
        return None
    ok, reason = is_readable_checkpoint(last)
    if ok:
        return str(last)
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    aside = last.with_name(f"{LAST}.corrupt-{stamp}")
    os.replace(last, aside)
    log.warning("%s: unreadable (%s); moved to %s, training this run from scratch", last, reason, aside.name)
    return None


def apply_retention(run_dir: str | os.PathLike, policy: str, best_checkpoint: str | None) -> list[str]:
    """Delete what ``policy`` does not keep in a COMPLETE run; returns the deleted file names."""
    if policy != "keep_best":
        return []
    ckpts = Path(run_dir) / "checkpoints"
    best = Path(run_dir) / best_checkpoint if best_checkpoint else None
    if best is None or not best.is_file():
        return []  # never delete the only checkpoint explain / predict would load
    deleted = []
    for path in sorted(ckpts.glob(f"{LAST}*")):
        if path.resolve() == best.resolve():
            continue
        path.unlink(missing_ok=True)
        deleted.append(path.name)
    if deleted:
        log.info("%s: retention=keep_best deleted %s", Path(run_dir).name, ", ".join(deleted))
    return deleted
