"""Random standing poses for synthesis: every angle of ``body.pose.POSE_NAMES`` drawn uniformly
from its ``PoseSpec`` range. The vocabulary itself (names, conventions, ranges) lives in
:mod:`bodyshape.body.pose`, shared with training and prediction.
"""

from __future__ import annotations

import numpy as np

from bodyshape.body.pose import POSE_NAMES, PoseParams, PoseSpec


def sample_poses(rng: np.random.Generator, n: int, spec: PoseSpec = PoseSpec()) -> PoseParams:
    """Draw ``n`` poses, every angle uniform in its ``spec`` range (rng is the only source)."""
    r = spec.ranges_rad()
    if np.any(r[:, 0] > r[:, 1]):
        raise ValueError("every PoseSpec range must be (low, high) with low <= high")
    return PoseParams(rng.uniform(r[:, 0], r[:, 1], size=(n, len(POSE_NAMES))))
