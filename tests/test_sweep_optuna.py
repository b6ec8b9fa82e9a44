"""Optuna search on a real SQLite study: resume counts trials in total, failures are FAIL, the search goes on."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PY = sys.executable

# A task app with the same Hydra setup as bench-train (conf/hydra/default.yaml, the seed-000 search)
# and an instant objective, so that trial bookkeeping can be checked over many trials.
TOY_APP = '''
import math, os, sys
from pathlib import Path
import hydra
from bench.sweep.plugins import ensure_plugins
ensure_plugins()
from bench.sweep.summary import note_run

@hydra.main(version_base="1.3", config_path=".", config_name="toy")
def main(cfg):
    counter = Path(cfg.paths.log_dir) / "calls"
    n = int(counter.read_text()) + 1 if counter.exists() else 1
    counter.write_text(str(n))
    if n == int(os.environ.get("TOY_CRASH_AT", "-1")):
        os._exit(9)                      # killed mid-trial: the trial stays RUNNING in the study
    if n == 2:
        raise ValueError("impossible value for this trial")
    if n == 3:
        return float("nan")              # no validation metric
    note_run({"status": "complete", "run_id": f"toy{n}", "objective": 0.0})
    h = cfg.model.head
    return -(h.dropout - 0.3) ** 2 - (math.log10(cfg.optim.lr) + 3.26) ** 2 - abs(h.dense_units - 512) / 1e4

if __name__ == "__main__":
    main()
'''

TOY_CONF = '''
defaults:
  - hydra: default
  - hparams_search: null
  - _self_
hydra:
  searchpath: [file://{conf}]
task_name: toy
paths: {{log_dir: {log}}}
monitor: {{metric: val/auroc, mode: max}}
data: {{name: toy}}
model: {{name: quad, head: {{dropout: 0.3, dense_units: 512}}}}
optim: {{lr: 0.001}}
'''


def _toy(tmp_path: Path) -> tuple[Path, Path]:
    app = tmp_path / "app"
    app.mkdir()
    (app / "toy_app.py").write_text(TOY_APP)
    log = tmp_path / "logs"
    (app / "toy.yaml").write_text(TOY_CONF.format(conf=REPO / "conf", log=log))
    return app, log


def _study(log: Path, name: str):
    import optuna

    return optuna.load_study(study_name=name, storage=f"sqlite:///{log}/optuna/{name}.db")


def test_optuna_study_resumes_to_total_and_records_failures(tmp_path: Path) -> None:
    from optuna.trial import TrialState

    app, log = _toy(tmp_path)
    cmd = [PY, str(app / "toy_app.py"), "-m", "hparams_search=seed000_optuna", "hydra.sweeper.n_trials=6"]
    env = {**os.environ, "TOY_CRASH_AT": "4"}
    first = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert first.returncode == 9, first.stderr[-3000:]  # the process died in its 4th trial
    study = _study(log, "seed000_toy_quad")
    assert [t.state for t in study.trials] == [TrialState.COMPLETE, TrialState.FAIL, TrialState.FAIL, TrialState.RUNNING]
    interrupted_params = study.trials[3].params

    env.pop("TOY_CRASH_AT")
    second = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert second.returncode == 0, second.stderr[-3000:]
    study = _study(log, "seed000_toy_quad")
    trials = study.trials
    states = [t.state for t in trials]
    # 6 counted trials in total (3 before, 3 now) + the interrupted one, re-run with its params.
    assert len(trials) == 7
    assert trials[3].state == TrialState.FAIL and trials[3].user_attrs["bench_interrupted"] is True
    assert trials[4].params == interrupted_params and trials[4].state == TrialState.COMPLETE
    assert states.count(TrialState.COMPLETE) == 4
    assert trials[1].user_attrs["bench_fail_reason"] == "ValueError: impossible value for this trial"
    assert "not finite" in trials[2].user_attrs["bench_fail_reason"]
    assert int((log / "calls").read_text()) == 4 + 3
    summaries = sorted(log.glob("toy/multiruns/*/sweep_summary.json"))
    assert len(summaries) == 1  # the killed first sweep never reached on_multirun_end
    summary = json.loads(summaries[0].read_text())
    assert summary["counts"] == {"finished": 3, "resumed": 0, "skipped": 0, "failed": 0}

    # Same command again: the study is complete, nothing runs.
    third = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert third.returncode == 0, third.stderr[-3000:]
    assert len(_study(log, "seed000_toy_quad").trials) == 7
    assert int((log / "calls").read_text()) == 7
