"""Pictures of the realistic synthetic photos: per-view poses and garments.

Usage: python tools/plot_synth_views.py [--n 8] [--seed 3]

Writes ``docs/synth_views.png``: for ``n`` samples of ``SynthSpec()`` (realistic: each view
its own pose, clothing, hair and shoes), the full-frame front and side silhouettes as the
phone saw them (grey) with the naked body under them (the training target, red outline),
labelled with the outfit and the arm angles of each view. No anny needed.
"""

import argparse
import logging
from pathlib import Path

import numpy as np

from bodyshape.body import BodyModel
from bodyshape.render.camera import Camera
from bodyshape.render.raster import silhouette
from bodyshape.synth.garments import KINDS, LAYERS
from bodyshape.synth.generate import SynthSpec, make_sample_frames

ROOT = Path(__file__).resolve().parents[1]
logger = logging.getLogger("plot_synth_views")


def naked_frame(body: BodyModel, sample, view: int) -> np.ndarray:
    """The naked body of a sample posed, turned and photographed like view ``view``."""
    rest = body.shape.decode(sample.coeffs[None].astype(np.float64))[0]
    posed = body.pose(rest, sample.pose_angles[view].astype(np.float64))
    cam = Camera.from_dict(sample.front_camera if view == 0 else sample.side_camera)
    return silhouette(body.turn(posed, float(sample.yaw[view])), body.faces, cam, closed=True)


def crop(mask: np.ndarray, pad: int = 8) -> tuple[slice, slice]:
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    return (slice(max(rows[0] - pad, 0), rows[-1] + pad),
            slice(max(cols[0] - pad, 0), cols[-1] + pad))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--out", default=str(ROOT / "docs" / "synth_views.png"))
    a = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    body = BodyModel.load()
    spec = SynthSpec()
    fig, axes = plt.subplots(2, a.n, figsize=(2.1 * a.n, 7.4))
    for i in range(a.n):
        sf = make_sample_frames(body, i, a.seed, spec)
        s = sf.sample
        outfit = ", ".join(KINDS[layer][c] for layer, c in zip(LAYERS, s.garments)
                           if KINDS[layer][c] != "none")
        for v, frame in enumerate((sf.front, sf.side)):
            naked = naked_frame(body, s, v)
            win = crop(frame | naked)
            ax = axes[v, i]
            img = np.where(frame[win], 0.6, 1.0)
            ax.imshow(np.dstack([img, img, img]), interpolation="nearest")
            ax.contour(naked[win], levels=[0.5], colors="red", linewidths=0.6)
            arms = np.degrees(s.pose_angles[v, :2])
            ax.set_title(f"{'front' if v == 0 else 'side'}: arms {arms[0]:.0f}/{arms[1]:.0f}°"
                         + (f"\n{outfit}" if v == 0 else ""), fontsize=7)
            ax.axis("off")
    fig.suptitle("Realistic synthetic photos (SynthSpec()): per-view poses and garments; "
                 "grey = silhouette, red = naked body (the target)", fontsize=9)
    fig.tight_layout()
    fig.savefig(a.out, dpi=110)
    logger.info("wrote %s", a.out)


if __name__ == "__main__":
    main()
