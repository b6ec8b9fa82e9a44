"""A cold render's per-run work (parsing records, reading predictions, row intervals) spread over
the machine's cores.

Forked worker processes, not threads: the work is Python-level parsing and many small NumPy
calls, which hold the GIL (measured: two threads 1.0x, two processes 1.7x on the row intervals
of 10,000 runs). Each worker is limited to one BLAS thread (threadpoolctl), or the processes
oversubscribe the cores (two processes with two BLAS threads each ran slower than one process).
Where ``fork`` is not a start method (Windows), the work is small or the process runs other
threads, it runs in this process: the results are the same either way, in the same order.
"""

from __future__ import annotations

import gc
import multiprocessing as mp
import os
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor

#: Above this many workers the gain is small and a shared login node's other users pay for it.
MAX_WORKERS = 8
#: ``BENCH_WORKERS=1`` turns the pool off (debugging, profiling); a number caps it.
WORKERS_ENV = "BENCH_WORKERS"


def workers() -> int:
    try:
        n = len(os.sched_getaffinity(0))  # the cores this process may use (SLURM, taskset), not the machine's
    except AttributeError:  # pragma: no cover - not Linux
        n = os.cpu_count() or 1
    cap = os.environ.get(WORKERS_ENV, "")
    if cap.strip().isdigit() and int(cap) > 0:
        n = min(n, int(cap))
    return max(1, min(n, MAX_WORKERS))


def _one_blas_thread() -> None:
    from threadpoolctl import threadpool_limits

    global _LIMIT  # kept alive for the worker's lifetime
    _LIMIT = threadpool_limits(1)


def pmap(fn: Callable, items: Iterable, parallel: bool = True) -> list:
    """``[fn(x) for x in items]``, in forked workers when ``parallel``, there are two items or more
    and more than one core. ``fn`` must be a module-level function; its results are pickled."""
    items = list(items)
    n = workers()
    # Forking a process that runs other threads (bench-train's W&B or progress threads, when it
    # renders the leaderboard at the end of a sweep) can copy a lock some thread holds: serial then.
    if (not parallel or n < 2 or len(items) < 2 or "fork" not in mp.get_all_start_methods()
            or threading.active_count() > 1):
        return [fn(x) for x in items]
    n = min(n, len(items))
    chunk = max(1, len(items) // (n * 4))
    # Frozen objects are skipped by the children's garbage collector, which would otherwise walk
    # (and so copy, page by page) the whole heap they inherit: the parsed rows of 10,000 runs.
    gc.freeze()
    try:
        with ProcessPoolExecutor(n, mp_context=mp.get_context("fork"), initializer=_one_blas_thread) as ex:
            return list(ex.map(fn, items, chunksize=chunk))
    finally:
        gc.unfreeze()
