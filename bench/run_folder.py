"""A run folder's name and its holder, importable without torch or Lightning.

- ``run_id_for``: the run id (``<data>__<model>__s<seed>__<config hash>``) that names the folder
  under ``paths.runs_dir``: slugged names, plus a hash of every config value that changes the
  results (``NON_RESULT_KEYS`` are left out) and of the dataset fingerprint.
- ``lock_stale_reason``: when another process's ``run.lock`` may be taken over (the rule of
  ``bench.training.lock``, which takes and holds the lock).

Training (``bench.training.run``, ``bench.detection.run``) and the sweep plan (``bench-train
--plan``, ``bench.sweep.plan``) both use these: the plan must name the same folders, in seconds
(``bench.training`` loads Lightning on import, 15-25 s on two cores).
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import time
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from bench.paths import slug

# Config keys that do not change a run's results: left out of the run id hash, so that moving
# the data, renaming the cache or switching W&B on does not turn a finished run into a new one.
NON_RESULT_KEYS = (
    "paths", "logger", "explain", "leaderboard", "hydra", "tags", "task_name", "resume",
    "measure_latency", "callbacks.progress_bar", "trainer.enable_progress_bar",
    "trainer.enable_model_summary", "trainer.log_every_n_steps", "data.root", "data.cache_dir",
    "data.num_workers", "data.generate_if_missing", "data.pin_memory", "data.persistent_workers",
    "hparams_search", "sweep", "weights_map", "retention", "run_lock",
    "callbacks.model_checkpoint.save_last",  # ignored: LastCheckpoint writes last.ckpt every epoch
)


def _drop(container: dict, dotted: str) -> None:
    node = container
    *parents, leaf = dotted.split(".")
    for key in parents:
        node = node.get(key)
        if not isinstance(node, dict):
            return
    node.pop(leaf, None)


def config_hash(cfg: DictConfig, data_fingerprint: str | None = None) -> str:
    container = OmegaConf.to_container(cfg, resolve=True)
    for key in NON_RESULT_KEYS:
        _drop(container, key)
    if data_fingerprint is not None:  # the files read (bench.data.fingerprint), not where they are
        container["data_fingerprint"] = data_fingerprint
    text = json.dumps(container, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def run_id_for(cfg: DictConfig, data_fingerprint: str | None = None) -> str:
    # Config values become path components: slugged, so '../..' cannot leave paths.runs_dir.
    return (f"{slug(cfg.data.name, 'data.name')}__{slug(cfg.model.name, 'model.name')}__s{int(cfg.seed)}__"
            f"{config_hash(cfg, data_fingerprint)[:8]}")


def absolute_paths(cfg: DictConfig) -> None:
    """Record absolute paths (a relative root would mean nothing on another node)."""
    for key, value in list(cfg.paths.items()):
        if isinstance(value, str):
            cfg.paths[key] = os.path.abspath(os.path.expanduser(value))


# -- run.lock ---------------------------------------------------------------------------------
LOCK_FILE = "run.lock"


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def read_lock(path: str | os.PathLike) -> dict | None:
    """The lock's content, ``{}`` for an unreadable (torn) one, None when there is no lock."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, UnicodeDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def lock_stale_reason(path: Path, holder: dict, stale_after_s: float) -> str | None:
    """Why the lock at ``path`` held by ``holder`` (``read_lock``) may be taken over, or None
    while its holder is alive (see ``bench.training.lock``)."""
    if not holder:  # torn or foreign: counts from the file's modification time
        try:
            age = time.time() - Path(path).stat().st_mtime
        except FileNotFoundError:
            return "lock file gone"
        return f"unreadable lock file, unchanged for {age:.0f} s" if age > stale_after_s else None
    age = time.time() - float(holder.get("heartbeat", 0) or 0)
    if age > stale_after_s:
        return f"no heartbeat for {age:.0f} s"
    if holder.get("host") == socket.gethostname() and not pid_alive(int(holder.get("pid", -1))):
        return f"pid {holder.get('pid')} on this host is gone"
    job = os.environ.get("SLURM_JOB_ID")
    if job and holder.get("slurm_job_id") == job and holder.get("pid") != os.getpid():
        return f"SLURM job {job} was requeued"
    return None
