"""Rigid alignment of meshes in the template topology (Procrustes analysis).

:func:`procrustes_align` aligns each mesh of a batch onto a reference (Kabsch / Umeyama, proper
rotations, optional isotropic scale); :func:`_generalized_procrustes` aligns a training set
onto its own mean, as :meth:`bodyshape.shape.pca.ShapeModel.fit` does before the PCA. Both
work chunk by chunk so that memory stays bounded for large batches.

Shapes: ``B`` meshes, ``V`` vertices. Coordinates in meters.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Iterator

import numpy as np

logger = logging.getLogger(__name__)

_CHUNK_ELEMENTS = 1 << 22  # float64 elements per working chunk (32 MiB)


@dataclass(frozen=True, eq=False)
class Alignment:
    """Result of :func:`procrustes_align`: ``vertices[b] = scale[b] * input[b] @ rotation[b].T
    + translation[b]``.

    Attributes:
        vertices: (B, V, 3) aligned meshes, meters (float32 for float32 input, else float64).
        rotation: (B, 3, 3) float64 proper rotations (det = +1).
        translation: (B, 3) float64, meters.
        scale: (B,) float64 (all ones unless scaling was asked for).
    """

    vertices: np.ndarray
    rotation: np.ndarray
    translation: np.ndarray
    scale: np.ndarray

    def apply(self, points: np.ndarray) -> np.ndarray:
        """Apply the same transforms to other points: (B, P, 3) -> (B, P, 3) float64."""
        points = np.asarray(points, dtype=np.float64)
        if points.ndim != 3 or points.shape[0] != len(self.scale) or points.shape[2] != 3:
            raise ValueError(f"points must be ({len(self.scale)}, P, 3), got {points.shape}")
        rotated = points @ self.rotation.transpose(0, 2, 1)
        return self.scale[:, None, None] * rotated + self.translation[:, None, :]


def _check_batch(vertices: np.ndarray, name: str = "vertices") -> np.ndarray:
    vertices = np.asarray(vertices)
    if vertices.ndim != 3 or vertices.shape[2] != 3:
        raise ValueError(f"{name} must be (B, V, 3), got shape {vertices.shape}")
    if not np.issubdtype(vertices.dtype, np.floating):
        vertices = vertices.astype(np.float64)
    return vertices


def _chunk_size(n_vertices: int) -> int:
    return max(1, _CHUNK_ELEMENTS // max(1, 3 * n_vertices))


def _iter_aligned(
    vertices: np.ndarray, reference: np.ndarray, scale: bool
) -> Iterator[tuple[slice, np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """Align ``vertices`` (B, V, 3) onto ``reference`` (V, 3) chunk by chunk.

    Yields ``(batch slice, aligned (b, V, 3) float64, rotation (b, 3, 3), translation (b, 3),
    scale (b,))``; memory stays bounded by the chunk size.
    """
    ref = np.asarray(reference, dtype=np.float64)
    n_vertices = ref.shape[0]
    ref_centroid = ref.mean(axis=0)
    # [ref - centroid, 1]: one product gives the cross-covariance and the vertex sums.
    augmented = np.concatenate([ref - ref_centroid, np.ones((n_vertices, 1))], axis=1)
    step = _chunk_size(n_vertices)
    for start in range(0, vertices.shape[0], step):
        sl = slice(start, min(start + step, vertices.shape[0]))
        x = vertices[sl].astype(np.float64)  # (b, V, 3)
        products = x.transpose(0, 2, 1) @ augmented  # (b, 3, 4)
        centroid = products[:, :, 3] / n_vertices
        cross = products[:, :, :3]  # sum_v (x_v - c) ref0_v^T, as ref0 sums to zero
        u, sing, vt = np.linalg.svd(cross)
        sign = np.sign(np.linalg.det(u @ vt))
        sign[sign == 0] = 1.0
        u[:, :, 2] *= sign[:, None]  # u @ diag(1, 1, sign)
        rot_t = u @ vt  # R^T: the aligned mesh is x @ R^T
        if scale:
            trace = sing[:, 0] + sing[:, 1] + sign * sing[:, 2]
            norm2 = np.einsum("bvi,bvi->b", x, x)
            norm2 -= n_vertices * np.einsum("bi,bi->b", centroid, centroid)  # sum |x - c|^2
            s = np.where(norm2 > 0, trace / np.where(norm2 > 0, norm2, 1.0), 1.0)
        else:
            s = np.ones(x.shape[0])
        rotation = rot_t.transpose(0, 2, 1)
        translation = ref_centroid - s[:, None] * np.einsum("bij,bj->bi", rotation, centroid)
        aligned = x @ (rot_t * s[:, None, None])
        aligned += translation[:, None, :]
        yield sl, aligned, rotation, translation, s


def procrustes_align(
    vertices: np.ndarray, reference: np.ndarray, scale: bool = False
) -> Alignment:
    """Rigidly align each mesh onto a reference (Kabsch / Umeyama, proper rotations only).

    Args:
        vertices: (B, V, 3) meshes in the template topology, meters.
        reference: (V, 3) target mesh, meters.
        scale: also fit one isotropic scale per mesh (off by default: body size is shape).

    Returns:
        :class:`Alignment` with the aligned meshes (whose centroids are the reference's) and
        the transforms that minimise the sum of squared vertex distances to the reference.
    """
    vertices = _check_batch(vertices)
    reference = np.asarray(reference)
    if reference.shape != vertices.shape[1:]:
        raise ValueError(f"reference must be {vertices.shape[1:]}, got {reference.shape}")
    n = vertices.shape[0]
    out = np.empty(vertices.shape, dtype=np.result_type(vertices.dtype, np.float32))
    rotation = np.empty((n, 3, 3))
    translation = np.empty((n, 3))
    scales = np.empty(n)
    for sl, aligned, rot, trans, s in _iter_aligned(vertices, reference, scale):
        out[sl] = aligned
        rotation[sl] = rot
        translation[sl] = trans
        scales[sl] = s
    return Alignment(out, rotation, translation, scales)


def _generalized_procrustes(
    vertices: np.ndarray, scale: bool, tol: float = 1e-6, max_iter: int = 20
) -> np.ndarray:
    """Align all meshes onto their common mean (generalized Procrustes analysis).

    Starts from the plain mean (which keeps the data's frame, e.g. anny's) and iterates
    "align onto the mean, re-average" until the mean moves less than ``tol`` meters RMS
    (usually two passes over the data). Returns the aligned meshes as a new (N, V*3) float32
    array, the only full-size copy.
    """
    n, v, _ = vertices.shape
    out = np.empty((n, 3 * v), dtype=np.float32)
    reference = vertices.mean(axis=0, dtype=np.float64)
    centroid = reference.mean(axis=0)
    ref_size = np.sqrt(((reference - centroid) ** 2).sum())
    for it in range(max_iter):
        total = np.zeros((v, 3))
        for sl, aligned, *_ in _iter_aligned(vertices, reference, scale):
            out[sl] = aligned.reshape(aligned.shape[0], -1)
            total += aligned.sum(axis=0)
        new = total / n
        factor = 1.0
        if scale:  # GPA with scaling shrinks the mean: keep the initial size
            factor = ref_size / np.sqrt(((new - centroid) ** 2).sum())
            new = centroid + (new - centroid) * factor
        delta = float(np.sqrt(((new - reference) ** 2).sum(axis=1).mean()))
        reference = new
        logger.debug("procrustes iteration %d: mean moved %.3g m RMS", it + 1, delta)
        if delta < tol:
            break
    else:
        logger.warning("generalized Procrustes did not converge in %d iterations", max_iter)
    if scale and factor != 1.0:  # make the data's mean the (size-normalised) reference
        flat_centroid = np.tile(centroid, v).astype(np.float32)
        for start in range(0, n, _chunk_size(v)):
            chunk = out[start : start + _chunk_size(v)]
            chunk -= flat_centroid
            chunk *= np.float32(factor)
            chunk += flat_centroid
    return out
