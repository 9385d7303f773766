"""The shipped 16-joint rig (regressor, skinning weights) and the torch kinematics: forward
kinematics and LBS against analytic answers (no anny).

Coordinates are meters in the template frame: Z up, subject facing -Y, subject's left at +X.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import trimesh
from scipy.spatial.transform import Rotation

from bodyshape.body.kinematics import forward_kinematics, frontal_arm_angles, lbs, rotate_about
from bodyshape.body.rig import JOINT_NAMES, PARENTS
from bodyshape.shape.template import N_TEMPLATE_VERTICES, load_template

J = len(JOINT_NAMES)
T = torch.from_numpy


def axis_angle_to_matrix(aa: np.ndarray) -> np.ndarray:
    return Rotation.from_rotvec(aa.reshape(-1, 3)).as_matrix().reshape(aa.shape + (3,))


def skin(vertices, joints, rotations, rig):
    """The torch LBS on numpy inputs -> (vertices, joints) numpy."""
    out = lbs(T(np.array(vertices, dtype=np.float64)), T(np.array(joints)),
              T(np.ascontiguousarray(rotations)), T(rig.weights.copy()),
              tuple(int(p) for p in rig.parents))
    return out.vertices.numpy(), out.joints.numpy()


@pytest.fixture(scope="module")
def joints(body, tpl):
    return body.joints(tpl.vertices)


def idx(name: str) -> int:
    return JOINT_NAMES.index(name)


def random_rotations(rng: np.random.Generator, shape, max_angle: float) -> np.ndarray:
    aa = rng.normal(size=shape + (3,))
    aa *= rng.uniform(0, max_angle, size=shape + (1,)) / np.linalg.norm(aa, axis=-1, keepdims=True)
    return axis_angle_to_matrix(aa)


def test_rig_loads(rig):
    assert rig.joint_names == JOINT_NAMES and J == 16
    assert rig.regressor.shape == (J, N_TEMPLATE_VERTICES)
    assert rig.weights.shape == (N_TEMPLATE_VERTICES, J)
    assert all(p < k for k, p in enumerate(rig.parents))  # parents first, root has -1
    assert rig.parents[0] == -1 and (rig.parents[1:] >= 0).all()
    assert rig.heldout_error_mm.shape == (J,) and rig.heldout_error_mm.max() < 20.0
    assert not rig.weights.flags.writeable


def test_tree(rig):
    parent = {JOINT_NAMES[k]: (JOINT_NAMES[p] if p >= 0 else None) for k, p in enumerate(PARENTS)}
    assert parent["spine"] == "pelvis" and parent["neck"] == "spine" and parent["head"] == "neck"
    for s in "lr":
        assert parent[f"elbow_{s}"] == f"shoulder_{s}" and parent[f"wrist_{s}"] == f"elbow_{s}"
        assert parent[f"hip_{s}"] == "pelvis" and parent[f"knee_{s}"] == f"hip_{s}"
        assert parent[f"ankle_{s}"] == f"knee_{s}"


def test_weights_rows_sum_to_one(rig):
    assert (rig.weights >= 0).all()
    np.testing.assert_allclose(rig.weights.sum(1), 1.0, atol=1e-6)
    assert (rig.weights > 0).sum(1).max() <= 4
    # Every joint dominates some skin (the neck only shares it with the head and spine).
    assert (rig.weights.max(0) > 0.6).all()


def test_weights_follow_the_limbs(rig, tpl):
    v = tpl.vertices
    dom = rig.weights.argmax(1)
    hand = v[:, 0] > 0.5  # left fingertips
    assert (dom[hand] == idx("wrist_l")).all()
    sole = (v[:, 2] < v[:, 2].min() + 0.02) & (v[:, 0] < 0)
    assert np.isin(dom[sole], [idx("ankle_r")]).all()
    top = v[:, 2] > v[:, 2].max() - 0.05
    assert (dom[top] == idx("head")).all()


def test_regressor_rows_sum_to_one(rig, joints):
    assert (rig.regressor >= 0).all()
    np.testing.assert_allclose(rig.regressor.sum(1), 1.0, atol=1e-6)
    support = (rig.regressor > 0).sum(1)
    assert (support >= 5).all() and (support <= 300).all()
    tpl = load_template()
    for j in range(J):
        used = tpl.vertices[rig.regressor[j] > 0]
        assert np.linalg.norm(used - joints[j], axis=1).max() < 0.3  # local, not whole-body


def test_template_joints_anatomical(joints):
    z = {n: joints[idx(n), 2] for n in JOINT_NAMES}
    for s in "lr":
        assert z["head"] > z["neck"] > z["spine"] > z["pelvis"] > z[f"knee_{s}"] > z[f"ankle_{s}"]
        assert z["neck"] > z[f"shoulder_{s}"] > z[f"elbow_{s}"] > z[f"wrist_{s}"]
        assert z["pelvis"] > z[f"hip_{s}"] - 0.05
    for s, sign in (("l", 1), ("r", -1)):
        x = {n: sign * joints[idx(f"{n}_{s}"), 0] for n in ("shoulder", "elbow", "wrist", "hip")}
        assert x["wrist"] > x["elbow"] > x["shoulder"] > abs(joints[idx("neck"), 0]) + 0.1
        assert 0.05 < x["hip"] < 0.15
    # Left/right symmetric (the template is), centre joints on the midline.
    mirror = np.array([-1.0, 1.0, 1.0])
    for n in ("shoulder", "elbow", "wrist", "hip", "knee", "ankle"):
        np.testing.assert_allclose(joints[idx(f"{n}_l")], joints[idx(f"{n}_r")] * mirror,
                                   atol=2e-3)
    assert np.abs(joints[[idx(n) for n in ("pelvis", "spine", "neck", "head")], 0]).max() < 2e-3


def test_template_joints_inside_body(tpl, joints):
    mesh = trimesh.Trimesh(tpl.vertices, tpl.faces, process=False)
    assert mesh.contains(joints).all()


def test_rest_arm_angle(rig, joints):
    np.testing.assert_allclose(rig.rest_arm_angle, frontal_arm_angles(T(joints[None]))[0],
                               atol=1e-6)
    assert np.all(np.abs(np.degrees(rig.rest_arm_angle) - 43.0) < 3.0)


def test_rotate_about_matches_scipy():
    rng = np.random.default_rng(0)
    axis = rng.normal(size=(5, 4, 3))
    axis /= np.linalg.norm(axis, axis=-1, keepdims=True)
    angle = rng.uniform(-3, 3, size=(5, 4))
    expect = axis_angle_to_matrix(axis * angle[..., None])
    np.testing.assert_allclose(rotate_about(T(axis), T(angle)).numpy(), expect, atol=1e-12)
    eye = np.broadcast_to(np.eye(3), (2, 3, 3))
    assert np.array_equal(rotate_about(T(axis[0, :2]), torch.zeros(2, dtype=torch.float64)), eye)


def test_rest_pose_is_exact(body, rig, tpl):
    rng = np.random.default_rng(1)
    verts = tpl.vertices[None] + rng.normal(scale=0.01, size=(2,) + tpl.vertices.shape)
    eye = np.broadcast_to(np.eye(3), (2, J, 3, 3))
    joints = body.joints(verts)
    posed, posed_joints = skin(verts, joints, eye, rig)
    assert np.array_equal(posed, verts)
    assert np.array_equal(posed_joints, joints)
    np.testing.assert_allclose(joints, np.einsum("jv,bvd->bjd", rig.regressor, verts), atol=1e-12)


def test_batched_lbs_equals_per_sample(body, rig, tpl):
    rng = np.random.default_rng(2)
    verts = tpl.vertices[None] + rng.normal(scale=0.01, size=(3,) + tpl.vertices.shape)
    joints = body.joints(verts)
    rots = random_rotations(rng, (3, J), 0.5)
    batch = skin(verts, joints, rots, rig)
    for b in range(3):
        one = skin(verts[b:b + 1], joints[b:b + 1], rots[b:b + 1], rig)
        np.testing.assert_allclose(batch[0][b], one[0][0], atol=1e-12)
        np.testing.assert_allclose(batch[1][b], one[1][0], atol=1e-12)


def test_root_rotation_is_rigid(rig, tpl, joints):
    # All weights sum to 1, so turning the root turns the whole mesh about the pelvis.
    rot = np.broadcast_to(np.eye(3), (1, J, 3, 3)).copy()
    r = Rotation.from_euler("xyz", [0.3, -0.2, 0.7]).as_matrix()
    rot[0, 0] = r
    out_v, out_j = skin(tpl.vertices[None], joints[None], rot, rig)
    pelvis = joints[0]
    np.testing.assert_allclose(out_v[0], (tpl.vertices - pelvis) @ r.T + pelvis, atol=1e-6)
    np.testing.assert_allclose(out_j[0], (joints - pelvis) @ r.T + pelvis, atol=1e-12)


def test_hip_rotation_moves_leg_rigidly(rig, joints):
    rot = np.broadcast_to(np.eye(3), (1, J, 3, 3)).copy()
    r = Rotation.from_rotvec([0.4, 0.1, -0.2]).as_matrix()
    rot[0, idx("hip_l")] = r
    a = forward_kinematics(T(rot), T(joints[None]), tuple(int(p) for p in rig.parents))[0]
    a = a.numpy()
    posed = np.einsum("jik,jk->ji", a[:, :3, :3], joints) + a[:, :3, 3]
    hip = joints[idx("hip_l")]
    leg = [idx("knee_l"), idx("ankle_l")]
    np.testing.assert_allclose(posed[idx("hip_l")], hip, atol=1e-12)
    np.testing.assert_allclose(posed[leg], (joints[leg] - hip) @ r.T + hip, atol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(posed[leg] - hip, axis=1),
                               np.linalg.norm(joints[leg] - hip, axis=1), atol=1e-12)
    others = [k for k in range(J) if k not in (idx("hip_l"), *leg)]
    np.testing.assert_allclose(posed[others], joints[others], atol=1e-12)


def test_chain_composes(rig, joints):
    # Spine and neck rotations compose: head = spine + Rs (neck' - spine) + Rs Rn (head - neck).
    rng = np.random.default_rng(3)
    rot = np.broadcast_to(np.eye(3), (1, J, 3, 3)).copy()
    rs, rn = random_rotations(rng, (2,), 0.6)
    rot[0, idx("spine")], rot[0, idx("neck")] = rs, rn
    out = lbs(torch.zeros(1, 1, 3, dtype=torch.float64), T(joints[None]), T(rot),
              torch.zeros(1, J, dtype=torch.float64), tuple(int(p) for p in rig.parents))
    s, n, h = joints[idx("spine")], joints[idx("neck")], joints[idx("head")]
    expect = s + rs @ (n - s) + rs @ rn @ (h - n)
    np.testing.assert_allclose(out.joints[0, idx("head")].numpy(), expect, atol=1e-12)


def test_lbs_finite_difference(rig, tpl, joints):
    # d v / d theta at identity for a rotation about axis k at the elbow is w * k x (v - elbow).
    e, k, eps = idx("elbow_l"), np.array([0.0, 0.6, 0.8]), 1e-6
    rot = np.broadcast_to(np.eye(3), (1, J, 3, 3)).copy()
    rot[0, e] = axis_angle_to_matrix(eps * k)
    moved = skin(tpl.vertices[None], joints[None], rot, rig)[0][0]
    w = rig.weights[:, e:e + 1] + rig.weights[:, [idx("wrist_l")]]
    expect = w * np.cross(k, tpl.vertices - joints[e])
    np.testing.assert_allclose((moved - tpl.vertices) / eps, expect, atol=1e-5)
