"""Reading a mesh file as stored and cleaning it: the first step of
:func:`bodyshape.shape.meshio.load_body_mesh`.

Cleaning (:func:`clean_mesh`; each repair is recorded in a note):

1. drop unreferenced (junk) vertices;
2. merge duplicate vertices (exactly equal or closer than 1e-7 of the bounding-box diagonal,
   e.g. OBJ vertices split at texture seams);
3. drop degenerate faces (repeated vertex, zero area) and duplicate faces;
4. keep the largest connected component when the others are small debris (see
   :data:`SMALL_COMPONENT_SHARE`), refuse meshes of several bodies or fragmented scans.

Everything that cannot be imported is refused with a :class:`MeshInputError` (made by
:func:`input_error`) whose one-line message starts with the file name.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

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


class MeshInputError(ValueError):
    """A mesh (or its landmark file) that cannot be imported; one-line message, file name first."""


def input_error(path: Path, message: str) -> MeshInputError:
    """The error to raise for ``path``: its file name, then ``message`` on one line."""
    text = " ".join(f"{path.name}: {message}".split())
    return MeshInputError(text)


# ---------------------------------------------------------------------------------------------
# reading


def read_raw(path: Path) -> tuple[np.ndarray, np.ndarray]:
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
        raise input_error(path, f"cannot read {ext} file ({type(exc).__name__}: {exc})") from exc
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
            raise input_error(path, f"no mesh data could be read (empty, corrupt or not a {ext} file)")
        raise input_error(path, f"mesh has no faces ({n_points} vertices only: a point cloud?)")
    if vertices.ndim != 2 or vertices.shape[1] != 3 or faces.ndim != 2 or faces.shape[1] != 3:
        raise input_error(path, f"unexpected array shapes: vertices {vertices.shape}, faces {faces.shape}")
    faces = faces.astype(np.int64)
    if faces.min() < 0 or faces.max() >= len(vertices):
        raise input_error(path, "faces reference vertices that do not exist")
    return vertices, faces


# ---------------------------------------------------------------------------------------------
# cleaning


def compact(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Drop vertices no face uses; returns the number dropped."""
    used = np.zeros(len(vertices), dtype=bool)
    used[faces.ravel()] = True
    n_dropped = int(len(vertices) - used.sum())
    if n_dropped == 0:
        return vertices, faces, 0
    new_index = np.cumsum(used) - 1
    return vertices[used], new_index[faces], n_dropped


def merge_duplicates(vertices: np.ndarray, faces: np.ndarray, tol: float):
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


def drop_bad_faces(vertices: np.ndarray, faces: np.ndarray, diag: float):
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


def keep_main_component(path: Path, vertices, faces, notes: list[str]):
    labels = _components(len(vertices), faces)
    sizes = np.bincount(labels)
    if len(sizes) == 1:
        return vertices, faces
    order = np.argsort(-sizes, kind="stable")
    shares = sizes[order] / len(vertices)
    shares_text = ", ".join(f"{100 * s:.1f}%" for s in shares[:5]) + (", ..." if len(shares) > 5 else "")
    n_significant = int((shares >= TINY_COMPONENT_SHARE).sum())
    if n_significant > MAX_SIGNIFICANT_COMPONENTS:
        raise input_error(
            path,
            f"mesh is fragmented: {n_significant} significant connected components "
            f"(vertex shares {shares_text}); expected one body",
        )
    if shares[1] >= SMALL_COMPONENT_SHARE:
        raise input_error(
            path,
            f"mesh has {int((shares >= SMALL_COMPONENT_SHARE).sum())} large connected components "
            f"(vertex shares {shares_text}); expected one body",
        )
    dropped = 1.0 - shares[0]
    if dropped > MAX_DROPPED_SHARE:
        raise input_error(
            path,
            f"the largest connected component holds only {100 * shares[0]:.1f}% of the vertices "
            f"({len(sizes)} components); expected one body",
        )
    keep_faces = faces[labels[faces[:, 0]] == order[0]]
    vertices, keep_faces, n_dropped = compact(vertices, keep_faces)
    notes.append(
        f"dropped {len(sizes) - 1} small connected component(s) ({n_dropped} vertices, "
        f"{100 * dropped:.2f}%), kept the largest"
    )
    return vertices, keep_faces


def clean_mesh(path: Path, vertices: np.ndarray, faces: np.ndarray, notes: list[str]):
    """Steps 1-4 of the module doc on a mesh as read; appends to ``notes``, returns the
    cleaned (vertices, faces)."""
    vertices, faces, n = compact(vertices, faces)
    if n:
        notes.append(f"dropped {n} unreferenced vertices")
    if not np.isfinite(vertices).all():
        bad = int((~np.isfinite(vertices).all(axis=1)).sum())
        raise input_error(path, f"{bad} vertices have NaN or infinite coordinates")
    diag = float(np.linalg.norm(vertices.max(axis=0) - vertices.min(axis=0)))
    if diag == 0.0:
        raise input_error(path, "mesh has zero size (all vertices coincide)")

    vertices, faces, n = merge_duplicates(vertices, faces, MERGE_TOLERANCE * diag)
    if n:
        notes.append(f"merged {n} duplicate vertices")
    faces, n_degenerate, n_duplicate = drop_bad_faces(vertices, faces, diag)
    if n_degenerate:
        notes.append(f"dropped {n_degenerate} degenerate faces")
    if n_duplicate:
        notes.append(f"dropped {n_duplicate} duplicate faces")
    if len(faces) == 0:
        raise input_error(path, "mesh has no valid faces (all degenerate)")
    vertices, faces, n = compact(vertices, faces)
    if n:
        notes.append(f"dropped {n} vertices used only by removed faces")
    vertices, faces = keep_main_component(path, vertices, faces, notes)
    return vertices, faces
