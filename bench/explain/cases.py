"""Which test images to show: the run's own predictions (``predictions.csv``) pick the cases."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from bench.errors import BenchError
from bench.record import prob_columns

__all__ = ["select_cases", "CASES"]

CASES = ("tp", "fp", "fn", "tn", "most_confident", "least_confident")


def select_cases(predictions: pd.DataFrame | str | Path, positive_index: int | None, classes: list[str],
                 split: str = "test") -> dict[str, str]:
    """``{case: image_id}`` for TP, FP, FN, TN (binary tasks; the most confident of each), the most
    and the least confident prediction overall. Cases with no image are left out."""
    if not isinstance(predictions, pd.DataFrame):
        path = Path(predictions)
        if not path.is_file():
            raise BenchError(f"{path}: predictions file missing")
        predictions = pd.read_csv(path)
    need = {"image_id", "split", "label", "pred", *prob_columns(classes)}
    missing = need - set(predictions.columns)
    if missing:
        raise BenchError(f"predictions.csv: missing columns {sorted(missing)}")
    df = predictions[predictions["split"] == split].copy()
    if df.empty:
        return {}
    probs = df[prob_columns(classes)].to_numpy(dtype=float)
    df["conf"] = probs[np.arange(len(df)), df["pred"].to_numpy(dtype=int)]
    df = df.sort_values(["conf", "image_id"], ascending=[False, True])
    out: dict[str, str] = {}
    if positive_index is not None and len(classes) == 2:
        pos_label = df["label"] == positive_index
        pos_pred = df["pred"] == positive_index
        for case, sel in (("tp", pos_label & pos_pred), ("fp", ~pos_label & pos_pred),
                          ("fn", pos_label & ~pos_pred), ("tn", ~pos_label & ~pos_pred)):
            if sel.any():
                out[case] = str(df[sel].iloc[0]["image_id"])
    out["most_confident"] = str(df.iloc[0]["image_id"])
    out["least_confident"] = str(df.iloc[-1]["image_id"])
    return out
