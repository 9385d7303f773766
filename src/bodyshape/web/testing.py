"""Driving the web app in a real browser: shared by tests/test_web_browser.py and
tools/screenshot_web.py.

- ``LiveServer``: the app under uvicorn on a free loopback port, in a background thread.
- ``launch_chromium``: headless Chromium (Debian's ``/usr/bin/chromium``) with software
  WebGL, through Playwright's sync API (``playwright`` is a test extra, imported lazily).
- ``predict_on_page``: upload a photo pair on the page, submit, wait for the viewer and the
  measurement table.
- ``blocking_external``: abort and record every request that would leave loopback.
"""

from __future__ import annotations

import io
import logging
import socket
import threading
import time
from pathlib import Path

logger = logging.getLogger(__name__)

CHROMIUM = Path("/usr/bin/chromium")
# Software WebGL (SwiftShader through ANGLE): headless Chromium has no GPU here.
CHROMIUM_ARGS = ["--use-gl=angle", "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
                 "--ignore-gpu-blocklist"]
LOOPBACK_HOSTS = ("127.0.0.1", "localhost")


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveServer:
    """Run an ASGI app with uvicorn on 127.0.0.1 in a daemon thread (a context manager).

    ``url`` is the base URL; entering waits until the server accepts connections (the app's
    start-up, model loading included, has finished).
    """

    def __init__(self, app, port: int | None = None, start_timeout_s: float = 60.0):
        import uvicorn

        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="uvicorn", daemon=True)
        self.start_timeout_s = start_timeout_s

    def __enter__(self) -> "LiveServer":
        self.thread.start()
        deadline = time.monotonic() + self.start_timeout_s
        while not self.server.started:
            if not self.thread.is_alive():
                raise RuntimeError("the web server failed to start (see the log above)")
            if time.monotonic() > deadline:
                raise TimeoutError(f"the web server did not start in {self.start_timeout_s} s")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


def launch_chromium(playwright, executable: Path = CHROMIUM):
    """Headless Chromium with software WebGL."""
    return playwright.chromium.launch(executable_path=str(executable), headless=True,
                                      args=CHROMIUM_ARGS)


def blocking_external(page) -> list[str]:
    """Abort every request of ``page`` to a host other than loopback; returns the (live) list
    of the URLs that were aborted."""
    from urllib.parse import urlsplit

    aborted: list[str] = []

    def handle(route):
        url = route.request.url
        if urlsplit(url).scheme in ("http", "https", "ws", "wss") \
                and urlsplit(url).hostname not in LOOPBACK_HOSTS:
            aborted.append(url)
            route.abort()
        else:
            route.continue_()

    page.route("**/*", handle)
    return aborted


def predict_on_page(page, base_url: str, front: Path, side: Path, height_cm: float,
                    sex: str | None = None, size_chart: str | None = None,
                    timeout_ms: float = 120_000) -> None:
    """Open the page, upload the pair through the file inputs, submit, and wait until the
    measurement table is filled and the 3D viewer has loaded the mesh (and, with a
    ``size_chart``, the size table is filled)."""
    page.goto(base_url + "/")
    page.set_input_files("#front", str(front))
    page.set_input_files("#side", str(side))
    page.fill("#height", f"{height_cm:g}")
    if sex:
        page.select_option("#sex", sex)
    if size_chart:
        page.wait_for_selector(f'#size-chart option[value="{size_chart}"]', state="attached",
                               timeout=timeout_ms)
        page.select_option("#size-chart", size_chart)
    page.click("#submit")
    page.wait_for_selector("#measurements tbody tr", timeout=timeout_ms)
    page.wait_for_selector("#viewer[data-loaded]", state="attached", timeout=timeout_ms)
    if size_chart:
        page.wait_for_selector("#sizes tbody tr", timeout=timeout_ms)
    # The overlay image is part of the result: wait until it has decoded.
    page.wait_for_function("() => { const i = document.querySelector('#overlay');"
                           " return i.complete && i.naturalWidth > 0; }", timeout=timeout_ms)


def distinct_colours(png: bytes) -> int:
    """How many distinct RGB colours a PNG screenshot holds (1: blank)."""
    import numpy as np
    from PIL import Image

    rgb = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).reshape(-1, 3).astype(np.int32)
    return int(np.unique((rgb[:, 0] << 16) | (rgb[:, 1] << 8) | rgb[:, 2]).size)


def wait_for_rendered_viewer(page, timeout_s: float = 30.0, min_colours: int = 50) -> bytes:
    """Screenshot of the viewer once the body has been drawn (the empty viewer is a smooth
    grey gradient, the shaded body adds many colours); returns the PNG bytes.

    Raises:
        AssertionError: the viewer still looks empty after ``timeout_s``.
    """
    viewer = page.locator("#viewer")
    viewer.scroll_into_view_if_needed()
    deadline = time.monotonic() + timeout_s
    while True:
        png = viewer.screenshot()
        if distinct_colours(png) >= min_colours and _has_body(png):
            return png
        if time.monotonic() > deadline:
            raise AssertionError("the 3D viewer shows no body (WebGL not rendering?)")
        time.sleep(0.5)


def _has_body(png: bytes) -> bool:
    """True when the middle of the viewer differs from its top-left corner (background)."""
    import numpy as np
    from PIL import Image

    rgb = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(np.int32)
    h, w = rgb.shape[:2]
    centre = rgb[h // 3: 2 * h // 3, w // 3: 2 * w // 3]
    background = rgb[: h // 10, : w // 10].reshape(-1, 3).mean(axis=0)
    return bool((np.abs(centre - background).sum(axis=-1) > 60).mean() > 0.05)
