"""Screenshot pages of a rendered leaderboard site with Debian's headless Chromium.

Usage: python benchmarks/screenshot_site.py OUT_DIR PNG [--page index.html] [--width 1400] [--height 900]
[--full-page] (e.g. ``python benchmarks/screenshot_site.py leaderboards docs/leaderboard_index.png``;
``--page runs/<name>.html`` for a run page). Opens the page from file:// with no network use.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]


def screenshot(out_dir: str | Path, png: str | Path, width: int = 1400, height: int = 900,
               full_page: bool = False, page_name: str = "index.html", dark: bool = False,
               scroll_to: str | None = None) -> Path:
    from playwright.sync_api import sync_playwright

    page_path = Path(out_dir).resolve() / page_name
    if not page_path.is_file():
        raise SystemExit(f"error: {page_path} not found (render the leaderboard first)")
    if not Path(CHROMIUM).exists():
        raise SystemExit(f"error: {CHROMIUM} not found (apt-get install chromium)")
    png = Path(png)
    png.parent.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": height},
                                    color_scheme="dark" if dark else "light")
            page.goto(page_path.as_uri())
            page.wait_for_load_state("load")
            if scroll_to:
                page.locator(scroll_to).first.scroll_into_view_if_needed()
                page.evaluate("() => window.scrollBy(0, -8)")
                page.evaluate("() => Array.from(document.images).forEach(i => { i.loading = 'eager'; })")
                page.wait_for_function("() => Array.from(document.images).every(i => i.complete)")
            page.screenshot(path=str(png), full_page=full_page)
        finally:
            browser.close()
    return png


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out_dir")
    p.add_argument("png")
    p.add_argument("--page", default="index.html", help="page relative to OUT_DIR (default index.html)")
    p.add_argument("--width", type=int, default=1400)
    p.add_argument("--height", type=int, default=900)
    p.add_argument("--full-page", action="store_true")
    p.add_argument("--dark", action="store_true", help="emulate prefers-color-scheme: dark")
    p.add_argument("--scroll-to", default=None, metavar="SELECTOR", help="scroll this element into view first")
    a = p.parse_args(argv)
    print(screenshot(a.out_dir, a.png, a.width, a.height, a.full_page, a.page, a.dark, a.scroll_to))
    return 0


if __name__ == "__main__":
    sys.exit(main())
