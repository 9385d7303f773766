"""Tape-style body measurements on template-topology meshes.

A girth is what a tailor's tape reads: slice the body with a plane at a landmark, keep the
closed loop around the body part (not an arm that the same plane also cuts), and take the
perimeter of its convex hull, since a tape bridges concavities such as the navel or the
gap between the breasts. ``measure_bodies`` gives the full set reported with a prediction
(height, chest, waist, hip, neck, shoulder width, arm length, inseam, thigh, calf, bicep,
wrist, in cm). Definitions follow ISO 8559-1 where the mesh allows; see docs/MEASUREMENTS.md.

This module never imports ``synth``, ``nets`` or ``train``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import ConvexHull, QhullError, cKDTree

from bodyshape.body import anthropometry as anthro
from bodyshape.body.anthropometry import Section
from bodyshape.body.anthropometry import mesh_volume as mesh_volume_t
from bodyshape.shape.template import Template

logger = logging.getLogger(__name__)


def _cross(a, b) -> tuple[float, float, float]:
    # Written out: np.cross costs ~30 us per call on 3-vectors, and a body's measurement
    # set builds ~60 plane bases.
    return (a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0])


def _plane_basis(normal: np.ndarray) -> np.ndarray:
    """(2, 3) orthonormal in-plane axes for a unit normal."""
    n = [float(x) for x in normal]
    helper = (1.0, 0.0, 0.0) if abs(n[0]) < 0.9 else (0.0, 1.0, 0.0)
    u = _cross(n, helper)
    norm = (u[0] * u[0] + u[1] * u[1] + u[2] * u[2]) ** 0.5
    u = (u[0] / norm, u[1] / norm, u[2] / norm)
    return np.array([u, _cross(n, u)])


def _plane_segments(vertices: np.ndarray, faces: np.ndarray, dist: np.ndarray) -> np.ndarray:
    """(S, 2, 3) cuts of the plane ``dist == 0`` through the triangles ``faces``.

    Plain numpy on the face and vertex arrays, with no mesh object built per slice:
    measuring one body takes 28 slices (counted in docs/BENCHMARKS.md, "Tape measurements").
    A vertex exactly on the plane counts as above it, so each cut triangle has one vertex
    alone on its side, and the cut joins the crossings of the two edges leaving that vertex.
    """
    d = dist[faces]  # (F, 3)
    up = d >= 0
    n_up = up.sum(axis=1)
    keep = (n_up == 1) | (n_up == 2)
    faces, d, up, n_up = faces[keep], d[keep], up[keep], n_up[keep]
    if len(faces) == 0:
        return np.zeros((0, 2, 3))
    # The lone vertex: the one up when a single vertex is up, else the one down.
    lone = np.where(n_up == 1, np.argmax(up, axis=1), np.argmin(up, axis=1))
    rows = np.arange(len(faces))
    out = np.empty((len(faces), 2, 3))
    for j, step in enumerate((1, 2)):
        a, b = lone, (lone + step) % 3
        da, db = d[rows, a], d[rows, b]
        va, vb = vertices[faces[rows, a]], vertices[faces[rows, b]]
        t = da / (da - db)
        out[:, j] = va + t[:, None] * (vb - va)
    return out


def slice_loops(vertices: np.ndarray, faces: np.ndarray, origin, normal) -> list[np.ndarray]:
    """Connected pieces of the plane section, each as (P, 2) in-plane points (meters).

    Points are expressed in the plane basis of ``_plane_basis(normal)`` relative to ``origin``;
    rows 2k and 2k+1 of a piece are the two ends of one segment (the cut through one triangle).
    """
    normal = np.asarray(normal, float) / np.linalg.norm(normal)
    origin = np.asarray(origin, float)
    # Only triangles that reach both sides of the plane can be cut: cutting just those (a few
    # hundred of ~27k) in _plane_segments gives the same segments several times faster.
    dist = (vertices - origin) @ normal  # (V,) signed distances
    # Per vertex bit 1: on or below the plane, bit 2: on or above; a face is cut when its
    # vertices' bits OR to 3. One (F, 3) gather of the codes costs half of gathering the two
    # booleans (0.12 vs 0.22 ms per slice); column ORs, since numpy's reductions over a
    # length-3 axis are several times slower.
    code = (dist <= 0).view(np.uint8) | ((dist >= 0).view(np.uint8) << 1)
    c = code[faces]  # (F, 3)
    faces = faces[(c[:, 0] | c[:, 1] | c[:, 2]) == 3]
    if len(faces) == 0:
        return []
    segs = _plane_segments(vertices, faces, dist)  # (S, 2, 3)
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


def pick_loop(loops: list[np.ndarray], probe: np.ndarray) -> np.ndarray | None:
    """The loop whose convex hull encloses ``probe`` (2,), else the loop nearest to it.

    Loops are in-plane (P, 2) point sets as returned by :func:`slice_loops`; None if empty.
    """
    return _pick_loop(loops, probe)[0]


def _pick_loop(loops: list[np.ndarray], probe: np.ndarray
               ) -> tuple[np.ndarray | None, ConvexHull | None]:
    """:func:`pick_loop`'s loop and, when its hull encloses the probe, that hull (whose
    ``area`` is the perimeter: the caller need not build it again)."""
    best, best_d = None, np.inf
    for loop in loops:
        # A hull lies inside its loop's bounding box: no hull for loops whose box misses
        # the probe, such as a torso section's arms (speed: see _face_bounds).
        if (len(loop) >= 3 and np.all(loop.min(axis=0) <= probe)
                and np.all(probe <= loop.max(axis=0))):
            try:
                hull = ConvexHull(loop)
            except QhullError:  # a degenerate (collinear) sliver cannot enclose anything
                hull = None
            # Inside the hull: on the inner side of every facet (normal . p + offset <= 0).
            if hull is not None and np.all(hull.equations[:, :2] @ probe
                                           + hull.equations[:, 2] <= 0.0):
                return loop, hull
        d = np.linalg.norm(loop - probe, axis=1).min()
        if d < best_d:
            best, best_d = loop, d
    return best, None


def _clip_loop(loop: np.ndarray, direction: np.ndarray, offset: float) -> np.ndarray:
    """The part of an in-plane loop (P, 2) where ``q @ direction >= offset``, plus the loop's
    crossings of that line (so that its hull closes with a straight chord)."""
    seg = loop.reshape(-1, 2, 2)  # slice_loops keeps segment endpoints as consecutive rows
    s = seg @ direction - offset  # (S, 2)
    cross = (s[:, 0] * s[:, 1]) < 0
    t = s[cross, 0] / (s[cross, 0] - s[cross, 1])
    hits = seg[cross, 0] + t[:, None] * (seg[cross, 1] - seg[cross, 0])
    return np.concatenate([seg.reshape(-1, 2)[s.reshape(-1) >= 0], hits])


def girth_loop(vertices: np.ndarray, faces: np.ndarray, origin, normal=(0.0, 0.0, 1.0),
               inside=None, keep_side=None) -> np.ndarray:
    """The in-plane points (P, 2) whose convex hull is the tape of :func:`girth` (same
    arguments), in the basis ``_plane_basis(normal)`` about ``origin``; (0, 2) if the plane
    misses the mesh."""
    return _girth_loop(vertices, faces, origin, normal, inside, keep_side)[0]


def _girth_loop(vertices: np.ndarray, faces: np.ndarray, origin, normal, inside, keep_side
                ) -> tuple[np.ndarray, ConvexHull | None]:
    """:func:`girth_loop` and, if already built, the convex hull of its points."""
    normal = np.asarray(normal, float) / np.linalg.norm(normal)
    origin = np.asarray(origin, float)
    inside = origin if inside is None else np.asarray(inside, float)
    loops = slice_loops(vertices, faces, origin, normal)
    if not loops:
        return np.zeros((0, 2)), None
    basis = _plane_basis(normal)
    loop, hull = _pick_loop(loops, (inside - origin) @ basis.T)
    if keep_side is not None:
        point, direction = (np.asarray(a, float) for a in keep_side)
        # In-plane point q lies at origin + q @ basis: it is on the kept side where
        # q @ (basis @ direction) >= (point - origin) @ direction.
        d2 = basis @ direction
        if np.linalg.norm(d2) > 1e-9 * np.linalg.norm(direction):
            loop, hull = _clip_loop(loop, d2, float((point - origin) @ direction)), None
    return loop, hull


def girth(vertices: np.ndarray, faces: np.ndarray, origin, normal=(0.0, 0.0, 1.0),
          inside=None, keep_side=None) -> float:
    """Tape girth (m) of the loop cut by a plane.

    Args:
        vertices: (V, 3) meters. faces: (F, 3).
        origin: a point on the plane. normal: plane normal (default horizontal plane).
        inside: a point (3,) the loop must enclose (default ``origin``); if no loop encloses
            it, the loop nearest to it is used.
        keep_side: optional ``(point, direction)`` (two (3,) vectors): where the chosen loop
            reaches across the plane through ``point`` normal to ``direction`` (two thighs
            that touch, an arm against the chest), only its part on the ``direction`` side
            counts, closed by a straight chord as a tape pulled between them would be.
    Returns:
        Convex-hull perimeter in meters (0 if the plane misses the mesh).
    """
    loop, hull = _girth_loop(vertices, faces, origin, normal, inside, keep_side)
    return convex_perimeter(loop) if hull is None else float(hull.area)


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
    """Enclosed volume (m^3) of closed meshes (..., V, 3) (``body.anthropometry``)."""
    v = torch.as_tensor(np.array(vertices, np.float64))
    return mesh_volume_t(v, torch.as_tensor(np.array(faces, np.int64))).numpy()


def _landmarks(vertices: np.ndarray, t: Template) -> dict[str, np.ndarray]:
    """Named landmark positions of a batch (B, V, 3): name -> (B, 3)."""
    return {n: vertices[:, i] for n, i in zip(t.landmark_names, t.landmark_indices)}


def _torso_girths(v: np.ndarray, faces: np.ndarray, lm: dict[str, np.ndarray]) -> dict:
    """Horizontal chest, waist and hip girths (m) of one body; ``lm``: name -> (3,)."""
    sections = girth_sections(lm)
    return {k: section_girth(v, faces, sections[k]) for k in ("chest", "waist", "hip")}


def body_stats(vertices: np.ndarray, template: Template) -> BodyStats:
    """Stature, volume and chest/waist/hip girths of template-topology meshes (B, V, 3);
    ``template`` (``BodyModel.template``) supplies the faces and landmarks."""
    vertices = np.asarray(vertices, np.float64)
    lm = _landmarks(vertices, template)
    rows = [_torso_girths(v, template.faces, {k: p[b] for k, p in lm.items()})
            for b, v in enumerate(vertices)]
    return BodyStats(
        stature=np.ptp(vertices[..., 2], axis=-1),
        volume=mesh_volume(vertices, template.faces),
        **{k: np.array([r[k] for r in rows]) for k in ("chest", "waist", "hip")},
    )


# ---------------------------------------------------------------------------------------------
# The full tape-measurement set (docs/MEASUREMENTS.md gives each definition and its ISO term).

MEASUREMENT_NAMES = ("height_cm", "chest_cm", "waist_cm", "hip_cm", "neck_cm",
                     "shoulder_width_cm", "arm_length_cm", "inseam_cm", "thigh_cm", "calf_cm",
                     "bicep_cm", "wrist_cm")

# Calf scan levels, as fractions of the knee-to-ankle height above calf_back (the most
# posterior calf point, which on anny bodies lies a few cm below the widest level).
CALF_SCAN = np.linspace(-0.10, 0.25, 8)


@dataclass(frozen=True)
class Measurements:
    """Tape measurements of a batch of bodies: each field is a (B,) float64 array in cm.

    Field names and order are ``MEASUREMENT_NAMES``; girths average left and right where the
    body has two. See docs/MEASUREMENTS.md for the definitions.
    """

    height_cm: np.ndarray
    chest_cm: np.ndarray
    waist_cm: np.ndarray
    hip_cm: np.ndarray
    neck_cm: np.ndarray
    shoulder_width_cm: np.ndarray
    arm_length_cm: np.ndarray
    inseam_cm: np.ndarray
    thigh_cm: np.ndarray
    calf_cm: np.ndarray
    bicep_cm: np.ndarray
    wrist_cm: np.ndarray

    def as_dicts(self) -> list[dict[str, float]]:
        """One ``{name: value in cm rounded to 0.1}`` dict per body, names in standard order."""
        cols = [np.asarray(getattr(self, n)) for n in MEASUREMENT_NAMES]
        return [{n: round(float(c[b]), 1) for n, c in zip(MEASUREMENT_NAMES, cols)}
                for b in range(len(cols[0]))]


def limb_plane(proximal, distal, at: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """The plane perpendicular to a limb axis, ``(origin (3,), unit normal (3,))`` in meters
    (``body.anthropometry.limb_plane``)."""
    o, n = anthro.limb_plane(torch.as_tensor(np.asarray(proximal, float)),
                             torch.as_tensor(np.asarray(distal, float)), at)
    return o.numpy(), n.numpy()


def limb_girth(vertices: np.ndarray, faces: np.ndarray, proximal, distal, at: float = 0.5,
               keep_side=None) -> float:
    """Tape girth (m) of a limb, perpendicular to the axis ``proximal`` -> ``distal``.

    The plane is :func:`limb_plane`; the loop kept is the one around the axis point, so the
    torso or other limbs cut by the same (infinite) plane are ignored. ``keep_side`` as in
    :func:`girth`. vertices: (V, 3) meters; faces: (F, 3).
    """
    origin, normal = limb_plane(proximal, distal, at)
    return girth(vertices, faces, origin, normal, keep_side=keep_side)


def _joint_centres(lm: dict[str, np.ndarray], side: str) -> dict[str, np.ndarray]:
    """Elbow, wrist, knee and ankle centres (3,) of one side (``body.anthropometry``)."""
    return {k: v.numpy() for k, v in anthro.joint_centres(
        {k: torch.as_tensor(v) for k, v in lm.items()}, side).items()}


def _side_direction(lm: dict[str, np.ndarray], side: str) -> np.ndarray:
    """Unit x vector (3,) pointing to ``side`` (``body.anthropometry.side_direction``)."""
    return anthro.side_direction({k: torch.as_tensor(lm[k]) for k in (f"acromion_{side}",
                                                                       "crotch")}, side).numpy()


def girth_sections(lm: dict[str, np.ndarray]) -> dict[str, Section]:
    """The section planes of one body (``body.anthropometry.girth_sections``) from its
    landmarks (name -> (3,)), as numpy: Section fields (3,) float64 arrays or None."""
    # A copy: landmarks may be read-only views (torch warns on those).
    sections = anthro.girth_sections({k: torch.tensor(v) for k, v in lm.items()})
    return {k: Section(*(None if x is None else x.numpy() for x in
                         (s.origin, s.normal, s.keep_point, s.keep_dir)))
            for k, s in sections.items()}


def section_girth(vertices: np.ndarray, faces: np.ndarray, section: Section) -> float:
    """:func:`girth` at a numpy :class:`Section` (:func:`girth_sections`), meters."""
    keep = None if section.keep_point is None else (section.keep_point, section.keep_dir)
    return girth(vertices, faces, section.origin, section.normal, keep_side=keep)


def band_hull_girth(vertices: np.ndarray, faces: np.ndarray, z: float) -> float:
    """Hull perimeter (m) of every cut of the horizontal plane at height ``z`` through
    ``faces``: the tape girth when those faces hold a single loop at that level (one lower
    leg; tested equal to :func:`girth` there)."""
    segs = _plane_segments(vertices, faces, vertices[:, 2] - z)  # (S, 2, 3)
    return convex_perimeter(segs.reshape(-1, 3)[:, :2]) if len(segs) else 0.0


def _face_bounds(v: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray,
                                                               np.ndarray]:
    """Per face: centroid (F, 3), lowest and highest z (F,) each; shared by both calf scans.

    Column sums and pairwise minima: numpy's mean/min/max over a length-3 axis is several
    times slower. With the hull changes of :func:`_pick_loop` this took a body's CPU time
    from 38.8 to 24.1 ms (``benchmarks/bench_measure.py``)."""
    c0, c1, c2 = v[faces[:, 0]], v[faces[:, 1]], v[faces[:, 2]]
    z0, z1, z2 = c0[:, 2], c1[:, 2], c2[:, 2]
    return ((c0 + c1 + c2) / 3.0, np.minimum(np.minimum(z0, z1), z2),
            np.maximum(np.maximum(z0, z1), z2))


def _calf_girth(v: np.ndarray, faces: np.ndarray, lm: dict[str, np.ndarray], side: str,
                bounds: tuple[np.ndarray, np.ndarray, np.ndarray]) -> float:
    """Largest horizontal lower-leg girth (m) over levels around calf_back.

    ``bounds``: :func:`_face_bounds` of ``faces``."""
    c = _joint_centres(lm, side)
    knee, ankle = c["knee"], c["ankle"]
    span = knee[2] - ankle[2]

    zs = lm[f"calf_back_{side}"][2] + CALF_SCAN * span
    # Every scan level cuts only faces inside the scanned band: slicing that band (a few
    # percent of the body's faces) instead of the whole mesh makes the ~9 slices of each
    # calf several times cheaper, with identical loops.
    lo, hi = zs.min() - 0.5 * (zs[1] - zs[0]), zs.max() + 0.5 * (zs[1] - zs[0])
    centroid, zlo, zhi = bounds
    # Only this leg's side of the body: in the canonical A-pose the legs stand apart and the
    # hands end above the knees, so each level cuts exactly one loop there, the lower leg,
    # and its tape girth is the hull of all cut points (no loop search needed).
    out_dir = _side_direction(lm, side)
    this_side = (centroid - lm["crotch"]) @ out_dir > 0
    band = faces[(zhi >= lo) & (zlo <= hi) & this_side]

    def at(z: float) -> float:
        return band_hull_girth(v, band, z)

    g = np.array([at(z) for z in zs])
    k = int(np.argmax(g))
    if 0 < k < len(g) - 1:
        # One more slice at the vertex of the parabola through the best three levels, so the
        # value varies smoothly with the body instead of jumping between scan levels.
        den = g[k - 1] - 2 * g[k] + g[k + 1]
        if den < 0:
            z = zs[k] + 0.5 * (g[k - 1] - g[k + 1]) / den * (zs[1] - zs[0])
            return float(max(g[k], at(z)))
    return float(g[k])


def _measure_one(v: np.ndarray, faces: np.ndarray, lm: dict[str, np.ndarray]) -> dict:
    """All measurements of one body, keyed by ``MEASUREMENT_NAMES`` but still in meters.

    v: (V, 3) meters; lm: landmark name -> (3,).
    """
    floor = v[:, 2].min()
    sections = girth_sections(lm)
    out = {f"{k}_cm": section_girth(v, faces, sections[k])
           for k in ("chest", "waist", "hip", "neck")}
    out["height_cm"] = v[:, 2].max() - floor
    out["shoulder_width_cm"] = np.linalg.norm(lm["acromion_l"] - lm["acromion_r"])
    out["inseam_cm"] = lm["crotch"][2] - floor
    per_side = {k: [] for k in ("arm_length_cm", "thigh_cm", "calf_cm", "bicep_cm", "wrist_cm")}
    bounds = _face_bounds(v, faces)  # for both calf scans
    for side in ("l", "r"):
        c = _joint_centres(lm, side)
        acromion, elbow_out = lm[f"acromion_{side}"], lm[f"elbow_lateral_{side}"]
        per_side["arm_length_cm"].append(np.linalg.norm(elbow_out - acromion)
                                         + np.linalg.norm(lm[f"ulnar_styloid_{side}"] - elbow_out))
        per_side["bicep_cm"].append(section_girth(v, faces, sections[f"bicep_{side}"]))
        per_side["wrist_cm"].append(limb_girth(v, faces, c["elbow"], c["wrist"], 1.0))
        per_side["thigh_cm"].append(section_girth(v, faces, sections[f"thigh_{side}"]))
        per_side["calf_cm"].append(_calf_girth(v, faces, lm, side, bounds))
    out.update({k: np.mean(vals) for k, vals in per_side.items()})
    return out


def measure_bodies(vertices: np.ndarray, template: Template) -> Measurements:
    """The tape-measurement set of template-topology meshes.

    Args:
        vertices: (B, V, 3) meters, canonical A-pose, Z up, facing -Y (the template frame).
        template: the template supplying faces and landmarks (``BodyModel.template``).
    Returns:
        :class:`Measurements`, every field (B,) in centimeters.
    """
    t = template
    vertices = np.asarray(vertices, np.float64)
    if vertices.ndim != 3 or vertices.shape[1:] != t.vertices.shape:
        raise ValueError(f"expected (B, {len(t.vertices)}, 3) vertices, got {vertices.shape}")
    lm = _landmarks(vertices, t)
    rows = []
    for b, v in enumerate(vertices):
        row = _measure_one(v, t.faces, {k: p[b] for k, p in lm.items()})
        missed = [k for k, x in row.items() if not x > 0]
        if missed:  # a slice that misses the mesh reads 0: a broken or far-off-pose mesh
            logger.warning("body %d: no section for %s", b, ", ".join(missed))
        rows.append(row)
    return Measurements(**{n: 100.0 * np.array([r[n] for r in rows], np.float64)
                           for n in MEASUREMENT_NAMES})
