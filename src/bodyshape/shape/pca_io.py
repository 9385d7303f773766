"""The ``.npz`` file format of :class:`bodyshape.shape.pca.ShapeModel`.

A model file is an ``.npz`` archive of the model's arrays (float32, faces int32; empty arrays
where there are no per-sex statistics or mixture) plus a ``metadata`` entry holding a JSON
string (format version, template hash, landmark names, sources, training summary, sexes and
the model hash, checked on load). Files are written atomically (see :mod:`bodyshape.fileio`).

This module does not import :mod:`bodyshape.shape.pca` at import time (pca imports it);
:func:`load_model` builds a ``ShapeModel`` unless given another class.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from bodyshape.fileio import atomic_path
from bodyshape.shape.sampling import MixtureParams, SexStats

FORMAT_VERSION = 1
"""Version of the ``.npz`` layout written by :func:`save_model`."""

_REQUIRED_KEYS = (
    "mean", "components", "std", "explained_variance_ratio", "cumulative_variance", "faces",
    "sex_means", "sex_covariances", "gmm_weights", "gmm_means", "gmm_covariances", "metadata",
)


def model_metadata(model) -> dict:
    """The JSON-able ``metadata`` entry of a model file."""
    stats = model.coeff_stats
    return {
        "format_version": FORMAT_VERSION,
        "template_hash": model.template_hash,
        "landmark_names": list(model.landmark_names),
        "sources": model.sources,
        "n_training": model.n_training,
        "total_variance": model.total_variance,
        "aligned": model.aligned,
        "align_scale": model.align_scale,
        "sexes": list(stats.sexes) if stats else [],
        "sex_counts": [int(c) for c in stats.counts] if stats else [],
        "model_hash": model.model_hash,
    }


def save_model(model, path: str | os.PathLike) -> None:
    """Write a ``ShapeModel`` to an ``.npz`` file, atomically."""
    k = model.n_components
    stats, mix = model.coeff_stats, model.mixture
    arrays = {
        "mean": model.mean,
        "components": model.components,
        "std": model.std,
        "explained_variance_ratio": model.explained_variance_ratio,
        "cumulative_variance": model.cumulative_variance,
        "faces": model.faces,
        "sex_means": stats.means if stats else np.zeros((0, k), np.float32),
        "sex_covariances": stats.covariances if stats else np.zeros((0, k, k), np.float32),
        "gmm_weights": mix.weights if mix else np.zeros((0,), np.float32),
        "gmm_means": mix.means if mix else np.zeros((0, k), np.float32),
        "gmm_covariances": mix.covariances if mix else np.zeros((0, k, k), np.float32),
        "metadata": np.array(json.dumps(model_metadata(model), sort_keys=True)),
    }
    path = Path(path)
    if path.suffix != ".npz":
        raise ValueError(f"{path}: shape model files must end in .npz")
    with atomic_path(path) as tmp:
        np.savez(tmp, **arrays)


def read_archive(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict]:
    """The arrays and the decoded metadata of a model file, format version checked.

    Raises ValueError naming the file if it is missing, not a model ``.npz`` or of another
    format version.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: shape model file not found")
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic != b"PK\x03\x04":
        raise ValueError(f"{path}: not a shape model .npz file (not a zip archive)")
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = [key for key in _REQUIRED_KEYS if key not in data.files]
            arrays = {key: data[key] for key in _REQUIRED_KEYS if key in data.files}
    except (OSError, EOFError, ValueError, zipfile.BadZipFile) as exc:
        raise ValueError(f"{path}: cannot read the shape model .npz: {exc}") from exc
    if missing:
        raise ValueError(f"{path}: not a shape model file, missing keys {missing}")
    try:
        meta = json.loads(str(arrays["metadata"][()]))
        version = meta["format_version"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path}: unreadable shape model metadata: {exc}") from exc
    if version != FORMAT_VERSION:
        raise ValueError(
            f"{path}: shape model format version {version}, this code reads {FORMAT_VERSION}"
        )
    return arrays, meta


def model_fields(arrays: dict[str, np.ndarray], meta: dict) -> dict[str, Any]:
    """``ShapeModel`` constructor keyword arguments from :func:`read_archive`'s result
    (KeyError/TypeError/ValueError if the metadata is incomplete or invalid)."""
    stats = None
    if meta["sexes"]:
        stats = SexStats(
            tuple(meta["sexes"]), np.array(meta["sex_counts"]),
            arrays["sex_means"], arrays["sex_covariances"],
        )
    mixture = None
    if arrays["gmm_weights"].size:
        mixture = MixtureParams(
            arrays["gmm_weights"], arrays["gmm_means"], arrays["gmm_covariances"]
        )
    return dict(
        mean=arrays["mean"],
        components=arrays["components"],
        std=arrays["std"],
        explained_variance_ratio=arrays["explained_variance_ratio"],
        cumulative_variance=arrays["cumulative_variance"],
        faces=arrays["faces"],
        template_hash=meta["template_hash"],
        landmark_names=tuple(meta["landmark_names"]),
        sources=meta["sources"],
        n_training=meta["n_training"],
        total_variance=meta["total_variance"],
        aligned=meta["aligned"],
        align_scale=meta["align_scale"],
        coeff_stats=stats,
        mixture=mixture,
    )


def load_model(path: str | os.PathLike, cls: type | None = None):
    """Read a model written by :func:`save_model` (ValueError naming the file if it cannot).

    ``cls`` is the class to build (default :class:`~bodyshape.shape.pca.ShapeModel`).
    """
    if cls is None:
        from bodyshape.shape.pca import ShapeModel as cls  # here: pca imports this module
    path = Path(path)
    arrays, meta = read_archive(path)
    try:
        model = cls(**model_fields(arrays, meta))
    except (KeyError, ValueError, TypeError) as exc:
        raise ValueError(f"{path}: invalid shape model: {exc!r}") from exc
    if meta.get("model_hash", model.model_hash) != model.model_hash:
        raise ValueError(f"{path}: model hash mismatch (file corrupted?)")
    return model
