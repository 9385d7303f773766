"""One synthetic training sample: a posed body photographed from the front and the side.

A sample ``i`` is made of:

1. a body shape drawn from the PCA shape model (``SynthSpec.sampling``, Gaussian by default).
   With ``poses_per_shape = K`` samples ``i`` share the shape ``i // K``: the shape is drawn
   from its own generator ``default_rng([seed, 0, i // K])``, so the K samples of one shape
   get bit-identical coefficients whichever process makes them;
2. an outfit (``SynthSpec.garments``, :mod:`bodyshape.synth.garments`): clothing, hair and
   shoes as offset surfaces and attached pieces over the rest body, from its own generator
   ``default_rng([seed, 2, i])``; ``garments=None`` leaves the body naked;
3. a random standing pose per view (:mod:`bodyshape.synth.poses`), as two separate photos
   would have: ``front_pose`` and ``side_pose`` (``shared_pose=True`` draws one pose from
   ``front_pose`` for both views, the original scheme kept for ablation), applied by linear
   blend skinning (``BodyModel.pose``; garments ride along, ``BodyModel.pose_attached``);
4. two views: the posed body is turned about the vertical axis through its bounding-box
   centre by ``U(-front_yaw_deg, +front_yaw_deg)`` for the front view and by
   ``+-90 deg + U(-side_yaw_deg, +side_yaw_deg)`` (random sign) for the side view; a phone
   camera is drawn for each view (:func:`~bodyshape.render.camera.sample_camera`), the
   dressed mesh is rasterized and the full-frame mask calibrated onto the network canvas
   (:func:`~bodyshape.calibrate.calibrate`). Garments turn about the naked body's centre,
   so the stored yaw and camera reproject the naked target body exactly.

``SynthSpec()`` is the realistic distribution (per-view poses, garments);
``SynthSpec.clean()`` is the original one (one near-A pose for both views, naked bodies),
whose samples are byte-identical to those written before per-view poses existed.

Side-view convention: a body turned by +90 deg faces world +X, which the camera (on -Y,
looking +Y, image x = world +X) sees as *facing image right*. That is the canonical side
view; bodies turned by -90 deg (facing image left) are mirrored by ``calibrate`` (when
``CalibrationSpec.mirror_side_views``) and recorded as ``side_mirrored``.

Everything else of sample ``i`` (poses, yaws, cameras) comes from ``default_rng([seed, 1, i,
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
from bodyshape.body.pose import FRONT_PHOTO_POSE, SIDE_PHOTO_POSE
from bodyshape.body.keypoints import KEYPOINT_NAMES, PAIRS
from bodyshape.calibrate import CalibrationSpec, calibrate
from bodyshape.parts import keypoints_on_canvas
from bodyshape.render.camera import CameraSpec, sample_camera, vertex_bounds
from bodyshape.render.raster import rasterize_silhouette, silhouette
from bodyshape.shape.pca import SAMPLING_METHODS
from bodyshape.synth.garments import LAYERS, Dressed, GarmentSpec, draw_outfit, dress
from bodyshape.synth.poses import sample_poses

logger = logging.getLogger(__name__)

SEX_CODES = {"female": 0, "male": 1}
"""Integer sex codes stored in shards; ``SEX_UNKNOWN`` when the sampler gives no sex."""
SEX_UNKNOWN = -1

MAX_ATTEMPTS = 10
"""Redraws of a sample's views before giving up (a draw fails only if it cannot be framed)."""

# First entropy word after the seed: which stream.
_SHAPE_STREAM, _VIEW_STREAM, _GARMENT_STREAM, _KEYPOINT_STREAM = 0, 1, 2, 3


@dataclass(frozen=True)
class SynthSpec:
    """Distribution of synthetic samples.

    Attributes:
        camera: phone-camera distribution (frame size, field of view, distance, tilt).
        front_pose, side_pose: pose-angle ranges of each view (``FRONT_PHOTO_POSE``,
            ``SIDE_PHOTO_POSE``: how people stand for each photo).
        shared_pose: draw one pose from ``front_pose`` for both views instead (ablation).
        garments: outfit probabilities; None for naked bodies.
        calibration: network canvas; default 128 x 128 with the body 90 % of the height.
        poses_per_shape: K pose/view variants per body shape (sample i uses shape i // K).
        sampling: shape sampling method of :meth:`ShapeModel.sample` ("gaussian",
            "per-sex" or "gmm"; the last two need a model fitted with sexes / a mixture).
        front_yaw_deg: the front-view body yaw is uniform in +-front_yaw_deg, degrees.
        side_yaw_deg: the side-view body yaw is +-90 deg plus uniform +-side_yaw_deg.
    """

    camera: CameraSpec = field(default_factory=CameraSpec)
    front_pose: PoseSpec = FRONT_PHOTO_POSE
    side_pose: PoseSpec = SIDE_PHOTO_POSE
    shared_pose: bool = False
    garments: GarmentSpec | None = field(default_factory=GarmentSpec)
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

    @classmethod
    def clean(cls, **kwargs) -> "SynthSpec":
        """The original distribution: one near-A pose (``PoseSpec()``) for both views and
        naked bodies; other fields as given."""
        return cls(**{"front_pose": PoseSpec(), "side_pose": PoseSpec(), "shared_pose": True,
                      "garments": None, **kwargs})

    def to_dict(self) -> dict:
        """JSON-able nested dict (tuples become lists once written as JSON)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "SynthSpec":
        """Inverse of :meth:`to_dict` (also accepts the JSON round trip: lists for tuples,
        and the specs of datasets written before per-view poses: one ``pose``, no
        garments)."""
        def build(kind, values: dict):
            kwargs = {}
            for f in dataclasses.fields(kind):
                if f.name in values:
                    kwargs[f.name] = _tuples(values[f.name])
            return kind(**kwargs)

        d = dict(d)
        if "pose" in d:  # written before per-view poses: one pose for both views, naked
            pose = d.pop("pose")
            d.update(front_pose=pose, side_pose=pose, shared_pose=True, garments=None)
        kwargs: dict[str, Any] = {k: build(kind, d.pop(k)) for k, kind in
                                  (("camera", CameraSpec), ("calibration", CalibrationSpec))
                                  if k in d}
        for k in ("front_pose", "side_pose"):
            if k in d:
                kwargs[k] = PoseSpec.from_dict(d.pop(k))
        if d.get("garments") is not None:
            kwargs["garments"] = GarmentSpec.from_dict(d.pop("garments"))
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
        pose_angles: (2, P) float32 pose angles of the front and side view, radians, in
            ``body.pose.POSE_NAMES`` order (equal rows with ``shared_pose``).
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
        garments: (4,) int8 kind codes per ``garments.LAYERS``, -1 when naked.
        keypoints: (2, K, 2) float32 canvas pixels of the ``body.keypoints.KEYPOINT_NAMES``
            of each view (front, side), from the naked posed body plus MediaPipe's measured
            keypoint noise (``default_rng([seed, 3, i])``); labels come from them
            (``parts.part_labels``).
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
    garments: np.ndarray = field(default_factory=lambda: np.full(len(LAYERS), -1, np.int8))
    keypoints: np.ndarray = field(
        default_factory=lambda: np.full((2, len(KEYPOINT_NAMES), 2), np.nan, np.float32))

    @property
    def sex_code(self) -> int:
        """``SEX_CODES[sex]`` or ``SEX_UNKNOWN``."""
        return SEX_CODES.get(self.sex, SEX_UNKNOWN) if self.sex else SEX_UNKNOWN


@dataclass(frozen=True, eq=False)
class _Shot:
    """One view as photographed: camera, full-frame mask, calibration, canvas keypoints."""

    camera: Any
    frame: np.ndarray
    cal: Any
    keypoints: np.ndarray  # (K, 2) canvas px, before the keypoint noise


def _keypoints(body: BodyModel, naked: np.ndarray, angle: float, cam, cal) -> np.ndarray:
    """Canvas keypoints of the naked posed body as this view saw it."""
    kp = body.turn(body.keypoints(naked), angle, about=naked)
    return keypoints_on_canvas(cam.project(kp)[0], cal)


def _view(body: BodyModel, vertices: np.ndarray, angle: float, mirror: bool,
          rng: np.random.Generator, spec: SynthSpec) -> _Shot:
    """Yaw, photograph, rasterize and calibrate one naked view."""
    v = body.turn(vertices, angle)
    bounds = vertex_bounds(v)
    cam = sample_camera(rng, spec.camera, bounds, float(bounds[0, 2]))
    mask = silhouette(v, body.faces, cam, closed=True)  # template meshes are closed, outward
    cal = calibrate(mask, spec.calibration, mirror=mirror)
    return _Shot(cam, mask, cal, _keypoints(body, vertices, angle, cam, cal))


def _dressed_view(body: BodyModel, naked: np.ndarray, layers: np.ndarray, dressed: Dressed,
                  angle: float, mirror: bool, rng: np.random.Generator, spec: SynthSpec
                  ) -> _Shot:
    """One dressed view: ``layers`` = posed garment surface (V) + attached pieces (E), turned
    about the naked body's centre; the camera frames the dressed person."""
    v = body.turn(layers, angle, about=naked)
    n = len(naked)
    bounds = vertex_bounds(v)
    cam = sample_camera(rng, spec.camera, bounds, float(bounds[0, 2]))
    # The garment surface keeps the template's closed, outward winding (front faces only);
    # the attached pieces are few triangles, filled whatever their winding.
    mask = silhouette(v[:n], body.faces, cam, closed=True)
    if len(dressed.extra_faces):
        pix, depth = cam.project(v[n:])
        if np.any(~(depth > 0.0)):
            raise ValueError("a garment vertex is behind the camera")
        mask |= rasterize_silhouette(pix, dressed.extra_faces, cam.width, cam.height)
    cal = calibrate(mask, spec.calibration, mirror=mirror)
    return _Shot(cam, mask, cal, _keypoints(body, naked, angle, cam, cal))


def _measured_keypoints(body: BodyModel, keypoints: np.ndarray, rng: np.random.Generator
                        ) -> np.ndarray:
    """(2, K, 2) canvas keypoints of (front, side) with MediaPipe's measured errors: the
    isotropic noise of ``body.keypoint_noise_px`` (an RMS distance, so sqrt(2) per axis)
    and left/right swaps as often as ``body.keypoint_swap_rate`` per view and pair."""
    out = keypoints + rng.normal(0.0, 1.0, keypoints.shape) * (
        body.keypoint_noise_px / np.sqrt(2))[:, None]
    swaps = rng.random((2, len(PAIRS))) < body.keypoint_swap_rate
    for v, j in zip(*np.nonzero(swaps)):
        a, b = PAIRS[j]
        out[v, [a, b]] = out[v, [b, a]]
    return out


def shape_rng(seed: int, shape_index: int) -> np.random.Generator:
    """Generator of body shape ``shape_index`` (shared by its ``poses_per_shape`` samples)."""
    return np.random.default_rng([int(seed), _SHAPE_STREAM, int(shape_index)])


def view_rng(seed: int, index: int, attempt: int = 0) -> np.random.Generator:
    """Generator of the pose, yaws and cameras of sample ``index`` (one per attempt)."""
    return np.random.default_rng([int(seed), _VIEW_STREAM, int(index), int(attempt)])


def garment_rng(seed: int, index: int) -> np.random.Generator:
    """Generator of the outfit of sample ``index`` (the same for both views and attempts)."""
    return np.random.default_rng([int(seed), _GARMENT_STREAM, int(index)])


def _posed_views(body: BodyModel, rest: np.ndarray, dressed: Dressed | None,
                 rng: np.random.Generator, spec: SynthSpec):
    """-> ((2, P) angles, (2, V, 3) naked posed bodies, (2, V + E, 3) dressed layers or
    None). Draws the pose(s) from ``rng``."""
    if spec.shared_pose:
        angles = sample_poses(rng, 1, spec.front_pose).angles[[0, 0]]
    else:
        angles = np.concatenate([sample_poses(rng, 1, spec.front_pose).angles,
                                 sample_poses(rng, 1, spec.side_pose).angles])
    if dressed is None:
        if spec.shared_pose:  # one skinning pass, exactly as before per-view poses
            posed = body.pose(rest, angles[0])
            return angles, np.stack([posed, posed]), None
        return angles, body.pose(np.stack([rest, rest]), angles), None
    naked, surface, pieces = body.pose_attached(rest, angles, dressed.dressed_rest(rest),
                                                dressed.extra_vertices, dressed.extra_joint)
    layers = np.concatenate([surface, pieces], axis=1)
    return angles, naked, layers


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
    return make_sample_frames(body, index, seed, spec).sample


@dataclass(frozen=True, eq=False)
class SampleFrames:
    """A sample and the full-frame bool masks (camera size) it was calibrated from.

    Attributes:
        sample: the sample.
        front, side: (H, W) bool full-frame silhouettes (the side one not mirrored), what a
            phone would have photographed.
    """

    sample: Sample
    front: np.ndarray
    side: np.ndarray


def make_sample_frames(body: BodyModel, index: int, seed: int, spec: SynthSpec = SynthSpec()
                       ) -> SampleFrames:
    """``make_sample`` plus the full-frame masks it was calibrated from, as a phone would
    have taken them (what the prediction benchmarks feed to predict).

    Args and errors: see ``make_sample``.
    """
    if index < 0 or seed < 0:
        raise ValueError(f"index and seed must be >= 0, got index={index}, seed={seed}")
    shape_index = index // spec.poses_per_shape
    drawn = body.shape.sample(1, shape_rng(seed, shape_index), spec.sampling)
    coeffs = drawn.coeffs[0]
    rest = drawn.vertices[0].astype(np.float64)
    stature = float(np.ptp(rest[:, 2]))
    sex = drawn.sex[0] if drawn.sex is not None else None
    dressed, codes = None, np.full(len(LAYERS), -1, np.int8)
    if spec.garments is not None:
        g = garment_rng(seed, index)
        outfit = draw_outfit(g, spec.garments)
        dressed, codes = dress(body, rest, outfit, g), outfit.codes()
    for attempt in range(MAX_ATTEMPTS):
        rng = view_rng(seed, index, attempt)
        angles, naked, layers = _posed_views(body, rest, dressed, rng, spec)
        front_yaw = np.deg2rad(rng.uniform(-spec.front_yaw_deg, spec.front_yaw_deg))
        facing_left = bool(rng.integers(2))  # turned by -90 deg: mirror onto the canon
        side_yaw = np.deg2rad((-90.0 if facing_left else 90.0)
                              + rng.uniform(-spec.side_yaw_deg, spec.side_yaw_deg))
        try:
            if dressed is None:
                front = _view(body, naked[0], front_yaw, False, rng, spec)
                side = _view(body, naked[1], side_yaw, facing_left, rng, spec)
            else:
                front = _dressed_view(body, naked[0], layers[0], dressed, front_yaw, False,
                                      rng, spec)
                side = _dressed_view(body, naked[1], layers[1], dressed, side_yaw,
                                     facing_left, rng, spec)
        except (ValueError, RuntimeError) as exc:
            # Only framing can fail here (body wider than the canvas, camera cannot fit it);
            # redraw the views of this sample from the next deterministic stream.
            logger.debug("sample %d attempt %d failed: %s", index, attempt, exc)
            continue
        keypoints = _measured_keypoints(body, np.stack([front.keypoints, side.keypoints]),
                                        np.random.default_rng([int(seed), _KEYPOINT_STREAM,
                                                               int(index)]))
        sample = Sample(
            index=int(index), shape_index=int(shape_index), coeffs=coeffs,
            pose_angles=angles.astype(np.float32),
            yaw=np.array([front_yaw, side_yaw], dtype=np.float32),
            front_camera=front.camera.to_dict(), side_camera=side.camera.to_dict(),
            side_mirrored=side.cal.mirrored,
            calib_scale=np.array([front.cal.scale, side.cal.scale]),
            calib_offset=np.stack([front.cal.offset, side.cal.offset]), stature_m=stature,
            sex=sex, front=front.cal.image, side=side.cal.image, attempts=attempt + 1,
            garments=codes,
            keypoints=keypoints.astype(np.float32))
        return SampleFrames(sample, front.frame, side.frame)
    raise ValueError(f"sample {index}: no framing succeeded in {MAX_ATTEMPTS} attempts")

