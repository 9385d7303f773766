"""Property-based fuzzing of the web API from its own OpenAPI schema (schemathesis +
Hypothesis), with the shipped model: random fields, bytes, sizes and content types must
never get a 5xx, and every error must be ``{"error": "..."}``.

The app runs inside FastAPI's TestClient (lifespan on, model loaded once); schemathesis
generates each request from /openapi.json, and a second property test sends random image
bytes behind real JPEG/PNG magic numbers, which the schema alone rarely produces.
"""

from __future__ import annotations

from pathlib import Path

import pytest

schemathesis = pytest.importorskip("schemathesis")
from fastapi.testclient import TestClient  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from bodyshape.predict import Predictor  # noqa: E402
from bodyshape.web import create_app  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
FRONT = (ROOT / "examples/front.jpg").read_bytes()
SIDE = (ROOT / "examples/side.jpg").read_bytes()
FUZZ = settings(max_examples=60, deadline=None, derandomize=True, database=None,
                suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    predictor = Predictor.load()
    app = create_app(predictor, results_dir=tmp_path_factory.mktemp("results"),
                     max_upload_mb=2)
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c
    predictor.close()


def _schema(client):
    return schemathesis.openapi.from_dict(client.get("/openapi.json").json())


STATUSES: dict[str, list[int]] = {}  # per test: the statuses seen (checked for variety)
MESSAGES: dict[str, list[str]] = {}  # per test: the error messages seen


def _check(response, test: str) -> None:
    STATUSES.setdefault(test, []).append(response.status_code)
    assert response.status_code < 500, (response.status_code, response.text[:300])
    if response.status_code >= 400:
        body = response.json()
        MESSAGES.setdefault(test, []).append(body.get("error", ""))
        assert set(body) == {"error"} and isinstance(body["error"], str), body
        assert "\n" not in body["error"] and "Traceback" not in body["error"]


def test_schema_driven_requests_never_get_5xx(client):
    schema = _schema(client)
    operations = [op.ok() for op in schema.get_all_operations()]
    assert {op.path for op in operations} >= {"/api/v1/predict", "/api/v1/health"}
    for operation in operations:

        @FUZZ
        @given(case=operation.as_strategy())
        def fuzz(case):
            kwargs = case.as_transport_kwargs(base_url="http://testserver")
            kwargs.pop("url", None)
            url = case.formatted_path
            response = client.request(kwargs.pop("method"), url,
                                      **{k: v for k, v in kwargs.items()
                                         if k in ("headers", "params", "data", "files",
                                                  "json", "content", "cookies")})
            _check(response, "schema")

        fuzz()
    seen = set(STATUSES["schema"])
    assert 200 in seen and 422 in seen, seen  # both valid and invalid requests were made


IMAGE_MAGIC = st.sampled_from([b"\xff\xd8\xff", b"\xff\xd8\xff\xe0\x00\x10JFIF\x00",
                               b"\x89PNG\r\n\x1a\n", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"])
CONTENT_TYPES = st.sampled_from(["image/jpeg", "image/png", "application/octet-stream",
                                 "text/plain", ""])


@FUZZ
@given(magic=IMAGE_MAGIC, body=st.binary(max_size=4096), which=st.sampled_from(["front", "side"]),
       content_type=CONTENT_TYPES,
       height=st.one_of(st.just("171.3"), st.floats(allow_nan=True), st.text(max_size=8)),
       sex=st.one_of(st.none(), st.sampled_from(["", "female"]), st.text(max_size=8)),
       units=st.sampled_from(["cm", "in", "x"]))
def test_random_image_bytes_never_get_5xx(client, magic, body, which, content_type, height,
                                          sex, units):
    files = {"front": ("f.jpg", FRONT, "image/jpeg"), "side": ("s.jpg", SIDE, "image/jpeg")}
    files[which] = ("x.bin", magic + body, content_type)
    data = {"height_cm": str(height), "units": units}
    if sex is not None:
        data["sex"] = sex
    _check(client.post("/api/v1/predict", files=files, data=data), "bytes")


def test_random_bytes_reached_the_decoder():
    """Runs after the property test above: some random images got past the form checks
    to the image decoder and were refused there with a message, none crashed it."""
    messages = MESSAGES.get("bytes", [])
    assert any("not a readable image" in m for m in messages), messages
