"""The torch posing used by the re-projection loss equals the numpy rig and synth yaw."""

import numpy as np
import torch

from bodyshape.nets.posing import lbs, yaw_about_centre
from bodyshape.nets.posing import pose_rotations as pose_rotations_torch
from bodyshape.shape.rig import JOINT_NAMES, pose_meshes, regress_joints
from bodyshape.shape.rig import yaw_about_centre as yaw_numpy
from bodyshape.synth.poses import POSE_NAMES, PoseSpec, pose_rotations, rest_pose_params, sample_poses


def test_torch_lbs_and_yaw_match_numpy(rig, tpl):
    rng = np.random.default_rng(0)
    rest = np.stack([tpl.vertices * s for s in (1.0, 0.95, 1.05)])
    rot = pose_rotations(sample_poses(rng, 3, PoseSpec()), rig.rest_arm_angle)
    expected = pose_meshes(rest, rot, rig).vertices
    v = torch.from_numpy(rest)
    joints = torch.from_numpy(rig.regressor.copy()) @ v
    got = lbs(v, joints, torch.from_numpy(rot), torch.from_numpy(rig.weights.copy()),
              rig.parents.tolist())
    np.testing.assert_allclose(got.numpy(), expected, atol=1e-10)
    angles = np.array([0.05, 1.6, -1.5])
    turned = yaw_about_centre(got, torch.from_numpy(angles)).numpy()
    for b in range(3):
        np.testing.assert_allclose(turned[b], yaw_numpy(expected[b], angles[b]), atol=1e-10)


def test_rest_pose_is_identity_and_gradients_flow(rig, tpl):
    rest = torch.from_numpy(tpl.vertices[None].astype(np.float64)).requires_grad_(True)
    rot = torch.from_numpy(pose_rotations(rest_pose_params(1, rig.rest_arm_angle),
                                          rig.rest_arm_angle))
    joints = torch.from_numpy(rig.regressor.copy()) @ rest
    out = lbs(rest, joints, rot, torch.from_numpy(rig.weights.copy()), rig.parents.tolist())
    assert torch.equal(out, rest)
    np.testing.assert_allclose(joints.detach().numpy()[0], regress_joints(tpl.vertices),
                               atol=1e-12)
    rot2 = torch.from_numpy(pose_rotations(sample_poses(np.random.default_rng(1), 1),
                                           rig.rest_arm_angle))
    lbs(rest, torch.from_numpy(rig.regressor.copy()) @ rest, rot2, torch.from_numpy(rig.weights.copy()),
        rig.parents.tolist()).sum().backward()
    assert rest.grad is not None and torch.isfinite(rest.grad).all()


def test_torch_pose_rotations_match_numpy_and_have_gradients(rig):
    params = sample_poses(np.random.default_rng(2), 4, PoseSpec())
    expected = pose_rotations(params, rig.rest_arm_angle)
    angles = torch.from_numpy(params.angles).requires_grad_(True)
    got = pose_rotations_torch(angles, rig.rest_arm_angle, JOINT_NAMES, POSE_NAMES)
    np.testing.assert_allclose(got.detach().numpy(), expected, atol=1e-12)
    # At the rest pose (zero rotation angles) the gradient is finite: fitting starts there.
    rest = torch.from_numpy(rest_pose_params(1, rig.rest_arm_angle).angles).requires_grad_(True)
    r = pose_rotations_torch(rest, rig.rest_arm_angle, JOINT_NAMES, POSE_NAMES)
    assert torch.equal(r.detach(), torch.eye(3, dtype=r.dtype).expand_as(r))
    (r * torch.arange(9.0, dtype=r.dtype).view(3, 3)).sum().backward()
    assert torch.isfinite(rest.grad).all() and rest.grad.abs().sum() > 0
    assert torch.autograd.gradcheck(
        lambda a: pose_rotations_torch(a, rig.rest_arm_angle, JOINT_NAMES, POSE_NAMES),
        (angles[:1].detach().clone().requires_grad_(True),))
