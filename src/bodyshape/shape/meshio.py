"""Import of external human meshes of any topology (scans, datasets) into our canonical frame.

Users bring OBJ/PLY/OFF meshes in unknown units (m, cm, mm) and with unknown up axes.
:func:`load_body_mesh` reads one, cleans it, and brings it to the canonical frame: meters,
Z up, the subject's arm span along X (subject facing -Y with their left at +X, the template's
frame, *up to a half turn about Z*; see below). Everything that does not look like one
human body is refused with a :class:`MeshInputError` whose one-line message starts with the
file name, so a batch importer can log it and go on with the next file.

Cleaning (each repair is recorded in :attr:`BodyMesh.notes`):

1. drop unreferenced (junk) vertices;
2. merge duplicate vertices (exactly equal or closer than 1e-7 of the bounding-box diagonal,
   e.g. OBJ vertices split at texture seams);
3. drop degenerate faces (repeated vertex, zero area) and duplicate faces;
4. keep the largest connected component when the others are small debris (see
   :data:`SMALL_COMPONENT_SHARE`), refuse meshes of several bodies or fragmented scans;
5. note, but accept, a mesh that is not watertight (registration only needs a surface).

Axes: with ``up="auto"`` the axis of largest extent is up (people are taller than their A-pose
arm span); the sign puts the wider end (arms and shoulders in an A-pose) at the top; the axis
of second-largest extent becomes X (the arm span), and Y completes a right-handed frame. The
mesh is only rotated (never mirrored or translated). Whether the subject faces -Y or +Y is NOT
decided here: it is resolved later by landmarks / registration. A T-pose (arm span about the
body height) or a pose without a clearly wider upper body is refused in auto mode: pass ``up``.

Landmarks (optional): a JSON file ``{"name": [x, y, z], ...}`` in the units and axes of the
mesh file; they go through the same scale and rotation as the mesh.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from bodyshape.fileio import atomic_path

MESH_EXTENSIONS = (".obj", ".ply", ".off")
UNIT_SCALES = {"m": 1.0, "cm": 0.01, "mm": 0.001}
# Body height (extent along up, meters) accepted after unit conversion.
MIN_HEIGHT_M, MAX_HEIGHT_M = 0.4, 2.6
# Heights (meters) for which ``units="auto"`` trusts a unit: the raw extent must lie in this
# range times 1, 100 or 1000. The three ranges are disjoint, and inches or feet fall outside.
AUTO_HEIGHT_RANGE_M = (0.9, 2.3)
# Duplicate-vertex tolerance, relative to the bounding-box diagonal.
MERGE_TOLERANCE = 1e-7
# Connected components: a component with fewer than SMALL_COMPONENT_SHARE of the vertices is
# debris; TINY_COMPONENT_SHARE and below does not count as "significant". A mesh is refused
# when more than MAX_SIGNIFICANT_COMPONENTS are significant, when a component other than the
# largest is not small, or when the dropped components hold more than MAX_DROPPED_SHARE.
SMALL_COMPONENT_SHARE = 0.05
TINY_COMPONENT_SHARE = 0.01
MAX_SIGNIFICANT_COMPONENTS = 3
MAX_DROPPED_SHARE = 0.20
# up="auto": the largest extent must exceed the second by this factor, and the horizontal
# extent of the upper 40% of the body must exceed the lower 40%'s by this factor.
AUTO_UP_MIN_RATIO = 1.05
AUTO_SIGN_MIN_RATIO = 1.10
# Landmarks must lie inside the mesh bounding box grown by this margin (meters).
LANDMARK_BBOX_MARGIN_M = 0.05

_AXES = "xyz"


class MeshInputError(ValueError):
    """A mesh (or its landmark file) that cannot be imported; one-line message, file name first."""


@dataclass(frozen=True, eq=False)
class BodyMesh:
    """A cleaned body mesh in the canonical frame.

    Attributes:
        vertices: (V, 3) float64, meters, Z up, arm span along X (read-only).
        faces: (F, 3) int64 vertex indices (read-only).
        name: the file stem.
        landmarks: landmark name -> (3,) float64 position in meters, same frame (may be empty).
        notes: human-readable record of what was detected, converted and repaired.
    """

    vertices: np.ndarray
    faces: np.ndarray
    name: str
    landmarks: dict[str, np.ndarray] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

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


def _fail(path: Path, message: str) -> MeshInputError:
    text = " ".join(f"{path.name}: {message}".split())
    return MeshInputError(text)


# ---------------------------------------------------------------------------------------------
# reading


def _read_raw(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Vertices and faces as stored in the file (trimesh, no processing)."""
    import trimesh

    ext = path.suffix.lower()
    file_type = ext[1:]
    kwargs = {"skip_materials": True} if file_type == "obj" else {}
    try:
        mesh = trimesh.load(path, file_type=file_type, force="mesh", process=False, **kwargs)
        vertices = np.asarray(getattr(mesh, "vertices", np.zeros((0, 3))), dtype=np.float64)
        faces = np.asarray(getattr(mesh, "faces", np.zeros((0, 3))))
    except Exception as exc:  # trimesh raises anything on corrupt input
        raise _fail(path, f"cannot read {ext} file ({type(exc).__name__}: {exc})") from exc
    if len(faces) == 0:
        # force="mesh" drops the points of a point cloud: read again to say what is there.
        n_points = len(vertices)
        if n_points == 0:
            try:
                loaded = trimesh.load(path, file_type=file_type, process=False, **kwargs)
                n_points = len(getattr(loaded, "vertices", ()))
            except Exception:
                n_points = 0
        if n_points == 0:
            raise _fail(path, f"no mesh data could be read (empty, corrupt or not a {ext} file)")
        raise _fail(path, f"mesh has no faces ({n_points} vertices only: a point cloud?)")
    if vertices.ndim != 2 or vertices.shape[1] != 3 or faces.ndim != 2 or faces.shape[1] != 3:
        raise _fail(path, f"unexpected array shapes: vertices {vertices.shape}, faces {faces.shape}")
    faces = faces.astype(np.int64)
    if faces.min() < 0 or faces.max() >= len(vertices):
        raise _fail(path, "faces reference vertices that do not exist")
    return vertices, faces


# ---------------------------------------------------------------------------------------------
# cleaning


def _compact(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Drop vertices no face uses; returns the number dropped."""
    used = np.zeros(len(vertices), dtype=bool)
    used[faces.ravel()] = True
    n_dropped = int(len(vertices) - used.sum())
    if n_dropped == 0:
        return vertices, faces, 0
    new_index = np.cumsum(used) - 1
    return vertices[used], new_index[faces], n_dropped


def _merge_duplicates(vertices: np.ndarray, faces: np.ndarray, tol: float):
    """Merge vertices closer than ``tol`` (transitively) onto the lowest index of each group."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial import cKDTree

    n = len(vertices)
    pairs = cKDTree(vertices).query_pairs(tol, output_type="ndarray")
    if len(pairs) == 0:
        return vertices, faces, 0
    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    # representative of each group: its lowest vertex index
    rep = np.full(labels.max() + 1, n, dtype=np.int64)
    np.minimum.at(rep, labels, np.arange(n))
    target = rep[labels]
    keep = target == np.arange(n)
    new_index = np.cumsum(keep) - 1
    return vertices[keep], new_index[target[faces]], int(n - keep.sum())


def _drop_bad_faces(vertices: np.ndarray, faces: np.ndarray, diag: float):
    """Drop faces with a repeated vertex or (near) zero area, then duplicate faces."""
    repeated = (faces[:, 0] == faces[:, 1]) | (faces[:, 1] == faces[:, 2]) | (faces[:, 0] == faces[:, 2])
    tri = vertices[faces]
    double_area = np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
    flat = double_area <= (MERGE_TOLERANCE * diag) ** 2
    good = ~(repeated | flat)
    n_degenerate = int((~good).sum())
    faces = faces[good]
    _, first = np.unique(np.sort(faces, axis=1), axis=0, return_index=True)
    n_duplicate = len(faces) - len(first)
    if n_duplicate:
        faces = faces[np.sort(first)]
    return faces, n_degenerate, int(n_duplicate)


def _components(n_vertices: int, faces: np.ndarray) -> np.ndarray:
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    rows = np.concatenate([faces[:, 0], faces[:, 1]])
    cols = np.concatenate([faces[:, 1], faces[:, 2]])
    graph = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(n_vertices, n_vertices))
    return connected_components(graph, directed=False)[1]


def _keep_main_component(path: Path, vertices, faces, notes: list[str]):
    labels = _components(len(vertices), faces)
    sizes = np.bincount(labels)
    if len(sizes) == 1:
        return vertices, faces
    order = np.argsort(-sizes, kind="stable")
    shares = sizes[order] / len(vertices)
    shares_text = ", ".join(f"{100 * s:.1f}%" for s in shares[:5]) + (", ..." if len(shares) > 5 else "")
    n_significant = int((shares >= TINY_COMPONENT_SHARE).sum())
    if n_significant > MAX_SIGNIFICANT_COMPONENTS:
        raise _fail(
            path,
            f"mesh is fragmented: {n_significant} significant connected components "
            f"(vertex shares {shares_text}); expected one body",
        )
    if shares[1] >= SMALL_COMPONENT_SHARE:
        raise _fail(
            path,
            f"mesh has {int((shares >= SMALL_COMPONENT_SHARE).sum())} large connected components "
            f"(vertex shares {shares_text}); expected one body",
        )
    dropped = 1.0 - shares[0]
    if dropped > MAX_DROPPED_SHARE:
        raise _fail(
            path,
            f"the largest connected component holds only {100 * shares[0]:.1f}% of the vertices "
            f"({len(sizes)} components); expected one body",
        )
    keep_faces = faces[labels[faces[:, 0]] == order[0]]
    vertices, keep_faces, n_dropped = _compact(vertices, keep_faces)
    notes.append(
        f"dropped {len(sizes) - 1} small connected component(s) ({n_dropped} vertices, "
        f"{100 * dropped:.2f}%), kept the largest"
    )
    return vertices, keep_faces


# ---------------------------------------------------------------------------------------------
# orientation and units


def _parse_up(up: str) -> tuple[int, int] | None:
    """'auto' -> None; 'z', '+y', '-x', ... -> (axis index, sign)."""
    text = str(up).strip().lower()
    if text == "auto":
        return None
    sign = 1
    if text[:1] in "+-" and len(text) == 2:
        sign = -1 if text[0] == "-" else 1
        text = text[1:]
    if len(text) != 1 or text not in _AXES:
        raise ValueError(f"up must be 'auto' or one of x, y, z, -x, -y, -z; got {up!r}")
    return _AXES.index(text), sign


def _axis_name(axis: int, sign: int) -> str:
    return ("+" if sign > 0 else "-") + _AXES[axis]


def _auto_up(path: Path, vertices: np.ndarray) -> tuple[int, int, str]:
    extent = vertices.max(axis=0) - vertices.min(axis=0)
    order = np.argsort(-extent, kind="stable")
    up_axis = int(order[0])
    if extent[order[0]] < AUTO_UP_MIN_RATIO * extent[order[1]]:
        raise _fail(
            path,
            f"cannot decide the up axis: extents {_AXES[order[0]]}={extent[order[0]]:.4g} and "
            f"{_AXES[order[1]]}={extent[order[1]]:.4g} are too close (T-pose?); pass --up",
        )
    t = vertices[:, up_axis]
    lo, height = t.min(), extent[up_axis]
    horizontal = [a for a in range(3) if a != up_axis]

    def width(mask: np.ndarray) -> float:
        part = vertices[mask][:, horizontal]
        return float((part.max(axis=0) - part.min(axis=0)).max()) if len(part) else 0.0

    upper = width(t >= lo + 0.6 * height)  # the upper 40% in the +axis direction
    lower = width(t <= lo + 0.4 * height)
    if upper >= AUTO_SIGN_MIN_RATIO * lower:
        sign = 1
    elif lower >= AUTO_SIGN_MIN_RATIO * upper:
        sign = -1
    else:
        raise _fail(
            path,
            f"cannot decide which end of the {_AXES[up_axis]} axis is the head (widths of the two "
            f"ends {upper:.4g} and {lower:.4g} are too close; not an A-pose?); pass --up",
        )
    why = f"widest at the {_axis_name(up_axis, sign)} end: {max(upper, lower):.4g} vs {min(upper, lower):.4g}"
    return up_axis, sign, why


def _rotation(vertices: np.ndarray, up_axis: int, up_sign: int) -> np.ndarray:
    """Rotation R (rows = new X, Y, Z in old coordinates): up -> +Z, next-largest extent -> +X."""
    extent = vertices.max(axis=0) - vertices.min(axis=0)
    others = [a for a in range(3) if a != up_axis]
    x_axis = max(others, key=lambda a: (extent[a], -a))  # ties: the lower axis (x before y)
    z = np.zeros(3)
    z[up_axis] = up_sign
    x = np.zeros(3)
    x[x_axis] = 1.0
    y = np.cross(z, x)
    return np.stack([x, y, z])


def _describe_rotation(rot: np.ndarray) -> str:
    parts = []
    for new, row in zip("XYZ", rot):
        axis = int(np.argmax(np.abs(row)))
        parts.append(f"{_axis_name(axis, int(np.sign(row[axis])))}->+{new}")
    matrix = "[" + ", ".join("[" + ", ".join(f"{v:g}" for v in row) + "]" for row in rot + 0.0) + "]"
    return ", ".join(parts) + f" (new = R @ old, R = {matrix})"


def _decide_units(path: Path, units: str, height_raw: float) -> tuple[float, str]:
    if units != "auto":
        return UNIT_SCALES[units], f"units: {units} (given), height {height_raw:.4g} {units}"
    lo, hi = AUTO_HEIGHT_RANGE_M
    for name, scale in UNIT_SCALES.items():
        if lo <= height_raw * scale <= hi:
            return scale, f"units: {name} (auto, height {height_raw:.4g} {name})"
    raise _fail(
        path,
        f"cannot decide the units from the body height {height_raw:.4g} (expected about "
        f"{lo:g}-{hi:g} m, {100 * lo:g}-{100 * hi:g} cm or {1000 * lo:g}-{1000 * hi:g} mm); pass --units",
    )


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
        raise _fail(path, f"landmark file {landmarks_path} not found")
    return landmarks_path


def _read_landmarks(path: Path, lm_path: Path, known: Sequence[str] | None) -> dict[str, np.ndarray]:
    where = f"landmark file {lm_path.name}"
    try:
        text = lm_path.read_bytes()
    except OSError as exc:
        raise _fail(path, f"{where} cannot be read ({exc})") from exc
    try:
        data = json.loads(text.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _fail(path, f"{where} is not valid JSON ({exc})") from exc
    if not isinstance(data, Mapping):
        raise _fail(path, f'{where} must be a JSON object {{"name": [x, y, z], ...}}')
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
        raise _fail(path, f"{where}: values of {', '.join(sorted(bad))} are not [x, y, z] finite numbers")
    if known is not None:
        unknown = sorted(set(points) - set(known))
        if unknown:
            raise _fail(path, f"{where} names unknown landmarks: {', '.join(unknown)}")
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
        up: "auto" or the file's up axis: "z", "y", "x", "-z", "-y", "-x" (a "+" is allowed).
        landmarks_path: None (no landmarks), "auto" (``<stem>.landmarks.json`` or
            ``<stem>.json`` beside the mesh, if present) or a JSON file path.
        known_landmarks: landmark names allowed in the landmark file (None: any name).

    Raises:
        MeshInputError: the file (or its landmark file) cannot be imported.
        ValueError: bad ``units`` or ``up`` argument.
    """
    path = Path(path)
    if units not in ("auto", *UNIT_SCALES):
        raise ValueError(f"units must be 'auto', 'm', 'cm' or 'mm'; got {units!r}")
    up_given = _parse_up(up)
    if path.suffix.lower() not in MESH_EXTENSIONS:
        raise _fail(path, f"unsupported file type {path.suffix!r} (expected .obj, .ply or .off)")
    if not path.exists():
        raise _fail(path, "file not found")
    if not path.is_file():
        raise _fail(path, "not a file")
    if path.stat().st_size == 0:
        raise _fail(path, "file is empty")
    lm_file = _find_landmark_file(path, landmarks_path)

    notes: list[str] = []
    vertices, faces = _read_raw(path)
    n_in_v, n_in_f = len(vertices), len(faces)

    vertices, faces, n = _compact(vertices, faces)
    if n:
        notes.append(f"dropped {n} unreferenced vertices")
    if not np.isfinite(vertices).all():
        bad = int((~np.isfinite(vertices).all(axis=1)).sum())
        raise _fail(path, f"{bad} vertices have NaN or infinite coordinates")
    diag = float(np.linalg.norm(vertices.max(axis=0) - vertices.min(axis=0)))
    if diag == 0.0:
        raise _fail(path, "mesh has zero size (all vertices coincide)")

    vertices, faces, n = _merge_duplicates(vertices, faces, MERGE_TOLERANCE * diag)
    if n:
        notes.append(f"merged {n} duplicate vertices")
    faces, n_degenerate, n_duplicate = _drop_bad_faces(vertices, faces, diag)
    if n_degenerate:
        notes.append(f"dropped {n_degenerate} degenerate faces")
    if n_duplicate:
        notes.append(f"dropped {n_duplicate} duplicate faces")
    if len(faces) == 0:
        raise _fail(path, "mesh has no valid faces (all degenerate)")
    vertices, faces, n = _compact(vertices, faces)
    if n:
        notes.append(f"dropped {n} vertices used only by removed faces")
    vertices, faces = _keep_main_component(path, vertices, faces, notes)

    if up_given is None:
        up_axis, up_sign, why = _auto_up(path, vertices)
        up_note = f"up: {_axis_name(up_axis, up_sign)} (auto, largest extent, {why})"
    else:
        up_axis, up_sign = up_given
        up_note = f"up: {_axis_name(up_axis, up_sign)} (given)"
    rot = _rotation(vertices, up_axis, up_sign)
    height_raw = float(np.ptp(vertices[:, up_axis]))
    scale, units_note = _decide_units(path, units, height_raw)
    height = height_raw * scale
    if not MIN_HEIGHT_M <= height <= MAX_HEIGHT_M:
        raise _fail(
            path,
            f"absurd scale: body height {height:.4g} m with units={units} "
            f"(expected {MIN_HEIGHT_M:g}-{MAX_HEIGHT_M:g} m); check --units",
        )
    transform = scale * rot
    vertices = vertices @ transform.T
    notes.append(units_note + f" -> m (x{scale:g}), height {height:.3f} m")
    notes.append(up_note + "; rotation " + _describe_rotation(rot))
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
            raise _fail(
                path,
                f"landmark file {lm_file.name}: {', '.join(sorted(outside))} lie outside the mesh "
                "bounding box (landmarks must use the units and axes of the mesh file)",
            )
        notes.append(f"{len(landmarks)} landmarks from {lm_file.name}")

    kept = f"kept {len(vertices)} vertices, {len(faces)} faces"
    notes.insert(0, f"read {n_in_v} vertices, {n_in_f} faces; {kept}")
    return BodyMesh(vertices=vertices, faces=faces, name=path.stem, landmarks=landmarks, notes=tuple(notes))


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
