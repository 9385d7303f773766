"""The bodyshape web app: an upload page and a JSON API (``bodyshape serve``; docs/WEB.md).

``create_app(...)`` builds the FastAPI application (``bodyshape.web.app``); results are kept
by ``bodyshape.web.store.ResultStore``.
"""

from bodyshape.web.app import create_app

__all__ = ["create_app"]
