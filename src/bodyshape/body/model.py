"""``BodyModel``: the template, the rig, the coarse mesh and the PCA shape model, loaded once.

Every entry point (the CLI commands, the web app, a synthesis worker, a training run) loads
one ``BodyModel`` and passes it down; library code takes it as an argument instead of
reaching for package data itself. Its numpy methods wrap the torch kinematics
(:mod:`bodyshape.body.kinematics`): arrays go in and out through ``torch.from_numpy`` /
``.numpy()`` without copies (float64 inputs), so there is one implementation of the maths.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass

import numpy as np
import torch

from bodyshape.assets import DEFAULT_SHAPE_MODEL
from bodyshape.body import kinematics as kin
from bodyshape.body.keypoints import load_keypoint_regressor
from bodyshape.body.pose import PoseParams, rest_pose_params
from bodyshape.body.rig import Rig, load_rig
from bodyshape.shape.coarse import CoarseMesh, load_coarse
from bodyshape.shape.pca import ShapeModel
from bodyshape.shape.template import Template, load_template


def _tensor(a) -> torch.Tensor:
    """A float64 tensor sharing memory with ``a`` when it is a writable float64 array."""
    return torch.from_numpy(np.require(a, dtype=np.float64, requirements="W"))


def _batched(vertices: np.ndarray) -> tuple[torch.Tensor, bool]:
    """(V, 3) or (B, V, 3) -> ((B, V, 3) tensor, whether a batch axis was added)."""
    v = _tensor(vertices)
    return (v[None], True) if v.ndim == 2 else (v, False)


@dataclass(frozen=True, eq=False)
class BodyModel:
    """The body model of the template topology.

    Attributes:
        template: the template mesh and its landmarks.
        rig: the 16-joint skeleton and skinning weights.
        coarse: the decimated template used by the soft rasterizer.
        shape: the PCA shape model (coefficients -> canonical A-pose meshes).
    """

    template: Template
    rig: Rig
    coarse: CoarseMesh
    shape: ShapeModel

    def __post_init__(self):
        n = self.template.vertices.shape[0]
        if self.shape.n_vertices != n or self.rig.weights.shape[0] != n:
            raise ValueError(f"the shape model has {self.shape.n_vertices} vertices and the rig "
                             f"{self.rig.weights.shape[0]}; the template has {n}")
        if self.coarse.template_hash != self.template.hash:
            raise ValueError("the coarse mesh was built for another template")

    @classmethod
    def load(cls, shape_model: str | os.PathLike | ShapeModel = DEFAULT_SHAPE_MODEL
             ) -> "BodyModel":
        """The shipped template, rig and coarse mesh with a shape model (a path or a loaded
        one; default the shipped model)."""
        if not isinstance(shape_model, ShapeModel):
            shape_model = ShapeModel.load(shape_model)
        return cls(load_template(), load_rig(), load_coarse(), shape_model)

    @property
    def faces(self) -> np.ndarray:
        """(F, 3) template faces (counter-clockwise seen from outside)."""
        return self.template.faces

    @property
    def parents(self) -> tuple[int, ...]:
        """The rig's parent indices, -1 for the root."""
        return tuple(int(p) for p in self.rig.parents)

    @functools.cached_property
    def regressor(self) -> torch.Tensor:
        """(J, V) float64 joint regressor as a tensor."""
        return torch.tensor(self.rig.regressor)

    @functools.cached_property
    def weights(self) -> torch.Tensor:
        """(V, J) float64 skinning weights as a tensor."""
        return torch.tensor(self.rig.weights)

    @functools.cached_property
    def rest_arm_angle(self) -> torch.Tensor:
        """(2,) float64 radians, the template's A-pose arm angles (left, right)."""
        return torch.tensor(self.rig.rest_arm_angle)

    @functools.cached_property
    def _keypoint_data(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The shipped keypoint file, read once: (weights, noise_px, swap_rate)."""
        return load_keypoint_regressor()

    @functools.cached_property
    def keypoint_regressor(self) -> torch.Tensor:
        """(K, V) float64 weights of the MediaPipe-like keypoints (``body.keypoints``)."""
        return torch.from_numpy(self._keypoint_data[0])

    @functools.cached_property
    def keypoint_noise_px(self) -> np.ndarray:
        """(K,) RMS distance, canvas px, of the regressed keypoints to MediaPipe's landmarks
        on held-out photos (the noise synthesis adds)."""
        return self._keypoint_data[1]

    @functools.cached_property
    def keypoint_swap_rate(self) -> np.ndarray:
        """(2, n_pairs) how often MediaPipe swaps each left/right keypoint pair in front and
        side views (``body.keypoints.PAIRS``; synthesis swaps as often)."""
        return self._keypoint_data[2]

    @functools.cached_property
    def coarse_weights(self) -> torch.Tensor:
        """(Vc, J) float64 skinning weights of the coarse vertices: the barycentric blend of
        the template's weights at each coarse vertex."""
        w = np.einsum("ck,ckj->cj", self.coarse.map_weight,
                      self.rig.weights[self.coarse.map_index])
        return torch.from_numpy(w)

    # ---- numpy wrappers of the torch kinematics ----------------------------------------

    def rest_pose(self, n: int = 1) -> PoseParams:
        """``n`` copies of the rest pose (identity rotations)."""
        return rest_pose_params(n, self.rig.rest_arm_angle)

    def rotations(self, angles: np.ndarray) -> np.ndarray:
        """(B, P) pose angles, radians -> (B, J, 3, 3) local joint rotations."""
        return kin.pose_rotations(_tensor(angles), self.rest_arm_angle).numpy()

    def joints(self, vertices: np.ndarray) -> np.ndarray:
        """Rest joints of (B, V, 3) or (V, 3) meshes -> (B, J, 3) or (J, 3), meters."""
        v, added = _batched(vertices)
        j = kin.regress_joints(v, self.regressor).numpy()
        return j[0] if added else j

    def keypoints(self, vertices: np.ndarray) -> np.ndarray:
        """MediaPipe-like keypoints (``body.keypoints.KEYPOINT_NAMES``) of (B, V, 3) or
        (V, 3) meshes in any pose -> (B, K, 3) or (K, 3), meters."""
        v, added = _batched(vertices)
        k = kin.regress_joints(v, self.keypoint_regressor).numpy()
        return k[0] if added else k

    def pose(self, vertices: np.ndarray, angles: np.ndarray) -> np.ndarray:
        """Pose rest meshes by pose angles.

        Args:
            vertices: (B, V, 3) or (V, 3) rest meshes in the template topology, meters.
            angles: (B, P) or (P,) radians, ``POSE_NAMES`` order.
        Returns:
            Posed meshes of the input's shape, meters (float64).
        """
        v, added = _batched(vertices)
        a = _tensor(angles)
        a = a[None] if a.ndim == 1 else a
        posed = kin.lbs(v, kin.regress_joints(v, self.regressor),
                        kin.pose_rotations(a, self.rest_arm_angle), self.weights,
                        self.parents).vertices.numpy()
        return posed[0] if added else posed

    def pose_attached(self, rest: np.ndarray, angles: np.ndarray, surface: np.ndarray,
                      pieces: np.ndarray, piece_joints: np.ndarray
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Pose one rest body and what it wears, with the body's own joints.

        Args:
            rest: (V, 3) rest body, meters (its joints drive everything).
            angles: (B, P) radians, ``POSE_NAMES`` order.
            surface: (V, 3) a surface of the template topology over the body (a garment
                offset), skinned with the body's weights.
            pieces: (E, 3) rest-frame points of attached pieces, meters.
            piece_joints: (E,) the joint each piece point moves with rigidly.
        Returns:
            (B, V, 3) posed bodies, (B, V, 3) posed surfaces, (B, E, 3) posed pieces, meters.
        """
        a = _tensor(angles)
        b = a.shape[0]
        both = torch.from_numpy(np.stack([rest, surface]).astype(np.float64))
        joints = kin.regress_joints(both[:1], self.regressor)
        rot = kin.pose_rotations(a, self.rest_arm_angle)
        # Body and surface share weights and joints: one batch of 2B, bodies first.
        posed = kin.lbs(both.repeat_interleave(b, 0), joints.expand(2 * b, -1, -1),
                        rot.repeat(2, 1, 1, 1), self.weights, self.parents).vertices.numpy()
        rigid = torch.nn.functional.one_hot(torch.as_tensor(piece_joints, dtype=torch.long),
                                            len(self.parents)).double()
        p = torch.from_numpy(np.asarray(pieces, dtype=np.float64))
        moved = kin.lbs(p.expand(b, -1, -1), joints.expand(b, -1, -1), rot, rigid,
                        self.parents).vertices.numpy()
        return posed[:b], posed[b:], moved

    def turn(self, vertices: np.ndarray, yaw, about: np.ndarray | None = None) -> np.ndarray:
        """Turn (V, 3) or (B, V, 3) meshes by ``yaw`` radians (scalar or (B,)) about the
        vertical through their box centre (``kinematics.yaw_about_centre``), or through the
        box centre of the mesh(es) ``about`` of the same batch shape."""
        v, added = _batched(vertices)
        y = torch.from_numpy(np.array(np.broadcast_to(np.asarray(yaw, dtype=np.float64),
                                                      v.shape[:1])))
        centre = None if about is None else kin.box_centre(_batched(about)[0])
        out = kin.yaw_about_centre(v, y, centre).numpy()
        return out[0] if added else out

    def to_height(self, vertices: np.ndarray, height_m: float) -> tuple[np.ndarray, float]:
        """Scale one (V, 3) mesh about its feet to stature ``height_m`` -> (mesh, scale)."""
        v, _ = _batched(vertices)
        out, scale = kin.scale_to_height(v, torch.tensor([float(height_m)],
                                                         dtype=torch.float64))
        return out[0].numpy(), float(scale[0])
