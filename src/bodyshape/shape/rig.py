"""A 16-joint skeleton for the template topology: joint regressor, skinning weights, LBS.

The rig poses any mesh in the template topology (anny's identity A-pose, meters, Z up, facing
-Y, subject's left at +X) with linear blend skinning, in the style of smplx's ``lbs.py``: all
maths are pure batched numpy functions; ``Rig`` only holds the data.

Joints (``JOINT_NAMES``, parents first) and the anny bone whose head defines each one:

============  ======================  =========================================
joint         anny bone head          notes
============  ======================  =========================================
pelvis        upperleg01.L/R midpoint the centre of the two hip joints; anny's
                                      root sits ~7 mm above it, but the hip
                                      midpoint is defined on any mesh and is
                                      the natural centre for whole-body turns
spine         spine03                 mid-lumbar, where a standing lean bends
neck          neck01                  base of the neck
head          head                    top of the neck (skull base)
shoulder_*    upperarm01              glenohumeral joint
elbow_*       lowerarm01
wrist_*       wrist
hip_*         upperleg01              femoral head
knee_*        lowerleg01
ankle_*       foot
============  ======================  =========================================

Targets are the bone heads of anny's *identity pose* (``bone_poses[..., :3, 3]``), not
``rest_bone_heads``: anny's rest frame is offset ~5 cm from the identity-posed mesh that the
template and every ``body_meshes`` output live in.

Skinning weights are anny's artist-authored 104-bone weights collapsed onto the 16 joints
(each anny bone goes to the joint of its nearest ancestor-or-self among the bones above, e.g.
fingers -> wrist, toes -> ankle, upperarm02 -> shoulder, clavicle and shoulder01 -> spine,
spine05/04 -> pelvis). They are preferred over computed weights (heat diffusion, geodesic
falloff) because they were painted for this very topology and are already smooth across
the armpit, crotch and neck, where computed weights bleed between limbs and torso.

Data file ``shape/data/rig.npz`` (written by ``tools/make_rig.py``): ``joint_names``,
``parents`` (16,) int, ``regressor_index`` / ``regressor_value`` (16, K) sparse rows of W,
``weight_index`` / ``weight_value`` (V, k) sparse rows of the skinning weights (float32),
``rest_arm_angle`` (2,) radians (left, right), ``regressor_heldout_mm`` (16,).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from importlib import resources

import numpy as np

JOINT_NAMES = (
    "pelvis", "spine", "neck", "head",
    "shoulder_l", "elbow_l", "wrist_l", "shoulder_r", "elbow_r", "wrist_r",
    "hip_l", "knee_l", "ankle_l", "hip_r", "knee_r", "ankle_r",
)
#: Parent of each joint (-1 for the root); every parent comes before its children.
PARENTS = np.array([-1, 0, 1, 2, 1, 4, 5, 1, 7, 8, 0, 10, 11, 0, 13, 14], dtype=np.int64)
N_JOINTS = len(JOINT_NAMES)


@dataclass(frozen=True, eq=False)
class Rig:
    """The shipped skeleton of the template topology.

    Attributes:
        joint_names: (J,) names, ``JOINT_NAMES``.
        parents: (J,) int64 parent index, -1 for the root; parents come first.
        regressor: (J, V) float64 joint regressor W (rows >= 0, summing to 1): J = W @ V.
        weights: (V, J) float64 skinning weights (rows >= 0, summing to 1).
        rest_arm_angle: (2,) radians, (left, right) angle between the downward vertical and
            the shoulder -> wrist direction projected on the frontal (XZ) plane, on the
            template: the A-pose arm angle that pose sampling starts from.
        heldout_error_mm: (J,) mean regressor error on held-out anny bodies, millimeters.
    """

    joint_names: tuple[str, ...]
    parents: np.ndarray
    regressor: np.ndarray = field(repr=False)
    weights: np.ndarray = field(repr=False)
    rest_arm_angle: np.ndarray
    heldout_error_mm: np.ndarray

    def joint_index(self, name: str) -> int:
        """Index of joint ``name`` (ValueError if unknown)."""
        return self.joint_names.index(name)


@dataclass(frozen=True)
class PosedMeshes:
    """Output of ``lbs``.

    Attributes:
        vertices: (B, V, 3) posed vertices, meters.
        joints: (B, J, 3) posed joint positions, meters.
    """

    vertices: np.ndarray
    joints: np.ndarray


def _densify(index: np.ndarray, value: np.ndarray, n_cols: int) -> np.ndarray:
    """Sparse rows (R, k) index/value -> dense (R, n_cols) float64 (duplicates are summed)."""
    out = np.zeros((index.shape[0], n_cols))
    np.add.at(out, (np.arange(index.shape[0])[:, None], index), value.astype(np.float64))
    return out


@functools.lru_cache(maxsize=1)
def load_rig() -> Rig:
    """Load the shipped rig (cached; arrays are read-only)."""
    with resources.files("bodyshape.shape").joinpath("data", "rig.npz").open("rb") as f:
        d = dict(np.load(f))
    names = tuple(str(n) for n in d["joint_names"])
    if names != JOINT_NAMES or not np.array_equal(d["parents"], PARENTS):
        raise ValueError("rig.npz does not match rig.JOINT_NAMES/PARENTS; rerun tools/make_rig.py")
    n_vertices = d["weight_index"].shape[0]
    rig = Rig(
        joint_names=names,
        parents=PARENTS.copy(),
        regressor=_densify(d["regressor_index"], d["regressor_value"], n_vertices),
        weights=_densify(d["weight_index"], d["weight_value"], N_JOINTS),
        rest_arm_angle=d["rest_arm_angle"].astype(np.float64),
        heldout_error_mm=d["regressor_heldout_mm"].astype(np.float64),
    )
    for a in (rig.parents, rig.regressor, rig.weights, rig.rest_arm_angle, rig.heldout_error_mm):
        a.setflags(write=False)
    return rig


def regress_joints(vertices: np.ndarray, regressor: np.ndarray | None = None) -> np.ndarray:
    """Joint positions of meshes in the template topology.

    Args:
        vertices: (B, V, 3) meters (any leading shape works).
        regressor: (J, V) weights; default the shipped rig's.
    Returns:
        (B, J, 3) meters.
    """
    w = load_rig().regressor if regressor is None else regressor
    return np.einsum("jv,...vd->...jd", w, vertices)


def axis_angle_to_matrix(axis_angle: np.ndarray) -> np.ndarray:
    """Rodrigues' formula: rotation vectors (..., 3) radians -> rotation matrices (..., 3, 3).

    The angle is the vector's norm and the rotation is counter-clockwise (right hand) about
    its direction. Exact identity for zero vectors.
    """
    aa = np.asarray(axis_angle, dtype=np.float64)
    theta = np.linalg.norm(aa, axis=-1)[..., None, None]
    # Dividing by a zero angle is avoided; the resulting K = 0 gives exactly the identity.
    safe = np.where(theta > 0, theta, 1.0)
    k = aa / safe[..., 0]
    kx, ky, kz = k[..., 0], k[..., 1], k[..., 2]
    zero = np.zeros_like(kx)
    kmat = np.stack([zero, -kz, ky, kz, zero, -kx, -ky, kx, zero], -1).reshape(aa.shape + (3,))
    eye = np.broadcast_to(np.eye(3), kmat.shape)
    return eye + np.sin(theta) * kmat + (1.0 - np.cos(theta)) * (kmat @ kmat)


def forward_kinematics(rotations: np.ndarray, joints: np.ndarray,
                       parents: np.ndarray) -> np.ndarray:
    """World transforms of each joint relative to the rest pose.

    Each joint k's local rotation R_k turns its subtree about the joint's rest position, in
    the rest (A-pose) frame, after which the parent's transform is applied:
    ``A_k = A_parent @ [R_k | j_k - R_k j_k]``. This is smplx's ``batch_rigid_transform``
    with the rest-joint subtraction folded in; it makes identity rotations give exactly the
    identity (no ``(j_k - j_p) + j_p - j_k`` rounding).

    Args:
        rotations: (B, J, 3, 3) local rotation matrices.
        joints: (B, J, 3) rest joint positions, meters.
        parents: (J,) parent indices, -1 for the root, parents before children.
    Returns:
        (B, J, 4, 4) transforms mapping rest-pose points to posed points; the posed joint k
        is ``A[:, k, :3, :3] @ j_k + A[:, k, :3, 3]``.
    """
    rotations = np.asarray(rotations, dtype=np.float64)
    joints = np.asarray(joints, dtype=np.float64)
    b, j = joints.shape[:2]
    local = np.zeros((b, j, 4, 4))
    local[..., :3, :3] = rotations
    local[..., :3, 3] = joints - np.einsum("bjik,bjk->bji", rotations, joints)
    local[..., 3, 3] = 1.0
    out = np.empty_like(local)
    for k in range(j):
        p = parents[k]
        if p >= 0 and p >= k:
            raise ValueError("parents must come before their children")
        out[:, k] = local[:, k] if p < 0 else out[:, p] @ local[:, k]
    return out


def transform_points(transforms: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply per-point rigid transforms (B, N, 4, 4) to points (B, N, 3) -> (B, N, 3)."""
    return np.einsum("bnik,bnk->bni", transforms[..., :3, :3], points) + transforms[..., :3, 3]


def lbs(vertices: np.ndarray, joints: np.ndarray, rotations: np.ndarray, weights: np.ndarray,
        parents: np.ndarray) -> PosedMeshes:
    """Linear blend skinning.

    The blended transform is applied as a displacement, ``v' = v + sum_k w_k (A_k v - v)``,
    which equals standard LBS for weights summing to 1 but keeps identity rotations exact
    even though the stored float32 weights sum to 1 only up to rounding.

    Args:
        vertices: (B, V, 3) rest meshes, meters.
        joints: (B, J, 3) rest joints, meters (e.g. ``regress_joints(vertices)``).
        rotations: (B, J, 3, 3) local rotations (see ``forward_kinematics``).
        weights: (V, J) skinning weights.
        parents: (J,) parent indices.
    Returns:
        PosedMeshes with (B, V, 3) vertices and (B, J, 3) joints, meters.
    """
    vertices = np.asarray(vertices, dtype=np.float64)
    a = forward_kinematics(rotations, joints, parents)
    # (A_k - I) per joint, blended per vertex as 3x4 matrices only: no (B, V, 4, 4) array.
    delta = a[..., :3, :].copy()
    delta[..., :3, :3] -= np.eye(3)
    # BLAS matmul for the (V, J) x (J, 12) blend and explicit column sums for the per-vertex
    # 3x3 product: both several times faster than the equivalent einsums on CPU.
    b, j = delta.shape[:2]
    blend = (weights @ delta.reshape(b, j, 12)).reshape(b, -1, 3, 4)
    x, y, z = vertices[..., 0:1], vertices[..., 1:2], vertices[..., 2:3]
    posed = (vertices + blend[..., 0] * x + blend[..., 1] * y + blend[..., 2] * z
             + blend[..., 3])
    return PosedMeshes(posed, transform_points(a, joints))


def pose_meshes(vertices: np.ndarray, rotations: np.ndarray, rig: Rig | None = None
                ) -> PosedMeshes:
    """Pose meshes (B, V, 3) in the template topology by local rotations (B, J, 3, 3)."""
    rig = load_rig() if rig is None else rig
    joints = regress_joints(vertices, rig.regressor)
    return lbs(vertices, joints, rotations, rig.weights, rig.parents)


def frontal_arm_angles(joints: np.ndarray) -> np.ndarray:
    """Arm angles from the downward vertical in the frontal plane, radians.

    The shoulder -> wrist direction is projected on the XZ plane; 0 is arms hanging straight
    down, pi/2 arms horizontal, larger values above. Both sides are positive when the arm
    points outward.

    Args:
        joints: (B, J, 3) in ``JOINT_NAMES`` order, meters.
    Returns:
        (B, 2) radians, columns (left, right).
    """
    out = []
    for side, sign in (("l", 1.0), ("r", -1.0)):
        d = (joints[..., JOINT_NAMES.index(f"wrist_{side}"), :]
             - joints[..., JOINT_NAMES.index(f"shoulder_{side}"), :])
        out.append(np.arctan2(sign * d[..., 0], -d[..., 2]))
    return np.stack(out, axis=-1)


def vertex_bounds(vertices: np.ndarray) -> np.ndarray:
    """(2, 3) [min, max] of (V, 3) vertices.

    Reduces over a transposed contiguous copy: numpy's ``min(axis=0)`` over a (V, 3) array
    walks it with a stride of 3 and was ~20x slower, a visible share of synthetic sample time."""
    vt = np.ascontiguousarray(vertices.T)
    return np.stack([vt.min(axis=1), vt.max(axis=1)])


def yaw_about_centre(vertices: np.ndarray, angle: float) -> np.ndarray:
    """Rotate (V, 3) vertices by ``angle`` radians about the vertical axis through their
    bounding-box centre (x, y)."""
    centre = vertex_bounds(vertices).mean(axis=0)
    c, s = np.cos(angle), np.sin(angle)
    rz = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    xy = np.array([centre[0], centre[1], 0.0])
    return (vertices - xy) @ rz.T + xy
