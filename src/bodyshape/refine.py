"""Test-time fitting: explain the input silhouettes with the predicted body in a fitted pose.

The network predicts the *shape* in the canonical A-pose; the person in the photos stands in
some other pose (arms higher or lower, legs apart, a lean). This module fits, by Adam on the
differentiable soft rasterizer (``render.soft``, "contour" mode), in two phases:

1. **pose** (always): per view, the 16 pose angles of ``body.pose`` (starting at
   ``init_angles``, else the rest pose; each photo is its own moment, so the front and side views get their own pose) and
   a small zoom and shift of the canvas camera (calibration centres the silhouette's box,
   which moves when the arms move), with the shape fixed;
2. **shape** (optional, ``shape=True``): the whitened shape coefficients z as well, pulled
   towards the network's answer.

The objective is

    sum over views (1 - soft IoU) + pose_prior * sum(outside-range^2 / range^2)
        + prior * |z - z0|^2 / K

where a pose angle is only penalized outside the ranges the synthetic data draws that view's
pose from (``FRONT_PHOTO_POSE``, ``SIDE_PHOTO_POSE``). Each step decodes z, scales the mesh to the given height (about its feet, as
prediction does), poses it with the rig (``body.kinematics``), turns it for the
view about its box centre, maps it to the coarse template and renders it. The iterate with
the best IoU sum is returned, so fitting never lowers the soft IoU it started from.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch

from bodyshape.body import BodyModel, PoseSpec
from bodyshape.body.pose import FRONT_PHOTO_POSE, SIDE_PHOTO_POSE
from bodyshape.body.kinematics import (
    lbs,
    pose_rotations,
    regress_joints,
    scale_to_height,
    yaw_about_centre,
)
from bodyshape.nets.losses import soft_iou
from bodyshape.nets.decoder import MeshDecoder
from bodyshape.nets.reproject import scale_intrinsics
from bodyshape.render.camera import Camera
from bodyshape.render.raster import mask_iou, silhouette
from bodyshape.render.soft import project, soft_silhouette
from bodyshape.shape.coarse import to_coarse

logger = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class SilhouetteFit:
    """The result of :func:`fit_silhouettes`.

    Attributes:
        coeffs: (K,) raw shape coefficients, meters (the input ones unless ``shape``).
        pose_angles: (n_views, P) fitted pose of each view, radians, ``POSE_NAMES`` order.
        cameras: per view, the canvas camera with the fitted zoom and shift folded into K.
        soft_iou: per view, the soft IoU of the returned iterate.
        soft_iou_start: per view, the soft IoU of the A-pose start (network shape, input
            cameras).
    """

    coeffs: np.ndarray
    pose_angles: np.ndarray
    cameras: tuple[Camera, ...]
    soft_iou: tuple[float, ...]
    soft_iou_start: tuple[float, ...]


def _zoom_shift(log_zoom: torch.Tensor, shift: torch.Tensor, width: int, height: int
                ) -> torch.Tensor:
    """(3, 3) pixel map: zoom by exp(log_zoom) about the canvas centre, then shift (px)."""
    z = torch.exp(log_zoom)
    cx, cy = width / 2.0, height / 2.0
    zero, one = torch.zeros_like(z), torch.ones_like(z)
    return torch.stack([z, zero, (1 - z) * cx + shift[0], zero, z, (1 - z) * cy + shift[1],
                        zero, zero, one]).view(3, 3)


def fit_silhouettes(body: BodyModel, coeffs: np.ndarray, height_m: float,
                    views: list[tuple[np.ndarray, Camera, float]], shape: bool = False,
                    pose_steps: int = 40, shape_steps: int = 30, lr_pose: float = 0.02,
                    lr_shape: float = 0.05, prior: float = 0.05, pose_prior: float = 1.0,
                    sigma: float = 0.3, grid: int = 128,
                    pose_specs: tuple[PoseSpec, ...] = (FRONT_PHOTO_POSE, SIDE_PHOTO_POSE),
                    init_angles: np.ndarray | None = None) -> SilhouetteFit:
    """Fit pose (and optionally shape) to the calibrated input silhouettes (module docs).

    Args:
        body: the body model.
        coeffs: (K,) the network's raw coefficients, meters.
        height_m: the person's height.
        views: per view (target canvas (h, w) in [0, 1], canvas camera, view yaw radians) as
            found by ``predict.fit_view`` for the A-pose mesh.
        shape: also fit the shape coefficients (phase 2).
        pose_steps, shape_steps: Adam iterations of each phase.
        lr_pose, lr_shape: step sizes (radians and log-zoom / 10 px for the pose phase;
            whitened coefficients for the shape).
        prior: weight of the pull towards the network's shape.
        pose_prior: weight of the penalty on pose angles outside ``pose_specs``.
        sigma: soft-edge sharpness, px^2 on the render grid.
        grid: render the silhouettes on a grid about this many pixels high: the canvas
            downsampled by an integer factor (area average), for speed.
        pose_specs: per view, the ranges outside which a pose angle is penalized.
        init_angles: (n_views, P) radians to start from (the network's poses); default the
            rest pose.
    """
    with torch.enable_grad():  # prediction runs under no_grad
        return _fit(body, coeffs, height_m, views, shape, pose_steps, shape_steps, lr_pose,
                    lr_shape, prior, pose_prior, sigma, grid, pose_specs, init_angles)


def _fit(body, coeffs, height_m, views, shape, pose_steps, shape_steps, lr_pose, lr_shape,
         prior, pose_prior, sigma, grid, pose_specs, init_angles) -> SilhouetteFit:
    dt = torch.float32
    k = len(coeffs)
    decoder = MeshDecoder.from_shape_model(body.shape, n_components=k)
    faces = torch.tensor(body.coarse.faces)  # a copy: the loaded array is read-only
    regressor = body.regressor.to(dt)
    # Skin the coarse mesh directly (its vertices' weights are the barycentric blend of the
    # template's): posing 1.2k vertices instead of 13k, the same up to second-order terms.
    weights = body.coarse_weights.to(dt)
    rest_arm = body.rest_arm_angle.to(dt)
    std = body.shape.std[:k].astype(np.float64)
    z0 = torch.tensor(coeffs / std, dtype=dt)
    if len(pose_specs) != len(views):
        raise ValueError(f"need one pose spec per view, got {len(pose_specs)} for "
                         f"{len(views)} views")
    ranges = torch.tensor(np.stack([s.ranges_rad() for s in pose_specs]), dtype=dt)  # (n, P, 2)
    width = (ranges[..., 1] - ranges[..., 0]).clamp_min(np.deg2rad(5.0))

    start_angles = body.rest_pose(len(views)).angles if init_angles is None else init_angles
    angles = torch.tensor(np.array(start_angles), dtype=dt)  # (n_views, P)
    angles.requires_grad_(True)
    z = z0.clone().requires_grad_(True)
    log_zoom = torch.zeros(len(views), requires_grad=True)
    shift = torch.zeros(len(views), 2, requires_grad=True)  # tens of pixels
    down = [max(1, t.shape[0] // grid) for t, _, _ in views]
    targets = [torch.nn.functional.avg_pool2d(torch.tensor(t, dtype=dt)[None, None], d)[0]
               for (t, _, _), d in zip(views, down)]
    cams = [tuple(torch.tensor(a, dtype=dt)[None] for a in (c.K, c.R, c.t))
            for _, c, _ in views]
    yaws = [torch.tensor([y], dtype=dt) for _, _, y in views]

    def rest_of(z_now: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(coarse rest mesh (1, Vc, 3), joints (1, J, 3)) of whitened coefficients."""
        rest, _ = scale_to_height(decoder(z_now[None]), torch.tensor([height_m]))
        return to_coarse(rest, body.coarse), regress_joints(rest, regressor)

    with torch.no_grad():  # the pose phase keeps the network's shape: build it once
        fixed = rest_of(z0)

    def ious(z_now: torch.Tensor | None) -> list[torch.Tensor]:
        rest_c, joints = fixed if z_now is None else rest_of(z_now)
        n = len(views)
        rot = pose_rotations(angles, rest_arm)  # one pose per view
        posed = lbs(rest_c.expand(n, -1, -1), joints.expand(n, -1, -1), rot, weights,
                    body.parents).vertices
        out = []
        for i, (target, (K, R, t), yaw) in enumerate(zip(targets, cams, yaws)):
            h, w = target.shape[-2:]
            # About the coarse box: the shift absorbs the difference.
            verts = yaw_about_centre(posed[i:i + 1], yaw)
            c = views[i][1]
            # Zoom and shift act on canvas pixels; then map the canvas onto the coarser grid.
            k_adj = scale_intrinsics(_zoom_shift(log_zoom[i], 10.0 * shift[i], c.width,
                                                 c.height) @ K[0], 1.0 / down[i])[None]
            sil = soft_silhouette(project(verts, k_adj, R, t), faces, h, w, sigma=sigma,
                                  cull_backfaces=True, aggregate="contour")
            out.append(soft_iou(sil, target)[0])
        return out

    def snapshot(values: list[torch.Tensor]) -> dict:
        return {"z": z.detach().clone(), "angles": angles.detach().clone(),
                "log_zoom": log_zoom.detach().clone(), "shift": shift.detach().clone(),
                "ious": tuple(float(v.detach()) for v in values)}

    best = None
    start = None
    phases = [("pose", pose_steps, [angles, log_zoom, shift], lr_pose)]
    if shape:
        # The cameras keep moving: the pose phase's framing is only approximate.
        phases.append(("shape", shape_steps, [angles, log_zoom, shift, z], None))
    for name, steps, params, lr in phases:
        groups = [{"params": [p], "lr": lr_shape if p is z else lr_pose} for p in params]
        opt = torch.optim.Adam(groups)
        for step in range(steps + 1):
            values = ious(z if name == "shape" else None)
            total = float(sum(v.detach() for v in values))
            if start is None:
                start = snapshot(values)
            if best is None or total > sum(best["ious"]):
                best = snapshot(values)
            if step == steps:
                break
            outside = (torch.relu(ranges[..., 0] - angles) + torch.relu(angles - ranges[..., 1]))
            loss = (sum(1.0 - v for v in values)
                    + pose_prior * ((outside / width) ** 2).sum())
            if name == "shape":
                loss = loss + prior * ((z - z0) ** 2).sum() / k
            opt.zero_grad()
            loss.backward()
            opt.step()
    logger.info("silhouette fit: soft IoU %s -> %s",
                "/".join(f"{v:.3f}" for v in start["ious"]),
                "/".join(f"{v:.3f}" for v in best["ious"]))
    cameras = []
    for i, (_, c, _) in enumerate(views):
        a = _zoom_shift(best["log_zoom"][i], 10.0 * best["shift"][i], c.width, c.height)
        cameras.append(Camera(a.double().numpy() @ c.K, c.R, c.t, c.width, c.height))
    z_best = best["z"] if shape else z0
    return SilhouetteFit(coeffs=z_best.double().numpy() * std,
                         pose_angles=best["angles"].double().numpy(), cameras=tuple(cameras),
                         soft_iou=best["ious"], soft_iou_start=start["ious"])


def render_fit(body: BodyModel, vertices: np.ndarray, fit: SilhouetteFit, view: int,
               yaw: float, target: np.ndarray) -> tuple[np.ndarray, float]:
    """Exact silhouette of a canonical mesh in the fitted pose, through view ``view``'s
    fitted camera, and its IoU with the input canvas.

    Args:
        body: the body model.
        vertices: (V, 3) canonical mesh at the person's height, meters.
        fit: the fit; view: index into ``fit.cameras``; yaw: that view's turn, radians.
        target: (h, w) input canvas in [0, 1] (thresholded at 0.5).
    Returns:
        ((h, w) bool silhouette, IoU).
    """
    posed = body.pose(vertices, fit.pose_angles[view])
    canvas = silhouette(body.turn(posed, yaw), body.faces, fit.cameras[view], closed=True)
    return canvas, mask_iou(canvas, target >= 0.5)
