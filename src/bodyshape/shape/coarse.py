"""A decimated template (~1,200 vertices) that follows any mesh in the template topology.

Soft (differentiable) silhouette rendering costs time per triangle, so training-time
re-projection losses render a coarse body instead of the 26,692-face template. The coarse
mesh is a quadric decimation of the template (watertight, genus 0, outward winding; thin
fingers merge, arms and legs stay). Each coarse vertex is tied to the template by a fixed
sparse linear map: the closest point on the template surface to the decimated vertex, as
barycentric weights of that template triangle's three vertices. So for any body ``V`` in the
template topology (a PCA shape, a posed mesh) ``to_coarse(V)`` is the coarse body lying on
``V``'s surface, and gradients flow back to ``V``.

Data file ``shape/data/coarse.npz`` (written by ``tools/make_coarse_template.py``):
``faces`` (Fc, 3) int32 (counter-clockwise seen from outside), ``map_index`` (Vc, 3) int32
template vertex indices, ``map_weight`` (Vc, 3) float32 barycentric weights (>= 0, rows sum
to 1), ``template_hash`` (the ``Template.hash`` it was built from).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from importlib import resources

import numpy as np

from bodyshape.shape.template import N_TEMPLATE_VERTICES


@dataclass(frozen=True, eq=False)
class CoarseMesh:
    """The shipped coarse template.

    Attributes:
        faces: (Fc, 3) int64 coarse vertex indices, counter-clockwise seen from outside.
        map_index: (Vc, 3) int64 template vertex indices of each coarse vertex's triangle.
        map_weight: (Vc, 3) float64 barycentric weights (>= 0, rows sum to 1).
        template_hash: ``Template.hash`` of the template the map refers to.
    """

    faces: np.ndarray = field(repr=False)
    map_index: np.ndarray = field(repr=False)
    map_weight: np.ndarray = field(repr=False)
    template_hash: str

    @property
    def n_vertices(self) -> int:
        """Number of coarse vertices Vc."""
        return int(self.map_index.shape[0])

    def matrix(self) -> np.ndarray:
        """The map as a dense (Vc, V) float64 matrix M: ``coarse = M @ vertices``."""
        m = np.zeros((self.n_vertices, N_TEMPLATE_VERTICES))
        np.add.at(m, (np.arange(self.n_vertices)[:, None], self.map_index), self.map_weight)
        return m


@functools.lru_cache(maxsize=1)
def load_coarse() -> CoarseMesh:
    """Load the shipped coarse template (cached; arrays are read-only)."""
    with resources.files("bodyshape.shape").joinpath("data", "coarse.npz").open("rb") as f:
        d = dict(np.load(f))
    coarse = CoarseMesh(
        faces=d["faces"].astype(np.int64),
        map_index=d["map_index"].astype(np.int64),
        map_weight=d["map_weight"].astype(np.float64),
        template_hash=str(d["template_hash"]),
    )
    if coarse.map_index.max() >= N_TEMPLATE_VERTICES or coarse.faces.max() >= coarse.n_vertices:
        raise ValueError("coarse.npz is inconsistent; rerun tools/make_coarse_template.py")
    for a in (coarse.faces, coarse.map_index, coarse.map_weight):
        a.setflags(write=False)
    return coarse


def to_coarse(vertices, coarse: CoarseMesh | None = None):
    """Coarse vertices of meshes in the template topology.

    Args:
        vertices: (..., V, 3) numpy array or torch tensor, meters (V = 13,348).
        coarse: the coarse mesh; default the shipped one.

    Returns:
        (..., Vc, 3) of the input's kind: numpy (float64 unless the input is float32) or a
        torch tensor of the input's dtype and device, differentiable w.r.t. ``vertices``.
    """
    c = load_coarse() if coarse is None else coarse
    is_numpy = isinstance(vertices, np.ndarray)
    if not is_numpy:
        import torch  # only when handed tensors: numpy callers need not import torch

        if not isinstance(vertices, torch.Tensor):
            raise TypeError(f"vertices must be a numpy array or a torch tensor, got "
                            f"{type(vertices).__name__}")
    if vertices.ndim < 2 or vertices.shape[-2:] != (N_TEMPLATE_VERTICES, 3):
        raise ValueError(f"vertices must be (..., {N_TEMPLATE_VERTICES}, 3), "
                         f"got {tuple(vertices.shape)}")
    if is_numpy:
        w = c.map_weight.astype(np.result_type(vertices.dtype, np.float32))
        # (..., Vc, 3 corners, 3 xyz) gather, then the barycentric sum over the corners.
        return np.einsum("ck,...ckd->...cd", w, vertices[..., c.map_index, :])
    # torch.tensor copies: the cached arrays are read-only, which torch.from_numpy warns about.
    idx = torch.tensor(c.map_index, device=vertices.device)
    w = torch.tensor(c.map_weight, device=vertices.device, dtype=vertices.dtype)
    gathered = vertices[..., idx.reshape(-1), :].reshape(*vertices.shape[:-2], *idx.shape, 3)
    return torch.einsum("ck,...ckd->...cd", w, gathered)
