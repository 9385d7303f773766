"""The body's kinematics, written once in torch: pose angles -> rotations -> skinning -> yaw
-> height scaling.

In the style of smplx's ``lbs.py``: pure batched functions over ``(B, V, 3)`` tensors, with
no file IO and no state (the rig's arrays are passed in; ``BodyModel`` holds them). Every
function is differentiable and works in any float dtype on any device; numpy callers go
through ``BodyModel``'s wrappers, which hand their arrays over without copying.

Frames: meters, Z up, the rest body faces -Y, the subject's left at +X. Pose angle
conventions are those of :mod:`bodyshape.body.pose`.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
from torch import Tensor

from bodyshape.body.pose import POSE_NAMES
from bodyshape.body.rig import JOINT_NAMES

_POSE = {name: k for k, name in enumerate(POSE_NAMES)}
_JOINT = {name: k for k, name in enumerate(JOINT_NAMES)}


@dataclass(frozen=True)
class Posed:
    """Output of :func:`lbs`.

    Attributes:
        vertices: (B, V, 3) posed vertices, meters.
        joints: (B, J, 3) posed joint positions, meters.
    """

    vertices: Tensor
    joints: Tensor


def rotate_about(axis: Tensor, angle: Tensor) -> Tensor:
    """Rotations by ``angle`` radians counter-clockwise about unit ``axis`` (Rodrigues).

    The axis is fixed (not a rotation vector), so the gradient in ``angle`` is smooth at
    zero, where a rotation vector's norm is not differentiable.

    Args:
        axis: (3,) or (..., 3) unit vectors, broadcast against ``angle``.
        angle: (...) radians.
    Returns:
        (..., 3, 3) rotation matrices; exactly the identity for a zero angle.
    """
    axis = torch.broadcast_to(axis.to(angle), angle.shape + (3,))
    x, y, z = axis.unbind(-1)
    zero = torch.zeros_like(x)
    k = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], -1).unflatten(-1, (3, 3))
    s, c = torch.sin(angle)[..., None, None], torch.cos(angle)[..., None, None]
    eye = torch.eye(3, dtype=angle.dtype, device=angle.device)
    return eye + s * k + (1 - c) * (k @ k)


# The 16 elementary rotations of a pose, each about a fixed axis by one pose angle (or an
# angle less the rest arm angle): built in one batched call, then composed. Composing per
# joint with scalar-sized ops was 5x slower on a CPU, where the op count dominates.
_ELEMENTS = (
    ("arm_abduction_l", (0, -1, 0)), ("arm_abduction_r", (0, 1, 0)),
    ("arm_swing_l", (-1, 0, 0)), ("arm_swing_r", (-1, 0, 0)),
    ("elbow_bend_l", None), ("elbow_bend_r", None),  # axis from the rest arm angle
    ("leg_spread_l", (0, -1, 0)), ("leg_spread_r", (0, 1, 0)),
    ("knee_bend_l", (1, 0, 0)), ("knee_bend_r", (1, 0, 0)),
    ("spine_yaw", (0, 0, 1)), ("spine_roll", (0, 1, 0)), ("spine_pitch", (1, 0, 0)),
    ("head_yaw", (0, 0, 1)), ("head_roll", (0, 1, 0)), ("head_pitch", (1, 0, 0)),
)
_ELEMENT_COLUMNS = [_POSE[name] for name, _ in _ELEMENTS]


def pose_rotations(angles: Tensor, rest_arm_angle: Tensor) -> Tensor:
    """Local joint rotations (rest frame, see :func:`forward_kinematics`) of pose angles.

    Per side: the shoulder turns by ``Rswing @ Rabduct`` (abduction about -Y on the left,
    +Y on the right, by the angle less the rest arm angle; swing about -X), the elbow bends
    about the rest upper arm crossed with forward (-Y), the hip spreads about -/+Y and the
    knee bends about +X. Spine and head turn by ``Rz(yaw) @ Ry(roll) @ Rx(pitch)``.

    Args:
        angles: (B, P) radians, columns ``pose.POSE_NAMES``.
        rest_arm_angle: (2,) radians (left, right), ``Rig.rest_arm_angle``: the template's
            A-pose arm angle, which the absolute abduction angles are measured against.
    Returns:
        (B, 16, 3, 3) rotations in ``rig.JOINT_NAMES`` order (the pelvis stays identity),
        differentiable in ``angles``.
    """
    dt, dev = angles.dtype, angles.device
    rest = rest_arm_angle.to(dtype=dt, device=dev)
    # Elbow flexion axis: rest upper arm u = (sign sin a, 0, -cos a) crossed with -Y.
    sign = torch.tensor([1.0, -1.0], dtype=dt, device=dev)
    elbow = torch.stack([-torch.cos(rest), torch.zeros_like(rest), -sign * torch.sin(rest)], -1)
    fixed = torch.tensor([axis if axis else (0, 0, 0) for _, axis in _ELEMENTS], dtype=dt,
                         device=dev)
    axes = torch.cat([fixed[:4], elbow, fixed[6:]])  # (16, 3)
    theta = angles[:, _ELEMENT_COLUMNS]  # (B, 16)
    theta = torch.cat([theta[:, :2] - rest, theta[:, 2:]], dim=1)
    r = rotate_about(axes, theta)  # (B, 16, 3, 3)
    shoulders = r[:, 2:4] @ r[:, 0:2]  # swing @ abduction, (B, 2, 3, 3)
    trunk = r[:, [10, 13]] @ r[:, [11, 14]] @ r[:, [12, 15]]  # spine, head: Rz Ry Rx
    eye = torch.eye(3, dtype=dt, device=dev).expand(angles.shape[0], 1, 3, 3)
    parts = {"pelvis": eye, "spine": trunk[:, :1], "neck": eye, "head": trunk[:, 1:],
             "shoulder_l": shoulders[:, :1], "shoulder_r": shoulders[:, 1:],
             "elbow_l": r[:, 4:5], "elbow_r": r[:, 5:6], "hip_l": r[:, 6:7],
             "hip_r": r[:, 7:8], "knee_l": r[:, 8:9], "knee_r": r[:, 9:10]}
    return torch.cat([parts.get(name, eye) for name in JOINT_NAMES], dim=1)


def regress_joints(vertices: Tensor, regressor: Tensor) -> Tensor:
    """Joint positions (B, J, 3) of meshes (B, V, 3) in the template topology, by the
    (J, V) regressor."""
    return regressor.to(vertices) @ vertices


@functools.lru_cache(maxsize=8)
def _levels(parents: tuple[int, ...]) -> tuple[tuple[list[int], list[int]], ...]:
    """Joints grouped by depth in the tree, as (joint indices, their parents) per level."""
    depth: list[int] = []
    for k, p in enumerate(parents):
        if p >= k:
            raise ValueError("parents must come before their children")
        depth.append(0 if p < 0 else depth[p] + 1)
    return tuple(([k for k in range(len(parents)) if depth[k] == d],
                  [parents[k] for k in range(len(parents)) if depth[k] == d])
                 for d in range(max(depth) + 1))


def forward_kinematics(rotations: Tensor, joints: Tensor, parents: tuple[int, ...]) -> Tensor:
    """World transforms of each joint relative to the rest pose.

    Joint k's local rotation R_k turns its subtree about the joint's rest position, in the
    rest (A-pose) frame, after which the parent's transform applies:
    ``A_k = A_parent @ [R_k | j_k - R_k j_k]``. This is smplx's ``batch_rigid_transform``
    with the rest-joint subtraction folded in, so identity rotations give exactly the
    identity. The joints of one tree depth are composed together (5 levels instead of 16
    joints: fewer, larger ops).

    Args:
        rotations: (B, J, 3, 3) local rotations.
        joints: (B, J, 3) rest joint positions, meters.
        parents: J parent indices, -1 for the root, parents before their children.
    Returns:
        (B, J, 3, 4) affine transforms mapping rest points to posed points.
    """
    rj = (rotations @ joints[..., None])[..., 0]
    local = torch.cat([rotations, (joints - rj)[..., None]], dim=-1)
    out = torch.zeros_like(local)
    for level, (idx, par) in enumerate(_levels(tuple(parents))):
        if level == 0:
            out[:, idx] = local[:, idx]
            continue
        a, loc = out[:, par], local[:, idx]  # [Ra | ta] @ [Rl | tl] = [Ra Rl | Ra tl + ta]
        out[:, idx] = torch.cat([a[..., :3] @ loc[..., :3],
                                 a[..., :3] @ loc[..., 3:] + a[..., 3:]], dim=-1)
    return out


def lbs(vertices: Tensor, joints: Tensor, rotations: Tensor, weights: Tensor,
        parents: tuple[int, ...]) -> Posed:
    """Linear blend skinning.

    The blended transform is applied as a displacement, ``v' = v + sum_k w_k (A_k v - v)``,
    which equals standard LBS for weights summing to 1 but keeps identity rotations exact
    although the stored float32 weights sum to 1 only up to rounding.

    Args:
        vertices: (B, V, 3) rest meshes, meters.
        joints: (B, J, 3) rest joints, meters (:func:`regress_joints`).
        rotations: (B, J, 3, 3) local rotations (:func:`pose_rotations`).
        weights: (V, J) skinning weights.
        parents: J parent indices.
    Returns:
        Posed vertices (B, V, 3) and joints (B, J, 3).
    """
    a = forward_kinematics(rotations, joints, parents)
    delta = (a - torch.eye(3, 4, dtype=a.dtype, device=a.device)).flatten(2)  # (B, J, 12)
    blend = (weights.to(delta) @ delta).unflatten(-1, (3, 4))  # (B, V, 3, 4)
    # Column sums instead of a (B, V) batch of 3x3 products: 3x faster on a CPU.
    x, y, z = vertices[..., 0:1], vertices[..., 1:2], vertices[..., 2:3]
    posed = (vertices + blend[..., 0] * x + blend[..., 1] * y + blend[..., 2] * z
             + blend[..., 3])
    posed_joints = (a[..., :3] @ joints[..., None])[..., 0] + a[..., 3]
    return Posed(posed, posed_joints)


def blend_transforms(joints: Tensor, rotations: Tensor, weights: Tensor,
                     parents: tuple[int, ...]) -> Tensor:
    """Per-vertex blended LBS transforms ``sum_k w_k A_k`` (B, V, 3, 4): posed = M [v; 1].

    Args:
        joints: (B, J, 3) rest joints, meters.
        rotations: (B, J, 3, 3) local rotations.
        weights: (V, J) skinning weights (rows summing to 1).
        parents: J parent indices.
    """
    a = forward_kinematics(rotations, joints, parents)
    return (weights.to(a) @ a.flatten(2)).unflatten(-1, (3, 4))


def inverse_lbs(posed: Tensor, joints: Tensor, rotations: Tensor, weights: Tensor,
                parents: tuple[int, ...]) -> Tensor:
    """Unpose meshes: the inverse of :func:`lbs` for given rest joints and rotations.

    Each vertex's blended transform ``M = sum_k w_k A_k`` is inverted,
    ``v = M[:, :3]^-1 (x - M[:, 3])``, so ``inverse_lbs(lbs(v, ...).vertices, ...) == v`` up
    to rounding wherever the blended 3x3 part is invertible (it is for any standing pose:
    blends of rotations a few tens of degrees apart).

    Args:
        posed: (B, V, 3) posed vertices, meters, in the template topology.
        joints: (B, J, 3) REST joints of the body, meters.
        rotations: (B, J, 3, 3) the local rotations it was posed with.
        weights: (V, J) skinning weights.
        parents: J parent indices.
    Returns:
        (B, V, 3) rest (unposed) vertices, meters.
    """
    m = blend_transforms(joints, rotations, weights, parents)
    rhs = (posed - m[..., 3])[..., None]
    return torch.linalg.solve(m[..., :3], rhs)[..., 0]


def bounds(vertices: Tensor) -> tuple[Tensor, Tensor]:
    """((B, 3) minimum, (B, 3) maximum) of meshes (B, V, 3).

    Reduced over a transposed contiguous copy: reducing the (V, 3) layout along V walks it
    with a stride of 3 and was 20x slower, a visible share of a synthetic sample's time."""
    vt = vertices.transpose(-1, -2).contiguous()
    return vt.amin(dim=-1), vt.amax(dim=-1)  # 10x faster than torch.aminmax here


def box_centre(vertices: Tensor) -> Tensor:
    """(B, 3) centre of each mesh's axis-aligned bounding box."""
    lo, hi = bounds(vertices)
    return 0.5 * (lo + hi)


def yaw_about_centre(vertices: Tensor, angle: Tensor, centre: Tensor | None = None) -> Tensor:
    """Turn meshes by ``angle`` radians about the vertical axis through their box centre.

    How a view is taken: the synthetic photos, the training re-projection and prediction's
    fit check all turn the posed body this way.

    Args:
        vertices: (B, V, 3) meters.
        angle: (B,) radians, counter-clockwise seen from above.
        centre: (B, 3) the point the axis goes through; default the box centre of
            ``vertices`` (synthesis passes the naked body's centre to turn its garments).
    Returns:
        (B, V, 3) meters.
    """
    centre = box_centre(vertices) if centre is None else centre
    cx, cy = centre[:, None, :2].unbind(-1)  # (B, 1) each
    c, s = torch.cos(angle)[:, None], torch.sin(angle)[:, None]
    # Written out rather than a (V, 3) x (3, 3) matmul: 2.5x faster for one mesh on a CPU.
    dx, dy, z = (vertices[..., 0] - cx), (vertices[..., 1] - cy), vertices[..., 2]
    return torch.stack([c * dx - s * dy + cx, s * dx + c * dy + cy, z], dim=-1)


def scale_to_height(vertices: Tensor, height_m: Tensor) -> tuple[Tensor, Tensor]:
    """Scale meshes about their feet so that their stature is ``height_m``.

    The fixed point is the box centre in x, y and the lowest point in z, so the body stays
    standing where it stood.

    Args:
        vertices: (B, V, 3) meters.
        height_m: (B,) target statures, meters.
    Returns:
        ((B, V, 3) scaled meshes, (B,) scale factors).
    """
    lo, hi = bounds(vertices)
    scale = height_m.to(vertices) / (hi[:, 2] - lo[:, 2])
    centre = 0.5 * (lo + hi)
    anchor = torch.cat([centre[:, :2], lo[:, 2:]], dim=-1)[:, None]
    return anchor + (vertices - anchor) * scale[:, None, None], scale


def frontal_arm_angles(joints: Tensor) -> Tensor:
    """Arm angles from the downward vertical in the frontal plane, radians.

    The shoulder -> wrist direction is projected on the XZ plane: 0 is an arm hanging
    straight down, pi/2 horizontal, more above. Both sides are positive pointing outward.

    Args:
        joints: (B, J, 3) in ``JOINT_NAMES`` order, meters.
    Returns:
        (B, 2) radians, columns (left, right).
    """
    out = []
    for side, sign in (("l", 1.0), ("r", -1.0)):
        d = joints[:, _JOINT[f"wrist_{side}"]] - joints[:, _JOINT[f"shoulder_{side}"]]
        out.append(torch.atan2(sign * d[:, 0], -d[:, 2]))
    return torch.stack(out, dim=-1)
