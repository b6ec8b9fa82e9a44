"""``report.pdf`` of ``bench-predict`` (reportlab platypus): a first page summarising the batch
and listing every input that could not be read, then one page per scored image. Figures are
read from the files already written (one at a time), so the report of a large batch does not
hold the decoded images in memory."""

from __future__ import annotations

import io
import tempfile
from pathlib import Path
from typing import Sequence
from xml.sax.saxutils import escape

from bench.record import atomic_write_bytes

__all__ = ["write_report", "STATEMENT"]

STATEMENT = ("Research decision support only, not a diagnosis. This model output has not been validated "
             "for clinical use; a qualified clinician must read the radiograph.")


def _pct(v) -> str:
    return "n/a" if v is None else f"{100 * v:.1f}%"


def _ci(ci, method=None) -> str:
    if not ci or ci[0] is None or ci[1] is None:
        return "CI not recorded"
    return f"95% CI {100 * ci[0]:.1f}-{100 * ci[1]:.1f}%" + (f", {method}" if method else "")


def performance_line(perf: dict) -> str:
    if not perf:
        return "test sensitivity/specificity: not applicable (multiclass run)"
    n = f", n={perf['n']}" if perf.get("n") else ""
    return (f"Run's test sensitivity {_pct(perf.get('sensitivity'))} ({_ci(perf.get('sensitivity_ci'), perf.get('ci_method'))}), "
            f"specificity {_pct(perf.get('specificity'))} ({_ci(perf.get('specificity_ci'), perf.get('ci_method'))}) "
            f"at this threshold [{perf.get('source')}{n}]")


def _jpeg_figure(path: Path, width: float, height: float, tmp_dir: Path):
    """A flowable that reads its PNG only when drawn and embeds it as JPEG from a file: reportlab
    passes JPEG files through (a PNG it re-compresses losslessly, ~5x the size for radiographs;
    an in-memory reader keeps the decoded image alive, ~0.7 MB a page, measured here)."""
    from reportlab.platypus import Flowable

    class JpegFigure(Flowable):
        def wrap(self, *_):
            return width, height

        def draw(self):
            from PIL import Image as PILImage

            jpg = tmp_dir / (path.stem + ".jpg")
            with PILImage.open(path) as im:
                im.convert("RGB").save(jpg, format="JPEG", quality=88)
            self.canv.drawImage(str(jpg), 0, 0, width, height)
            jpg.unlink()

    return JpegFigure()


def write_report(path: Path, summary: dict, rows: Sequence[dict], credit: str | None = None) -> None:
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.lib.units import mm
    from reportlab.platypus import PageBreak, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

    styles = getSampleStyleSheet()
    body, small, h1, h2 = styles["BodyText"], styles["Small"] if "Small" in styles else styles["BodyText"], styles["Title"], styles["Heading2"]
    small = small.clone("small", fontSize=8, leading=10)
    cell = body.clone("cell", fontSize=8, leading=10)

    def p(text, style=body):
        return Paragraph(escape(str(text)), style)

    def kv_table(pairs):
        t = Table([[p(k, cell), p(v, cell)] for k, v in pairs], colWidths=[45 * mm, 125 * mm])
        t.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP"), ("GRID", (0, 0), (-1, -1), 0.25, colors.grey),
                               ("BACKGROUND", (0, 0), (0, -1), colors.whitesmoke)]))
        return t

    def footer(canvas, doc):
        canvas.saveState()
        canvas.setFont("Helvetica", 7)
        lines = [STATEMENT] + ([credit] if credit else []) + [f"run {summary['run_id']} - page {doc.page}"]
        for k, line in enumerate(reversed(lines)):
            canvas.drawString(15 * mm, (8 + 3.5 * k) * mm, line[:190])
        canvas.restoreState()

    story = [p("Fracture classification report", h1), p(STATEMENT, body.clone("st", textColor=colors.darkred)), Spacer(1, 4 * mm)]
    thr = summary.get("threshold")
    story.append(kv_table([
        ("run", summary["run_id"]), ("model", summary["model"]), ("task / classes", f"{summary.get('task')} / {', '.join(summary['classes'])}"),
        ("threshold", "argmax (multiclass)" if thr is None else f"{thr:.4g} ({summary['threshold_rule']}; {summary['threshold_source']})"),
        ("test performance", performance_line(summary.get("performance") or {})),
        ("heatmaps", summary.get("heatmap_text") or "off"),
        ("date (UTC)", summary["date"]), ("device", summary["device"]),
        ("inputs", f"{summary['n_inputs']} inputs: {summary['n_scored']} scored, {summary['n_unreadable']} not readable"),
        ("labels", ", ".join(f"{k}: {v}" for k, v in summary["label_counts"].items()) or "none"),
        ("throughput", f"{summary['images_per_s']:.2f} images/s ({summary['seconds']:.1f} s, batch {summary['batch_size']}, "
                       f"{summary['workers']} decode workers)"),
    ]))
    story.append(Spacer(1, 4 * mm))
    bad = [r for r in rows if not r["readable"]]
    story.append(p(f"Inputs that could not be read ({len(bad)})", h2))
    if bad:
        t = Table([[p("input", cell), p("reason", cell)]] + [[p(r["input"], cell), p(r["reason"], cell)] for r in bad],
                  colWidths=[60 * mm, 110 * mm], repeatRows=1)
        t.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP"), ("GRID", (0, 0), (-1, -1), 0.25, colors.grey),
                               ("BACKGROUND", (0, 0), (-1, 0), colors.whitesmoke)]))
        story.append(t)
    else:
        story.append(p("none: every input was read."))

    out_dir = Path(path).parent
    tmp = tempfile.TemporaryDirectory(prefix=".report-", dir=out_dir)
    tmp_dir = Path(tmp.name)
    for r in rows:
        if not r["readable"]:
            continue
        story.append(PageBreak())
        story.append(p(r["image_id"], h2))
        fig = r.get("heatmap") or r.get("original")
        if fig:
            from PIL import Image as PILImage

            with PILImage.open(out_dir / fig) as im:
                w, h = im.size
            width = 180 * mm if r.get("heatmap") else min(120 * mm, 120 * mm * w / max(h, 1))
            height = width * h / max(w, 1)
            if height > 140 * mm:
                width, height = width * 140 * mm / height, 140 * mm
            story.append(_jpeg_figure(out_dir / fig, width, height, tmp_dir))
        probs = ", ".join(f"{c}: {v:.4f}" for c, v in r["probs"].items())
        pairs = [("predicted label", r["label"])]
        if thr is not None:
            pairs += [("probability", f"{r['positive_class']} {r['probability']:.4f}"),
                      ("threshold", f"{thr:.4g} ({summary['threshold_rule']}); label at 0.5: {r['label_at_0.5']}")]
        else:
            pairs += [("probability", f"{r['label']} {r['probability']:.4f} (argmax)")]
        pairs += [("class probabilities", probs), ("test performance", performance_line(summary.get("performance") or {})),
                  ("model / run", f"{summary['model']} / {summary['run_id']}"), ("date (UTC)", summary["date"])]
        if r.get("heatmap_text"):
            pairs.append(("heatmap", r["heatmap_text"]))
        if r.get("dicom"):
            d = r["dicom"]
            sp = d.get("pixel_spacing_mm")
            pairs.append(("DICOM", f"modality {d.get('modality') or '?'}, {d.get('photometric')}, VOI: {d.get('voi')}"
                                   + (f" (window {d['window'][0]:g}/{d['window'][1]:g})" if d.get("window") else "")))
            pairs.append(("pixel spacing", f"{sp[0]:g} x {sp[1]:g} mm ({d.get('pixel_spacing_tag')})" if sp else "not in the file"))
            if d.get("patient"):
                pairs.append(("patient (shown on request)", ", ".join(f"{k}: {v}" for k, v in d["patient"].items())))
        if r.get("truncated"):
            pairs.append(("note", "the file is truncated; it was decoded leniently, as in training"))
        story.append(Spacer(1, 3 * mm))
        story.append(kv_table(pairs))
        story.append(Spacer(1, 3 * mm))
        story.append(p(STATEMENT, small))

    buf = io.BytesIO()
    doc = SimpleDocTemplate(buf, pagesize=A4, leftMargin=15 * mm, rightMargin=15 * mm, topMargin=14 * mm,
                            bottomMargin=24 * mm, title=f"bench-predict {summary['run_id']}",
                            author="fracture-bench", subject="research decision support, not a diagnosis")
    try:
        doc.build(story, onFirstPage=footer, onLaterPages=footer)
    finally:
        tmp.cleanup()
    atomic_write_bytes(path, buf.getvalue())
