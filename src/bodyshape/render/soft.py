"""Differentiable soft silhouettes in pure torch, cheap enough for the CPU.

Used for a silhouette re-projection IoU loss during training, where pytorch3d is not
available. Conventions are those of ``bodyshape.render`` (OpenCV camera axes, pixel (row i,
column j) covering ``[j, j+1] x [i, i+1]`` with its centre at ``(j + 0.5, i + 0.5)``).

Two ways to turn a mesh into probabilities at the pixel centres (``aggregate``):

``"softras"`` (Liu et al., "Soft Rasterizer", 2019): every triangle j gives each pixel centre
p the probability ``D_j(p) = sigmoid(s_j(p) d_j(p)^2 / sigma)``, where d_j is the distance
from p to the triangle's boundary in pixels and s_j = +1 inside, -1 outside, and
``A(p) = 1 - prod_j (1 - D_j(p))``. Its 0.5 level is NOT the mesh outline: every triangle
within a pixel or so adds probability, and a body mesh has several (foreshortened slivers)
along its contour, so the thresholded silhouette is fattened by ~0.4 px all round (+20 % area
at 64 px, +8 % at 128 px for sigma 0.1 on the coarse body; less for a smaller sigma). Two
front triangles sharing an interior edge also give A = 0.75 on it.

``"contour"``: ``A(p) = 1/2 + c(p) (1/2 - T(d(p)^2 / sigma))`` with c(p) = +1 where the
pixel centre is covered by the exact silhouette (``raster.rasterize_silhouette``), -1
elsewhere, d(p) the distance to the nearest contour edge, and T a truncated sigmoid
(``T(0) = 1/2``, ``T(x) = 0`` for ``x >= cutoff``). Contour edges are those where the
projected surface does not continue across: boundary edges (one face) and folds (both faces'
opposite corners on the same side of the edge). The boundary of a union of triangles lies
on such edges, so d is exactly the distance to the silhouette outline from outside, the 0.5
level is the exact outline (thresholding gives the exact silhouette), and A is continuous
in the vertices up to ~1e-4 jumps (see ``_contour``). Folds hidden inside the silhouette (an
arm in front of the torso, an ear) would dip to 0.5 along a ~0.3 px wide line, as every
interior edge does with "softras"; covered pixels farther than ceil(r) pixels (below) from
any uncovered centre are therefore set to 1, so only hidden folds near the outline remain.
The coverage is computed on the CPU with numba (a device round trip for GPU tensors).

Cost: a dense pixel x face evaluation is H*W*F pairs (~40 s and 16 GB for a batch of 16 at
128 px). Both modes only visit, per triangle (or contour edge), the pixel centres of its
bounding box grown by ``r = sqrt(cutoff * sigma)`` (1 px for the defaults), enumerated
exactly with integer arithmetic, and accumulate into the image with ``index_add`` (sum of
log(1 - D), "softras") or ``scatter_reduce`` (min of d^2, "contour"). Probabilities are
truncated smoothly at the cutoff, so the result does not depend on which pixels the windows
happen to cover: "softras" uses ``D~ = max(0, (D - D0) / (1 - D0))`` with
``D0 = sigmoid(-cutoff)`` (4.5e-5 for cutoff 10), exactly 0 where ``d^2 / sigma >= cutoff``
outside a triangle, with ``log(1 - D~) = logsigmoid(-x) - logsigmoid(cutoff)`` (stable
without clamping D below 1).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from bodyshape.render.camera import Camera
from bodyshape.render.raster import FRONT_FACING, rasterize_silhouette

logger = logging.getLogger(__name__)

#: Default truncation of d^2 / sigma: D < sigmoid(-10) = 4.5e-5 beyond it.
DEFAULT_CUTOFF = 10.0
AGGREGATES = ("softras", "contour")


def project(vertices: torch.Tensor, K: torch.Tensor, R: torch.Tensor, t: torch.Tensor
            ) -> torch.Tensor:
    """Pinhole projection of world points to pixels (differentiable).

    Args:
        vertices: (B, V, 3) world coordinates, meters.
        K: (B, 3, 3) intrinsics, pixels.
        R: (B, 3, 3) world->camera rotations (OpenCV: x right, y down, z forward).
        t: (B, 3) world->camera translations, meters: ``X_cam = R @ X + t``.

    Returns:
        (B, V, 2) pixel coordinates (x right, y down). Points must be in front of the camera
        (camera z > 0); nothing here checks it, as that would need a sync per call.
    """
    x_cam = torch.einsum("bij,bvj->bvi", R, vertices) + t[:, None, :]
    uvw = torch.einsum("bij,bvj->bvi", K, x_cam)
    return uvw[..., :2] / uvw[..., 2:3]


def camera_tensors(cameras: Sequence[Camera], dtype: torch.dtype = torch.float32,
                   device: torch.device | str | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Stack B ``Camera``s into ``project``'s (B, 3, 3) K, (B, 3, 3) R and (B, 3) t."""
    def stack(name):
        return torch.as_tensor(np.stack([getattr(c, name) for c in cameras]), dtype=dtype,
                               device=device)
    return stack("K"), stack("R"), stack("t")


def mesh_edges(faces: np.ndarray | torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Undirected edges of a triangle mesh and the corners opposite them.

    Args:
        faces: (F, 3) integer vertex indices.

    Returns:
        edges: (E, 2) int64 vertex indices of each edge.
        opposite: (E, 2) int64 vertex opposite the edge in each of its two faces; -1 where
            the edge has only one face. Edges with more than two faces (non-manifold) get -1
            in both slots, which makes them always count as contour edges.
    """
    f = faces.detach().cpu().numpy() if isinstance(faces, torch.Tensor) else np.asarray(faces)
    f = f.astype(np.int64)
    # Face-edge k of face i runs from corner k to corner k + 1; corner k + 2 is opposite.
    ends = np.stack([f, np.roll(f, -1, axis=1)], axis=-1).reshape(-1, 2)
    opp = np.roll(f, -2, axis=1).reshape(-1)
    edges, inverse, counts = np.unique(np.sort(ends, axis=1), axis=0, return_inverse=True,
                                       return_counts=True)
    inverse = inverse.reshape(-1)
    order = np.argsort(inverse, kind="stable")
    starts = np.cumsum(counts) - counts
    opposite = np.full((len(edges), 2), -1, dtype=np.int64)
    manifold = counts <= 2
    first = order[starts]
    opposite[manifold, 0] = opp[first[manifold]]
    two = counts == 2
    opposite[two, 1] = opp[order[starts[two] + 1]]
    opposite[~manifold] = -1
    return edges.astype(np.int64), opposite


def _enumerate_windows(corners: torch.Tensor, height: int, width: int, radius: float
                       ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Pixel centres within ``radius`` of the bounding box of each point set.

    Args:
        corners: (N, k, 2) detached finite points, pixels (triangle corners, segment ends).

    Returns:
        pair_item: (P,) index (into N) of each (item, pixel) pair.
        pair_x, pair_y: (P,) pixel column j and row i of each pair.
    """
    # Centre j + 0.5 is visited iff lo - r <= j + 0.5 <= hi + r. Clip in floating point
    # before converting so far-away (but finite) corners cannot overflow an int.
    lo = corners.amin(dim=1) - radius - 0.5
    hi = corners.amax(dim=1) + radius - 0.5
    size = torch.tensor([width, height], dtype=corners.dtype, device=corners.device)
    first = torch.ceil(lo).clamp(min=0.0).minimum(size).long()
    last = torch.floor(hi).minimum(size - 1.0).clamp(min=-1.0).long()
    extent = (last - first + 1).clamp(min=0)  # (N, 2): columns, rows
    counts = extent[:, 0] * extent[:, 1]
    n_pairs = int(counts.sum())
    # Every window is enumerated exactly (no padding to a bucket size): pair k is the
    # local-th pixel, in row-major order, of item pair_item[k]'s window.
    pair_item = torch.repeat_interleave(torch.arange(len(counts), device=corners.device),
                                        counts, output_size=n_pairs)
    starts = torch.cumsum(counts, 0) - counts
    local = torch.arange(n_pairs, device=corners.device) - starts[pair_item]
    cols = extent[pair_item, 0]
    row = torch.div(local, cols, rounding_mode="floor")
    return pair_item, first[pair_item, 0] + (local - row * cols), first[pair_item, 1] + row


def _cross(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """z of the 2D cross product, (..., 2) x (..., 2) -> (...)."""
    return u[..., 0] * v[..., 1] - u[..., 1] * v[..., 0]


def _segment_d2(p: torch.Tensor, a: torch.Tensor, e: torch.Tensor, inv_len2: torch.Tensor
                ) -> torch.Tensor:
    """Squared distance from points p to segments a + [0, 1] e; (..., 2) -> (...)."""
    q = p - a
    along = ((q * e).sum(-1) * inv_len2).clamp(0.0, 1.0)
    diff = q - along[..., None] * e
    return (diff * diff).sum(-1)


def _pixel_centres(pair_x: torch.Tensor, pair_y: torch.Tensor, dtype: torch.dtype
                   ) -> torch.Tensor:
    return torch.stack([pair_x, pair_y], dim=-1).to(dtype) + 0.5


def _softras(tri: torch.Tensor, height: int, width: int, sigma: float, cutoff: float,
             cull_backfaces: bool) -> torch.Tensor:
    """The "softras" aggregate: (B, F, 3, 2) triangles -> (B, H, W); see the module doc."""
    batch = tri.shape[0]
    with torch.no_grad():
        t = tri.detach()
        area = _cross(t[:, :, 1] - t[:, :, 0], t[:, :, 2] - t[:, :, 0])  # twice signed area
        # Exactly degenerate triangles are dropped: their measure-zero contribution (a soft
        # line) is not worth a special case. Non-finite corners go with them.
        keep = (area * FRONT_FACING > 0) if cull_backfaces else (area != 0)
        keep &= torch.isfinite(area)
        b_idx, f_idx = keep.nonzero(as_tuple=True)
        pair_tri, pair_x, pair_y = _enumerate_windows(
            t[b_idx, f_idx], height, width, math.sqrt(cutoff * sigma))
    # Per-triangle quantities, gathered once per pair with a single index_select.
    a = tri[b_idx, f_idx]  # (N, 3, 2)
    e = torch.roll(a, -1, dims=1) - a  # edge k runs from corner k to corner k + 1
    inv_len2 = 1.0 / (e * e).sum(-1).clamp(min=1e-12)  # guards coincident corners
    # +-1: which side of each edge is inside (kept triangles never have area 0).
    orient = torch.where(_cross(e[:, 0], -e[:, 2]).detach() > 0, 1.0, -1.0).to(tri.dtype)
    packed = torch.cat([a.reshape(-1, 6), e.reshape(-1, 6), inv_len2, orient[:, None]],
                       dim=1).index_select(0, pair_tri)
    a_p, e_p = packed[:, :6].view(-1, 3, 2), packed[:, 6:12].view(-1, 3, 2)
    inv_p, orient_p = packed[:, 12:15], packed[:, 15]

    centre = _pixel_centres(pair_x, pair_y, tri.dtype)[:, None, :]  # (P, 1, 2)
    d2 = _segment_d2(centre, a_p, e_p, inv_p).amin(dim=-1)  # to the triangle's boundary
    with torch.no_grad():
        inside = ((_cross(e_p, centre - a_p) * orient_p[:, None]) >= 0).all(dim=-1)
    x = torch.where(inside, d2, -d2) / sigma
    # log(1 - D~) = log(1 - D) - log(1 - D0), capped at 0 beyond the cutoff (D~ = 0 there).
    log_miss = (F.logsigmoid(-x) - F.logsigmoid(torch.tensor(cutoff, dtype=x.dtype))
                ).clamp(max=0.0)
    flat = (b_idx[pair_tri] * height + pair_y) * width + pair_x
    log_empty = torch.zeros(batch * height * width, dtype=tri.dtype, device=tri.device)
    log_empty = log_empty.index_add(0, flat, log_miss)
    # 1 - exp(s) via expm1 (accurate where the silhouette is faint); + 0.0 turns -0 into 0.
    return (-torch.expm1(log_empty) + 0.0).view(batch, height, width)


def _contour(pix: torch.Tensor, faces: torch.Tensor, height: int, width: int, sigma: float,
             cutoff: float, cull_backfaces: bool, edges: tuple[np.ndarray, np.ndarray] | None
             ) -> torch.Tensor:
    """The "contour" aggregate: (B, V, 2) pixels -> (B, H, W); see the module doc."""
    batch = pix.shape[0]
    edge_v, opposite = mesh_edges(faces) if edges is None else edges
    edge_v = torch.as_tensor(edge_v, dtype=torch.long, device=pix.device)
    opposite = torch.as_tensor(opposite, dtype=torch.long, device=pix.device)
    with torch.no_grad():
        p = pix.detach()
        # Exact coverage (the inclusive centre rule of raster.py), on the CPU with numba.
        p_np = p.cpu().numpy().astype(np.float64)
        f_np = faces.detach().cpu().numpy()
        keep = FRONT_FACING if cull_backfaces else 0
        covered = torch.from_numpy(np.stack([
            rasterize_silhouette(p_np[b], f_np, width, height, keep=keep)
            for b in range(batch)])).to(pix.device).reshape(-1)
        # Contour edges: one face, or both opposite corners on the same side (a fold).
        a, b = p[:, edge_v[:, 0]], p[:, edge_v[:, 1]]  # (B, E, 2)
        side = _cross((b - a)[:, :, None], p[:, opposite.clamp(min=0)] - a[:, :, None])
        single = (opposite < 0).any(dim=1)
        contour = single[None] | (side[..., 0] * side[..., 1] >= 0)
        contour &= torch.isfinite(a).all(-1) & torch.isfinite(b).all(-1)
        b_idx, e_idx = contour.nonzero(as_tuple=True)
        ends = torch.stack([a[b_idx, e_idx], b[b_idx, e_idx]], dim=1)  # (N, 2, 2)
        pair_edge, pair_x, pair_y = _enumerate_windows(ends, height, width,
                                                       math.sqrt(cutoff * sigma))
    a = pix[b_idx, edge_v[e_idx, 0]]  # (N, 2), differentiable from here on
    e = pix[b_idx, edge_v[e_idx, 1]] - a
    inv_len2 = 1.0 / (e * e).sum(-1, keepdim=True).clamp(min=1e-12)
    packed = torch.cat([a, e, inv_len2], dim=1).index_select(0, pair_edge)
    d2 = _segment_d2(_pixel_centres(pair_x, pair_y, pix.dtype), packed[:, :2],
                     packed[:, 2:4], packed[:, 4])
    flat = (b_idx[pair_edge] * height + pair_y) * width + pair_x
    far = cutoff * sigma  # d^2 beyond which T = 0: the value of pixels far from any contour
    d2_min = torch.full((batch * height * width,), far, dtype=pix.dtype, device=pix.device)
    d2_min = d2_min.scatter_reduce(0, flat, d2.clamp(max=far), "amin", include_self=True)
    # T(x) = sigmoid(-x) rescaled so T(0) = 1/2 and T(cutoff) = 0 exactly: continuous across
    # the outline and independent of the window extents.
    s0 = torch.sigmoid(torch.tensor(-cutoff, dtype=pix.dtype))
    tail = 0.5 * (torch.sigmoid(-d2_min / sigma) - s0) / (0.5 - s0)
    # Folds hidden inside the silhouette (an arm over the torso, an ear) are contour edges
    # too but not outline: covered pixels only take the soft tail when an uncovered pixel
    # centre lies within ceil(r) pixels (r = the window radius), i.e. when the outline can
    # be within reach. This removes the 0.5 dips along hidden folds away from the outline
    # (and the jumps when such a fold is born as a face turns edge-on). The price is a small
    # jump when a neighbour changes coverage: for r = 1, a straight outline within 0.92 px
    # always leaves an uncovered 8-neighbour, so the jump is at most T(0.92^2 cutoff) ~ 1e-4.
    half = math.ceil(math.sqrt(cutoff * sigma))
    with torch.no_grad():
        open_ = (~covered).view(batch, 1, height, width).to(pix.dtype)
        near_outline = F.max_pool2d(open_, 2 * half + 1, stride=1, padding=half).reshape(-1) > 0
    inside = torch.where(near_outline, 1.0 - tail, torch.ones_like(tail))
    return torch.where(covered, inside, tail).view(batch, height, width)


def soft_silhouette(pix: torch.Tensor, faces: torch.Tensor, height: int, width: int,
                    sigma: float = 0.1, cull_backfaces: bool = False,
                    cutoff: float = DEFAULT_CUTOFF, aggregate: str = "softras",
                    edges: tuple[np.ndarray, np.ndarray] | None = None) -> torch.Tensor:
    """Soft silhouettes of triangle meshes, differentiable w.r.t. ``pix``.

    Args:
        pix: (B, V, 2) vertex positions, pixels (x right, y down); float32 or float64.
        faces: (F, 3) long vertex indices, shared by the batch; any winding unless culling.
        height, width: image size, pixels.
        sigma: sharpness, px^2: D = sigmoid(+-d^2 / sigma); 0.1 gives a ~0.3 px soft edge.
        cull_backfaces: use only front faces (negative signed area ``(p1 - p0) x (p2 - p0)``
            in pixel coordinates, ``raster.FRONT_FACING``). For a closed, outward-wound mesh
            the silhouette is the union of its front faces. With "softras" this halves the
            cost and is closer to the exact outline (back faces folding away behind the
            contour would push A to 0.75 on it); with "contour" it only speeds up the exact
            coverage (contour edges are found from all faces either way). Wrong for open or
            inward-wound meshes.
        cutoff: probabilities are truncated (smoothly, see the module docstring) where
            ``d^2 / sigma >= cutoff``, so each triangle or edge visits its bounding box grown
            by ``sqrt(cutoff * sigma)`` pixels.
        aggregate: "softras" (SoftRas' product, fattened by ~0.4 px at sigma 0.1) or
            "contour" (0.5 level on the exact outline); see the module docstring.
        edges: ``mesh_edges(faces)``, to skip recomputing it on every call ("contour" only).

    Returns:
        (B, height, width) silhouette probabilities in [0, 1] at the pixel centres.
    """
    if pix.ndim != 3 or pix.shape[-1] != 2:
        raise ValueError(f"pix must be (B, V, 2), got {tuple(pix.shape)}")
    if faces.ndim != 2 or faces.shape[1] != 3:
        raise ValueError(f"faces must be (F, 3), got {tuple(faces.shape)}")
    if sigma <= 0 or cutoff <= 0:
        raise ValueError(f"sigma and cutoff must be positive, got {sigma}, {cutoff}")
    if aggregate not in AGGREGATES:
        raise ValueError(f"aggregate must be one of {AGGREGATES}, got {aggregate!r}")
    faces = torch.as_tensor(faces, dtype=torch.long, device=pix.device)
    height, width = int(height), int(width)
    if aggregate == "contour":
        return _contour(pix, faces, height, width, sigma, cutoff, cull_backfaces, edges)
    return _softras(pix[:, faces], height, width, sigma, cutoff, cull_backfaces)


def soft_iou_loss(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Soft IoU loss per image.

    Args:
        pred, target: (B, H, W) probabilities in [0, 1].
        eps: added to intersection and union, so two empty masks give loss 0.

    Returns:
        (B,) ``1 - sum(p t) / sum(p + t - p t)``, in [0, 1].
    """
    inter = (pred * target).sum(dim=(-2, -1))
    union = (pred + target - pred * target).sum(dim=(-2, -1))
    return 1.0 - (inter + eps) / (union + eps)
