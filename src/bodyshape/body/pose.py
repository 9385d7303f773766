"""The pose vocabulary of the 16-joint rig (``bodyshape.body.rig``): the named pose angles,
their conventions and the ranges synthesis draws them from.

A measurement photo asks the subject to stand upright with arms held away from the body, so
the default ranges (``PoseSpec``) stay close to that: arms lifted sideways by a varying amount
with some forward/back swing and elbow bend, a small leg spread, nearly straight knees, and a
small lean, side bend and twist of the trunk and head. The angles become joint rotations in
:func:`bodyshape.body.kinematics.pose_rotations`; synthesis samples them
(:mod:`bodyshape.synth.poses`).

Angle conventions (rest frame: Z up, facing -Y, subject's left at +X):

- ``arm_abduction_*``: absolute angle between the downward vertical and the shoulder -> wrist
  direction in the frontal plane (0 = hanging, pi/2 = horizontal). The template's A-pose is
  ``Rig.rest_arm_angle`` (~43 deg); the shoulder is rotated by the difference, about -Y for
  the left arm and +Y for the right, so that a larger angle lifts both arms outward.
- ``arm_swing_*``: rotation about the X axis at the shoulder, positive swings the arm forward.
- ``elbow_bend_*``: extra flexion on top of the A-pose's bent elbow, about the axis
  perpendicular to the rest upper arm within the frontal plane; positive brings the hand
  forward and up.
- ``leg_spread_*``: hip abduction relative to the rest stance, positive moves the foot
  outward (about -Y on the left, +Y on the right).
- ``knee_bend_*``: knee flexion about +X, positive moves the foot backward.
- ``spine_*`` and ``head_*``: pitch about +X (positive leans forward), roll about +Y (positive
  bends toward the subject's left), yaw about +Z (positive turns toward the subject's left);
  applied as ``Rz(yaw) @ Ry(roll) @ Rx(pitch)`` at the spine (mid-lumbar) and head joints.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from bodyshape.body.keypoints import KEYPOINT_NAMES

POSE_NAMES = (
    "arm_abduction_l", "arm_abduction_r", "arm_swing_l", "arm_swing_r",
    "elbow_bend_l", "elbow_bend_r", "leg_spread_l", "leg_spread_r",
    "knee_bend_l", "knee_bend_r",
    "spine_pitch", "spine_roll", "spine_yaw", "head_pitch", "head_roll", "head_yaw",
)


_MAX_DEG = 180.0


@dataclass(frozen=True)
class PoseSpec:
    """Uniform ranges (low, high) of the sampled pose angles, in DEGREES (see module docs).

    Left and right sides are drawn independently from the same range. The defaults are the
    original near-A pose that synthesis drew for both views before per-view poses
    (``SynthSpec.clean()``); ``FRONT_PHOTO_POSE`` and ``SIDE_PHOTO_POSE`` are how people
    stand for each photo.

    Attributes:
        arm_abduction_deg: absolute arm angle from vertical, (25, 65): from arms near the body
            to well clear of it; the rest A-pose is ~43.
        arm_swing_deg: forward (+) / backward (-) arm swing, (-10, 10).
        elbow_bend_deg: extra elbow flexion, (0, 15).
        leg_spread_deg: hip abduction relative to the rest stance (~5 deg outward per leg),
            (-6, 6): at -6 the template's legs are about parallel with a ~2.5 cm gap between
            the thighs; bodies whose thighs touch at rest will overlap when adducted.
        knee_bend_deg: knee flexion, (0, 5).
        spine_pitch_deg: forward (+) / backward lean, (-6, 6).
        spine_roll_deg: side bend, (-4, 4).
        spine_yaw_deg: trunk twist, (-5, 5).
        head_pitch_deg, head_roll_deg, head_yaw_deg: head nod, tilt and turn, each (-8, 8).

    Raises:
        ValueError: (one line) if a range is not (low, high) with low <= high, finite and
            within +-180 degrees.
    """

    arm_abduction_deg: tuple[float, float] = (25.0, 65.0)
    arm_swing_deg: tuple[float, float] = (-10.0, 10.0)
    elbow_bend_deg: tuple[float, float] = (0.0, 15.0)
    leg_spread_deg: tuple[float, float] = (-6.0, 6.0)
    knee_bend_deg: tuple[float, float] = (0.0, 5.0)
    spine_pitch_deg: tuple[float, float] = (-6.0, 6.0)
    spine_roll_deg: tuple[float, float] = (-4.0, 4.0)
    spine_yaw_deg: tuple[float, float] = (-5.0, 5.0)
    head_pitch_deg: tuple[float, float] = (-8.0, 8.0)
    head_roll_deg: tuple[float, float] = (-8.0, 8.0)
    head_yaw_deg: tuple[float, float] = (-8.0, 8.0)

    def __post_init__(self):
        for f in dataclasses.fields(self):
            r = getattr(self, f.name)
            try:
                lo, hi = (float(x) for x in r)
            except (TypeError, ValueError):
                raise ValueError(f"PoseSpec.{f.name} must be a (low, high) pair of degrees, "
                                 f"got {r!r}") from None
            if not (np.isfinite(lo) and np.isfinite(hi) and -_MAX_DEG <= lo <= hi <= _MAX_DEG):
                raise ValueError(f"PoseSpec.{f.name} must be (low, high) with -180 <= low <= "
                                 f"high <= 180 degrees, got {r!r}")

    @classmethod
    def from_dict(cls, d: dict) -> "PoseSpec":
        """From ``dataclasses.asdict`` output or its JSON round trip; the single
        ``head_deg`` range of datasets written before per-view poses sets all three head
        angles."""
        d = dict(d)
        if "head_deg" in d:
            head = d.pop("head_deg")
            for name in ("head_pitch_deg", "head_roll_deg", "head_yaw_deg"):
                d.setdefault(name, head)
        unknown = sorted(set(d) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ValueError(f"unknown PoseSpec fields: {', '.join(unknown)}")
        return cls(**{k: tuple(v) for k, v in d.items()})

    def ranges_rad(self) -> np.ndarray:
        """(P, 2) radians, the (low, high) range of each of ``POSE_NAMES``."""
        rows = []
        for name in POSE_NAMES:
            base = name[:-2] if name[-2:] in ("_l", "_r") else name
            rows.append(getattr(self, f"{base}_deg"))
        return np.radians(np.array(rows, dtype=np.float64))


FRONT_PHOTO_POSE = PoseSpec(
    arm_abduction_deg=(0.0, 95.0), arm_swing_deg=(-15.0, 15.0), elbow_bend_deg=(-38.0, 0.0),
    leg_spread_deg=(-6.0, 8.0), knee_bend_deg=(0.0, 6.0),
    spine_pitch_deg=(-6.0, 6.0), spine_roll_deg=(-4.0, 4.0), spine_yaw_deg=(-6.0, 6.0),
    head_pitch_deg=(-15.0, 15.0), head_roll_deg=(-8.0, 8.0), head_yaw_deg=(-10.0, 10.0))
"""How people stand for the front photo: arms anywhere from against the body to a little
above horizontal, some swing, elbows from straight to the template's 41 deg bend (the rest
A-pose holds the forearms bent forward by ~41 deg, so ``elbow_bend`` -38 is nearly
straight), head nodding up to +-15 deg."""

SIDE_PHOTO_POSE = PoseSpec(
    arm_abduction_deg=(0.0, 20.0), arm_swing_deg=(-20.0, 20.0), elbow_bend_deg=(-38.0, -18.0),
    leg_spread_deg=(-6.0, 4.0), knee_bend_deg=(0.0, 6.0),
    spine_pitch_deg=(-6.0, 6.0), spine_roll_deg=(-3.0, 3.0), spine_yaw_deg=(-6.0, 6.0),
    head_pitch_deg=(-15.0, 15.0), head_roll_deg=(-6.0, 6.0), head_yaw_deg=(-10.0, 10.0))
"""How people stand for the side photo: arms hanging (0-20 deg from vertical), nearly
straight (3-23 deg of elbow bend), with forward or backward swing up to 20 deg, head nodding
up to +-15 deg."""


@dataclass(frozen=True)
class PoseParams:
    """Sampled pose angles.

    Attributes:
        angles: (n, P) radians, columns ``names`` (conventions in the module docs).
        names: ``POSE_NAMES``.
    """

    angles: np.ndarray
    names: tuple[str, ...] = POSE_NAMES

    def __len__(self) -> int:
        return self.angles.shape[0]

    def column(self, name: str) -> np.ndarray:
        """(n,) radians of angle ``name``."""
        return self.angles[:, self.names.index(name)]


#: Image angle of shoulder -> elbow keypoints per radian of ``arm_abduction``: the
#: MediaPipe-like shoulder keypoint sits above and inside the rig's shoulder joint, so the
#: image angle reads ~10 % short (least squares over 0-95 deg, elbow bend and swing in
#: ``FRONT_PHOTO_POSE``'s ranges, template and random shapes: within ~5 deg, mean ~2 deg;
#: tests/test_poses.py).
KEYPOINT_ABDUCTION_GAIN = 0.90


def arm_abduction_from_keypoints(keypoints: np.ndarray) -> np.ndarray:
    """Each arm's ``arm_abduction`` from a front photo's 2D keypoints.

    The angle between the image's downward vertical and the shoulder -> elbow segment,
    measured outward, divided by ``KEYPOINT_ABDUCTION_GAIN``. The shoulders and elbows are
    paired by image side, not by their left/right labels (MediaPipe swaps those at times):
    facing the camera, the subject's left arm is the one on the image's right. (Its 3D
    counterpart on rig joints, shoulder -> wrist, is ``kinematics.frontal_arm_angles``; this
    one reads 2D image keypoints, where the wrist is often hidden or bent away.)

    Args:
        keypoints: (..., K, 2) pixels (x right, y down; any scale and shift, e.g. frame or
            canvas pixels, not mirrored) in ``keypoints.KEYPOINT_NAMES`` order, NaN where
            missing.
    Returns:
        (..., 2) radians (left, right), NaN where a shoulder or elbow is missing.
    """
    kp = np.asarray(keypoints, dtype=np.float64)
    sh = kp[..., [KEYPOINT_NAMES.index("shoulder_l"), KEYPOINT_NAMES.index("shoulder_r")], :]
    el = kp[..., [KEYPOINT_NAMES.index("elbow_l"), KEYPOINT_NAMES.index("elbow_r")], :]
    # Order each pair as (image right, image left) = (subject's left, right); a pair with
    # a missing point keeps its labels.
    sh = np.where((sh[..., :1, 0] < sh[..., 1:, 0])[..., None], sh[..., ::-1, :], sh)
    el = np.where((el[..., :1, 0] < el[..., 1:, 0])[..., None], el[..., ::-1, :], el)
    d = el - sh
    outward = np.array([1.0, -1.0])
    return np.arctan2(outward * d[..., 0], d[..., 1]) / KEYPOINT_ABDUCTION_GAIN


def rest_pose_params(n: int, rest_arm_angle) -> PoseParams:
    """Parameters of the rest pose (identity rotations): arms at the rest angle, all else 0.

    Args:
        n: number of poses.
        rest_arm_angle: radians, scalar or broadcastable to (n, 2) (left, right).
    """
    angles = np.zeros((n, len(POSE_NAMES)))
    angles[:, :2] = np.broadcast_to(rest_arm_angle, (n, 2))
    return PoseParams(angles)
