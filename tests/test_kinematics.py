"""The torch kinematics (``body.kinematics``) and ``BodyModel``'s numpy wrappers: analytic
answers, gradients, and the wrappers handing arrays over without copies (no anny).

Coordinates are meters in the template frame: Z up, subject facing -Y, subject's left at +X.
"""

import numpy as np
import pytest
import torch

from bodyshape.body import POSE_NAMES, BodyModel, PoseSpec
from bodyshape.body import kinematics as kin
from bodyshape.synth.poses import sample_poses

T = torch.from_numpy


def test_rest_pose_is_identity_and_gradients_flow(body, tpl):
    rest = T(tpl.vertices[None].copy()).requires_grad_(True)
    rot = kin.pose_rotations(T(body.rest_pose(1).angles), body.rest_arm_angle)
    joints = kin.regress_joints(rest, body.regressor)
    out = kin.lbs(rest, joints, rot, body.weights, body.parents).vertices
    assert torch.equal(out, rest)
    rot2 = kin.pose_rotations(T(sample_poses(np.random.default_rng(1), 1).angles),
                              body.rest_arm_angle)
    kin.lbs(rest, kin.regress_joints(rest, body.regressor), rot2, body.weights,
            body.parents).vertices.sum().backward()
    assert rest.grad is not None and torch.isfinite(rest.grad).all()


def test_pose_rotations_are_proper_and_differentiable(body):
    angles = T(sample_poses(np.random.default_rng(2), 4, PoseSpec()).angles)
    rot = kin.pose_rotations(angles, body.rest_arm_angle)
    assert rot.shape == (4, 16, 3, 3)
    eye = torch.eye(3, dtype=rot.dtype).expand_as(rot)
    torch.testing.assert_close(rot @ rot.transpose(-1, -2), eye, atol=1e-12, rtol=0)
    torch.testing.assert_close(torch.linalg.det(rot), torch.ones(4, 16, dtype=rot.dtype))
    # At the rest pose (zero rotation angles) the gradient is finite: fitting starts there.
    rest = T(body.rest_pose(1).angles).requires_grad_(True)
    r = kin.pose_rotations(rest, body.rest_arm_angle)
    assert torch.equal(r.detach(), torch.eye(3, dtype=r.dtype).expand_as(r))
    (r * torch.arange(9.0, dtype=r.dtype).view(3, 3)).sum().backward()
    assert torch.isfinite(rest.grad).all() and rest.grad.abs().sum() > 0
    assert torch.autograd.gradcheck(lambda a: kin.pose_rotations(a, body.rest_arm_angle),
                                    (angles[:1].clone().requires_grad_(True),))


def test_head_euler_order(body):
    # Rz(yaw) @ Ry(roll) @ Rx(pitch) at the head joint, nothing else moves.
    a = body.rest_pose(1).angles.copy()
    pitch, roll, yaw = 0.2, -0.3, 0.4
    for name, v in (("head_pitch", pitch), ("head_roll", roll), ("head_yaw", yaw)):
        a[0, POSE_NAMES.index(name)] = v
    rot = body.rotations(a)[0]
    c, s = np.cos, np.sin
    rx = np.array([[1, 0, 0], [0, c(pitch), -s(pitch)], [0, s(pitch), c(pitch)]])
    ry = np.array([[c(roll), 0, s(roll)], [0, 1, 0], [-s(roll), 0, c(roll)]])
    rz = np.array([[c(yaw), -s(yaw), 0], [s(yaw), c(yaw), 0], [0, 0, 1]])
    np.testing.assert_allclose(rot[3], rz @ ry @ rx, atol=1e-12)
    others = [k for k in range(16) if k != 3]
    assert np.array_equal(rot[others], np.broadcast_to(np.eye(3), (15, 3, 3)))


def test_lbs_gradcheck(body):
    # A few vertices are enough: gradcheck is O(inputs x outputs).
    rng = np.random.default_rng(3)
    idx = rng.choice(body.weights.shape[0], 12, replace=False)
    v = T(body.template.vertices[idx][None].copy()).requires_grad_(True)
    j = kin.regress_joints(T(body.template.vertices[None].copy()), body.regressor)
    j = j.detach().requires_grad_(True)
    a = T(sample_poses(rng, 1).angles).requires_grad_(True)
    w = body.weights[idx]

    def f(v, j, a):
        return kin.lbs(v, j, kin.pose_rotations(a, body.rest_arm_angle), w, body.parents).vertices

    assert torch.autograd.gradcheck(f, (v, j, a))


def test_yaw_turns_about_the_box_centre():
    rng = np.random.default_rng(4)
    v = T(rng.normal(size=(2, 50, 3)))
    centre = kin.box_centre(v)
    angle = torch.tensor([np.pi / 2, -0.3], dtype=torch.float64)
    out = kin.yaw_about_centre(v, angle)
    # A quarter turn: (x, y) relative to the centre becomes (-y, x); z is untouched.
    rel = v[0, :, :2] - centre[0, :2]
    torch.testing.assert_close(out[0, :, :2] - centre[0, :2],
                               torch.stack([-rel[:, 1], rel[:, 0]], -1))
    assert torch.equal(out[..., 2], v[..., 2])
    # Distances to the vertical axis through the centre are kept.
    d0 = (v[1, :, :2] - centre[1, :2]).norm(dim=-1)
    torch.testing.assert_close((out[1, :, :2] - centre[1, :2]).norm(dim=-1), d0)
    assert torch.autograd.gradcheck(
        lambda x, y: kin.yaw_about_centre(x, y),
        (v[:, :8].clone().requires_grad_(True), angle.clone().requires_grad_(True)))


def test_scale_to_height_keeps_the_feet():
    rng = np.random.default_rng(5)
    v = T(rng.normal(size=(3, 40, 3)))
    height = torch.tensor([1.5, 1.8, 0.5], dtype=torch.float64)
    out, scale = kin.scale_to_height(v, height)
    lo, hi = kin.bounds(out)
    torch.testing.assert_close(hi[:, 2] - lo[:, 2], height)
    lo0, hi0 = kin.bounds(v)
    torch.testing.assert_close(lo[:, 2], lo0[:, 2])  # the floor stays
    torch.testing.assert_close(0.5 * (lo + hi)[:, :2], 0.5 * (lo0 + hi0)[:, :2])
    torch.testing.assert_close(scale, height / (hi0[:, 2] - lo0[:, 2]))


def test_numpy_wrappers_share_memory_and_match_torch(body):
    rng = np.random.default_rng(6)
    rest = body.shape.decode(rng.normal(size=(2, body.shape.n_components))
                             * body.shape.std).astype(np.float64)
    angles = sample_poses(rng, 2).angles
    got = body.pose(rest, angles)
    r = T(rest)
    expect = kin.lbs(r, kin.regress_joints(r, body.regressor),
                     kin.pose_rotations(T(angles), body.rest_arm_angle), body.weights,
                     body.parents).vertices.numpy()
    assert np.array_equal(got, expect)
    np.testing.assert_array_equal(body.pose(rest[0], angles[0]), got[0])
    # Zero-copy hand-over: a float64 array and the tensor made of it share memory.
    t = torch.from_numpy(np.require(rest, dtype=np.float64, requirements="W"))
    assert t.data_ptr() == rest.__array_interface__["data"][0]
    turned = body.turn(got[0], 0.7)
    assert np.array_equal(turned, kin.yaw_about_centre(T(got[:1]), torch.tensor(
        [0.7], dtype=torch.float64))[0].numpy())
    scaled, s = body.to_height(rest[0], 1.9)
    assert np.ptp(scaled[:, 2]) == pytest.approx(1.9, abs=1e-12) and s > 0


def test_body_model_refuses_a_foreign_topology(body, small_model_path):
    from bodyshape.shape.pca import ShapeModel

    BodyModel.load(small_model_path)  # template topology: fine
    m = ShapeModel.load(small_model_path)
    with pytest.raises(ValueError, match="vertices"):
        BodyModel(body.template, body.rig, body.coarse, _Truncated(m))


class _Truncated:
    """A stand-in shape model with another vertex count."""

    def __init__(self, model):
        self.n_vertices = model.n_vertices - 1


def test_inverse_lbs_unposes_exactly(body, tpl):
    rest = torch.tensor(tpl.vertices)[None]
    joints = kin.regress_joints(rest, body.regressor)
    angles = torch.tensor(body.rest_pose(1).angles)
    angles[0, :2] = torch.tensor([0.2, 1.5])  # one arm hanging, one horizontal
    angles[0, 4] = -0.5
    angles[0, 10:13] = torch.tensor([0.1, -0.05, 0.08])
    rot = kin.pose_rotations(angles, body.rest_arm_angle)
    posed = kin.lbs(rest, joints, rot, body.weights, body.parents).vertices
    assert (posed - rest).abs().max() > 0.1  # really posed
    back = kin.inverse_lbs(posed, joints, rot, body.weights, body.parents)
    # float32 weights sum to 1 only up to rounding: exact to well under a micrometer.
    assert (back - rest).abs().max() < 1e-6
