"""The static site in headless Chromium (Debian's /usr/bin/chromium), opened from file://:
runs listed, header click re-sorts, run page images load, no console errors, escaped names,
no horizontal scroll at 390 px."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.leaderboard import render_leaderboard
from bench.testing.synthetic import make_run

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium not installed at /usr/bin/chromium")]
EVIL = "<script>alert(1)</script>"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("runs")
    for model, skill, auc in (("resnet18", 1.5, 0.91), ("vgg16", 0.8, 0.78), (EVIL, 0.2, 0.55),
                              ("mobilenetv2", 1.0, 0.84)):
        make_run(root, "fracatlas_binary", model, 0, skill=skill, n_images=160, metrics={"auroc": auc},
                 explain=(model == "resnet18"))
    make_run(root, "fracatlas_region", "resnet18", 0, n_images=160)
    out = tmp_path_factory.mktemp("site") / "lb"
    render_leaderboard([root], out, n_resamples=200)
    return out


@pytest.fixture(scope="module")
def browser():
    playwright = pytest.importorskip("playwright.sync_api")
    with playwright.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield b
        b.close()


def _page(browser, width=1280, height=900):
    page = browser.new_page(viewport={"width": width, "height": height})
    errors, dialogs = [], []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    return page, errors, dialogs


def _models(page, table="#table-fracatlas_binary"):
    return page.eval_on_selector_all(f"{table} tbody tr:not(.lit)", "rs => rs.map(r => r.dataset.model)")


def test_index_lists_runs_and_sorts(site: Path, browser):
    page, errors, dialogs = _page(browser)
    page.goto((site / "index.html").as_uri())
    assert _models(page) == ["resnet18", "mobilenetv2", "vgg16", EVIL]  # rank order
    assert page.locator("#table-fracatlas_binary tr.lit").count() == 24
    assert page.locator("#table-fracatlas_binary tr.lit .badge", has_text="reported elsewhere").count() == 24
    # the hostile name is text, not markup
    assert page.locator("#table-fracatlas_binary td", has_text=EVIL).count() == 1
    header = page.locator('#table-fracatlas_binary th[data-col="primary"] button')
    header.click()  # numeric: descending first
    rows = page.eval_on_selector_all("#table-fracatlas_binary tbody tr",
                                     "rs => rs.map(r => r.cells[3].getAttribute('data-v'))")
    vals = [float(v) for v in rows if v is not None]
    assert vals == sorted(vals, reverse=True) and len(vals) == 4
    header.click()  # ascending: 0.55 < 0.78 < 0.84 < 0.91, empty cells last
    assert _models(page) == [EVIL, "vgg16", "mobilenetv2", "resnet18"]
    assert page.eval_on_selector('#table-fracatlas_binary th[data-col="primary"]', "e => e.getAttribute('aria-sort')") == "ascending"
    page.locator('#table-fracatlas_binary th[data-col="model"] button').click()  # text sort
    models = page.eval_on_selector_all("#table-fracatlas_binary tbody tr",
                                       "rs => rs.map(r => r.dataset.model.toLowerCase())")
    assert models == sorted(models)
    assert not errors and not dialogs


def test_run_page_shows_plots_and_escapes(site: Path, browser):
    page, errors, dialogs = _page(browser)
    page.goto((site / "index.html").as_uri())
    page.locator('#table-fracatlas_binary tr[data-model="resnet18"] a', has_text="s0").click()
    page.wait_for_load_state("load")
    assert page.locator("h1").inner_text().startswith("fracatlas_binary__resnet18__s0__")
    imgs = page.locator("img")
    assert imgs.count() == 5  # roc, confusion matrix, learning curves, 2 heatmap grids
    widths = page.eval_on_selector_all("img", "is => is.map(i => i.complete ? i.naturalWidth : -1)")
    page.wait_for_function("() => Array.from(document.images).every(i => i.complete)")
    widths = page.eval_on_selector_all("img", "is => is.map(i => i.naturalWidth)")
    assert all(w > 0 for w in widths), widths
    evil = next(p for p in (site / "runs").glob("*.html") if "script" in p.name)
    page.goto(evil.as_uri())
    assert EVIL in page.locator("h1").inner_text()
    assert not errors and not dialogs


def test_no_horizontal_scroll_at_390px(site: Path, browser):
    page, errors, _ = _page(browser, 390, 844)
    for url in [(site / "index.html").as_uri()] + [p.as_uri() for p in sorted((site / "runs").glob("*.html"))[:2]]:
        page.goto(url)
        sw, cw = page.evaluate("() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]")
        assert sw <= cw, (url, sw, cw)
    # the wide table scrolls inside its container instead
    page.goto((site / "index.html").as_uri())
    inner = page.eval_on_selector("#task-fracatlas_binary .scroll", "e => [e.scrollWidth, e.clientWidth]")
    assert inner[0] > inner[1]
    assert not errors
