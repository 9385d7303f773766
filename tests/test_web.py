"""The web API (bodyshape.web) through FastAPI's TestClient, with the shipped model.

One Predictor is loaded for the module; apps with other limits reuse it. A prediction of the
example photos takes a fraction of a second (docs/BENCHMARKS.md, *Prediction*).
"""

from __future__ import annotations

import io
import os
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from PIL import Image

from bodyshape.cli import main
from bodyshape.measure import MEASUREMENT_NAMES
from bodyshape.predict import Predictor
from bodyshape.web import create_app
from bodyshape.web.store import ID_PATTERN

ROOT = Path(__file__).resolve().parents[1]
FRONT = (ROOT / "examples/front.jpg").read_bytes()
SIDE = (ROOT / "examples/side.jpg").read_bytes()
HEIGHT = "171.3"


@pytest.fixture(scope="module")
def predictor():
    p = Predictor.load()
    yield p
    p.close()


@pytest.fixture(scope="module")
def client(predictor, tmp_path_factory):
    app = create_app(predictor, results_dir=tmp_path_factory.mktemp("results"))
    with TestClient(app) as c:
        yield c


def post(client, front=FRONT, side=SIDE, height=HEIGHT, sex=None, fit_pose=None, **files):
    """POST /api/predict; ``front``/``side`` None leaves the field out."""
    parts = {name: (f"{name}.jpg", data, "image/jpeg")
             for name, data in (("front", front), ("side", side)) if data is not None}
    parts.update(files)
    data = {} if height is None else {"height_cm": height}
    if sex is not None:
        data["sex"] = sex
    if fit_pose is not None:
        data["fit_pose"] = fit_pose
    return client.post("/api/predict", files=parts, data=data)


def error_of(r) -> str:
    """The message of an error response, which must be exactly ``{"error": "..."}``."""
    body = r.json()
    assert set(body) == {"error"} and isinstance(body["error"], str), body
    return body["error"]


def png_bytes(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def result(client):
    """One good prediction of the example photos (the response JSON)."""
    r = post(client, sex="")
    assert r.status_code == 200, r.text
    return r.json()


def test_health(client):
    r = client.get("/api/health")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ok" and body["max_upload_mb"] == 20
    assert body["result_files"] == ["body.obj", "body.glb", "measurements.json", "overlay.png"]


def test_page_static_and_schema(client):
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert '/static/vendor/model-viewer.min.js' in page.text
    assert "content-security-policy" in page.headers
    js = client.get("/static/vendor/model-viewer.min.js")
    assert js.status_code == 200 and "javascript" in js.headers["content-type"]
    for name in ("index.html", "app.js", "style.css"):  # nothing loaded from the internet
        text = client.get(f"/static/{name}").text
        assert "http://" not in text and "https://" not in text, name
    schema = client.get("/openapi.json").json()
    assert {"/api/predict", "/api/health", "/api/results/{rid}/{name}"} <= set(schema["paths"])
    assert client.get("/docs").status_code == 404  # Swagger UI would load from a CDN


def test_predict_examples(client, result):
    assert ID_PATTERN.fullmatch(result["id"])
    m = result["measurements"]
    assert set(m) == set(MEASUREMENT_NAMES)
    assert m["height_cm"] == pytest.approx(171.3, abs=0.2)
    assert 70 < m["chest_cm"] < 130 and 55 < m["waist_cm"] < 120
    q = result["quality"]
    assert 0.5 < q["iou_front"] <= 1 and 0.5 < q["iou_side"] <= 1
    assert isinstance(q["warnings"], list)
    assert result["sex"] is None and result["units"] == "cm"
    urls = result["urls"]
    assert set(urls) == {"obj", "glb", "json", "overlay"}
    glb = client.get(urls["glb"])
    assert glb.status_code == 200 and glb.content[:4] == b"glTF"
    assert glb.headers["content-type"] == "model/gltf-binary"
    obj = client.get(urls["obj"])
    assert obj.status_code == 200 and b"\nv " in obj.content and b"\nf " in obj.content
    saved = client.get(urls["json"]).json()
    assert saved["measurements"] == m and saved["quality"] == q
    overlay = client.get(urls["overlay"])
    assert overlay.content[:8] == b"\x89PNG\r\n\x1a\n"


def test_fit_pose_is_passed_on(client, result):
    assert result["quality"]["fit_pose"] == "canonical A-pose"
    r = post(client, fit_pose="true")
    assert r.status_code == 200, r.text
    q = r.json()["quality"]
    assert q["fit_pose"] == "fitted"
    assert q["iou_front"] + q["iou_side"] > result["quality"]["iou_front"] \
        + result["quality"]["iou_side"] - 0.02
    assert r.json()["measurements"] == result["measurements"]


def test_sex_is_passed_on(client):
    r = post(client, sex="female")
    assert r.status_code == 200, r.text
    assert r.json()["sex"] == "female"


def _truncated_jpeg() -> bytes:
    return FRONT[: len(FRONT) // 3]


@pytest.mark.parametrize("case, status, message", [
    ("not an image", 415, "front photo is not a JPEG or PNG image"),
    ("gif", 415, "front photo is not a JPEG or PNG image"),
    ("empty", 422, "front photo is empty"),
    ("truncated jpeg", 422, "front photo: not a readable image"),
    ("one colour", 422, "front photo: the image is a single colour"),
    ("missing side", 422, "missing field 'side'"),
    ("missing height", 422, "missing field 'height_cm'"),
    ("height not a number", 422, "height_cm"),
    ("height out of range", 422, "height 320 cm is outside 50-250 cm"),
    ("bad sex", 422, "sex must be 'female', 'male' or empty"),
    ("swapped photos", 422, "expected a front photo but this looks like a side view"),
])
def test_bad_uploads(client, case, status, message):
    kwargs = {
        "not an image": dict(front=b"hello, this is text"),
        "gif": dict(front=b"GIF89a" + bytes(64)),
        "empty": dict(front=b""),
        "truncated jpeg": dict(front=_truncated_jpeg()),
        "one colour": dict(front=png_bytes(Image.new("RGB", (300, 400), (128, 128, 128)))),
        "missing side": dict(side=None),
        "missing height": dict(height=None),
        "height not a number": dict(height="tall"),
        "height out of range": dict(height="320"),
        "bad sex": dict(sex="robot"),
        "swapped photos": dict(front=SIDE, side=FRONT),
    }[case]
    r = post(client, **kwargs)
    assert r.status_code == status, r.text
    assert message in error_of(r)
    assert "/tmp" not in error_of(r)  # no server paths in messages


@pytest.fixture(scope="module")
def tiny(predictor):
    """An app accepting photos up to 10 KiB (2 x 10 KiB + 1 MiB per request)."""
    with TestClient(create_app(predictor, max_upload_mb=10 / 1024)) as c:
        yield c


def test_size_limit_per_file(tiny):
    r = post(tiny)  # ~300 KB photos: the request fits, each file does not
    assert r.status_code == 413
    assert error_of(r).startswith("the front photo is larger than 0.0097")


def test_size_limit_from_content_length(tiny):
    big = os.urandom(2 * 1024 * 1024)
    r = post(tiny, front=b"\xff\xd8\xff" + big)
    assert r.status_code == 413
    assert error_of(r).startswith("the upload is larger than")


def test_size_limit_while_streaming(tiny):
    """A chunked body (no Content-Length) is cut off once it passes the limit."""
    def chunks():
        yield (b'--zzz\r\nContent-Disposition: form-data; name="front"; filename="f.jpg"\r\n'
               b"Content-Type: image/jpeg\r\n\r\n\xff\xd8\xff")
        for _ in range(40):
            yield b"x" * 64 * 1024
        yield b"\r\n--zzz--\r\n"

    r = tiny.post("/api/predict", content=chunks(),
                  headers={"content-type": "multipart/form-data; boundary=zzz"})
    assert r.status_code == 413
    assert error_of(r).startswith("the upload is larger than")


def test_type_check_uses_magic_bytes(client):
    """A PNG sent as "photo.jpg" with a JPEG content type is still read as what it is, and a
    text file called .png is refused."""
    grey = png_bytes(Image.new("RGB", (300, 400), (10, 10, 10)))
    r = post(client, front=grey)
    assert r.status_code == 422 and "single colour" in error_of(r)
    r = client.post("/api/predict", files={"front": ("a.png", b"<svg/>", "image/png"),
                                           "side": ("b.jpg", SIDE, "image/jpeg")},
                    data={"height_cm": HEIGHT})
    assert r.status_code == 415 and "not a JPEG or PNG" in error_of(r)


@pytest.mark.parametrize("path", [
    "/api/results/..%2F..%2F..%2Fetc/passwd",
    "/api/results/%2e%2e/%2e%2e/pyproject.toml",
    "/api/results/{id}/..%2Fshape.json",
    "/api/results/{id}/shape.json",
    "/api/results/{id}/..",
    "/api/results/{ID}/body.obj",
    "/api/results/{id}0/body.obj",
    "/api/results/{id}/%2Fetc%2Fpasswd",
    "/api/results/0123456789abcdef0123456789abcdef/body.obj",
    "/static/..%2F..%2Fpredict.py",
])
def test_results_route_refuses_traversal(client, result, path):
    r = client.get(path.format(id=result["id"], ID=result["id"].upper()))
    assert r.status_code == 404
    assert "/etc" not in error_of(r)


def test_framework_errors_use_the_error_body(predictor):
    """FastAPI's own answers (unknown route, wrong method, form validation) and an unexpected
    exception all come back as exactly ``{"error": "..."}``."""
    app = create_app(predictor)

    @app.get("/api/boom")
    async def boom():
        raise RuntimeError("secret /tmp/x")

    with TestClient(app, raise_server_exceptions=False) as c:
        for method, path, status in [("get", "/api/nope", 404), ("get", "/static/nope.js", 404),
                                     ("delete", "/api/health", 405),
                                     ("post", "/api/predict", 422), ("get", "/api/boom", 500)]:
            r = getattr(c, method)(path)
            assert r.status_code == status, (path, r.text)
            message = error_of(r)
            assert message and "/tmp" not in message, (path, message)


def test_results_expire(predictor, tmp_path):
    """ttl 0: results expire at once; the background task and cleanup() remove them."""
    app = create_app(predictor, results_dir=tmp_path, ttl_minutes=0)
    with TestClient(app) as c:
        r = post(c)
        assert r.status_code == 200, r.text
        rid = r.json()["id"]
        assert c.get(r.json()["urls"]["glb"]).status_code == 404  # expired already
        deadline = time.monotonic() + 10
        while (tmp_path / rid).exists() and time.monotonic() < deadline:
            time.sleep(0.2)  # the background task runs every second with ttl 0
        assert not (tmp_path / rid).exists()
        # cleanup() directly: an expired result and a stale temporary folder go, other
        # names stay.
        (tmp_path / ("a" * 32)).mkdir()
        (tmp_path / ".x.tmp").mkdir()
        os.utime(tmp_path / ".x.tmp", (0, 0))
        (tmp_path / "keep.txt").write_text("not a result")
        assert app.state.store.cleanup() == 1
        assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"]


def test_result_kept_until_its_ttl(client):
    result = post(client).json()
    store = client.app.state.store
    folder = store.root / result["id"]
    assert store.cleanup() == 0 and folder.is_dir()
    old = time.time() - 2 * 3600  # the default ttl is 60 minutes
    os.utime(folder, (old, old))
    assert store.cleanup() == 1 and not folder.exists()
    assert client.get(result["urls"]["json"]).status_code == 404


def test_concurrent_requests(client):
    """Several clients at once: all served (one prediction at a time), and the health check
    answers promptly meanwhile."""
    n = 4
    responses: list = [None] * n

    def worker(i):
        responses[i] = post(client)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    busy_seen, health_s = False, []
    while any(t.is_alive() for t in threads):
        t0 = time.perf_counter()
        h = client.get("/api/health")
        health_s.append(time.perf_counter() - t0)
        busy_seen |= h.json()["pending"] > 0
        time.sleep(0.1)
    for t in threads:
        t.join()
    assert [r.status_code for r in responses] == [200] * n, [r.text for r in responses]
    assert len({r.json()["id"] for r in responses}) == n
    first = responses[0].json()["measurements"]
    assert all(r.json()["measurements"] == first for r in responses)  # no cross-talk
    assert busy_seen and max(health_s) < 2.0, health_s


def test_queue_limit(predictor):
    """With max_pending=1 a second request while one runs gets 503."""
    with TestClient(create_app(predictor, max_pending=1)) as c:
        first = threading.Thread(target=post, args=(c,))
        first.start()
        deadline = time.monotonic() + 10
        while c.get("/api/health").json()["pending"] == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        r = post(c)
        first.join()
    assert r.status_code == 503 and "busy" in error_of(r)
    assert r.headers["retry-after"] == "5"


def test_serve_command():
    runner = CliRunner()
    r = runner.invoke(main, ["serve", "--help"])
    assert r.exit_code == 0
    for option in ("--host", "--port", "--model", "--shape-model", "--results-dir",
                   "--ttl-minutes", "--max-upload-mb"):
        assert option in r.output
    r = runner.invoke(main, ["serve", "--model", "/nonexistent/model.pt"])
    assert r.exit_code == 2 and "network checkpoint not found" in r.output

