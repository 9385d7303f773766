"""The web app: an upload page and a JSON API over the same prediction code as the CLI.

``create_app(...)`` builds the FastAPI application; ``bodyshape serve`` runs it with uvicorn.

- ``GET /``: the page (``static/index.html``; its scripts, styles and the vendored
  ``<model-viewer>`` are served from ``/static``, nothing comes from the internet).
- ``POST /api/v1/predict``: multipart ``front``, ``side`` (JPEG/PNG photos or person masks),
  ``height_cm``, optional ``sex``, ``fit_pose``, ``units`` and size charts (``size_chart``
  names of shipped charts, ``size_chart_file`` a CSV); returns the measurements, the fit
  quality, the size recommendations and the URLs of the result files (docs/WEB.md).
- ``GET /api/v1/results/{id}/{name}``: a result file, ``name`` one of ``store.RESULT_FILES``.
- ``GET /api/v1/health``, ``GET /api/v1/size-charts``; ``GET /openapi.json`` (no /docs:
  Swagger UI loads from a CDN).
- The unversioned ``/api/...`` paths of the first release answer the same (aliases, left out
  of the schema).

The model is loaded once, at start-up (or injected). The Predictor (MediaPipe + torch) is
not thread-safe, so every prediction runs on one dedicated worker thread, in arrival order,
off the event loop: the page, the health check and downloads stay responsive meanwhile, and
at most ``max_pending`` predictions wait (more get 503). Every error is JSON
``{"error": "one line"}``: 413 too large, 415 not JPEG/PNG, 422 unusable input (the
Predictor's message), 404 unknown or expired result.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

from fastapi import APIRouter, FastAPI, File, Form, HTTPException, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from bodyshape.assets import DEFAULT_CHECKPOINT, DEFAULT_SHAPE_MODEL
from bodyshape.inputs import SEX_CODES, InputError, check_height, check_weight, decode_image
from bodyshape.outputs import measurements_json
from bodyshape.predict import Predictor
from bodyshape.sizing import (ChartError, SizeChart, load_chart, parse_chart,
                              recommend_charts, shipped_charts)
from bodyshape.units import UNITS
from bodyshape.web.models import ErrorBody, Health, PredictResult, SizeCharts
from bodyshape.web.store import RESULT_FILES, ResultStore

logger = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "static"
MB = 1024 * 1024
JPEG_MAGIC, PNG_MAGIC = b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n"
API_PREFIX, LEGACY_PREFIX = "/api/v1", "/api"  # the first release's paths stay as aliases
MAX_CHART_BYTES = 256 * 1024  # an uploaded size chart (CSV)
FORM_OVERHEAD = 1 * MB  # multipart framing and the text fields, on top of the two files
# Everything from this origin; 'wasm-unsafe-eval' lets <model-viewer> compile its bundled
# WebAssembly (it allows no JavaScript eval).
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; "
    "style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
    "connect-src 'self' data: blob:; worker-src 'self' blob:; object-src 'none'; "
    "base-uri 'none'; frame-ancestors 'none'; form-action 'self'")
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
]
_ERRORS = {code: {"model": ErrorBody} for code in (404, 413, 415, 422, 500, 503)}


class ApiError(HTTPException):
    """An error answered as ``{"error": detail}`` with ``status_code``."""

    def __init__(self, status_code: int, detail: str, headers: dict[str, str] | None = None):
        super().__init__(status_code=status_code, detail=detail, headers=headers)


def _error(status: int, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def _mb(n_bytes: int) -> str:
    return f"{n_bytes / MB:g} MB"


class _Guard:
    """ASGI middleware: security headers on every response, and request bodies limited to
    ``max_body`` bytes (413 ``too_big`` from Content-Length before anything is read, else as
    soon as the streamed body passes the limit)."""

    def __init__(self, app, max_body: int, too_big: str):
        self.app, self.max_body, self.too_big = app, max_body, too_big

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                message["headers"] = list(message.get("headers", [])) + SECURITY_HEADERS
            await send(message)

        too_big = self.too_big
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_body:
            return await _error(413, too_big)(scope, receive, send_with_headers)
        seen = 0

        async def limited_receive():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body:
                    raise ApiError(413, too_big)
            return message

        await self.app(scope, limited_receive, send_with_headers)


async def read_upload(upload: UploadFile, what: str, limit: int) -> bytes:
    """The bytes of an uploaded image, checked for size (413) while reading, emptiness (422)
    and JPEG/PNG magic bytes (415)."""
    data = bytearray()
    while chunk := await upload.read(256 * 1024):
        data += chunk
        if len(data) > limit:
            raise ApiError(413, f"the {what} is larger than {_mb(limit)}")
    if not data:
        raise ApiError(422, f"the {what} is empty")
    if data.startswith(JPEG_MAGIC) or data.startswith(PNG_MAGIC):
        return bytes(data)
    raise ApiError(415, f"the {what} is not a JPEG or PNG image")


class PredictionService:
    """The loaded Predictor, the result store and the single prediction thread.

    Args:
        predictor: an already loaded Predictor (not closed by ``stop``), or None to load
            ``checkpoint`` and ``shape_model`` in ``start``.
        store: where results go.
        max_pending: predictions allowed to wait or run at once; more are refused (503).
        torch_threads: torch intra-op threads; None: the CPUs this process may use, at most
            torch's default.
    """

    def __init__(self, predictor: Predictor | None, checkpoint: Path, shape_model: Path,
                 store: ResultStore, max_pending: int = 8, torch_threads: int | None = None):
        self.predictor, self.owns_predictor = predictor, predictor is None
        self.checkpoint, self.shape_model = Path(checkpoint), Path(shape_model)
        self.store, self.max_pending, self.torch_threads = store, max_pending, torch_threads
        self.pending = 0
        self._lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None

    def start(self) -> None:
        import torch

        usable = (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                  else os.cpu_count() or 1)
        threads = self.torch_threads or min(torch.get_num_threads(), usable)
        torch.set_num_threads(max(1, threads))
        if self.predictor is None:
            t0 = time.perf_counter()
            self.predictor = Predictor.load(self.checkpoint, self.shape_model)
            logger.info("model loaded from %s in %.2f s", self.checkpoint,
                        time.perf_counter() - t0)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="predict")
        logger.info("results in %s (ttl %.0f s); torch threads %d", self.store.root,
                    self.store.ttl_s, torch.get_num_threads())

    def stop(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None
        if self.owns_predictor and self.predictor is not None:
            self.predictor.close()
            self.predictor = None
        self.store.close()

    def _predict(self, images: dict[str, bytes], height: float, sex: str | None,
                 fit_pose: bool, units: str, charts: tuple[SizeChart, ...],
                 weight: float | None = None) -> dict:
        """On the prediction thread: decode, predict, recommend sizes, store -> the
        response's result fields (``measurements_json`` + ``id``)."""
        # The CLI's decoder (EXIF, truncation, one colour), naming the upload in messages.
        arrays = {view: decode_image(io.BytesIO(data), f"{view} photo")
                  for view, data in images.items()}
        pred = self.predictor(arrays["front"], arrays["side"], height, sex, fit_pose=fit_pose,
                              weight_kg=weight)
        sizes = recommend_charts(pred.measurements, charts, pred.errors_cm)
        rid = self.store.save(pred, units=units, sizes=sizes)
        logger.info("result %s: IoU front %.3f side %.3f, %d warning(s)", rid, pred.front.iou,
                    pred.side.iou, len(pred.warnings))
        return {"id": rid, **measurements_json(pred, units, sizes)}

    async def predict(self, images: dict[str, bytes], height: float, sex: str | None,
                      fit_pose: bool = False, units: str = "cm",
                      charts: tuple[SizeChart, ...] = (), weight: float | None = None) -> dict:
        """Run one prediction on the prediction thread; raises ApiError (422/500/503)."""
        with self._lock:
            if self.pending >= self.max_pending:
                raise ApiError(503, f"the server is busy ({self.pending} predictions queued); "
                                    "try again in a few seconds", {"retry-after": "5"})
            self.pending += 1
        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._executor, self._predict, images, height,
                                              sex, fit_pose, units, charts, weight)
        except ValueError as exc:  # InputError, PhotoError: one line for the user
            raise ApiError(422, str(exc)) from None
        except Exception:
            logger.exception("prediction failed")
            raise ApiError(500, "the prediction failed on the server (see its log)") from None
        finally:
            with self._lock:
                self.pending -= 1


async def _cleanup_loop(store: ResultStore, interval_s: float) -> None:
    """Remove expired results every ``interval_s`` seconds until cancelled."""
    while True:
        try:
            await asyncio.to_thread(store.cleanup)
        except Exception:  # never let the loop die on a file-system hiccup
            logger.exception("result cleanup failed")
        await asyncio.sleep(interval_s)


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors():
        field = str(err.get("loc", ("?",))[-1])
        parts.append(f"missing field '{field}'" if err.get("type") == "missing"
                     else f"{field}: {err.get('msg', 'invalid value')}")
    return "; ".join(parts) or "invalid request"


async def read_charts(names: list[str] | None, upload: UploadFile | None
                      ) -> tuple[SizeChart, ...]:
    """The size charts of a request: shipped ones by name, plus an uploaded CSV (422 for a
    bad one, 413 over ``MAX_CHART_BYTES``)."""
    charts = []
    try:
        for name in names or ():
            name = name.strip()
            if name and name not in shipped_charts():
                raise ChartError(f"no shipped size chart {name!r} (shipped: "
                                 f"{', '.join(shipped_charts())})")
            if name:
                charts.append(load_chart(name))
        if upload is not None and upload.filename:
            data = await upload.read(MAX_CHART_BYTES + 1)
            if len(data) > MAX_CHART_BYTES:
                raise ApiError(413, f"the size chart is larger than {MAX_CHART_BYTES // 1024} KB")
            try:
                text = data.decode("utf-8-sig")
            except UnicodeDecodeError:
                raise ChartError("the size chart is not UTF-8 text") from None
            charts.append(parse_chart(text, "size chart"))
    except ChartError as exc:
        raise ApiError(422, str(exc)) from None
    return tuple(charts)


def create_app(predictor: Predictor | None = None, *,
               checkpoint: str | os.PathLike = DEFAULT_CHECKPOINT,
               shape_model: str | os.PathLike = DEFAULT_SHAPE_MODEL,
               results_dir: str | os.PathLike | None = None, ttl_minutes: float = 60.0,
               max_upload_mb: float = 20.0, max_pending: int = 8,
               torch_threads: int | None = None) -> FastAPI:
    """The web application.

    Args:
        predictor: a loaded Predictor to use (tests); None: load ``checkpoint`` and
            ``shape_model`` once at start-up.
        results_dir: where results are kept; None: a temporary folder removed at shutdown.
        ttl_minutes: how long a result stays downloadable (expired ones are removed by a
            background task).
        max_upload_mb: the largest accepted photo, MB (MiB), per file.
        max_pending: predictions that may run or wait at once (more: 503).
        torch_threads: torch threads (None: the usable CPUs, at most torch's default).
    """
    if max_upload_mb <= 0 or ttl_minutes < 0 or max_pending < 1:
        raise ValueError("max_upload_mb and max_pending must be positive, ttl_minutes >= 0")
    max_file = max(1, int(max_upload_mb * MB))
    ttl_s = ttl_minutes * 60.0

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        store = ResultStore(results_dir, ttl_s)
        service = PredictionService(predictor, checkpoint, shape_model, store, max_pending,
                                    torch_threads)
        await asyncio.to_thread(service.start)
        app.state.service, app.state.store = service, store
        cleanup = asyncio.create_task(_cleanup_loop(store, min(60.0, max(1.0, ttl_s / 4))))
        try:
            yield
        finally:
            cleanup.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await cleanup
            await asyncio.to_thread(service.stop)

    app = FastAPI(title="bodyshape", version=_version(), lifespan=lifespan,
                  docs_url=None, redoc_url=None,
                  description="Body mesh and tape measurements from a front and a side photo "
                              "plus the height. See docs/WEB.md.")
    app.add_middleware(_Guard, max_body=2 * max_file + FORM_OVERHEAD,
                       too_big=f"the upload is larger than {_mb(2 * max_file + FORM_OVERHEAD)}"
                               f" (photos may be at most {_mb(max_file)} each)")
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        return _error(exc.status_code, str(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        return _error(422, _validation_message(exc))

    @app.exception_handler(Exception)
    async def server_error(request: Request, exc: Exception):
        # Anything unexpected: still {"error": ...}, without the exception's text (it may
        # name server paths); Starlette re-raises it afterwards, so the server logs it.
        return _error(500, "internal server error (see the server's log)")

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"cache-control": "no-cache"})

    api = APIRouter()

    @api.get("/health", response_model=Health)
    async def health(request: Request) -> dict:
        """Liveness, the queue length and the upload limits."""
        service = request.app.state.service
        return {"status": "ok", "version": app.version, "pending": service.pending,
                "max_upload_mb": max_file / MB, "ttl_minutes": ttl_minutes,
                "result_files": list(RESULT_FILES)}

    @api.get("/size-charts", response_model=SizeCharts)
    async def size_charts() -> dict:
        """The shipped size charts: name -> their garments and sizes (docs/SIZING.md)."""
        return {"charts": {name: {g: [s.label for s in sizes]
                                  for g, sizes in load_chart(name).garments.items()}
                           for name in shipped_charts()}}

    @api.post("/predict", response_model=PredictResult, responses=_ERRORS)
    async def predict(
        request: Request,
        front: UploadFile = File(..., description="Front photo (JPEG/PNG) or person mask"),
        side: UploadFile = File(..., description="Side photo (JPEG/PNG) or person mask"),
        height_cm: float = Form(..., description="The person's height, 50-250 cm"),
        sex: str | None = Form(None, description="'female', 'male' or empty"),
        weight_kg: str | None = Form(None, description="The person's weight, 20-300 kg, or "
                                     "empty (used by weight-aware networks)"),
        fit_pose: bool = Form(False, description="Fit the pose so the overlay and IoU show "
                              "the posed body (slower, see docs/BENCHMARKS.md); measurements "
                              "unchanged"),
        units: str = Form("cm", description="'cm' or 'in': the unit of the measurements"),
        size_chart: list[str] | None = Form(None, description="Shipped size chart(s) to "
                                            "recommend a size from (GET size-charts)"),
        size_chart_file: UploadFile | None = File(None, description="Your own size chart, "
                                                  "CSV (docs/SIZING.md), at most 256 KB"),
    ) -> dict:
        """Measure one front/side pair; the result files stay available for the TTL."""
        sex = (sex or "").strip().lower() or None  # the page sends "" for "not given"
        units = (units or "cm").strip().lower()
        try:
            height = check_height(height_cm)
            weight = (None if not (weight_kg or "").strip()
                      else check_weight(weight_kg.strip()))
            if sex not in SEX_CODES:
                raise InputError(f"sex must be 'female', 'male' or empty, got {sex!r}")
            if units not in UNITS:
                raise InputError(f"units must be 'cm' or 'in', got {units!r}")
        except InputError as exc:
            raise ApiError(422, str(exc)) from None
        charts = await read_charts(size_chart, size_chart_file)
        images = {view: await read_upload(upload, f"{view} photo", max_file)
                  for view, upload in (("front", front), ("side", side))}
        t0 = time.perf_counter()
        result = await request.app.state.service.predict(images, height, sex, fit_pose, units,
                                                         charts, weight)
        elapsed = time.perf_counter() - t0
        rid = result["id"]
        expires = request.app.state.store.expires_at(rid) or time.time()
        return {**result,
                "urls": {key: f"{API_PREFIX}/results/{rid}/{name}" for key, name in (
                    ("obj", "body.obj"), ("glb", "body.glb"), ("json", "measurements.json"),
                    ("overlay", "overlay.png"))},
                "expires_at": datetime.fromtimestamp(expires, timezone.utc).isoformat(
                    timespec="seconds"),
                "elapsed_s": round(elapsed, 3)}

    @api.get("/results/{rid}/{name}", responses={404: {"model": ErrorBody}})
    async def result_file(request: Request, rid: str, name: str) -> FileResponse:
        """A file of a live result: body.obj, body.glb, measurements.json or overlay.png."""
        path = request.app.state.store.file(rid, name)
        if path is None:
            raise ApiError(404, "no such result file (unknown or expired)")
        return FileResponse(path, media_type=RESULT_FILES[name],
                            headers={"cache-control": "private, max-age=3600"})

    app.include_router(api, prefix=API_PREFIX)
    app.include_router(api, prefix=LEGACY_PREFIX, include_in_schema=False)

    return app


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("bodyshape")
    except PackageNotFoundError:
        return "0+unknown"
