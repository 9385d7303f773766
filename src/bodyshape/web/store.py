"""Prediction results on disk, under random ids, removed after a time to live.

Each result is a folder ``ROOT/<id>`` written by ``outputs.write_prediction`` (atomically: it
appears complete or not at all). The id is 32 random hex digits (``secrets.token_hex``), and
files are served only by id and a name from ``RESULT_FILES``, so nothing a client sends ever
becomes part of a file path. A result's age is its folder's modification time, so a results
folder given on the command line keeps expiring correctly across restarts.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import shutil
import tempfile
import time
from pathlib import Path

from bodyshape.outputs import write_prediction
from bodyshape.predict import Prediction

logger = logging.getLogger(__name__)

ID_PATTERN = re.compile(r"[0-9a-f]{32}")
# The files a client may download, with their media types (shape.json stays private).
RESULT_FILES = {
    "body.obj": "model/obj",
    "body.glb": "model/gltf-binary",
    "measurements.json": "application/json",
    "overlay.png": "image/png",
}
# write_prediction's temporary folders (".<id>.XXXX.tmp") older than this are leftovers of a
# killed process; younger ones may belong to a prediction being written right now.
_STALE_TMP_S = 600.0


class ResultStore:
    """Result folders under ``root`` (a new temporary folder when None) with a TTL.

    Args:
        root: folder for the results; created if missing. None: a fresh temporary folder,
            deleted by ``close()``.
        ttl_s: seconds a result stays available (0: expires at once).
    """

    def __init__(self, root: str | os.PathLike | None = None, ttl_s: float = 3600.0):
        if ttl_s < 0:
            raise ValueError(f"the time to live must be >= 0, got {ttl_s}")
        self.owned = root is None
        self.root = Path(tempfile.mkdtemp(prefix="bodyshape-results-") if root is None
                         else root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.ttl_s = float(ttl_s)

    def save(self, pred: Prediction, **options) -> str:
        """Write a prediction under a new random id (``options``: of ``write_prediction``,
        e.g. ``units``, ``sizes``); returns the id."""
        rid = secrets.token_hex(16)
        write_prediction(pred, self.root / rid, **options)
        return rid

    def expires_at(self, rid: str) -> float | None:
        """Unix time at which result ``rid`` expires, None for an unknown id."""
        if not ID_PATTERN.fullmatch(rid):
            return None
        try:
            return (self.root / rid).stat().st_mtime + self.ttl_s
        except OSError:
            return None

    def file(self, rid: str, name: str) -> Path | None:
        """The path of a downloadable file of a live result, else None.

        ``rid`` must match ``ID_PATTERN`` and ``name`` be a key of ``RESULT_FILES``; the
        path is built from those checked values only.
        """
        if name not in RESULT_FILES:
            return None
        expires = self.expires_at(rid)
        if expires is None or expires <= time.time():
            return None
        path = self.root / rid / name
        return path if path.is_file() else None

    def cleanup(self, now: float | None = None) -> int:
        """Remove expired results (and stale temporary folders); returns how many results."""
        now = time.time() if now is None else now
        removed = 0
        try:
            entries = list(os.scandir(self.root))
        except OSError as exc:
            logger.warning("cannot list %s: %s", self.root, exc)
            return 0
        for entry in entries:
            try:
                age = now - entry.stat(follow_symlinks=False).st_mtime
            except OSError:
                continue  # removed meanwhile
            is_result = ID_PATTERN.fullmatch(entry.name) is not None
            stale_tmp = entry.name.startswith(".") and entry.name.endswith(".tmp") \
                and age >= _STALE_TMP_S
            if not ((is_result and age >= self.ttl_s) or stale_tmp):
                continue
            shutil.rmtree(entry.path, ignore_errors=True)
            removed += is_result
        if removed:
            logger.info("removed %d expired result(s) from %s", removed, self.root)
        return removed

    def close(self) -> None:
        """Delete the folder if this store created it."""
        if self.owned:
            shutil.rmtree(self.root, ignore_errors=True)
