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
