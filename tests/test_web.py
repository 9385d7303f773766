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


def post(client, front=FRONT, side=SIDE, height=HEIGHT, sex=None, fit_pose=None,
         path="/api/v1/predict", extra=None, **files):
    """POST /api/v1/predict; ``front``/``side`` None leaves the field out; ``extra``: more
    form fields."""
    parts = {name: (f"{name}.jpg", data, "image/jpeg")
             for name, data in (("front", front), ("side", side)) if data is not None}
    parts.update(files)
    data = {} if height is None else {"height_cm": height}
    if sex is not None:
        data["sex"] = sex
    if fit_pose is not None:
        data["fit_pose"] = fit_pose
    data.update(extra or {})
    return client.post(path, files=parts, data=data)


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
    assert set(schema["paths"]) == {"/api/v1/predict", "/api/v1/health",
                                    "/api/v1/results/{rid}/{name}", "/api/v1/size-charts"}
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
    assert all(u.startswith("/api/v1/results/") for u in urls.values())
    assert result["errors"].keys() == {"chest_cm", "waist_cm", "hip_cm"}  # shipped network
    assert result["sizes"] == []
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

    r = tiny.post("/api/v1/predict", content=chunks(),
                  headers={"content-type": "multipart/form-data; boundary=zzz"})
    assert r.status_code == 413
    assert error_of(r).startswith("the upload is larger than")


def test_type_check_uses_magic_bytes(client):
    """A PNG sent as "photo.jpg" with a JPEG content type is still read as what it is, and a
    text file called .png is refused."""
    grey = png_bytes(Image.new("RGB", (300, 400), (10, 10, 10)))
    r = post(client, front=grey)
    assert r.status_code == 422 and "single colour" in error_of(r)
    r = client.post("/api/v1/predict", files={"front": ("a.png", b"<svg/>", "image/png"),
                                           "side": ("b.jpg", SIDE, "image/jpeg")},
                    data={"height_cm": HEIGHT})
    assert r.status_code == 415 and "not a JPEG or PNG" in error_of(r)


@pytest.mark.parametrize("path", [
    "/api/v1/results/..%2F..%2F..%2Fetc/passwd",
    "/api/v1/results/{id}/..%2Fshape.json",
    "/api/v1/results/{id}/shape.json",
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
                                     ("delete", "/api/v1/health", 405),
                                     ("post", "/api/predict", 422),
                                     ("post", "/api/v1/predict", 422),
                                     ("get", "/api/boom", 500)]:
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
        h = client.get("/api/v1/health")
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



def test_legacy_paths_are_aliases(client, result):
    """The first release's unversioned paths answer like /api/v1/..."""
    assert client.get("/api/health").json()["status"] == "ok"
    legacy = post(client, path="/api/predict")
    assert legacy.status_code == 200, legacy.text
    assert legacy.json()["measurements"] == result["measurements"]
    rid = result["id"]
    assert client.get(f"/api/results/{rid}/body.glb").content == \
        client.get(f"/api/v1/results/{rid}/body.glb").content


def test_units_and_size_charts(client, result, predictor):
    from bodyshape.sizing import load_chart, recommend

    charts = client.get("/api/v1/size-charts").json()["charts"]
    assert charts["womens_tops"]["womens_tops"][:3] == ["XS", "S", "M"]
    own = ("garment,size,chest_cm\nshirts,small,70-92\nshirts,large,92-130\n").encode()
    r = post(client, extra={"units": "in", "size_chart": ["womens_tops", "mens_bottoms"]},
             size_chart_file=("chart.csv", own, "text/csv"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["units"] == "in"
    assert body["measurements"]["chest_in"] == pytest.approx(
        result["measurements"]["chest_cm"] / 2.54, abs=0.06)
    sizes = {s["garment"]: s for s in body["sizes"]}
    assert list(sizes) == ["womens_tops", "mens_bottoms", "shirts"]
    # The library's answer for the same measurements (test_sizing checks the library).
    want = recommend(result["measurements"], load_chart("womens_tops"), predictor.errors_cm)
    assert sizes["womens_tops"]["size"] == want[0].size
    assert 0 < sizes["womens_tops"]["confidence"] <= 1
    assert sizes["shirts"]["size"] == "small"
    assert sizes["shirts"]["fits"][0]["measurement"] == "chest_in"
    saved = client.get(body["urls"]["json"]).json()
    assert saved["sizes"] == body["sizes"] and saved["units"] == "in"


@pytest.mark.parametrize("extra, files, message", [
    ({"units": "mm"}, {}, "units must be 'cm' or 'in'"),
    ({"size_chart": "nope"}, {}, "no shipped size chart 'nope'"),
    ({}, {"size_chart_file": ("c.csv", b"garment,size\nx,y\n", "text/csv")}, "header needs"),
    ({}, {"size_chart_file": ("c.csv", b"\xff\xfe\x00", "text/csv")}, "not UTF-8"),
])
def test_bad_units_and_charts(client, extra, files, message):
    r = post(client, extra=extra, **files)
    assert r.status_code == 422 and message in error_of(r), r.text


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height pixels, with a tiny (broken) image body:
    what an image bomb looks like to a reader that checks the header."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(
            ">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))


@pytest.mark.parametrize("size", [(30_000, 30_000), (9_000, 6_000)])
def test_pixel_bombs_are_refused_from_the_header(client, size):
    t0 = time.perf_counter()
    r = post(client, front=_png_header_only(*size))
    assert r.status_code == 422, r.text
    assert "more than 52 megapixels" in error_of(r)
    assert time.perf_counter() - t0 < 5  # refused before decoding


def test_weight_is_checked_and_passed_on(client, result, predictor):
    r = post(client, extra={"weight_kg": "heavy"})
    assert r.status_code == 422 and "weight" in error_of(r)
    r = post(client, extra={"weight_kg": "900"})
    assert r.status_code == 422 and "20-300 kg" in error_of(r)
    r = post(client, extra={"weight_kg": "64.5"})
    assert r.status_code == 200 and r.json()["weight_kg"] == 64.5
    # Passed on: a weight-aware network (the shipped one, docs/TRAINING.md) answers
    # differently with it, any other the same as without it.
    changed = r.json()["measurements"] != result["measurements"]
    assert changed == predictor.ckpt.spec.inputs.weight
