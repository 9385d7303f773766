"""``bodyshape serve``: the web app (upload page + JSON API) under uvicorn.

The app itself is ``bodyshape.web.create_app`` (docs/WEB.md); the result-store and upload
defaults are that function's own.
"""

from __future__ import annotations

from pathlib import Path

import click

from bodyshape.cli.common import (
    checkpoint_option,
    default_of,
    require_files,
    shape_model_option,
)

APP = "bodyshape.web.app:create_app"


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Interface to listen on (0.0.0.0: every interface; put a TLS proxy in "
              "front when it is reachable from outside).")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True,
              help="Port to listen on.")
@checkpoint_option()
@shape_model_option()
@click.option("--results-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where results are kept [default: a temporary folder, removed at exit].")
@click.option("--ttl-minutes", type=click.FloatRange(0),
              default=default_of(APP, "ttl_minutes"), show_default=True,
              help="How long results stay downloadable before they are deleted.")
@click.option("--max-upload-mb", type=click.FloatRange(0, min_open=True),
              default=default_of(APP, "max_upload_mb"), show_default=True,
              help="Largest accepted photo, per file (MiB).")
def serve(host, port, ckpt, shape_model, results_dir, ttl_minutes, max_upload_mb):
    """Web app: upload a front and a side photo, see the 3D body and the measurements.

    Serves the page at http://HOST:PORT/ and the JSON API under /api (POST /api/predict,
    GET /api/health, GET /openapi.json). The model is loaded once, at start-up.
    """
    import uvicorn

    from bodyshape.web import create_app

    require_files(ckpt, shape_model)
    app = create_app(checkpoint=ckpt, shape_model=shape_model, results_dir=results_dir,
                     ttl_minutes=ttl_minutes, max_upload_mb=max_upload_mb)
    shown = f"[{host}]" if ":" in host else host
    click.echo(f"bodyshape web app on http://{shown}:{port}/ (Ctrl+C to stop)")
    uvicorn.run(app, host=host, port=port, log_level="info", proxy_headers=False)


COMMANDS = (serve,)
