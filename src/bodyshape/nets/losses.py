"""Training losses and metrics for shape regression from silhouettes.

* :func:`pca_loss`: MSE on whitened coefficients (dimensionless, ~1 for a mean predictor).
* :func:`mesh_loss`: mean squared vertex distance in units of ``scale_m`` (default 5 cm), so
  that it is also ~1 for a mean predictor (see :data:`MESH_LOSS_SCALE_M`).
* :func:`girth_loss`: mean squared tape-girth error in units of 5 cm.
* :func:`vertex_error_mm`: per-sample mean Euclidean vertex error, millimeters (a metric).
* :func:`soft_iou` / :func:`iou_loss`: for soft silhouettes from a differentiable renderer.
* :class:`WeightSchedule`: the (w_pca, w_mesh) curriculum over training.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

logger = logging.getLogger(__name__)

MESH_LOSS_SCALE_M = 0.05
"""Default length unit of :func:`mesh_loss`, meters.

The shipped 50-component model has ``sqrt(sum(std^2) / V)`` = 49 mm: the RMS per-vertex
deviation of the training bodies from the mean. A network that predicts the mean has
``pca_loss`` ~1 (whitened coefficients have unit variance) and, in these units, ``mesh_loss``
~(49 / 50)^2 ~ 1 too, so the weights of :class:`WeightSchedule` mean what they say. (In cm^2
the mesh term would start ~24x larger.) For another shape model pass
``MeshDecoder.rms_vertex_std_m`` as ``scale_m``.
"""


def _check_same(a: Tensor, b: Tensor, what: str) -> None:
    # Refuse broadcasting: (B, K) vs (K,) or (B, 1) would silently give a wrong loss.
    if a.shape != b.shape:
        raise ValueError(f"{what}: shapes differ: {tuple(a.shape)} vs {tuple(b.shape)}")


def pca_loss(z_pred: Tensor, z_true: Tensor) -> Tensor:
    """MSE between whitened coefficients: (B, K), (B, K) -> () (dimensionless)."""
    _check_same(z_pred, z_true, "pca_loss")
    return F.mse_loss(z_pred, z_true)


def mesh_loss(v_pred: Tensor, v_true: Tensor, scale_m: float = MESH_LOSS_SCALE_M) -> Tensor:
    """Mean squared vertex distance in units of ``scale_m``: (B, V, 3), (B, V, 3) m -> ().

    ``mean_{b,v} |v_pred - v_true|^2 / scale_m^2``; see :data:`MESH_LOSS_SCALE_M` for why the
    unit makes it comparable to :func:`pca_loss`. When the target meshes are not in the span of
    the K predicted components, the loss has a floor (their residual).
    """
    _check_same(v_pred, v_true, "mesh_loss")
    return ((v_pred - v_true) ** 2).sum(dim=-1).mean() / scale_m**2


def vertex_error_mm(v_pred: Tensor, v_true: Tensor) -> Tensor:
    """Mean Euclidean per-vertex error: (B, V, 3), (B, V, 3) meters -> (B,) millimeters."""
    _check_same(v_pred, v_true, "vertex_error_mm")
    return torch.linalg.vector_norm(v_pred - v_true, dim=-1).mean(dim=-1) * 1000.0


GIRTH_LOSS_SCALE_M = 0.05
"""Length unit of :func:`girth_loss`, meters: the girths of the training bodies spread by
5-13 cm (1 std), so a mean predictor's loss is of order 1-7, like the other terms."""


def girth_loss(g_pred: Tensor, g_true: Tensor, scale_m: float = GIRTH_LOSS_SCALE_M) -> Tensor:
    """Mean squared girth error in units of ``scale_m``: (B, G), (B, G) meters -> ()
    (``nets.girths.SurrogateGirths`` outputs)."""
    _check_same(g_pred, g_true, "girth_loss")
    return ((g_pred - g_true) ** 2).mean() / scale_m**2


def soft_iou(pred: Tensor, target: Tensor, eps: float = 1e-6) -> Tensor:
    """Soft intersection over union of masks in [0, 1]: (B, H, W), (B, H, W) -> (B,).

    ``sum(p t) / sum(p + t - p t)``; two empty masks give 1.
    """
    _check_same(pred, target, "soft_iou")
    inter = (pred * target).sum(dim=(-2, -1))
    union = (pred + target).sum(dim=(-2, -1)) - inter
    return (inter + eps) / (union + eps)


def iou_loss(pred: Tensor, target: Tensor) -> Tensor:
    """``1 - soft_iou`` averaged over the batch: (B, H, W), (B, H, W) -> ()."""
    return (1.0 - soft_iou(pred, target)).mean()


# --------------------------------------------------------------------------------------------
# Weighting
# --------------------------------------------------------------------------------------------

Stage = tuple[float, float, float]
"""(until_fraction_of_training, w_pca, w_mesh)."""

DEFAULT_STAGES: tuple[Stage, ...] = (
    (0.25, 0.9, 0.1),
    (0.50, 0.7, 0.3),
    (0.75, 0.5, 0.5),
    (1.00, 0.2, 0.8),
)


@dataclass(frozen=True)
class WeightSchedule:
    """Piecewise-constant (w_pca, w_mesh) over the fraction of training done.

    Stage ``i`` applies while ``epoch / n_epochs < stages[i][0]`` (and the previous stage's
    bound is passed). Default: the PCA term dominates early, when predictions are far off and
    the mesh term is dominated by the first components, then the weight shifts to the mesh.

    Attributes:
        stages: increasing ``(until_fraction, w_pca, w_mesh)``; the last ``until`` must be
            >= 1 (its weights also apply past the end).
    """

    stages: tuple[Stage, ...] = DEFAULT_STAGES

    def __post_init__(self) -> None:
        stages = tuple(tuple(float(v) for v in s) for s in self.stages)
        object.__setattr__(self, "stages", stages)
        if not stages or any(len(s) != 3 for s in stages):
            raise ValueError(f"stages must be non-empty (until, w_pca, w_mesh), got {stages}")
        untils = [s[0] for s in stages]
        if any(b <= a for a, b in zip(untils, untils[1:])) or untils[0] <= 0 or untils[-1] < 1:
            raise ValueError(f"stage bounds must increase in (0, ...] and end >= 1: {untils}")
        if any(w < 0 for s in stages for w in s[1:]):
            raise ValueError(f"weights must be non-negative: {stages}")

    @classmethod
    def fixed(cls, w_pca: float, w_mesh: float) -> WeightSchedule:
        """Constant weights, for ablations: ``fixed(1, 0)`` PCA only, ``fixed(0.5, 0.5)``."""
        return cls(((1.0, w_pca, w_mesh),))

    def weights(self, epoch: float, n_epochs: int) -> tuple[float, float]:
        """(w_pca, w_mesh) for 0-based ``epoch`` (may be fractional) of ``n_epochs``."""
        if n_epochs <= 0 or epoch < 0:
            raise ValueError(f"need epoch >= 0 and n_epochs > 0, got {epoch}, {n_epochs}")
        fraction = epoch / n_epochs
        for until, w_pca, w_mesh in self.stages:
            if fraction < until:
                return w_pca, w_mesh
        return self.stages[-1][1], self.stages[-1][2]


@dataclass(frozen=True)
class ShapeLoss:
    """total = w_pca * pca + w_mesh * mesh, all () tensors; ``mesh`` is 0 when skipped."""

    total: Tensor
    pca: Tensor
    mesh: Tensor


def shape_loss(
    z_pred: Tensor,
    z_true: Tensor,
    decoder: Callable[[Tensor], Tensor],
    w_pca: float,
    w_mesh: float,
    v_true: Tensor | None = None,
    scale_m: float = MESH_LOSS_SCALE_M,
) -> ShapeLoss:
    """Weighted PCA + mesh loss.

    Args:
        z_pred, z_true: (B, K) whitened coefficients.
        decoder: (B, K) -> (B, V, 3) meters, e.g. a ``MeshDecoder``.
        w_pca, w_mesh: weights (e.g. from :meth:`WeightSchedule.weights`); with ``w_mesh == 0``
            the meshes are not decoded at all.
        v_true: (B, V, 3) target meshes, meters; default ``decoder(z_true)``.
        scale_m: unit of the mesh term, see :func:`mesh_loss`.
    """
    pca = pca_loss(z_pred, z_true)
    if w_mesh == 0:
        mesh = pca.new_zeros(())
    else:
        if v_true is None:
            with torch.no_grad():
                v_true = decoder(z_true)
        mesh = mesh_loss(decoder(z_pred), v_true, scale_m)
    return ShapeLoss(total=w_pca * pca + w_mesh * mesh, pca=pca, mesh=mesh)
