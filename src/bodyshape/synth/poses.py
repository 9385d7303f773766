"""Random standing poses for the 16-joint rig (``bodyshape.shape.rig``).

A measurement photo asks the subject to stand upright with arms held away from the body, so
sampled poses stay close to that: arms lifted sideways by a varying amount with some
forward/back swing and elbow bend, a small leg spread, nearly straight knees, and a small
lean, side bend and twist of the trunk and head.

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

from dataclasses import dataclass

import numpy as np

from bodyshape.shape.rig import JOINT_NAMES, N_JOINTS, axis_angle_to_matrix

POSE_NAMES = (
    "arm_abduction_l", "arm_abduction_r", "arm_swing_l", "arm_swing_r",
    "elbow_bend_l", "elbow_bend_r", "leg_spread_l", "leg_spread_r",
    "knee_bend_l", "knee_bend_r",
    "spine_pitch", "spine_roll", "spine_yaw", "head_pitch", "head_roll", "head_yaw",
)


@dataclass(frozen=True)
class PoseSpec:
    """Uniform ranges (low, high) of the sampled pose angles, in DEGREES (see module docs).

    Left and right sides are drawn independently from the same range.

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
        head_deg: head pitch, roll and yaw, each (-8, 8).
    """

    arm_abduction_deg: tuple[float, float] = (25.0, 65.0)
    arm_swing_deg: tuple[float, float] = (-10.0, 10.0)
    elbow_bend_deg: tuple[float, float] = (0.0, 15.0)
    leg_spread_deg: tuple[float, float] = (-6.0, 6.0)
    knee_bend_deg: tuple[float, float] = (0.0, 5.0)
    spine_pitch_deg: tuple[float, float] = (-6.0, 6.0)
    spine_roll_deg: tuple[float, float] = (-4.0, 4.0)
    spine_yaw_deg: tuple[float, float] = (-5.0, 5.0)
    head_deg: tuple[float, float] = (-8.0, 8.0)

    def ranges_rad(self) -> np.ndarray:
        """(P, 2) radians, the (low, high) range of each of ``POSE_NAMES``."""
        per_name = {}
        for name in POSE_NAMES:
            base = name[:-2] if name[-2:] in ("_l", "_r") else name
            field = "head_deg" if base.startswith("head_") else f"{base}_deg"
            per_name[name] = getattr(self, field)
        return np.radians(np.array([per_name[n] for n in POSE_NAMES], dtype=np.float64))


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


def sample_poses(rng: np.random.Generator, n: int, spec: PoseSpec = PoseSpec()) -> PoseParams:
    """Draw ``n`` poses, every angle uniform in its ``spec`` range (rng is the only source)."""
    r = spec.ranges_rad()
    if np.any(r[:, 0] > r[:, 1]):
        raise ValueError("every PoseSpec range must be (low, high) with low <= high")
    return PoseParams(rng.uniform(r[:, 0], r[:, 1], size=(n, len(POSE_NAMES))))


def rest_pose_params(n: int, rest_arm_angle) -> PoseParams:
    """Parameters of the rest pose (identity rotations): arms at the rest angle, all else 0.

    Args:
        n: number of poses.
        rest_arm_angle: radians, scalar or broadcastable to (n, 2) (left, right).
    """
    angles = np.zeros((n, len(POSE_NAMES)))
    angles[:, :2] = np.broadcast_to(rest_arm_angle, (n, 2))
    return PoseParams(angles)


def _rot(axis, angle: np.ndarray) -> np.ndarray:
    """Rotations (n, 3, 3) by ``angle`` (n,) radians about fixed or per-sample unit ``axis``."""
    return axis_angle_to_matrix(np.asarray(angle)[:, None] * np.asarray(axis, dtype=np.float64))


def _euler(pitch: np.ndarray, roll: np.ndarray, yaw: np.ndarray) -> np.ndarray:
    """(n, 3, 3) ``Rz(yaw) @ Ry(roll) @ Rx(pitch)``, radians."""
    return _rot((0, 0, 1), yaw) @ _rot((0, 1, 0), roll) @ _rot((1, 0, 0), pitch)


def pose_rotations(params: PoseParams, rest_arm_angle) -> np.ndarray:
    """Local joint rotations (rest frame, see ``rig.forward_kinematics``) of sampled poses.

    Args:
        params: n poses.
        rest_arm_angle: radians, the rest A-pose arm angle (``Rig.rest_arm_angle``): scalar or
            broadcastable to (n, 2) (left, right).
    Returns:
        (n, 16, 3, 3) rotation matrices in ``rig.JOINT_NAMES`` order (pelvis stays identity).
    """
    n = len(params)
    rest = np.broadcast_to(np.asarray(rest_arm_angle, dtype=np.float64), (n, 2))
    rot = np.broadcast_to(np.eye(3), (n, N_JOINTS, 3, 3)).copy()
    col = params.column
    for k, (side, sign) in enumerate((("l", 1.0), ("r", -1.0))):
        # Lifting the left arm (at +X) outward turns it about -Y, the right arm about +Y.
        abduct = _rot((0, -sign, 0), col(f"arm_abduction_{side}") - rest[:, k])
        swing = _rot((-1, 0, 0), col(f"arm_swing_{side}"))  # about -X moves the hand to -Y
        rot[:, JOINT_NAMES.index(f"shoulder_{side}")] = swing @ abduct
        # Flexion axis: rest upper arm u = (sign sin a, 0, -cos a) crossed with forward (-Y).
        a = rest[:, k]
        axis = np.stack([-np.cos(a), np.zeros(n), -sign * np.sin(a)], axis=-1)
        rot[:, JOINT_NAMES.index(f"elbow_{side}")] = _rot(axis, col(f"elbow_bend_{side}"))
        rot[:, JOINT_NAMES.index(f"hip_{side}")] = _rot((0, -sign, 0), col(f"leg_spread_{side}"))
        rot[:, JOINT_NAMES.index(f"knee_{side}")] = _rot((1, 0, 0), col(f"knee_bend_{side}"))
    for joint in ("spine", "head"):
        rot[:, JOINT_NAMES.index(joint)] = _euler(
            col(f"{joint}_pitch"), col(f"{joint}_roll"), col(f"{joint}_yaw"))
    return rot
