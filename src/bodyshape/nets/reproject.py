"""Silhouette re-projection of predicted bodies through each sample's known camera.

For a synthetic sample we know its pose angles, both view yaws and both canvas cameras (the
frame camera composed with the calibration, ``ShardData.canvas_intrinsics``). The predicted
rest mesh is posed with the shipped rig (joints regressed from the *predicted* mesh), turned
like the sample, mapped to the coarse template (a fixed barycentric vertex map) and rendered
with the differentiable soft rasterizer on the canvas grid, or a coarser one. Comparing it
with the sample's silhouette (soft IoU) trains the network on what the photo actually shows.

The module holds only buffers (rig regressor and weights, coarse map and faces) taken from the
caller's ``BodyModel``; the maths is in ``body.kinematics`` and ``render.soft``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from bodyshape.body import BodyModel
from bodyshape.body.kinematics import lbs, regress_joints, yaw_about_centre
from bodyshape.render.soft import project, soft_silhouette


class Reprojector(nn.Module):
    """Render predicted rest meshes in their samples' poses and views.

    Args:
        body: the body model (rig regressor and weights, coarse map and faces).
        sigma: soft-rasterizer sharpness, px^2 at the render resolution.
        aggregate: "softras" or "contour" (see ``render.soft``).
    """

    def __init__(self, body: BodyModel, sigma: float = 0.1, aggregate: str = "contour"):
        super().__init__()
        # Joints depend on few vertices per joint, but the dense (J, V) matmul is cheap.
        self.register_buffer("regressor", body.regressor.float())
        self.register_buffer("weights", body.weights.float())
        self.register_buffer("coarse_index", torch.tensor(body.coarse.map_index))
        self.register_buffer("coarse_weight", torch.tensor(body.coarse.map_weight,
                                                           dtype=torch.float32))
        self.register_buffer("faces", torch.tensor(body.coarse.faces))
        self.parents = body.parents
        self.sigma, self.aggregate = float(sigma), aggregate

    def posed_coarse(self, rest: Tensor, rotations: Tensor, yaw: Tensor) -> Tensor:
        """Posed, turned coarse meshes.

        Args:
            rest: (B, V, 3) predicted rest meshes, meters (template topology).
            rotations: (B, J, 3, 3) local joint rotations of each sample's pose.
            yaw: (B,) view yaw, radians.
        Returns:
            (B, Vc, 3) meters.
        """
        posed = lbs(rest, regress_joints(rest, self.regressor), rotations, self.weights,
                    self.parents).vertices
        # The synthetic view turned the full posed mesh about its own box centre; turning the
        # full mesh first keeps that centre exact.
        posed = yaw_about_centre(posed, yaw)
        corners = posed[:, self.coarse_index]  # (B, Vc, 3, 3)
        return (self.coarse_weight[None, ..., None] * corners).sum(dim=2)

    def forward(self, rest: Tensor, rotations: Tensor, yaw: Tensor, K: Tensor, R: Tensor,
                t: Tensor, height: int, width: int) -> Tensor:
        """Soft silhouettes (B, height, width) in [0, 1].

        Args:
            rest, rotations, yaw: see :meth:`posed_coarse`.
            K: (B, 3, 3) intrinsics onto this ``height x width`` grid (scale the canvas
                intrinsics for a coarser grid); R: (B, 3, 3); t: (B, 3) meters.
        """
        verts = self.posed_coarse(rest, rotations, yaw)
        pix = project(verts, K, R, t)
        return soft_silhouette(pix, self.faces, height, width, sigma=self.sigma,
                               cull_backfaces=True, aggregate=self.aggregate)


def scale_intrinsics(K: Tensor, factor: float) -> Tensor:
    """Intrinsics (..., 3, 3) for a grid ``factor`` times as fine (pixel edges at 0 stay)."""
    s = torch.tensor([factor, factor, 1.0], dtype=K.dtype, device=K.device)
    return K * s[:, None]
