"""What the explain stage tells the user while it runs and when it ends (docs/explain.md).

Progress goes to stderr: a tqdm bar on a terminal, otherwise a few plain lines (a log file on a
cluster gets ``explain: 40/120 (images x layers x methods), 12 s`` and not a stream of bar frames).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import TextIO

__all__ = ["Progress", "final_line", "ROAD_OPT_IN"]

ROAD_OPT_IN = "--road-images N (bench-train: explain.road_images=N)"


class Progress:
    """Count ``total`` units of ``what`` (e.g. ``images x layers x methods``) under ``label``.

    On a terminal: a tqdm bar. Elsewhere: a line at the start (0/total), at each quarter, at
    least every ``every_s`` seconds, and always the last one.
    """

    def __init__(self, label: str, total: int, what: str, stream: TextIO | None = None,
                 every_s: float = 30.0, tty: bool | None = None):
        self.label, self.total, self.what = label, int(total), what
        self.stream = stream if stream is not None else sys.stderr  # looked up now: pytest swaps it
        self.every_s = every_s
        self.done, self._printed = 0, -1
        self.t0 = self._last = time.perf_counter()
        self._next_quarter = 1
        is_tty = tty if tty is not None else bool(getattr(self.stream, "isatty", lambda: False)())
        self._bar = None
        if is_tty and self.total > 0:
            from tqdm.auto import tqdm

            size = {}
            try:
                if os.get_terminal_size(self.stream.fileno()).columns == 0:
                    size = {"ncols": 80, "nrows": 24}  # a terminal with no size set (some ptys): tqdm drew nothing
            except (AttributeError, OSError, ValueError):
                pass
            self._bar = tqdm(total=self.total, desc=f"{label} ({what})", file=self.stream, leave=True,
                             dynamic_ncols=not size, **size)
        elif self.total > 0:
            self._line(self.t0)  # 0/total: the size of the job, as soon as it starts

    def update(self, n: int) -> None:
        self.done = min(self.total, self.done + int(n))
        if self._bar is not None:
            self._bar.update(int(n))
            return
        now = time.perf_counter()
        quarter = self.done * 4 >= self._next_quarter * self.total
        if self.done == self._printed:
            return  # nothing new to say
        if quarter or now - self._last >= self.every_s or self.done == self.total:
            while self._next_quarter <= 4 and self.done * 4 >= self._next_quarter * self.total:
                self._next_quarter += 1
            self._line(now)

    def _line(self, now: float) -> None:
        self._last, self._printed = now, self.done
        print(f"{self.label}: {self.done}/{self.total} ({self.what}), {now - self.t0:.0f} s",
              file=self.stream, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _numbers(per_method: dict, digits: int = 3) -> str:
    return ", ".join(f"{m} {v:.{digits}f}" if isinstance(v, (int, float)) else f"{m} n/a" for m, v in per_method.items())


def final_line(section: dict, run_dir) -> str:
    """``explain complete: <dir> in 41 s (pointing-game hit rate per method, final layer L: ...; ROAD ...)``."""
    out_dir = Path(run_dir) / "explain"
    summary = section.get("summary") or {}
    methods = section.get("methods") or list(summary)
    skipped = next((s.get("skipped") for s in summary.values() if s.get("skipped")), None)
    if skipped:
        parts = [f"no localisation scores: {skipped}"]
    else:
        final = next((s.get("final_layer") for s in summary.values()), "?")
        hits = {m: (summary.get(m) or {}).get("pointing_game") for m in methods}
        n = next((s.get("n") for s in summary.values()), 0)
        parts = [f"pointing-game hit rate per method, final layer {final}, {n} images: {_numbers(hits, 2)}"]
    road = section.get("road") or {}
    if "per_method" in road:
        vals = {m: r.get("road_combined") for m, r in road["per_method"].items()}
        parts.append(f"ROAD combined per method (higher is more faithful): {_numbers(vals)}")
    else:
        parts.append(f"ROAD not run: {ROAD_OPT_IN}")
    total = (section.get("timings") or {}).get("total_s")
    took = f" in {total:.0f} s" if isinstance(total, (int, float)) else ""
    return f"explain complete: {out_dir}{took} ({'; '.join(parts)})"
