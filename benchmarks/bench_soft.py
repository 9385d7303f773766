"""Soft silhouette renderer: forward + backward time for a training-sized batch.

A batch of 16 bodies sampled from the shipped PCA shape model, mapped to the coarse template
(``bodyshape.shape.coarse``), each seen by its own phone camera (``sample_camera`` with a
square frame), rendered with ``bodyshape.render.soft.soft_silhouette`` at 64 and 128 px
(sigma 0.1 px^2), both aggregates, with and without back-face culling, and scored with the
soft IoU loss against the exact silhouettes; the time covers projection, rendering, the loss
and the backward pass to the template-topology vertices. Also prints the IoU of the 0.5-level
set with the exact silhouette, i.e. how far each aggregate's outline is from the mesh's.

Usage: python benchmarks/bench_soft.py [--batch 16] [--reps 5] [--threads 2]
Prints a table; writes nothing.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from bodyshape.render.camera import CameraSpec, sample_camera
from bodyshape.render.raster import silhouettes
from bodyshape.render.soft import (camera_tensors, mesh_edges, project, soft_iou_loss,
                                   soft_silhouette)
from bodyshape.shape.coarse import load_coarse, to_coarse
from bodyshape.shape.pca import ShapeModel

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "src/bodyshape/data/shape_model.npz"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--sigma", type=float, default=0.1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)

    bodies = ShapeModel.load(MODEL).sample(args.batch, rng).vertices.astype(np.float64)
    coarse = load_coarse()
    faces = torch.from_numpy(coarse.faces.copy())
    edges = mesh_edges(coarse.faces)
    coarse_np = to_coarse(bodies)
    print(f"coarse mesh: {coarse.n_vertices} vertices, {len(coarse.faces)} faces; "
          f"batch {args.batch}, {args.threads} torch threads, sigma {args.sigma} px^2")
    print(f"{'size':>5} {'aggregate':>9} {'cull':>5} {'median s':>9} {'min s':>7} "
          f"{'IoU@0.5':>8} {'area ratio':>10}")
    for size in (64, 128):
        spec = CameraSpec(aspects=((1, 1),), long_side=size)
        cams = [sample_camera(rng, spec, np.stack([v.min(0), v.max(0)]), v[:, 2].min())
                for v in bodies]
        exact = silhouettes(coarse_np, coarse.faces, cams, closed=True)
        target = torch.from_numpy(exact).float()
        K, R, t = camera_tensors(cams)
        for aggregate in ("softras", "contour"):
            for cull in (True, False):
                times = []
                for _ in range(args.reps):
                    verts = torch.tensor(bodies, dtype=torch.float32, requires_grad=True)
                    t0 = time.perf_counter()
                    pix = project(to_coarse(verts), K, R, t)
                    sil = soft_silhouette(pix, faces, size, size, sigma=args.sigma,
                                          cull_backfaces=cull, aggregate=aggregate,
                                          edges=edges)
                    soft_iou_loss(sil, target).mean().backward()
                    times.append(time.perf_counter() - t0)
                hard = sil.detach().numpy() > 0.5
                iou = (hard & exact).sum() / (hard | exact).sum()
                print(f"{size:>5} {aggregate:>9} {str(cull):>5} {np.median(times):>9.3f} "
                      f"{min(times):>7.3f} {iou:>8.3f} {hard.sum() / exact.sum():>10.3f}")


if __name__ == "__main__":
    main()
