"""One run folder, one writer: a lock file with host, pid and a heartbeat, valid across nodes.

``flock``/``fcntl`` locks are unreliable on some network file systems (and invisible across NFS
clients on others), so the lock is a plain file created with ``O_CREAT | O_EXCL`` (atomic on
local disks and NFSv3+) holding JSON: ``host``, ``pid``, ``token``, ``started``, ``heartbeat``
(Unix time) and ``slurm_job_id``. A thread rewrites the heartbeat every ``heartbeat_s`` seconds.

A lock is taken over when it is stale:

- its heartbeat is older than ``stale_after_s`` (default 600 s: a killed process or a dead node;
  an unreadable lock file counts from its modification time);
- or its holder is on this host and its pid is gone (killed with ``kill -9``: no need to wait);
- or it belongs to this very SLURM job (a requeued job resumes its own run at once).

Take-over renames the stale file to a unique name first (only one contender's rename succeeds),
then creates a fresh lock with ``O_EXCL`` again. Otherwise ``acquire`` raises ``RunLocked`` with
the holder's host, pid and heartbeat age; ``bench.training.run`` then skips the run.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from pathlib import Path

log = logging.getLogger(__name__)

# The take-over rule and the lock reader live in bench.run_folder (bench-train --plan reads locks
# without importing Lightning); re-exported here.
from bench.run_folder import LOCK_FILE, lock_stale_reason, read_lock  # noqa: E402,F401
from bench.run_folder import pid_alive as _pid_alive  # noqa: E402,F401
STALE_AFTER_S = 600.0
HEARTBEAT_S = 30.0

_held: set[RunLock] = set()  # locks this process holds (released on SLURM requeue, see release_all)
_held_guard = threading.Lock()


class RunLocked(Exception):
    """Another live process holds the run folder."""

    def __init__(self, path: Path, holder: dict, age_s: float, stale_after_s: float):
        self.path, self.holder, self.age_s = path, holder, age_s
        super().__init__(
            f"{path.parent.name} is being trained by host {holder.get('host')} pid {holder.get('pid')} "
            f"(heartbeat {age_s:.0f} s ago; taken over after {stale_after_s:.0f} s without one): skipped"
        )


class RunLock:
    """``with RunLock(run_dir): ...`` holds ``run_dir/run.lock`` (creating ``run_dir``)."""

    def __init__(self, run_dir: str | os.PathLike, stale_after_s: float = STALE_AFTER_S, heartbeat_s: float = HEARTBEAT_S):
        if not stale_after_s > heartbeat_s > 0:
            raise ValueError(f"need stale_after_s > heartbeat_s > 0, got {stale_after_s} and {heartbeat_s}")
        self.path = Path(run_dir) / LOCK_FILE
        self.stale_after_s = float(stale_after_s)
        self.heartbeat_s = float(heartbeat_s)
        self.token = uuid.uuid4().hex
        self.lost = False  # set when another process took the lock over (we were presumed dead)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- content ---------------------------------------------------------------------------
    def _content(self, started: float) -> bytes:
        return (json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "token": self.token,
                            "started": started, "heartbeat": time.time(),
                            "slurm_job_id": os.environ.get("SLURM_JOB_ID")}) + "\n").encode()

    def _stale_reason(self, holder: dict) -> str | None:
        return lock_stale_reason(self.path, holder, self.stale_after_s)

    # -- acquire / release -----------------------------------------------------------------
    def acquire(self) -> RunLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        started = time.time()
        for _ in range(5):  # a few rounds: a contender may take over between our steps
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                holder = read_lock(self.path)
                if holder is None:
                    continue  # released meanwhile
                reason = self._stale_reason(holder)
                if reason is None:
                    beat = holder.get("heartbeat") if holder else None
                    age = time.time() - (float(beat) if beat else self.path.stat().st_mtime)
                    raise RunLocked(self.path, holder, age, self.stale_after_s) from None
                aside = self.path.with_name(f"{LOCK_FILE}.stale-{uuid.uuid4().hex[:8]}")
                try:
                    os.rename(self.path, aside)  # only one contender wins this rename
                except FileNotFoundError:
                    continue
                log.warning("%s: took over a stale lock of host %s pid %s (%s)", self.path.parent.name,
                            holder.get("host"), holder.get("pid"), reason)
                aside.unlink(missing_ok=True)
                continue
            with os.fdopen(fd, "wb") as fh:
                fh.write(self._content(started))
                fh.flush()
                os.fsync(fh.fileno())
            self._started = started
            self._thread = threading.Thread(target=self._beat, name=f"run-lock-{self.path.parent.name}", daemon=True)
            self._thread.start()
            with _held_guard:
                _held.add(self)
            return self
        raise RuntimeError(f"{self.path}: could not take the lock (contended)")

    def _owned(self) -> bool:
        holder = read_lock(self.path)
        return bool(holder) and holder.get("token") == self.token

    def _beat(self) -> None:
        from bench.record import atomic_write_bytes

        while not self._stop.wait(self.heartbeat_s):
            if not self._owned():
                self.lost = True
                log.warning("%s: another process took this run's lock over; this process keeps running but no "
                            "longer owns the folder (was the heartbeat blocked for %.0f s?)", self.path.parent.name,
                            self.stale_after_s)
                return
            try:
                atomic_write_bytes(self.path, self._content(self._started))
            except OSError as exc:  # a storage hiccup: try again next beat
                log.warning("%s: heartbeat not written (%s)", self.path, exc)

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        with _held_guard:
            _held.discard(self)
        if self._owned():
            self.path.unlink(missing_ok=True)

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def release_all() -> None:
    """Release every lock this process holds (the SLURM launcher's checkpoint() before requeue)."""
    with _held_guard:
        locks = list(_held)
    for lock in locks:
        lock.release()
