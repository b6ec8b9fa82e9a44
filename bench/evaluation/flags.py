"""Flags for degenerate runs: recorded in ``record["flags"]``; leaderboards show them and never
mark a flagged run best."""

from __future__ import annotations

#: A validation AUROC within this distance of 0.5 is no better than chance.
NEAR_CHANCE = 0.05
CONSTANT_PREDICTIONS = "constant_predictions"
NEAR_CHANCE_VAL_AUROC = "near_chance_val_auroc"
UNDEFINED_VAL_AUROC = "undefined_val_auroc"


def run_flags(metrics: dict) -> list[str]:
    """Flags from a record's ``metrics`` section (``val``, ``test`` with confusion matrices)."""
    flags = []
    cm = (metrics.get("test") or {}).get("confusion_matrix")
    if cm:
        predicted = [sum(row[j] for row in cm) for j in range(len(cm))]  # column sums
        if sum(1 for c in predicted if c > 0) <= 1:
            flags.append(CONSTANT_PREDICTIONS)
    val_auroc = (metrics.get("val") or {}).get("auroc")
    if val_auroc is None:
        flags.append(UNDEFINED_VAL_AUROC)
    elif abs(float(val_auroc) - 0.5) <= NEAR_CHANCE + 1e-9:  # 0.55 - 0.5 is 0.05000000000000004
        flags.append(NEAR_CHANCE_VAL_AUROC)
    return flags
