"""What the run record holds, in the run's W&B run: test metrics (image, study, operating point,
subgroups) in the summary and history, the plots as images, the record's protocol in the config.

One W&B run per run id: the W&B id is derived from the run id and the logger resumes it
(``resume="allow"``), so a resumed training run continues the same W&B run (offline, W&B writes a
second ``offline-run-*`` folder with the same id; ``wandb sync`` merges them into one run).
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
from pathlib import Path

log = logging.getLogger(__name__)

#: Record metric sections mirrored into W&B (summary keys ``<section>/<metric>``).
METRIC_SECTIONS = ("test", "test_study", "test_operating", "test_study_operating")
#: Record sections copied into the W&B config under ``record``.
CONFIG_SECTIONS = ("run_id", "task", "protocol", "model", "seed", "split", "sweep", "tags")
_MAX_ID = 64


def wandb_run_id(run_id: str) -> str:
    """A valid W&B run id (letters, digits, ``-_.``; at most 64 characters) that is a function
    of the run id alone."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "-", run_id)
    if len(safe) <= _MAX_ID and safe == run_id:
        return safe
    digest = hashlib.sha256(run_id.encode()).hexdigest()[:8]
    return f"{safe[:_MAX_ID - 9]}-{digest}"


def _flatten(prefix: str, value, out: dict) -> None:
    if isinstance(value, bool) or value is None:
        return
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(f"{prefix}/{k}", v, out)
    elif isinstance(value, (int, float)):
        if math.isfinite(float(value)):
            out[prefix] = value
    # lists (confusion matrices) stay in the record: W&B summaries want scalars


def results_for_wandb(record: dict) -> dict:
    """Scalar results of a record, keyed as they appear in W&B (``test/auroc``,
    ``test_operating/ci/sensitivity/low``, ``subgroups/region/hand/metrics/auroc``, ...)."""
    flat: dict = {}
    metrics = record.get("metrics") or {}
    for section in METRIC_SECTIONS:
        if metrics.get(section):
            _flatten(section, metrics[section], flat)
    for key in ("operating_point", "best", "subgroups"):
        if record.get(key):
            _flatten(key, record[key], flat)
    return flat


def log_results(loggers: list, record: dict, run_dir: Path) -> None:
    """Write the record's results into every WandbLogger's run (no-op without W&B)."""
    wandb_loggers = [lg for lg in loggers if type(lg).__name__ == "WandbLogger"]
    if not wandb_loggers:
        return
    import wandb

    flat = results_for_wandb(record)
    plots = {}
    for name, rel in ((record.get("files") or {}).get("plots") or {}).items():
        path = Path(run_dir) / rel
        if path.is_file():
            plots[f"plots/{name}"] = wandb.Image(str(path), caption=f"{record.get('run_id')}: {name}")
    config = {k: record[k] for k in CONFIG_SECTIONS if k in record}
    for lg in wandb_loggers:
        try:
            run = lg.experiment
            run.config.update({"record": config}, allow_val_change=True)
            run.log({**flat, **plots})  # history (one step) and summary
            run.summary.update(flat)
            run.summary["flags"] = list(record.get("flags") or [])
            run.summary["run_id"] = record.get("run_id")
        except Exception as exc:  # the record is complete and is the contract: W&B is a copy
            log.warning("W&B: could not log the results of %s (%s: %s); record.json has them",
                        record.get("run_id"), type(exc).__name__, exc)
