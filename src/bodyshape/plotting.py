"""Matplotlib pictures of body meshes for docs and reports (orthographic, grey shading).

matplotlib has no z-buffer, so triangles facing the camera are painted back to front;
good enough for convex-ish bodies at figure resolution, and it needs no OpenGL.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

#: view name -> (direction towards the camera, horizontal image axis, sign of that axis)
VIEWS = {
    "front": (np.array([0.0, -1.0, 0.0]), 0, 1.0),
    "left side": (np.array([1.0, 0.0, 0.0]), 1, 1.0),
}


def draw_mesh(ax, vertices: np.ndarray, faces: np.ndarray, view: str = "front",
              offset: float = 0.0, color=(0.45, 0.5)) -> None:
    """Paint a mesh (V, 3) meters into ``ax`` in a ``VIEWS`` view, shifted by ``offset`` m."""
    from matplotlib.collections import PolyCollection

    d, hax, sgn = VIEWS[view]
    tri = vertices[faces]
    n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    n /= np.linalg.norm(n, axis=1, keepdims=True) + 1e-12
    keep = n @ d > 0
    order = np.argsort((tri[keep] @ d).mean(1))
    light = d + np.array([0.3, 0.0, 0.5])
    shade = np.clip(n[keep][order] @ (light / np.linalg.norm(light)), 0, 1)
    g = color[0] + color[1] * shade
    polys = tri[keep][order][:, :, [hax, 2]] * [sgn, 1.0] + [offset, 0.0]
    ax.add_collection(PolyCollection(polys, facecolors=np.c_[g, g, g], edgecolors="none"))


def bodies_figure(meshes: np.ndarray, faces: np.ndarray, path: str | Path,
                  labels=None, views=("front", "left side"), per_row: int = 10,
                  title: str | None = None) -> None:
    """Save a grid picture of bodies (B, V, 3): one row block per ``per_row`` bodies, each
    body drawn in every view side by side, with an optional label under it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    b = len(meshes)
    rows = int(np.ceil(b / per_row))
    step = 0.85  # m between the views of one body (a front view with arms is ~1.1 m wide)
    width = step * len(views) + 0.35
    fig, axes = plt.subplots(rows, 1, figsize=(1.2 * per_row * len(views), 3.3 * rows),
                             squeeze=False)
    zmin, zmax = meshes[..., 2].min(), meshes[..., 2].max()
    for r in range(rows):
        ax = axes[r, 0]
        for j in range(per_row):
            i = r * per_row + j
            if i >= b:
                break
            for k, view in enumerate(views):
                draw_mesh(ax, meshes[i], faces, view, offset=j * width + k * step)
            if labels is not None:
                ax.text(j * width + (len(views) - 1) * step / 2, zmin - 0.08, labels[i],
                        ha="center", va="top", fontsize=8)
        ax.set_xlim(-0.6, per_row * width - 0.3)
        ax.set_ylim(zmin - 0.2, zmax + 0.05)
        ax.set_aspect("equal")
        ax.axis("off")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
