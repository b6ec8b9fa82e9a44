"""The static site in headless Chromium (Debian's /usr/bin/chromium), opened from file://:
rank order and sorting (literature rows never mixed into ours), frozen model and primary-metric
columns at 390 px, header definitions reachable by keyboard, filter and compare views, every
link and image resolving, dark mode, no console errors, escaped names, no page-level sideways
scroll at 390 px."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

from bench.leaderboard import render_leaderboard
from bench.testing.synthetic import make_run

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium not installed at /usr/bin/chromium")]
EVIL = "<script>alert(1)</script>"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
T = "#table-fracatlas_binary"


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("runs")
    for model, skill, auc in (("resnet18", 1.5, 0.91), ("vgg16", 0.8, 0.78), (EVIL, 0.2, 0.55),
                              ("mobilenetv2", 1.0, 0.84)):
        make_run(root, "fracatlas_binary", model, 0, skill=skill, n_images=160, metrics={"auroc": auc},
                 explain=(model == "resnet18"), extra={"flags": []})
    make_run(root, "fracatlas_binary", "resnet18", 1, skill=1.4, n_images=160, metrics={"auroc": 0.89})
    make_run(root, "fracatlas_binary", "constant", 0, skill=0.1, n_images=160, metrics={"auroc": 0.97},
             extra={"flags": ["constant_predictions"]})
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


def _page(browser, width=1280, height=900, dark=False):
    page = browser.new_page(viewport={"width": width, "height": height}, color_scheme="dark" if dark else "light")
    errors, dialogs = [], []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    return page, errors, dialogs


def _models(page, table=T):
    return page.eval_on_selector_all(f"{table} tbody tr", "rs => rs.map(r => r.dataset.model)")


def test_rank_order_and_sorting_never_mix_literature_into_ours(site: Path, browser):
    page, errors, dialogs = _page(browser)
    page.goto((site / "index.html").as_uri())
    ours = ["resnet18", "mobilenetv2", "vgg16", EVIL, "constant"]  # flagged row last, unranked
    assert _models(page) == ours
    assert page.locator(f"{T} tr.lit").count() == 0
    lit = "#lit-table-fracatlas_binary"
    assert page.locator(f"{lit} tbody tr").count() == 24
    assert page.locator(f"{lit} .badge", has_text="reported elsewhere").count() == 24
    assert page.locator(f"{T} td", has_text=EVIL).count() == 0 and page.locator(f"{T} th a", has_text=EVIL).count() == 1
    # every sortable header of ours: the rows stay exactly our rows
    keys = page.eval_on_selector_all(f"{T} thead th", "hs => hs.map(h => h.dataset.col)")
    for key in keys:
        for _ in range(2):
            page.locator(f'{T} th[data-col="{key}"] button.sort').click()
            assert sorted(_models(page)) == sorted(ours), key
    page.locator(f'{T} th[data-col="primary"] button.sort').click()  # numeric: descending first
    vals = page.eval_on_selector_all(f"{T} tbody td.c-primary", "cs => cs.map(c => parseFloat(c.dataset.v))")
    assert vals == sorted(vals, reverse=True)
    # sorting the literature table by accuracy keeps it apart too
    page.locator(f"{lit} thead th", has_text="Accuracy").locator("button").click()
    assert page.locator(f"{lit} tbody tr").count() == 24 and sorted(_models(page)) == sorted(ours)
    # the flagged row is marked and not the best
    assert page.locator(f'{T} tr[data-model="constant"]').get_attribute("class") == "flagged"
    assert page.locator(f'{T} tr.best').get_attribute("data-model") == "resnet18"
    assert "< 0.0001" in page.locator(T).inner_text() or "0." in page.locator(T).inner_text()
    assert "0.0000" not in page.locator(T).inner_text()
    assert not errors and not dialogs


def test_model_and_primary_visible_and_frozen_at_390px(site: Path, browser):
    page, errors, _ = _page(browser, 390, 844)
    page.goto((site / "index.html").as_uri())
    sw, cw = page.evaluate("() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]")
    assert sw <= cw
    first = f"{T} tbody tr:first-child"
    for sel in (f"{first} th.c-model", f"{first} td.c-primary"):
        box = page.locator(sel).bounding_box()
        assert box and box["x"] >= 0 and box["x"] + box["width"] <= 390 and box["y"] + box["height"] <= 844, (sel, box)
    assert "resnet18" in page.locator(f"{first} th.c-model").inner_text()
    # scrolled sideways to the end: the model and primary columns stay in view, the others moved
    scroll = page.locator("#task-fracatlas_binary .scroll").first
    assert page.evaluate("e => e.scrollWidth > e.clientWidth", scroll.element_handle())
    before = page.locator(f"{first} td.c-seeds").bounding_box()["x"]
    page.evaluate("e => { e.scrollLeft = e.scrollWidth; }", scroll.element_handle())
    cont = scroll.bounding_box()
    for sel in (f"{first} th.c-model", f"{first} td.c-primary"):
        box = page.locator(sel).bounding_box()
        assert cont["x"] - 1 <= box["x"] and box["x"] + box["width"] <= cont["x"] + cont["width"] + 1, (sel, box, cont)
    assert page.locator(f"{first} td.c-seeds").bounding_box()["x"] < before
    assert not errors


def test_header_definitions_reachable_by_keyboard(site: Path, browser):
    page, errors, _ = _page(browser)
    page.goto((site / "index.html").as_uri())
    seen = {}
    for _ in range(80):
        page.keyboard.press("Tab")
        info = page.evaluate("""() => { const a = document.activeElement;
            if (!a || !a.classList.contains('sort') || !a.closest('#table-fracatlas_binary')) return null;
            const tip = document.getElementById(a.getAttribute('aria-describedby'));
            return [a.closest('th').dataset.col, tip.textContent, getComputedStyle(tip).display]; }""")
        if info:
            seen[info[0]] = info
    assert {"primary", "interval", "p", "protocol", "mark"} <= set(seen)
    assert all(display == "block" for _, _, display in seen.values())  # shown while focused
    assert "Holm" in seen["p"][1] and "DeLong" in seen["p"][1]
    assert "seeds" in seen["interval"][1] and "images" in seen["interval"][1]
    assert page.locator("a", has_text="definitions page").count() >= 1
    assert not errors


def _targets(page) -> list[str]:
    return page.evaluate("""() => [...document.querySelectorAll('a[href]')].map(a => a.href)
        .concat([...document.querySelectorAll('img[src]')].map(i => i.src))""")


def test_every_link_and_image_resolves_without_console_errors(site: Path, browser):
    page, errors, dialogs = _page(browser)
    start = [site / "index.html", site / "definitions.html", site / "report-fracatlas_binary.html"]
    start += sorted((site / "runs").glob("*.html"))[:3] + sorted((site / "models").glob("*.html"))[:2]
    start.append(next((site / "runs").glob("*resnet18__s0*.html")))
    checked = 0
    for p in start:
        page.goto(p.as_uri())
        page.wait_for_load_state("load")
        page.evaluate("() => Array.from(document.images).forEach(i => { i.loading = 'eager'; })")  # lazy ones too
        page.wait_for_function("() => Array.from(document.images).every(i => i.complete)")
        broken = page.evaluate("() => Array.from(document.images).filter(i => !i.naturalWidth).map(i => i.src)")
        assert not broken, (p.name, broken)
        for url in _targets(page):
            u = urlparse(url)
            assert u.scheme in ("file", "data"), (p.name, url)  # nothing from the network
            if u.scheme == "file":
                assert Path(unquote(u.path)).exists(), (p.name, url)
                checked += 1
        assert page.locator("footer", has_text="CC BY 4.0").count() == 1
        assert page.locator("footer", has_text="fracture-bench").count() == 1
    assert checked > 40
    assert not errors and not dialogs


def test_run_page_figures_open_full_size_with_colour_bar_and_cam_details(site: Path, browser):
    page, errors, _ = _page(browser)
    page.goto((site / "index.html").as_uri())
    page.locator(f'{T} tr[data-model="resnet18"] a', has_text="s0").click()
    page.wait_for_load_state("load")
    assert page.locator("h1").inner_text().startswith("fracatlas_binary__resnet18__s0__")
    imgs = page.locator("figure img")
    assert imgs.count() == 5  # roc, confusion matrix, learning curves, 2 heatmap grids
    hrefs = page.eval_on_selector_all("figure a", "as => as.map(a => a.getAttribute('href'))")
    srcs = page.eval_on_selector_all("figure img", "is => is.map(i => i.getAttribute('src'))")
    assert hrefs == srcs  # each figure links its full-size file
    assert page.locator(".cbar .bar").count() == 1
    alts = page.eval_on_selector_all("img", "is => is.map(i => i.alt)")
    assert all(len(a) > 8 for a in alts)
    assert page.locator("table caption").count() >= 2
    evil = next(p for p in (site / "runs").glob("*.html") if "script" in p.name)
    page.goto(evil.as_uri())
    assert EVIL in page.locator("h1").inner_text()
    assert not errors


def test_filter_compare_and_dark_mode(site: Path, browser):
    page, errors, _ = _page(browser, dark=True)
    page.goto((site / "index.html").as_uri())
    bg = page.evaluate("() => getComputedStyle(document.body).backgroundColor")
    assert bg == "rgb(13, 17, 23)"
    page.fill("#filter", "vgg")
    visible = page.eval_on_selector_all(f"{T} tbody tr", "rs => rs.filter(r => !r.hidden).map(r => r.dataset.model)")
    assert visible == ["vgg16"]
    page.fill("#filter", "")
    details = page.locator("#task-fracatlas_binary details.compare")
    details.locator("summary").click()
    details.locator("select.b").select_option(index=2)
    out = details.locator(".cmp-out").inner_text()
    assert "resnet18" in out and "vgg16" in out and "DeLong (ROC-AUC) p =" in out
    assert not errors
