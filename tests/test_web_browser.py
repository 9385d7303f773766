"""End to end in headless Chromium: the real server, the page, the example photos, the 3D view.

Needs Debian's ``chromium`` package (/usr/bin/chromium; .ci/run installs it) and the
``playwright`` Python package (test extra). Playwright's own browser downloads are not used.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bodyshape.web.testing import CHROMIUM

ROOT = Path(__file__).resolve().parents[1]

if not CHROMIUM.exists():
    pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api",
                               reason="playwright is missing (pip install -e '.[test]')")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from bodyshape.web import create_app
    from bodyshape.web.testing import LiveServer

    app = create_app(results_dir=tmp_path_factory.mktemp("results"))
    with LiveServer(app) as live:
        yield live


@pytest.fixture(scope="module")
def browser():
    from bodyshape.web.testing import launch_chromium

    with sync_api.sync_playwright() as p:
        b = launch_chromium(p)
        yield b
        b.close()


def _page(browser, **context):
    page = browser.new_context(**context).new_page()
    problems = []
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    page.on("console", lambda msg: problems.append(f"console {msg.type}: {msg.text}")
            if msg.type == "error" else None)
    return page, problems


def test_predict_in_browser(server, browser, tmp_path):
    from bodyshape.web.testing import (blocking_external, distinct_colours, predict_on_page,
                                       wait_for_rendered_viewer)

    page, problems = _page(browser, viewport={"width": 1200, "height": 900})
    external = blocking_external(page)
    predict_on_page(page, server.url, ROOT / "examples/front.jpg", ROOT / "examples/side.jpg",
                    171.3, size_chart="womens_tops")
    rows = page.locator("#measurements tbody tr")
    names = [rows.nth(i).get_attribute("data-name") for i in range(rows.count())]
    assert "chest_cm" in names and "waist_cm" in names and "hip_cm" in names
    chest = page.locator('#measurements tr[data-name="chest_cm"] td').all_inner_texts()
    cm, inches = float(chest[1]), float(chest[2])
    assert 70 < cm < 130 and inches == pytest.approx(cm / 2.54, abs=0.06)
    assert "IoU front" in page.inner_text("#iou")
    for link in ("#dl-obj", "#dl-glb", "#dl-json", "#dl-overlay"):
        assert page.get_attribute(link, "href").startswith("/api/v1/results/")
    assert page.is_hidden("#error")
    # The size panel shows the size the API recommended (test_web checks that against the
    # library) with its confidence.
    assert page.is_visible("#sizes-card")
    saved = page.request.get(server.url.rstrip("/") + page.get_attribute("#dl-json", "href"))
    want = next(s["size"] for s in saved.json()["sizes"] if s["garment"] == "womens_tops")
    size = page.locator('#sizes tr[data-garment="womens_tops"] td').all_inner_texts()
    assert size[0] == "Women's tops" and size[1].startswith(want) and "% sure" in size[1]
    assert "Chest good" in size[2]

    viewer_png = wait_for_rendered_viewer(page)  # WebGL drew the body
    assert distinct_colours(viewer_png) > 50
    shot = tmp_path / "webapp.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    assert external == [], f"the page tried to reach the internet: {external}"
    assert problems == [], problems


def test_error_shown_on_page(server, browser):
    """A photo the API refuses shows the API's message in the error box."""
    page, _ = _page(browser, viewport={"width": 390, "height": 844})  # a phone
    page.goto(server.url + "/")
    page.set_input_files("#front", str(ROOT / "examples/side.jpg"))  # swapped
    page.set_input_files("#side", str(ROOT / "examples/front.jpg"))
    page.fill("#height", "171.3")
    page.click("#submit")
    page.wait_for_selector("#error:not([hidden])", timeout=120_000)
    assert "expected a front photo" in page.inner_text("#error")
    assert page.is_hidden("#results")
    # The layout fits the phone's width (no horizontal scrolling).
    assert page.evaluate("document.documentElement.scrollWidth") <= 390


def test_form_checks_before_upload(server, browser):
    page, _ = _page(browser)
    page.goto(server.url + "/")
    page.click("#submit")
    assert "both a front and a side photo" in page.inner_text("#error")
    # The size charts offered are the shipped ones (from GET /api/v1/size-charts).
    page.wait_for_selector('#size-chart option[value="mens_tops"]', state="attached")
    values = page.eval_on_selector_all("#size-chart option", "os => os.map(o => o.value)")
    assert values == ["", "mens_bottoms", "mens_tops", "womens_bottoms", "womens_tops"]
    assert page.text_content('#size-chart option[value="mens_tops"]') == "Men's tops"
    assert page.is_hidden("#sizes-card")
