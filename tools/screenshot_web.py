"""Regenerate docs/webapp.png: the web app's page after a prediction on the example photos.

Starts the app (``bodyshape.web.create_app``, shipped model) on a free loopback port, drives
headless Chromium (Debian's /usr/bin/chromium, through Playwright) through the same steps as
tests/test_web_browser.py, waits until the 3D viewer has drawn the body, and saves a
full-page screenshot.

Usage: .venv/bin/python tools/screenshot_web.py [--out docs/webapp.png] [--width 1200]
       [--height-px 900] [--size-chart womens_tops]   (use --width 390 --height-px 844 for a phone-sized page)
"""

from __future__ import annotations

import argparse
import logging
import tempfile
from pathlib import Path

from playwright.sync_api import sync_playwright

from bodyshape.web import create_app
from bodyshape.web.testing import (LiveServer, blocking_external, launch_chromium,
                                   predict_on_page, wait_for_rendered_viewer)

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE_HEIGHT_CM = 171.3  # examples/README.md

logger = logging.getLogger("screenshot_web")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "docs/webapp.png")
    ap.add_argument("--width", type=int, default=1200, help="viewport width, CSS px")
    ap.add_argument("--height-px", type=int, default=900, help="viewport height, CSS px")
    ap.add_argument("--size-chart", default="womens_tops",
                    help="shipped size chart picked on the page (shows the size panel)")
    a = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")

    with tempfile.TemporaryDirectory(prefix="screenshot-web-") as results, \
            LiveServer(create_app(results_dir=results)) as server, \
            sync_playwright() as p:
        browser = launch_chromium(p)
        page = browser.new_page(viewport={"width": a.width, "height": a.height_px})
        external = blocking_external(page)
        predict_on_page(page, server.url, ROOT / "examples/front.jpg",
                        ROOT / "examples/side.jpg", EXAMPLE_HEIGHT_CM,
                        size_chart=a.size_chart)
        wait_for_rendered_viewer(page)
        page.evaluate("window.scrollTo(0, 0)")
        a.out.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(a.out), full_page=True)
        browser.close()
    if external:
        raise SystemExit(f"the page tried to reach the internet: {external}")
    logger.info("wrote %s", a.out)


if __name__ == "__main__":
    main()
