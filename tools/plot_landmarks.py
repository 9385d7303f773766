"""Render the template with its landmarks: front and left-side orthographic views.

Run from the repo root: ``.venv/bin/python tools/plot_landmarks.py [OUT.png] [--dpi N]``
(default ``docs/landmarks.png`` at 100 dpi, 1600 x 1200 px). Axes are in meters (template
frame: Z up, subject faces -Y, subject's left is +X). The front view shows every landmark; a
hollow marker means the point is on a surface facing away from the camera. The side view,
seen from the subject's left, shows the midline and left (``_l``) landmarks only.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import trimesh  # noqa: E402

from bodyshape.plotting import VIEWS, draw_mesh  # noqa: E402
from bodyshape.shape.template import load_landmark_table  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
def spread(targets: np.ndarray, gap: float, lo: float, hi: float) -> np.ndarray:
    """Label heights near ``targets`` (sorted ascending), at least ``gap`` apart: overlapping
    labels merge into evenly spaced blocks centred on their targets' mean."""
    blocks = [[float(t)] for t in targets]  # each block: the targets of its labels

    def pos(b):
        c = np.clip(np.mean(b), lo + gap * (len(b) - 1) / 2, hi - gap * (len(b) - 1) / 2)
        return c + (np.arange(len(b)) - (len(b) - 1) / 2) * gap

    merged = True
    while merged:
        merged = False
        for j in range(len(blocks) - 1):
            if pos(blocks[j + 1])[0] < pos(blocks[j])[-1] + gap:
                blocks[j:j + 2] = [blocks[j] + blocks[j + 1]]
                merged = True
                break
    return np.concatenate([pos(b) for b in blocks])


def label_column(ax, pts, names, colors, hollow, x_col, side, lo, hi, gap):
    """Draw labels in a vertical column at ``x_col`` with leader lines to ``pts`` (N, 2)."""
    if not len(pts):
        return
    order = np.argsort(pts[:, 1])
    ys = spread(pts[order, 1], gap, lo, hi)
    for k, y in zip(order, ys):
        ax.plot([pts[k, 0], x_col], [pts[k, 1], y], lw=0.5, color=colors[k], alpha=0.7)
        ax.text(x_col, y, f" {names[k]} " if side == "right" else f"{names[k]} ",
                ha="left" if side == "right" else "right", va="center", fontsize=7.5,
                color=colors[k], style="italic" if hollow[k] else "normal")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out", nargs="?", default=str(ROOT / "docs" / "landmarks.png"))
    ap.add_argument("--dpi", type=int, default=100)
    args = ap.parse_args()
    data = np.load(ROOT / "src" / "bodyshape" / "shape" / "data" / "template.npz")
    v, f = data["vertices"].astype(float), data["faces"].astype(np.int64)
    normals = trimesh.Trimesh(v, f, process=False).vertex_normals
    table = load_landmark_table()
    names = np.array([r["name"] for r in table])
    idx = np.array([r["vertex"] for r in table])
    cmap = plt.get_cmap("tab10")
    colors = np.array([cmap(k % 10) for k in range(len(names))])

    fig, axes = plt.subplots(1, 2, figsize=(16, 12), gridspec_kw={"width_ratios": [1.45, 1]})
    lo, hi = v[:, 2].min(), v[:, 2].max()
    for ax, view in zip(axes, VIEWS):
        d, hax, sgn = VIEWS[view]
        draw_mesh(ax, v, f, view)
        show = np.ones(len(names), bool) if view == "front" else ~np.char.endswith(names, "_r")
        p = np.c_[v[idx, hax] * sgn, v[idx, 2]][show]
        hollow = (normals[idx] @ d < -0.3)[show]
        col, nm = colors[show], names[show]
        ax.scatter(p[:, 0], p[:, 1], s=22, facecolors=np.where(hollow[:, None], 0, col),
                   edgecolors=col, linewidths=1.2, zorder=5)
        ax.scatter(p[~hollow, 0], p[~hollow, 1], s=3, c="k", zorder=6)
        if view == "front":  # labels: _r and upper midline on the left, _l and lower midline right
            low = p[:, 1] < np.median(p[:, 1])
            right = np.char.endswith(nm, "_l") | (~np.char.endswith(nm, "_r") & low)
        else:  # anterior points left, posterior points right
            right = p[:, 0] > np.median(p[:, 0])
        x0, x1 = v[:, hax].min(), v[:, hax].max()  # both views have sgn = +1
        for m, side, xc in ((~right, "left", x0 - 0.05), (right, "right", x1 + 0.05)):
            label_column(ax, p[m], nm[m], col[m], hollow[m], xc, side, lo - 0.02, hi + 0.02, 0.023)
        ax.set_xlim(x0 - 0.36, x1 + 0.36)
        ax.set_ylim(lo - 0.05, hi + 0.05)
        ax.set_aspect("equal")
        ax.set_title(f"{view} view (m); {'all' if view == 'front' else 'midline + left'} landmarks, "
                     "hollow/italic = facing away", fontsize=10)
        ax.tick_params(labelsize=7)
    fig.suptitle(f"bodyshape template: {len(names)} landmarks", fontsize=13)
    fig.tight_layout()
    fig.savefig(args.out, dpi=args.dpi)
    print("wrote", args.out)


if __name__ == "__main__":
    main()
