"""Differentiable posing of predicted bodies, for the silhouette re-projection loss.

The torch twin of ``bodyshape.shape.rig`` (forward kinematics and linear blend skinning) and
of the synthetic sample's view yaw (``bodyshape.shape.rig.yaw_about_centre``): a predicted rest
mesh is put into the sample's known pose and turned like the sample was, so that it can be
projected through the sample's canvas camera and compared with its silhouette. Rotations
depend only on the pose angles, never on the shape, so they come in as constants; joints
and vertices carry gradients. Pure functions over batched tensors; no file IO (the rig
arrays are passed in).
"""

from __future__ import annotations

import numpy as np
import torch


def forward_kinematics(rotations: torch.Tensor, joints: torch.Tensor,
                       parents: list[int]) -> torch.Tensor:
    """Joint transforms relative to the rest pose (see ``rig.forward_kinematics``).

    Args:
        rotations: (B, J, 3, 3) local rotations.
        joints: (B, J, 3) rest joint positions, meters.
        parents: J parent indices, -1 for the root, parents first.
    Returns:
        (B, J, 3, 4) affine transforms mapping rest points to posed points.
    """
    rj = torch.einsum("bjik,bjk->bji", rotations, joints)
    local = torch.cat([rotations, (joints - rj)[..., None]], dim=-1)  # (B, J, 3, 4)
    out: list[torch.Tensor] = []
    for k, p in enumerate(parents):
        if p < 0:
            out.append(local[:, k])
        else:
            a = out[p]
            # [Ra | ta] @ [Rl | tl] = [Ra Rl | Ra tl + ta]
            out.append(torch.cat([a[..., :3] @ local[:, k, :, :3],
                                  (a[..., :3] @ local[:, k, :, 3:]) + a[..., 3:]], dim=-1))
    return torch.stack(out, dim=1)


def lbs(vertices: torch.Tensor, joints: torch.Tensor, rotations: torch.Tensor,
        weights: torch.Tensor, parents: list[int]) -> torch.Tensor:
    """Linear blend skinning as a displacement (identity rotations return the input exactly).

    Args:
        vertices: (B, V, 3) rest meshes, meters.
        joints: (B, J, 3) rest joints, meters.
        rotations: (B, J, 3, 3) local rotations.
        weights: (V, J) skinning weights.
        parents: J parent indices.
    Returns:
        (B, V, 3) posed vertices, meters.
    """
    a = forward_kinematics(rotations, joints, parents)
    eye = torch.eye(3, 4, dtype=a.dtype, device=a.device)
    delta = (a - eye).flatten(2)  # (B, J, 12)
    blend = (weights @ delta).unflatten(-1, (3, 4))  # (B, V, 3, 4)
    return (vertices + (blend[..., :3] @ vertices[..., None])[..., 0] + blend[..., 3])


def yaw_about_centre(vertices: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    """Turn (B, V, 3) vertices by ``angle`` (B,) radians about the vertical axis through
    their bounding-box centre (x, y), as the synthetic views were turned."""
    lo, hi = vertices.amin(dim=1), vertices.amax(dim=1)
    centre = 0.5 * (lo + hi)
    centre = torch.stack([centre[:, 0], centre[:, 1], torch.zeros_like(centre[:, 2])], -1)
    c, s = torch.cos(angle), torch.sin(angle)
    zero, one = torch.zeros_like(c), torch.ones_like(c)
    rz = torch.stack([c, -s, zero, s, c, zero, zero, zero, one], -1).view(-1, 3, 3)
    return (vertices - centre[:, None]) @ rz.transpose(1, 2) + centre[:, None]


def _rotate_about(axis: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    """Rotations (B, 3, 3) by ``angle`` (B,) radians about unit ``axis`` ((3,) or (B, 3)).

    Rodrigues with a fixed axis, so the gradient is smooth at zero angle (unlike a rotation
    vector, whose norm is not differentiable there).
    """
    axis = torch.broadcast_to(axis.to(angle.dtype), angle.shape + (3,))
    x, y, z = axis.unbind(-1)
    zero = torch.zeros_like(x)
    k = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], -1).view(*angle.shape, 3, 3)
    s, c = torch.sin(angle)[..., None, None], torch.cos(angle)[..., None, None]
    return torch.eye(3, dtype=angle.dtype) + s * k + (1 - c) * (k @ k)


def pose_rotations(angles: torch.Tensor, rest_arm_angle, joint_names: tuple[str, ...],
                   pose_names: tuple[str, ...]) -> torch.Tensor:
    """Torch twin of ``synth.poses.pose_rotations`` (same conventions; tested equal).

    Args:
        angles: (B, P) pose angles, radians, columns ``pose_names``.
        rest_arm_angle: (2,) radians (left, right), ``Rig.rest_arm_angle``.
        joint_names, pose_names: ``rig.JOINT_NAMES`` and ``synth.poses.POSE_NAMES`` (passed
            in so that this module stays free of the rig and pose modules).
    Returns:
        (B, J, 3, 3) local rotations, differentiable in ``angles``.
    """
    b, dt = angles.shape[0], angles.dtype
    rest = torch.tensor(np.asarray(rest_arm_angle, dtype=np.float64), dtype=dt)

    def col(name: str) -> torch.Tensor:
        return angles[:, pose_names.index(name)]

    def t(*v: float) -> torch.Tensor:
        return torch.tensor(v, dtype=dt)

    rot = [torch.eye(3, dtype=dt).expand(b, 3, 3)] * len(joint_names)
    for k, (side, sign) in enumerate((("l", 1.0), ("r", -1.0))):
        abduct = _rotate_about(t(0, -sign, 0), col(f"arm_abduction_{side}") - rest[k])
        swing = _rotate_about(t(-1, 0, 0), col(f"arm_swing_{side}"))
        rot[joint_names.index(f"shoulder_{side}")] = swing @ abduct
        a = rest[k]
        elbow_axis = torch.stack([-torch.cos(a), torch.zeros_like(a), -sign * torch.sin(a)])
        rot[joint_names.index(f"elbow_{side}")] = _rotate_about(elbow_axis,
                                                                col(f"elbow_bend_{side}"))
        rot[joint_names.index(f"hip_{side}")] = _rotate_about(t(0, -sign, 0),
                                                              col(f"leg_spread_{side}"))
        rot[joint_names.index(f"knee_{side}")] = _rotate_about(t(1, 0, 0),
                                                               col(f"knee_bend_{side}"))
    for joint in ("spine", "head"):
        rot[joint_names.index(joint)] = (
            _rotate_about(t(0, 0, 1), col(f"{joint}_yaw"))
            @ _rotate_about(t(0, 1, 0), col(f"{joint}_roll"))
            @ _rotate_about(t(1, 0, 0), col(f"{joint}_pitch")))
    return torch.stack(rot, dim=1)
