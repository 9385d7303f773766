"""Landmarks of anny bodies in any anny topology, transferred from the template.

anny's topologies are retopologies of one surface, so a template landmark (a template
vertex) has a fixed place on every other topology's surface: a face and barycentric
coordinates, found once on the mean body (``anny_bodies.template_points_on``) and shipped in
``shape/data/anny_landmarks.json`` so that registration never needs to build anny models.
Regenerate it with ``python tools/make_anny_landmarks.py`` after editing the landmarks.
"""

from __future__ import annotations

import functools
import json
from importlib import resources

import numpy as np

from bodyshape.shape.template import TEMPLATE_TOPOLOGY, Template


@functools.lru_cache(maxsize=1)
def _table() -> dict:
    path = resources.files("bodyshape.shape").joinpath("data", "anny_landmarks.json")
    with path.open("r") as f:
        return json.load(f)


def transferred_landmarks(topology: str, vertices: np.ndarray, faces: np.ndarray,
                          template: Template) -> dict:
    """Template landmarks on an anny body of ``topology``: name -> (3,) meters.

    Raises ValueError if the topology is unknown, the table was made for other landmarks,
    or the mesh does not have that topology's face count.
    """
    if topology == TEMPLATE_TOPOLOGY:
        return {n: vertices[i] for n, i in zip(template.landmark_names, template.landmark_indices)}
    table = _table()
    if table.get("template_hash") != template.hash:
        raise ValueError("anny_landmarks.json is stale: run tools/make_anny_landmarks.py")
    if topology not in table["topologies"]:
        raise ValueError(f"no landmark transfer for topology {topology!r}")
    entry = table["topologies"][topology]
    if len(faces) != entry["n_faces"]:
        raise ValueError(f"mesh has {len(faces)} faces, topology {topology} has {entry['n_faces']}")
    face = np.asarray(entry["face"], dtype=np.int64)
    bary = np.asarray(entry["bary"], dtype=np.float64)
    pos = np.einsum("pc,pcd->pd", bary, vertices[faces[face]])
    return dict(zip(template.landmark_names, pos))
