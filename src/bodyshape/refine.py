"""Test-time refinement: adjust the predicted shape so its silhouettes match the photos.

Starting from the network's coefficients, Adam minimizes, over the whitened coefficients z,

    sum over views (1 - soft IoU(render(z), input canvas)) + prior * |z - z0|^2 / K

where ``render`` scales the decoded mesh to the given height (about its feet, as
prediction does), turns it for the view, maps it to the coarse template and draws it with
the differentiable soft rasterizer (``render.soft``, "contour" mode) through the view's
fitted canvas camera (``predict.fit_view``). The cameras stay fixed: a small shape change
barely moves the calibrated framing. The iterate with the best IoU sum is returned.
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from bodyshape.nets.losses import soft_iou
from bodyshape.nets.models import MeshDecoder
from bodyshape.nets.posing import yaw_about_centre
from bodyshape.render.camera import Camera
from bodyshape.render.soft import project, soft_silhouette
from bodyshape.shape.coarse import load_coarse, to_coarse
from bodyshape.shape.pca import ShapeModel

logger = logging.getLogger(__name__)


def _scale_to_height(v: torch.Tensor, height_m: float) -> torch.Tensor:
    """Torch twin of ``predict.scale_to_height`` for one (V, 3) mesh."""
    lo, hi = v.amin(0), v.amax(0)
    s = height_m / (hi[2] - lo[2])
    centre = 0.5 * (lo + hi)
    anchor = torch.stack([centre[0], centre[1], lo[2]])
    return anchor + (v - anchor) * s


def refine_coefficients(model: ShapeModel, coeffs: np.ndarray, height_m: float,
                        views: list[tuple[np.ndarray, Camera, float]], steps: int = 40,
                        lr: float = 0.05, prior: float = 0.05, sigma: float = 0.3
                        ) -> np.ndarray:
    """Refined raw coefficients (K,), meters.

    Args:
        model: the shape model.
        coeffs: (K,) the network's raw coefficients.
        height_m: the person's height.
        views: per view (target canvas (h, w) in [0, 1], canvas camera, view yaw radians).
        steps, lr: Adam iterations and step size (on whitened coefficients).
        prior: weight of the pull towards the network's answer.
        sigma: soft-edge sharpness, px^2 on the canvas.
    """
    with torch.enable_grad():  # prediction runs under no_grad
        return _refine(model, coeffs, height_m, views, steps, lr, prior, sigma)


def _refine(model, coeffs, height_m, views, steps, lr, prior, sigma) -> np.ndarray:
    k = len(coeffs)
    decoder = MeshDecoder.from_shape_model(model, n_components=k)
    coarse = load_coarse()
    faces = torch.tensor(coarse.faces)  # a copy: the loaded array is read-only
    std = model.std[:k].astype(np.float64)
    z0 = torch.tensor(coeffs / std, dtype=torch.float32)
    z = z0.clone().requires_grad_(True)
    opt = torch.optim.Adam([z], lr=lr)
    targets = [torch.as_tensor(t, dtype=torch.float32)[None] for t, _, _ in views]
    cams = [tuple(torch.as_tensor(a, dtype=torch.float32)[None] for a in (c.K, c.R, c.t))
            for _, c, _ in views]
    yaws = [torch.tensor([y], dtype=torch.float32) for _, _, y in views]
    best, best_iou = z0.clone(), -1.0
    for step in range(steps + 1):
        v = _scale_to_height(decoder(z[None])[0], height_m)
        ious = []
        for target, (K, R, t), yaw in zip(targets, cams, yaws):
            verts = to_coarse(yaw_about_centre(v[None], yaw), coarse)
            h, w = target.shape[-2:]
            sil = soft_silhouette(project(verts, K, R, t), faces, h, w, sigma=sigma,
                                  cull_backfaces=True, aggregate="contour")
            ious.append(soft_iou(sil, target)[0])
        total_iou = float(sum(i.detach() for i in ious))
        if total_iou > best_iou:
            best, best_iou = z.detach().clone(), total_iou
        if step == steps:
            break
        loss = sum(1.0 - i for i in ious) + prior * ((z - z0) ** 2).sum() / k
        opt.zero_grad()
        loss.backward()
        opt.step()
    logger.info("refinement: soft IoU sum %.4f", best_iou)
    return best.double().numpy() * std
