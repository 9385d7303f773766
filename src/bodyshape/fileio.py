"""Atomic file output.

Data goes to a temporary sibling first and is renamed into place (``os.replace`` is atomic
on POSIX within one file system), so a killed run never leaves a half-written file or folder
behind. Most outputs go through these helpers: shape models and registered meshes,
synthetic data shards, checkpoints (``checkpoint.save_checkpoint``, which ``train.py`` uses
for ``checkpoint.pt``), prediction results and ``bodyshape eval --out``'s JSON report.

Not all: ``train.py`` writes ``history.csv`` through its own temporary file and
``os.replace`` (atomic too) and ``loss.png`` with matplotlib's ``savefig`` directly, and
``bodyshape eval --out`` writes its ``.md`` table with a plain ``Path.write_text``; those
two can be left half-written by a kill.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` on success.

    The temporary name keeps the suffix of ``path`` so that libraries which pick a format
    from the extension (trimesh, numpy) still work. On error the temporary file is removed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    # mkstemp creates 0600 files; give outputs the usual permissions (0666 minus the umask).
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp_path, 0o666 & ~umask)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; rename it onto ``path`` on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def atomic_write(path: str | os.PathLike, writer: Callable[[Path], Any]) -> None:
    """Call ``writer(tmp_path)`` and move the result onto ``path`` atomically."""
    with atomic_path(path) as tmp:
        writer(tmp)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented, key-sorted JSON, atomically (stable bytes for a given obj)."""
    text = json.dumps(obj, indent=2, sort_keys=True) + "\n"
    atomic_write(path, lambda p: p.write_text(text))


def sha256_arrays(*arrays) -> str:
    """Hex SHA-256 over the raw bytes, dtypes and shapes of numpy arrays (order matters)."""
    h = hashlib.sha256()
    for a in arrays:
        h.update(str(a.dtype).encode())
        h.update(str(a.shape).encode())
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()
