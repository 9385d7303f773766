"""Picture of the template in sampled poses: docs/poses.png (no anny needed).

Usage: python tools/plot_poses.py [--n 6] [--seed 4]
The first body is the rest pose; then ``n`` draws of the front-photo pose
(``FRONT_PHOTO_POSE``) and ``n`` of the side-photo pose (``SIDE_PHOTO_POSE``), labelled with
their left/right arm angles, to check by eye that skinning and the sampled ranges stay
anatomically plausible (no arms through the body, no inverted knees).
"""

import argparse
import logging
from pathlib import Path

import numpy as np

from bodyshape.body import BodyModel, PoseParams
from bodyshape.body.pose import FRONT_PHOTO_POSE, SIDE_PHOTO_POSE
from bodyshape.plotting import bodies_figure
from bodyshape.synth.poses import sample_poses

ROOT = Path(__file__).resolve().parents[1]
logger = logging.getLogger("plot_poses")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=6)
    ap.add_argument("--seed", type=int, default=4)
    ap.add_argument("--out", default=str(ROOT / "docs" / "poses.png"))
    a = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    body = BodyModel.load()
    template = body.template
    rng = np.random.default_rng(a.seed)
    front = sample_poses(rng, a.n, FRONT_PHOTO_POSE)
    side = sample_poses(rng, a.n, SIDE_PHOTO_POSE)
    params = PoseParams(np.concatenate([body.rest_pose(1).angles, front.angles, side.angles]))
    verts = np.broadcast_to(template.vertices, (len(params),) + template.vertices.shape)
    posed = body.pose(verts, params.angles)
    arms = np.degrees(params.angles[:, :2])
    labels = (["rest (A-pose)"]
              + [f"front photo: arms {l:.0f}/{r:.0f}" for l, r in arms[1:a.n + 1]]
              + [f"side photo: arms {l:.0f}/{r:.0f}" for l, r in arms[a.n + 1:]])
    bodies_figure(posed, body.faces, a.out, labels, per_row=a.n + 1,
                  title="Template in sampled photo poses (16-joint rig, LBS): rest pose, "
                        "front-photo draws, side-photo draws")
    logger.info("wrote %s", a.out)


if __name__ == "__main__":
    main()
