"""Human rating of the explanations with seed 000's four criteria (0-2 each).

Export: one row per chosen image x method with empty score columns and the overlay to look at.
Import: validated CSVs (one or more raters), aggregated per criterion / method / rater, written
into ``record["explain"]["human_rating"]``.

"Acceptable": seed 000 reports an overall mean of 1.62 / 2.00 with "approximately 50% of the
explanations classified as acceptable" without defining the cut. Here an explanation (one rater's
row) is acceptable when the mean of its four criteria is >= 1.5, i.e. at least 6 of 8 points:
at most two criteria not fully met, or one criterion failed outright (0) with the others full.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Sequence

from bench.errors import BenchError
from bench.record import atomic_write_text, read_record, update_record

__all__ = ["CRITERIA", "ACCEPTABLE_MEAN", "export_rating_sheet", "read_ratings", "aggregate_ratings",
           "import_ratings"]

CRITERIA = ("anatomical_relevance", "fracture_site_relevance", "attention_concentration",
            "clinical_interpretability")
ACCEPTABLE_MEAN = 1.5
COLUMNS = ("image_id", "case", "method", "layer", "label", "pred", "overlay", "grid", "rater",
           *CRITERIA, "comment")


def _index(run_dir: Path) -> dict:
    path = run_dir / "explain" / "index.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BenchError(f"{path}: no explain outputs; run bench-explain on this run first") from None
    except json.JSONDecodeError as e:
        raise BenchError(f"{path}: not valid JSON ({e.msg})") from None


def export_rating_sheet(run_dir, path) -> Path:
    """Write the blank sheet for the cases of ``explain/index.json``; returns its path."""
    run_dir, path = Path(run_dir), Path(path)
    idx = _index(run_dir)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    w.writeheader()
    for item in idx["cases"]:
        for method in idx["methods"]:
            w.writerow({"image_id": item["image_id"], "case": "+".join(item["cases"]), "method": method,
                        "layer": idx["layers"][-1], "label": item["label"], "pred": item["pred"],
                        "overlay": str((run_dir / "explain" / item["overlays"][method]).resolve()),
                        "grid": str((run_dir / "explain" / item["grid"]).resolve())})
    atomic_write_text(path, buf.getvalue())
    return path


def read_ratings(paths: Sequence, known: set[tuple[str, str]] | None = None) -> list[dict]:
    """Validated rows ``{file, line, rater, image_id, method, <criteria>}``; blank rows skipped.

    Any bad cell -> one-line BenchError naming the file, the row (CSV line number) and column.
    """
    rows, seen = [], {}
    for p in paths:
        p = Path(p)
        try:
            text = p.read_text(encoding="utf-8-sig")
        except FileNotFoundError:
            raise BenchError(f"{p}: ratings file not found") from None
        reader = csv.DictReader(io.StringIO(text))
        missing = [c for c in ("image_id", "method", "rater", *CRITERIA) if c not in (reader.fieldnames or [])]
        if missing:
            raise BenchError(f"{p}: missing column(s) {', '.join(missing)}")
        for line, row in enumerate(reader, start=2):
            vals = {c: (row.get(c) or "").strip() for c in CRITERIA}
            if not any(vals.values()):
                continue  # not rated yet
            image_id, method = (row.get("image_id") or "").strip(), (row.get("method") or "").strip()
            if known is not None and (image_id, method) not in known:
                col = "image_id" if image_id not in {i for i, _ in known} else "method"
                raise BenchError(f"{p}: row {line}, column {col}: unknown image/method "
                                 f"{image_id!r}/{method!r} (not in explain/index.json)")
            out = {"file": str(p), "line": line, "image_id": image_id, "method": method}
            for c, v in vals.items():
                if v not in ("0", "1", "2"):
                    what = "empty" if v == "" else f"{v!r}"
                    raise BenchError(f"{p}: row {line}, column {c}: {what} is not a score in 0, 1, 2")
                out[c] = int(v)
            rater = (row.get("rater") or "").strip()
            if not rater:
                raise BenchError(f"{p}: row {line}, column rater: empty; name the rater")
            out["rater"] = rater
            key = (rater, image_id, method)
            if key in seen:
                raise BenchError(f"{p}: row {line}: rater {rater!r} already rated {image_id}/{method} ({seen[key]})")
            seen[key] = f"{p.name} row {line}"
            rows.append(out)
    return rows


def _summary(rows: list[dict]) -> dict:
    means = [sum(r[c] for c in CRITERIA) / len(CRITERIA) for r in rows]
    return {
        "n": len(rows),
        "criteria": {c: round(sum(r[c] for r in rows) / len(rows), 4) for c in CRITERIA},
        "overall_mean": round(sum(means) / len(means), 4),
        "pct_acceptable": round(100.0 * sum(m >= ACCEPTABLE_MEAN for m in means) / len(means), 2),
    }


def aggregate_ratings(rows: list[dict]) -> dict:
    """Overall, per method, per rater, per method x rater: criterion means (0-2), the overall
    mean (of 2.00) and % acceptable (row mean >= 1.5)."""
    if not rows:
        raise BenchError("no rated rows in the ratings file(s): fill in the four score columns")
    by = lambda key: {k: _summary([r for r in rows if r[key] == k]) for k in sorted({r[key] for r in rows})}  # noqa: E731
    return {
        "scale_max": 2.0,
        "acceptable_rule": f"mean of the four criteria >= {ACCEPTABLE_MEAN}",
        "raters": sorted({r["rater"] for r in rows}),
        "overall": _summary(rows),
        "per_method": by("method"),
        "per_rater": by("rater"),
        "per_method_rater": {m: {k: _summary([r for r in rows if r["method"] == m and r["rater"] == k])
                                 for k in sorted({r["rater"] for r in rows if r["method"] == m})}
                             for m in sorted({r["method"] for r in rows})},
        "files": sorted({r["file"] for r in rows}),
    }


def import_ratings(run_dir, paths: Sequence) -> dict:
    """Validate, aggregate and store the ratings in ``record["explain"]["human_rating"]``."""
    run_dir = Path(run_dir)
    record = read_record(run_dir)
    if record is None:
        raise BenchError(f"{run_dir}: no complete run record (record.json)")
    idx = _index(run_dir)
    known = {(item["image_id"], m) for item in idx["cases"] for m in idx["methods"]}
    summary = aggregate_ratings(read_ratings(paths, known))
    explain = dict(record.get("explain") or {})
    explain["human_rating"] = summary
    update_record(run_dir, explain=explain)
    return summary
