"""Pose sampling and its rotations on the template (no anny).

Coordinates are meters in the template frame: Z up, subject facing -Y, subject's left at +X.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bodyshape.body import JOINT_NAMES, POSE_NAMES, PoseSpec
from bodyshape.body import kinematics as kin
from bodyshape.synth.poses import sample_poses

T = torch.from_numpy


def frontal_arm_angles(joints: np.ndarray) -> np.ndarray:
    return kin.frontal_arm_angles(T(joints)).numpy()


def idx(name: str) -> int:
    return JOINT_NAMES.index(name)


def posed_joints(body, tpl, **deg) -> np.ndarray:
    """Joints (J, 3) of the template posed with the rest pose plus ``deg`` overrides (degrees)."""
    return posed(body, tpl, **deg).joints[0]


def posed(body, tpl, **deg) -> kin.Posed:
    """The template posed by the rest pose plus ``deg`` overrides, as numpy arrays."""
    angles = body.rest_pose(1).angles.copy()
    for name, value in deg.items():
        angles[0, POSE_NAMES.index(name)] = np.radians(value)
    v = T(tpl.vertices[None].copy())
    out = kin.lbs(v, kin.regress_joints(v, body.regressor),
                  kin.pose_rotations(T(angles), body.rest_arm_angle), body.weights, body.parents)
    return kin.Posed(out.vertices.numpy(), out.joints.numpy())


def test_sampling_deterministic_per_seed():
    a = sample_poses(np.random.default_rng(7), 20)
    b = sample_poses(np.random.default_rng(7), 20)
    c = sample_poses(np.random.default_rng(8), 20)
    assert np.array_equal(a.angles, b.angles)
    assert not np.allclose(a.angles, c.angles)
    assert a.names == POSE_NAMES and a.angles.shape == (20, len(POSE_NAMES)) and len(a) == 20


def test_sampling_within_spec():
    spec = PoseSpec()
    p = sample_poses(np.random.default_rng(0), 2000, spec)
    lo, hi = spec.ranges_rad().T
    assert (p.angles >= lo).all() and (p.angles <= hi).all()
    # The ranges are used, not just respected, and left/right are independent draws.
    assert (p.angles.min(0) < lo + 0.05 * (hi - lo)).all()
    assert (p.angles.max(0) > hi - 0.05 * (hi - lo)).all()
    assert abs(np.corrcoef(p.column("arm_abduction_l"), p.column("arm_abduction_r"))[0, 1]) < 0.1
    deg = np.degrees(p.angles)
    assert 25 <= deg[:, 0].min() and deg[:, 0].max() <= 65
    assert np.abs(deg[:, POSE_NAMES.index("head_yaw")]).max() <= 8


def test_custom_spec_and_bad_range():
    p = sample_poses(np.random.default_rng(0), 50, PoseSpec(arm_abduction_deg=(80.0, 80.0)))
    np.testing.assert_allclose(np.degrees(p.angles[:, :2]), 80.0)
    with pytest.raises(ValueError):
        sample_poses(np.random.default_rng(0), 5, PoseSpec(knee_bend_deg=(5.0, 0.0)))


def test_rest_params_give_identity(body):
    rot = body.rotations(body.rest_pose(3).angles)
    assert np.array_equal(rot, np.broadcast_to(np.eye(3), rot.shape))


def test_rotations_are_proper():
    p = sample_poses(np.random.default_rng(1), 30)
    rot = kin.pose_rotations(T(p.angles), torch.tensor([0.75, 0.75], dtype=torch.float64))
    rot = rot.numpy()
    assert rot.shape == (30, len(JOINT_NAMES), 3, 3)
    eye = np.broadcast_to(np.eye(3), rot.shape)
    np.testing.assert_allclose(rot @ np.swapaxes(rot, -1, -2), eye, atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(rot), 1.0, atol=1e-12)


def test_arm_abduction_90_degrees(body, tpl):
    j = posed_joints(body, tpl, arm_abduction_l=90, arm_abduction_r=90)
    for s, sign in (("l", 1.0), ("r", -1.0)):
        sh, wr = j[idx(f"shoulder_{s}")], j[idx(f"wrist_{s}")]
        assert abs(wr[2] - sh[2]) < 0.05  # roughly at shoulder height
        assert sign * (wr[0] - sh[0]) > 0.35  # far out to the side
    np.testing.assert_allclose(np.degrees(frontal_arm_angles(j[None])[0]), 90.0, atol=0.5)


def test_sampled_arm_angle_is_absolute(body, tpl):
    for deg in (25, 43, 65):
        j = posed_joints(body, tpl, arm_abduction_l=deg, arm_abduction_r=deg + 10)
        np.testing.assert_allclose(np.degrees(frontal_arm_angles(j[None])[0]), [deg, deg + 10],
                                   atol=0.5)


def test_abduction_moves_both_arms_outward(body, tpl):
    low = posed_joints(body, tpl, arm_abduction_l=25, arm_abduction_r=25)
    high = posed_joints(body, tpl, arm_abduction_l=65, arm_abduction_r=65)
    for s, sign in (("l", 1.0), ("r", -1.0)):
        w = idx(f"wrist_{s}")
        assert sign * high[w, 0] > sign * low[w, 0] + 0.1
        assert high[w, 2] > low[w, 2] + 0.1
    # Equal angles on both sides give a mirror-symmetric pose.
    mirror = np.array([-1.0, 1.0, 1.0])
    for n in ("elbow", "wrist"):
        np.testing.assert_allclose(high[idx(f"{n}_l")], high[idx(f"{n}_r")] * mirror, atol=3e-3)


def test_mirrored_pose_gives_mirrored_body(body, tpl):
    deg = dict(arm_swing=8, elbow_bend=12, leg_spread=5, knee_bend=4)
    j = posed_joints(body, tpl, arm_abduction_l=55, arm_abduction_r=55,
                     **{f"{k}_{s}": v for k, v in deg.items() for s in "lr"})
    mirror = np.array([-1.0, 1.0, 1.0])
    for n in ("shoulder", "elbow", "wrist", "hip", "knee", "ankle"):
        np.testing.assert_allclose(j[idx(f"{n}_l")], j[idx(f"{n}_r")] * mirror, atol=3e-3)


def test_swing_elbow_knee_and_spread_directions(body, tpl):
    rest = posed_joints(body, tpl)
    for s, sign in (("l", 1.0), ("r", -1.0)):
        w, a = idx(f"wrist_{s}"), idx(f"ankle_{s}")
        fwd = posed_joints(body, tpl, **{f"arm_swing_{s}": 10})
        assert fwd[w, 1] < rest[w, 1] - 0.03  # forward is -Y
        bent = posed_joints(body, tpl, **{f"elbow_bend_{s}": 15})
        assert bent[w, 1] < rest[w, 1] - 0.02 and bent[w, 2] > rest[w, 2]
        knee = posed_joints(body, tpl, **{f"knee_bend_{s}": 5})
        assert knee[a, 1] > rest[a, 1] + 0.02  # foot goes back: the knee bends, not inverts
        spread = posed_joints(body, tpl, **{f"leg_spread_{s}": 6})
        assert sign * (spread[a, 0] - rest[a, 0]) > 0.05


def test_trunk_and_head_directions(body, tpl):
    rest = posed(body, tpl)
    h = idx("head")
    lean = posed_joints(body, tpl, spine_pitch=6)
    assert lean[h, 1] < rest.joints[0, h, 1] - 0.03  # forward lean moves the head to -Y
    side = posed_joints(body, tpl, spine_roll=4)
    assert side[h, 0] > 0.02  # toward the subject's left
    twist = posed_joints(body, tpl, spine_yaw=5)
    assert twist[idx("shoulder_l"), 1] > rest.joints[0, idx("shoulder_l"), 1] + 0.005
    top = tpl.vertices[:, 2].argmax()
    nod = posed(body, tpl, head_pitch=8).vertices[0, top]
    assert nod[1] < tpl.vertices[top, 1] - 0.01 and nod[2] <= tpl.vertices[top, 2]
    tilt = posed(body, tpl, head_roll=8).vertices[0, top]
    assert tilt[0] > 0.01


def test_arm_abduction_from_projected_keypoints(body, tpl):
    """Pose the template with known arm angles, project the keypoint regressor's keypoints
    through a front camera and recover the abductions (``arm_abduction_from_keypoints``)."""
    from bodyshape.body.keypoints import KEYPOINT_NAMES, PAIRS
    from bodyshape.body.pose import arm_abduction_from_keypoints
    from bodyshape.render.camera import Camera, intrinsics, look_at

    R, t = look_at((0.0, -3.0, 0.3), (0.0, 0.0, 0.0))
    cam = Camera(intrinsics(np.radians(50.0), 720, 1280), R, t, 720, 1280)
    for left, right, elbow in ((0, 95, 0), (10, 60, -38), (43, 43, 0), (70, 20, -20),
                               (90, 5, -38), (30, 33, -10)):
        pix, _ = cam.project(body.keypoints(posed(body, tpl, arm_abduction_l=left,
                                                  arm_abduction_r=right, elbow_bend_l=elbow,
                                                  elbow_bend_r=elbow).vertices[0]))
        got = np.degrees(arm_abduction_from_keypoints(pix))
        np.testing.assert_allclose(got, [left, right], atol=3.0)
        # MediaPipe's left/right swaps do not change the answer: sides come from the image.
        swapped = pix.copy()
        for a, b in PAIRS:
            swapped[[a, b]] = pix[[b, a]]
        np.testing.assert_allclose(np.degrees(arm_abduction_from_keypoints(swapped)), got)
        # Any scale and shift of the pixels (calibration) gives the same angles, batched.
        both = np.stack([pix, 0.25 * pix + 7.0])
        np.testing.assert_allclose(np.degrees(arm_abduction_from_keypoints(both)),
                                   [got, got], atol=1e-9)
    missing = pix.copy()
    missing[KEYPOINT_NAMES.index("elbow_r")] = np.nan
    out = arm_abduction_from_keypoints(missing)
    assert np.isnan(out[1]) and abs(np.degrees(out[0]) - 30) < 3.0
