"""The ``.npz`` file format of the PCA shape model.

A model file is an ``.npz`` archive of the model's arrays (float32, faces int32; empty arrays
where there are no per-sex statistics or mixture) plus a ``metadata`` entry holding a JSON
string (format version, template hash, landmark names, sources, training summary, sexes and
the model hash). Files are written atomically (see :mod:`bodyshape.fileio`).

This module knows the file layout only, not the model class: :func:`write_model_file` takes
the model's fields (a mapping of the ``ShapeModel`` constructor arguments) and its hash,
:func:`read_model_file` gives them back with the recorded hash. ``ShapeModel.save`` and
``ShapeModel.load`` build and check the object; imports go one way, from the model to here.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from bodyshape.fileio import atomic_path
from bodyshape.shape.sampling import MixtureParams, SexStats

FORMAT_VERSION = 1
"""Version of the ``.npz`` layout written by :func:`write_model_file`."""

_REQUIRED_KEYS = (
    "mean", "components", "std", "explained_variance_ratio", "cumulative_variance", "faces",
    "sex_means", "sex_covariances", "gmm_weights", "gmm_means", "gmm_covariances", "metadata",
)


def _metadata(fields: Mapping[str, Any], model_hash: str) -> dict:
    """The JSON-able ``metadata`` entry of a model file."""
    stats = fields["coeff_stats"]
    return {
        "format_version": FORMAT_VERSION,
        "template_hash": fields["template_hash"],
        "landmark_names": list(fields["landmark_names"]),
        "sources": fields["sources"],
        "n_training": fields["n_training"],
        "total_variance": fields["total_variance"],
        "aligned": fields["aligned"],
        "align_scale": fields["align_scale"],
        "sexes": list(stats.sexes) if stats else [],
        "sex_counts": [int(c) for c in stats.counts] if stats else [],
        "model_hash": model_hash,
    }


def write_model_file(path: str | os.PathLike, fields: Mapping[str, Any], model_hash: str) -> None:
    """Write a model to an ``.npz`` file, atomically.

    Args:
        path: the file; must end in ``.npz``.
        fields: the model's (validated) ``ShapeModel`` constructor arguments, by name.
        model_hash: the model's hash, stored in the metadata and checked on load.
    """
    k = fields["components"].shape[0]
    stats, mix = fields["coeff_stats"], fields["mixture"]
    arrays = {
        "mean": fields["mean"],
        "components": fields["components"],
        "std": fields["std"],
        "explained_variance_ratio": fields["explained_variance_ratio"],
        "cumulative_variance": fields["cumulative_variance"],
        "faces": fields["faces"],
        "sex_means": stats.means if stats else np.zeros((0, k), np.float32),
        "sex_covariances": stats.covariances if stats else np.zeros((0, k, k), np.float32),
        "gmm_weights": mix.weights if mix else np.zeros((0,), np.float32),
        "gmm_means": mix.means if mix else np.zeros((0, k), np.float32),
        "gmm_covariances": mix.covariances if mix else np.zeros((0, k, k), np.float32),
        "metadata": np.array(json.dumps(_metadata(fields, model_hash), sort_keys=True)),
    }
    path = Path(path)
    if path.suffix != ".npz":
        raise ValueError(f"{path}: shape model files must end in .npz")
    with atomic_path(path) as tmp:
        np.savez(tmp, **arrays)


def _read_archive(path: Path) -> tuple[dict[str, np.ndarray], dict]:
    """The arrays and the decoded metadata of a model file, format version checked.

    Raises ValueError naming the file if it is missing, not a model ``.npz`` or of another
    format version.
    """
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


def _fields(arrays: dict[str, np.ndarray], meta: dict) -> dict[str, Any]:
    """The model's constructor arguments from :func:`_read_archive`'s result
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


def read_model_file(path: str | os.PathLike) -> tuple[dict[str, Any], str | None]:
    """The fields (``ShapeModel`` constructor arguments, by name) of a model file written by
    :func:`write_model_file`, and the model hash it records (None if it records none).

    Raises:
        ValueError: naming the file, if it is missing, not a model file, of another format
            version or with incomplete or invalid metadata.
    """
    path = Path(path)
    arrays, meta = _read_archive(path)
    try:
        fields = _fields(arrays, meta)
    except (KeyError, ValueError, TypeError) as exc:
        raise ValueError(f"{path}: invalid shape model: {exc!r}") from exc
    return fields, meta.get("model_hash")
