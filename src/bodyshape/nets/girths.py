"""Differentiable tape girths for the training loss (a surrogate of ``measure.py``).

``measure.py`` is the one definition of the reported girths: slice the body with a plane
placed by its landmarks, pick the loop, take the convex hull's perimeter. Slicing is not
differentiable, so training uses a surrogate built once from that definition on the mean
body: for each plane-section girth (``measure.girth_sections``) the mesh edges that the
plane cuts in the loop ``measure.py`` keeps, each with the fraction ``t`` where it is cut.
On any body of the same topology the surrogate cuts those edges with the body's own
section plane (``body.anthropometry.girth_sections``, placed by its landmarks, as
``measure.py`` places it), and returns the perimeter of the cut points' convex hull. The
hull's choice of points is made on detached values (scipy's Qhull); the perimeter is
differentiable in every point it keeps.

The two differ where the body's plane cuts other edges than the mean body's does (an edge
no longer cut keeps its nearer end); their agreement on sampled bodies is measured by
``benchmarks/bench_measure.py`` (docs/BENCHMARKS.md).
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.spatial import ConvexHull, QhullError, cKDTree
from torch import Tensor, nn

from bodyshape.body.anthropometry import girth_sections
from bodyshape.measure import _plane_basis, girth_loop

GIRTH_NAMES = ("chest", "waist", "hip", "neck", "thigh", "bicep")
"""Girths the surrogate gives, in this order; thigh and bicep average left and right, as
``measure.measure_bodies`` does."""
_SECTIONS = {"chest": ("chest",), "waist": ("waist",), "hip": ("hip",), "neck": ("neck",),
             "thigh": ("thigh_l", "thigh_r"), "bicep": ("bicep_l", "bicep_r")}


def _cut_edges(vertices: np.ndarray, faces: np.ndarray, origin: np.ndarray,
               normal: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mesh edges cut by a plane: (a (E,), b (E,), t (E,)), the cut at (1 - t) v_a + t v_b."""
    edges = np.unique(np.sort(faces[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2), axis=1), axis=0)
    d = (vertices - origin) @ normal
    up = d >= 0  # as measure._plane_segments: a vertex on the plane counts as above
    cut = up[edges[:, 0]] != up[edges[:, 1]]
    a, b = edges[cut, 0], edges[cut, 1]
    return a, b, d[a] / (d[a] - d[b])


class SurrogateGirths(nn.Module):
    """Meshes (B, V, 3) meters -> girths (B, len(GIRTH_NAMES)) meters (module docs).

    Args:
        mean_vertices: (V, 3) the body the loops are taken on (the shape model's mean).
        template: the template (faces, landmark names and indices).
    """

    def __init__(self, mean_vertices: np.ndarray, template) -> None:
        super().__init__()
        mean = np.asarray(mean_vertices, np.float64)
        faces = np.asarray(template.faces)
        self.landmark_names = tuple(template.landmark_names)
        lm_idx = np.array(template.landmark_indices)
        sections = girth_sections({n: torch.from_numpy(mean[i])
                                   for n, i in zip(self.landmark_names, lm_idx)})
        self.section_names = [s for g in GIRTH_NAMES for s in _SECTIONS[g]]
        edges = []
        for name in self.section_names:
            sec = sections[name]
            normal = sec.normal.numpy()
            basis = _plane_basis(normal)
            keep = None if sec.keep_point is None else (sec.keep_point.numpy(),
                                                        sec.keep_dir.numpy())
            loop = girth_loop(mean, faces, sec.origin.numpy(), normal, keep_side=keep)
            a, b, t = _cut_edges(mean, faces, sec.origin.numpy(), normal)
            cuts = mean[a] + t[:, None] * (mean[b] - mean[a])
            # The loop's points are exactly these cuts (the chord ends of a clipped loop are
            # not, and are dropped: the hull closes over the gap by itself).
            dist, idx = cKDTree(cuts).query(sec.origin.numpy() + loop @ basis)
            keep = np.unique(idx[dist < 1e-7])
            if len(keep) < 3:
                raise ValueError(f"the {name} section of the mean body has no loop")
            edges.append((a[keep], b[keep], t[keep], basis))
        # Everything below reads these few hundred vertices, gathered once: indexing the
        # full (B, V, 3) batch per landmark and per edge made the backward pass fill a
        # full-size gradient for each (measured: 0.26 s per batch of 32, now a few ms).
        used, inverse = np.unique(np.concatenate([lm_idx] + [np.concatenate(e[:2])
                                                             for e in edges]),
                                  return_inverse=True)
        self.register_buffer("used", torch.from_numpy(used))
        pos = iter(np.split(inverse, np.cumsum([len(lm_idx)] + [2 * len(e[0])
                                                                 for e in edges])[:-1]))
        self.register_buffer("landmarks", torch.from_numpy(next(pos)))
        for k, (a, b, t, basis) in enumerate(edges):
            ab = next(pos)
            self.register_buffer(f"a{k}", torch.from_numpy(ab[:len(a)]))
            self.register_buffer(f"b{k}", torch.from_numpy(ab[len(a):]))
            self.register_buffer(f"t{k}", torch.from_numpy(t).float())
            self.register_buffer(f"basis{k}", torch.from_numpy(basis).float())

    def _landmarks(self, sub: Tensor) -> dict[str, Tensor]:
        return {n: sub[:, i] for n, i in zip(self.landmark_names, self.landmarks)}

    def section_points(self, sub: Tensor, k: int, section) -> Tensor:
        """(B, N, 2) in-plane points of section ``k`` (``section_names[k]``), meters: where
        its edges cross the body's own plane ``section`` (``girth_sections``, (B, 3)
        fields), in the mean body's plane axes. ``sub``: (B, U, 3) the ``used`` vertices."""
        vertices = sub
        a, b = getattr(self, f"a{k}"), getattr(self, f"b{k}")
        va, vb = vertices[:, a], vertices[:, b]  # (B, N, 3)
        o, n = section.origin[:, None], section.normal[:, None]
        da, db = ((va - o) * n).sum(-1), ((vb - o) * n).sum(-1)
        den = da - db
        # An edge that the body's plane no longer crosses keeps its nearer end (t clamped);
        # one parallel to it keeps the mean body's fraction.
        t_mean = getattr(self, f"t{k}").to(vertices.dtype).expand_as(da)
        ok = den.abs() > 1e-9
        t = torch.where(ok, da / torch.where(ok, den, torch.ones_like(den)), t_mean)
        t = t.clamp(0.0, 1.0)[..., None]
        p = va + t * (vb - va)
        return p @ getattr(self, f"basis{k}").to(vertices.dtype).T

    def forward(self, vertices: Tensor) -> Tensor:
        if vertices.ndim != 3 or vertices.shape[-1] != 3:
            raise ValueError(f"vertices must be (B, V, 3), got {tuple(vertices.shape)}")
        sub = vertices[:, self.used]
        sections = girth_sections(self._landmarks(sub))
        per_section = {}
        for k, name in enumerate(self.section_names):
            q = self.section_points(sub, k, sections[name])  # (B, N, 2)
            per_section[name] = _hull_perimeters(q)
        return torch.stack([torch.stack([per_section[s] for s in _SECTIONS[g]]).mean(0)
                            for g in GIRTH_NAMES], dim=1)


def _hull_perimeters(q: Tensor) -> Tensor:
    """Convex-hull perimeters (B,) of point sets (B, N, 2), differentiable in the points.

    Qhull picks each hull's points on detached values; the perimeter is then one batched
    gather: every hull's ring is closed and padded by repeating its first point, so the
    padding adds zero-length sides.
    """
    pts = q.detach().cpu().double().numpy()
    rings = []
    for p in pts:
        try:
            h = ConvexHull(p).vertices
        except QhullError:  # a collapsed section: every point (a degenerate tape)
            h = np.arange(len(p))
        rings.append(np.concatenate([h, h[:1]]))
    width = max(len(r) for r in rings)
    idx = np.stack([np.concatenate([r, np.full(width - len(r), r[0])]) for r in rings])
    idx_t = torch.as_tensor(idx, device=q.device)[..., None].expand(-1, -1, 2)
    ring = torch.gather(q, 1, idx_t)  # (B, width, 2)
    return (ring[:, 1:] - ring[:, :-1]).norm(dim=-1).sum(-1)
