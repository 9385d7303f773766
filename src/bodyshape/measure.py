"""Tape-style body measurements on template-topology meshes.

A girth is what a tailor's tape reads: slice the body with a plane at a landmark, keep the
closed loop around the body part (not an arm that the same plane also cuts), and take the
perimeter of its convex hull, since a tape bridges concavities such as the navel or the
gap between the breasts. Definitions follow ISO 8559-1 where the mesh allows; see
docs/MEASUREMENTS.md.

This module never imports ``synth``, ``nets`` or ``train``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import trimesh
from matplotlib.path import Path as MplPath
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import ConvexHull, cKDTree

from bodyshape.shape.template import Template, load_template


def _plane_basis(normal: np.ndarray) -> np.ndarray:
    """(2, 3) orthonormal in-plane axes for a unit normal."""
    helper = np.array([1.0, 0.0, 0.0]) if abs(normal[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    u = np.cross(normal, helper)
    u /= np.linalg.norm(u)
    return np.stack([u, np.cross(normal, u)])


def slice_loops(vertices: np.ndarray, faces: np.ndarray, origin, normal) -> list[np.ndarray]:
    """Connected pieces of the plane section, each as (P, 2) in-plane points (meters).

    Points are expressed in the plane basis of ``_plane_basis(normal)`` relative to ``origin``.
    """
    normal = np.asarray(normal, float) / np.linalg.norm(normal)
    origin = np.asarray(origin, float)
    mesh = trimesh.Trimesh(vertices, faces, process=False)
    segs = trimesh.intersections.mesh_plane(mesh, normal, origin)  # (S, 2, 3)
    if len(segs) == 0:
        return []
    basis = _plane_basis(normal)
    pts = (segs.reshape(-1, 3) - origin) @ basis.T  # (2S, 2)
    # Segment endpoints from neighbouring faces coincide up to round-off: merge them to find
    # which segments chain into one loop.
    tree = cKDTree(pts)
    pairs = tree.query_pairs(1e-7, output_type="ndarray")
    n = len(pts)
    rows = np.concatenate([np.arange(0, n, 2), pairs[:, 0]])
    cols = np.concatenate([np.arange(1, n, 2), pairs[:, 1]])
    graph = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    return [pts[labels == k] for k in np.unique(labels)]


def convex_perimeter(points: np.ndarray) -> float:
    """Perimeter (m) of the convex hull of (P, 2) points."""
    if len(points) < 3:
        return 0.0
    return float(ConvexHull(points).area)  # in 2-D, scipy's "area" is the perimeter


def girth(vertices: np.ndarray, faces: np.ndarray, origin, normal=(0.0, 0.0, 1.0),
          inside=None) -> float:
    """Tape girth (m) of the loop cut by a plane.

    Args:
        vertices: (V, 3) meters. faces: (F, 3).
        origin: a point on the plane. normal: plane normal (default horizontal plane).
        inside: a point (3,) the loop must enclose (default ``origin``); if no loop encloses
            it, the loop nearest to it is used.
    Returns:
        Convex-hull perimeter in meters (0 if the plane misses the mesh).
    """
    normal = np.asarray(normal, float) / np.linalg.norm(normal)
    origin = np.asarray(origin, float)
    inside = origin if inside is None else np.asarray(inside, float)
    loops = slice_loops(vertices, faces, origin, normal)
    if not loops:
        return 0.0
    probe = (inside - origin) @ _plane_basis(normal).T
    best, best_d = None, np.inf
    for loop in loops:
        if len(loop) >= 3:
            hull = loop[ConvexHull(loop).vertices]
            if MplPath(hull).contains_point(probe):
                return convex_perimeter(loop)
        d = np.linalg.norm(loop - probe, axis=1).min()
        if d < best_d:
            best, best_d = loop, d
    return convex_perimeter(best)


@dataclass(frozen=True)
class BodyStats:
    """Summary measurements of a batch of bodies (all (B,) arrays, meters / m^3).

    stature: Z extent. volume: enclosed volume. chest, waist, hip: horizontal tape girths at
    the bust points, at the waist landmarks and at the buttocks' most prominent level.
    """

    stature: np.ndarray
    volume: np.ndarray
    chest: np.ndarray
    waist: np.ndarray
    hip: np.ndarray


def mesh_volume(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Enclosed volume (m^3) of closed meshes (..., V, 3) via the divergence theorem."""
    tri = vertices[..., faces, :]  # (..., F, 3, 3)
    return np.abs(np.einsum("...i,...i->...", tri[..., 0, :],
                            np.cross(tri[..., 1, :], tri[..., 2, :])).sum(-1) / 6.0)


def body_stats(vertices: np.ndarray, template: Template | None = None) -> BodyStats:
    """Stature, volume and chest/waist/hip girths of template-topology meshes (B, V, 3)."""
    t = template or load_template()
    vertices = np.asarray(vertices, np.float64)
    lm = {n: vertices[:, i] for n, i in zip(t.landmark_names, t.landmark_indices)}
    out = {"chest": [], "waist": [], "hip": []}
    for b, v in enumerate(vertices):
        centre = (lm["waist_front"][b] + lm["waist_back"][b]) / 2
        bust = (lm["bust_point_l"][b] + lm["bust_point_r"][b]) / 2
        hip_z = (lm["buttock_l"][b][2] + lm["buttock_r"][b][2]) / 2
        hip_c = np.array([centre[0], (lm["buttock_l"][b][1] + lm["asis_l"][b][1]) / 2, hip_z])
        out["chest"].append(girth(v, t.faces, [centre[0], centre[1], bust[2]]))
        out["waist"].append(girth(v, t.faces, centre))
        out["hip"].append(girth(v, t.faces, hip_c))
    return BodyStats(
        stature=np.ptp(vertices[..., 2], axis=-1),
        volume=mesh_volume(vertices, t.faces),
        **{k: np.array(v) for k, v in out.items()},
    )
