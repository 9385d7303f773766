"""Import of external human meshes of any topology (scans, datasets) into our canonical frame.

Users bring OBJ/PLY/OFF meshes in unknown units (m, cm, mm) and with unknown up axes.
:func:`load_body_mesh` reads one, cleans it, and brings it to the canonical frame: meters,
Z up, the subject's arm span along X (subject facing -Y with their left at +X, the template's
frame, *up to a half turn about Z*). Everything that does not look like one human body is
refused with a :class:`~bodyshape.shape.mesh_clean.MeshInputError` whose one-line message
starts with the file name, so a batch importer can log it and go on with the next file.

The steps live in their own modules: reading and cleaning (junk vertices, duplicates,
degenerate faces, debris components) in :mod:`bodyshape.shape.mesh_clean`, the up axis,
rotation and units in :mod:`bodyshape.shape.mesh_frame`. A mesh that is not watertight is
noted, but accepted (registration only needs a surface).

Landmarks (optional): a JSON file ``{"name": [x, y, z], ...}`` in the units and axes of the
mesh file; they go through the same scale and rotation as the mesh.

This module also writes meshes (:func:`save_body_mesh`) and lists mesh files in a folder.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from bodyshape.fileio import atomic_path
from bodyshape.shape.mesh_clean import clean_mesh, input_error, read_raw
from bodyshape.shape.mesh_frame import (
    MAX_HEIGHT_M,
    MIN_HEIGHT_M,
    UNIT_SCALES,
    auto_up,
    axis_name,
    decide_units,
    describe_rotation,
    parse_up,
    rotation,
)

MESH_EXTENSIONS = (".obj", ".ply", ".off")
# Landmarks must lie inside the mesh bounding box grown by this margin (meters).
LANDMARK_BBOX_MARGIN_M = 0.05


@dataclass(frozen=True, eq=False)
class BodyMesh:
    """A cleaned body mesh in the canonical frame.

    Attributes:
        vertices: (V, 3) float64, meters, Z up, arm span along X (read-only).
        faces: (F, 3) int64 vertex indices (read-only).
        name: the file stem.
        landmarks: landmark name -> (3,) float64 position in meters, same frame (may be empty).
        notes: human-readable record of what was detected, converted and repaired.
        rotation: (3, 3) R with ``vertices = scale * R @ file point`` (identity when the
            file's axes were kept, ``up="file"``).
    """

    vertices: np.ndarray
    faces: np.ndarray
    name: str
    landmarks: dict[str, np.ndarray] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    rotation: np.ndarray = field(default_factory=lambda: np.eye(3))

    def __post_init__(self) -> None:
        vertices = np.array(self.vertices, dtype=np.float64)
        faces = np.array(self.faces, dtype=np.int64)
        if vertices.ndim != 2 or vertices.shape[1] != 3:
            raise ValueError(f"vertices must be (V, 3), got {vertices.shape}")
        if faces.ndim != 2 or faces.shape[1] != 3:
            raise ValueError(f"faces must be (F, 3), got {faces.shape}")
        landmarks = {}
        for key, value in dict(self.landmarks).items():
            point = np.array(value, dtype=np.float64).reshape(3)
            point.setflags(write=False)
            landmarks[str(key)] = point
        for a in (vertices, faces):
            a.setflags(write=False)
        object.__setattr__(self, "vertices", vertices)
        object.__setattr__(self, "faces", faces)
        object.__setattr__(self, "landmarks", landmarks)
        object.__setattr__(self, "notes", tuple(str(n) for n in self.notes))


# ---------------------------------------------------------------------------------------------
# landmarks


def _find_landmark_file(path: Path, landmarks_path) -> Path | None:
    if landmarks_path is None:
        return None
    if str(landmarks_path) == "auto":
        for candidate in (path.with_name(path.stem + ".landmarks.json"), path.with_suffix(".json")):
            if candidate.is_file():
                return candidate
        return None
    landmarks_path = Path(landmarks_path)
    if not landmarks_path.is_file():
        raise input_error(path, f"landmark file {landmarks_path} not found")
    return landmarks_path


def _read_landmarks(path: Path, lm_path: Path, known: Sequence[str] | None) -> dict[str, np.ndarray]:
    where = f"landmark file {lm_path.name}"
    try:
        text = lm_path.read_bytes()
    except OSError as exc:
        raise input_error(path, f"{where} cannot be read ({exc})") from exc
    try:
        data = json.loads(text.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise input_error(path, f"{where} is not valid JSON ({exc})") from exc
    if not isinstance(data, Mapping):
        raise input_error(path, f'{where} must be a JSON object {{"name": [x, y, z], ...}}')
    bad = []
    points = {}
    for name, value in data.items():
        ok = (
            isinstance(value, list)
            and len(value) == 3
            and all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in value)
            and all(math.isfinite(c) for c in value)
        )
        if not ok:
            bad.append(name)
        else:
            points[name] = np.array(value, dtype=np.float64)
    if bad:
        raise input_error(path, f"{where}: values of {', '.join(sorted(bad))} are not [x, y, z] finite numbers")
    if known is not None:
        unknown = sorted(set(points) - set(known))
        if unknown:
            raise input_error(path, f"{where} names unknown landmarks: {', '.join(unknown)}")
    return points


# ---------------------------------------------------------------------------------------------
# public API


def load_body_mesh(
    path: str | Path,
    units: str = "auto",
    up: str = "auto",
    landmarks_path: str | Path | None = None,
    known_landmarks: Sequence[str] | None = None,
) -> BodyMesh:
    """Read, clean and orient an OBJ/PLY/OFF body mesh (meters, Z up); see the module doc.

    Args:
        path: the mesh file.
        units: "auto", "m", "cm" or "mm" (units of the file).
        up: "auto", the file's up axis ("z", "y", "x", "-z", "-y", "-x"; a "+" is allowed),
            or "file": keep the file's axes (only the units change) and leave the
            orientation to a pose-aware registration (``mesh_frame.candidate_rotations``).
        landmarks_path: None (no landmarks), "auto" (``<stem>.landmarks.json`` or
            ``<stem>.json`` beside the mesh, if present) or a JSON file path.
        known_landmarks: landmark names allowed in the landmark file (None: any name).

    Raises:
        MeshInputError: the file (or its landmark file) cannot be imported (the class lives
            in :mod:`bodyshape.shape.mesh_clean`).
        ValueError: bad ``units`` or ``up`` argument.
    """
    path = Path(path)
    if units not in ("auto", *UNIT_SCALES):
        raise ValueError(f"units must be 'auto', 'm', 'cm' or 'mm'; got {units!r}")
    keep_axes = str(up).strip().lower() == "file"
    up_given = None if keep_axes else parse_up(up)
    if path.suffix.lower() not in MESH_EXTENSIONS:
        raise input_error(path, f"unsupported file type {path.suffix!r} (expected .obj, .ply or .off)")
    if not path.exists():
        raise input_error(path, "file not found")
    if not path.is_file():
        raise input_error(path, "not a file")
    if path.stat().st_size == 0:
        raise input_error(path, "file is empty")
    lm_file = _find_landmark_file(path, landmarks_path)

    notes: list[str] = []
    vertices, faces = read_raw(path)
    n_in_v, n_in_f = len(vertices), len(faces)
    vertices, faces = clean_mesh(path, vertices, faces, notes)

    if keep_axes:
        rot = np.eye(3)
        up_axis = int(np.argmax(np.ptp(vertices, axis=0)))  # the units' scale only
        up_note = "axes: kept as in the file (orientation left to registration)"
    elif up_given is None:
        up_axis, up_sign, why = auto_up(path, vertices)
        up_note = f"up: {axis_name(up_axis, up_sign)} (auto, largest extent, {why})"
    else:
        up_axis, up_sign = up_given
        up_note = f"up: {axis_name(up_axis, up_sign)} (given)"
    if not keep_axes:
        rot = rotation(vertices, up_axis, up_sign)
    height_raw = float(np.ptp(vertices[:, up_axis]))
    scale, units_note = decide_units(path, units, height_raw)
    height = height_raw * scale
    if not MIN_HEIGHT_M <= height <= MAX_HEIGHT_M:
        raise input_error(
            path,
            f"absurd scale: body height {height:.4g} m with units={units} "
            f"(expected {MIN_HEIGHT_M:g}-{MAX_HEIGHT_M:g} m); check --units",
        )
    transform = scale * rot
    vertices = vertices @ transform.T
    notes.append(units_note + f" -> m (x{scale:g}), height {height:.3f} m")
    notes.append(up_note if keep_axes else up_note + "; rotation " + describe_rotation(rot))
    notes.append("facing (+Y or -Y) not determined: left to landmarks / registration")

    import trimesh

    mesh = trimesh.Trimesh(vertices, faces, process=False)
    if not mesh.is_watertight:
        edges = np.sort(mesh.edges, axis=1)
        _, counts = np.unique(edges, axis=0, return_counts=True)
        notes.append(
            f"is_watertight=False ({int((counts == 1).sum())} boundary edges, "
            f"{int((counts > 2).sum())} non-manifold edges): accepted, registration only needs a surface"
        )

    landmarks: dict[str, np.ndarray] = {}
    if lm_file is not None:
        raw = _read_landmarks(path, lm_file, known_landmarks)
        lo = vertices.min(axis=0) - LANDMARK_BBOX_MARGIN_M
        hi = vertices.max(axis=0) + LANDMARK_BBOX_MARGIN_M
        outside = []
        for name, point in raw.items():
            p = transform @ point
            if np.any(p < lo) or np.any(p > hi):
                outside.append(name)
            landmarks[name] = p
        if outside:
            raise input_error(
                path,
                f"landmark file {lm_file.name}: {', '.join(sorted(outside))} lie outside the mesh "
                "bounding box (landmarks must use the units and axes of the mesh file)",
            )
        notes.append(f"{len(landmarks)} landmarks from {lm_file.name}")

    kept = f"kept {len(vertices)} vertices, {len(faces)} faces"
    notes.insert(0, f"read {n_in_v} vertices, {n_in_f} faces; {kept}")
    return BodyMesh(vertices=vertices, faces=faces, name=path.stem, landmarks=landmarks,
                    notes=tuple(notes), rotation=rot)


def save_body_mesh(path: str | Path, vertices: np.ndarray, faces: np.ndarray) -> None:
    """Write a binary PLY (float32 coordinates) atomically; ``path`` must end in .ply."""
    import trimesh

    path = Path(path)
    if path.suffix.lower() != ".ply":
        raise ValueError(f"save_body_mesh writes PLY: {path} must end in .ply")
    vertices = np.asarray(vertices, dtype=np.float64)
    faces = np.asarray(faces, dtype=np.int64)
    if vertices.ndim != 2 or vertices.shape[1] != 3 or faces.ndim != 2 or faces.shape[1] != 3:
        raise ValueError(f"expected (V, 3) vertices and (F, 3) faces, got {vertices.shape} and {faces.shape}")
    mesh = trimesh.Trimesh(vertices, faces, process=False)
    with atomic_path(path) as tmp:
        mesh.export(tmp, file_type="ply", encoding="binary")


def list_mesh_files(folder: str | Path) -> list[Path]:
    """OBJ/PLY/OFF files directly in ``folder`` (any case), sorted; hidden and ``*.tmp.*`` skipped."""
    folder = Path(folder)
    return sorted(
        p
        for p in folder.iterdir()
        if p.suffix.lower() in MESH_EXTENSIONS
        and not p.name.startswith(".")
        and ".tmp." not in p.name
        and p.is_file()
    )
