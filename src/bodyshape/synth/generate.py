"""One synthetic training sample: a posed body photographed from the front and the side.

A sample ``i`` is made of:

1. a body shape drawn from the PCA shape model (``SynthSpec.sampling``, Gaussian by default).
   With ``poses_per_shape = K`` samples ``i`` share the shape ``i // K``: the shape is drawn
   from its own generator ``default_rng([seed, 0, i // K])``, so the K samples of one shape
   get bit-identical coefficients whichever process makes them;
2. a random standing pose (:mod:`bodyshape.synth.poses`) applied by linear blend skinning
   (``BodyModel.pose``);
3. two views: the posed body is turned about the vertical axis through its bounding-box
   centre by ``U(-front_yaw_deg, +front_yaw_deg)`` for the front view and by
   ``+-90 deg + U(-side_yaw_deg, +side_yaw_deg)`` (random sign) for the side view; a phone
   camera is drawn for each view (:func:`~bodyshape.render.camera.sample_camera`), the mesh
   is rasterized and the full-frame mask calibrated onto the network canvas
   (:func:`~bodyshape.calibrate.calibrate`).

Side-view convention: a body turned by +90 deg faces world +X, which the camera (on -Y,
looking +Y, image x = world +X) sees as *facing image right*. That is the canonical side
view; bodies turned by -90 deg (facing image left) are mirrored by ``calibrate`` (when
``CalibrationSpec.mirror_side_views``) and recorded as ``side_mirrored``.

Everything else of sample ``i`` (pose, yaws, cameras) comes from ``default_rng([seed, 1, i,
attempt])``: a sample depends only on (model, spec, seed, i), never on worker count or order.
``attempt`` is 0 unless a draw cannot be framed (camera or canvas overflow; very rare), in
which case the view draws are repeated with ``attempt = 1, 2, ...`` (deterministically).

World frame: meters, Z up, the rest body faces -Y (the model's aligned frame).
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bodyshape.body import BodyModel, PoseSpec
from bodyshape.calibrate import CalibrationSpec, calibrate
from bodyshape.render.camera import CameraSpec, sample_camera, vertex_bounds
from bodyshape.render.raster import silhouette
from bodyshape.shape.pca import SAMPLING_METHODS
from bodyshape.synth.poses import sample_poses

logger = logging.getLogger(__name__)

SEX_CODES = {"female": 0, "male": 1}
"""Integer sex codes stored in shards; ``SEX_UNKNOWN`` when the sampler gives no sex."""
SEX_UNKNOWN = -1

MAX_ATTEMPTS = 10
"""Redraws of a sample's views before giving up (a draw fails only if it cannot be framed)."""

_SHAPE_STREAM, _VIEW_STREAM = 0, 1  # first entropy word after the seed: which stream


@dataclass(frozen=True)
class SynthSpec:
    """Distribution of synthetic samples.

    Attributes:
        camera: phone-camera distribution (frame size, field of view, distance, tilt).
        pose: pose-angle ranges.
        calibration: network canvas; default 128 x 128 with the body 90 % of the height.
        poses_per_shape: K pose/view variants per body shape (sample i uses shape i // K).
        sampling: shape sampling method of :meth:`ShapeModel.sample` ("gaussian",
            "per-sex" or "gmm"; the last two need a model fitted with sexes / a mixture).
        front_yaw_deg: the front-view body yaw is uniform in +-front_yaw_deg, degrees.
        side_yaw_deg: the side-view body yaw is +-90 deg plus uniform +-side_yaw_deg.
    """

    camera: CameraSpec = field(default_factory=CameraSpec)
    pose: PoseSpec = field(default_factory=PoseSpec)
    calibration: CalibrationSpec = field(
        default_factory=lambda: CalibrationSpec(canvas_width=128, canvas_height=128))
    poses_per_shape: int = 1
    sampling: str = "gaussian"
    front_yaw_deg: float = 5.0
    side_yaw_deg: float = 5.0

    def __post_init__(self):
        if int(self.poses_per_shape) < 1:
            raise ValueError(f"poses_per_shape must be >= 1, got {self.poses_per_shape}")
        if self.sampling not in SAMPLING_METHODS:
            raise ValueError(f"sampling must be one of {SAMPLING_METHODS}, got {self.sampling!r}")

    def to_dict(self) -> dict:
        """JSON-able nested dict (tuples become lists once written as JSON)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "SynthSpec":
        """Inverse of :meth:`to_dict` (also accepts the JSON round trip: lists for tuples)."""
        def build(kind, values: dict):
            kwargs = {}
            for f in dataclasses.fields(kind):
                if f.name in values:
                    kwargs[f.name] = _tuples(values[f.name])
            return kind(**kwargs)

        d = dict(d)
        sub = {"camera": CameraSpec, "pose": PoseSpec, "calibration": CalibrationSpec}
        kwargs: dict[str, Any] = {k: build(kind, d.pop(k)) for k, kind in sub.items() if k in d}
        return cls(**kwargs, **d)


def _tuples(value):
    """Lists (from JSON) back to the (nested) tuples the spec dataclasses use."""
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value


@dataclass(frozen=True, eq=False)
class Sample:
    """One synthetic front/side pair.

    Attributes:
        index: global sample index i.
        shape_index: index of the body shape, ``i // poses_per_shape``.
        coeffs: (K,) float32 raw shape coefficients, meters (``model.decode`` gives the
            canonical rest mesh: the ground truth).
        pose_angles: (P,) float32 pose angles, radians, in ``body.pose.POSE_NAMES`` order.
        yaw: (2,) float32 body yaw of the front and side view, radians (about +Z).
        front_camera, side_camera: ``Camera.to_dict()`` of the two cameras (full frame).
        side_mirrored: whether the side canvas was mirrored to face image right.
        calib_scale: (2,) float64 canvas pixels per frame pixel of the front and side view.
        calib_offset: (2, 2) float64 canvas position (x, y) of the (mirrored) frame origin
            per view: ``canvas = offset + scale * (+-x, y)`` (see ``Calibrated``).
        stature_m: vertical extent of the rest (unposed) mesh, meters.
        sex: "female"/"male" from the shape sampler, None if unknown (Gaussian sampling).
        front, side: (H, W) float32 calibrated masks in [0, 1] (area coverage, see
            :class:`~bodyshape.calibrate.Calibrated`).
        attempts: how many view draws were needed (1 normally).
    """

    index: int
    shape_index: int
    coeffs: np.ndarray
    pose_angles: np.ndarray
    yaw: np.ndarray
    front_camera: dict
    side_camera: dict
    side_mirrored: bool
    calib_scale: np.ndarray
    calib_offset: np.ndarray
    stature_m: float
    sex: str | None
    front: np.ndarray
    side: np.ndarray
    attempts: int = 1

    @property
    def sex_code(self) -> int:
        """``SEX_CODES[sex]`` or ``SEX_UNKNOWN``."""
        return SEX_CODES.get(self.sex, SEX_UNKNOWN) if self.sex else SEX_UNKNOWN


def _view(body: BodyModel, vertices: np.ndarray, angle: float, mirror: bool,
          rng: np.random.Generator, spec: SynthSpec):
    """Yaw, photograph, rasterize and calibrate one view -> (Camera, Calibrated)."""
    v = body.turn(vertices, angle)
    bounds = vertex_bounds(v)
    cam = sample_camera(rng, spec.camera, bounds, float(bounds[0, 2]))
    mask = silhouette(v, body.faces, cam, closed=True)  # template meshes are closed, outward
    return cam, calibrate(mask, spec.calibration, mirror=mirror)


def shape_rng(seed: int, shape_index: int) -> np.random.Generator:
    """Generator of body shape ``shape_index`` (shared by its ``poses_per_shape`` samples)."""
    return np.random.default_rng([int(seed), _SHAPE_STREAM, int(shape_index)])


def view_rng(seed: int, index: int, attempt: int = 0) -> np.random.Generator:
    """Generator of the pose, yaws and cameras of sample ``index`` (one per attempt)."""
    return np.random.default_rng([int(seed), _VIEW_STREAM, int(index), int(attempt)])


def make_sample(body: BodyModel, index: int, seed: int, spec: SynthSpec = SynthSpec()
                ) -> Sample:
    """Make sample ``index`` of the dataset with seed ``seed`` (see the module docs).

    Args:
        body: the body model (shape model, rig, template).
        index: global sample index, >= 0.
        seed: dataset seed, >= 0.
        spec: sample distribution.

    Returns:
        The sample; a pure function of (body, index, seed, spec).

    Raises:
        ValueError: for a negative index/seed, or if no framing succeeds in MAX_ATTEMPTS.
    """
    if index < 0 or seed < 0:
        raise ValueError(f"index and seed must be >= 0, got index={index}, seed={seed}")
    shape_index = index // spec.poses_per_shape
    drawn = body.shape.sample(1, shape_rng(seed, shape_index), spec.sampling)
    coeffs = drawn.coeffs[0]
    rest = drawn.vertices[0].astype(np.float64)
    stature = float(np.ptp(rest[:, 2]))
    sex = drawn.sex[0] if drawn.sex is not None else None
    for attempt in range(MAX_ATTEMPTS):
        rng = view_rng(seed, index, attempt)
        pose = sample_poses(rng, 1, spec.pose)
        posed = body.pose(rest, pose.angles[0])
        front_yaw = np.deg2rad(rng.uniform(-spec.front_yaw_deg, spec.front_yaw_deg))
        facing_left = bool(rng.integers(2))  # turned by -90 deg: mirror onto the canon
        side_yaw = np.deg2rad((-90.0 if facing_left else 90.0)
                              + rng.uniform(-spec.side_yaw_deg, spec.side_yaw_deg))
        try:
            front_cam, front = _view(body, posed, front_yaw, False, rng, spec)
            side_cam, side = _view(body, posed, side_yaw, facing_left, rng, spec)
        except (ValueError, RuntimeError) as exc:
            # Only framing can fail here (body wider than the canvas, camera cannot fit it);
            # redraw the views of this sample from the next deterministic stream.
            logger.debug("sample %d attempt %d failed: %s", index, attempt, exc)
            continue
        return Sample(
            index=int(index), shape_index=int(shape_index), coeffs=coeffs,
            pose_angles=pose.angles[0].astype(np.float32),
            yaw=np.array([front_yaw, side_yaw], dtype=np.float32),
            front_camera=front_cam.to_dict(), side_camera=side_cam.to_dict(),
            side_mirrored=side.mirrored,
            calib_scale=np.array([front.scale, side.scale]),
            calib_offset=np.stack([front.offset, side.offset]), stature_m=stature, sex=sex,
            front=front.image, side=side.image, attempts=attempt + 1)
    raise ValueError(f"sample {index}: no framing succeeded in {MAX_ATTEMPTS} attempts")

