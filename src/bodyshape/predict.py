"""Photos (or masks) + height -> body mesh, tape measurements and a fit-quality report.

``Predictor.load()`` reads the checkpoint and body model once; ``predictor(front, side,
height_cm, sex)`` runs one pair:

1. read each photo (EXIF orientation honoured) or person mask (``bodyshape.inputs``):
   photos are segmented (``bodyshape.segment``) and unusable ones refused; a side photo's
   facing comes from the pose landmarks, a side mask's from its feet, and a mask pair's
   front/side swap from the silhouettes' widths;
2. calibrate each mask with ``bodyshape.calibrate.calibrate`` and the checkpoint's own
   calibration spec: exactly the routine that made the training data;
3. the network (``nets.inputs.run_network``: part channels from the photo's pose
   landmarks for part-aware networks, the weight for weight-aware ones) predicts the shape
   coefficients and, with pose heads, each view's pose; the canonical A-pose mesh is
   decoded and scaled about its feet so its stature equals the given height (the network
   already sees the height; the scaling removes its residual stature error). When a side
   mask's facing is ambiguous, both facings are tried and the one that re-projects better
   is kept;
4. tape measurements (``bodyshape.measure``) on the canonical mesh, and the fit check
   (``bodyshape.fitcheck``): the mesh, in the network's pose for each view when it predicts
   one, re-projected into each view; its IoU is the fit quality;
5. optionally (``fit_pose``/``refine``) the pose, and with ``refine`` the shape too, is fitted
   to the silhouettes (``bodyshape.refine``), starting from the network's poses, so that the
   fit check shows the fitted body; without pose heads a photo's front pose starts with
   each arm's abduction read off MediaPipe's shoulder and elbow landmarks
   (``body.pose.arm_abduction_from_keypoints``), else from the rest pose; its cost is
   measured in docs/BENCHMARKS.md (bench:predict).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field

import numpy as np
import torch

from bodyshape.accuracy import measured_errors
from bodyshape.assets import DEFAULT_CHECKPOINT, DEFAULT_SHAPE_MODEL
from bodyshape.body import BodyModel
from bodyshape.body.pose import arm_abduction_from_keypoints
from bodyshape.calibrate import Calibrated, CalibrationSpec, calibrate
from bodyshape.checkpoint import Checkpoint, load_checkpoint
from bodyshape.fitcheck import Reprojection, fit_view
from bodyshape.inputs import (InputError, ViewInput, check_height, check_pair, check_sex,
                              check_weight, read_view)
from bodyshape.measure import measure_bodies
from bodyshape.nets.inputs import NetInput, run_network, to_device
from bodyshape.parts import keypoints_on_canvas, landmark_keypoints, parts_from_landmarks
from bodyshape.segment import Segmenter
from bodyshape.units import check_units, convert_names

logger = logging.getLogger(__name__)

LOW_IOU = 0.85  # below this a view is flagged as poorly explained by the mesh
# Squared norm of the whitened coefficients above which the silhouette is "far outside the
# shape space" (chi-square with 50 degrees of freedom: 99.9 % quantile ~86.7).
OUTSIDE_SHAPE_SPACE = 86.7


@dataclass(frozen=True, eq=False)
class ViewFit:
    """One view's input and the mesh's re-projection.

    Attributes:
        image: (H, W, 3) uint8 RGB photo, or the mask drawn in grey for mask inputs.
        mask: (H, W) bool person mask of the full frame.
        calibrated: the calibration of the mask (canvas image, frame <-> canvas map).
        rendered: (h, w) bool canvas silhouette of the mesh through the fitted camera.
        iou: IoU of ``rendered`` with the input canvas (thresholded at 0.5).
        mirrored: whether the view was mirrored to the canonical facing.
        warnings: non-fatal issues of this view.
        parts: (H, W) uint8 body-part labels of the canvas mask (``parts.part_labels`` from
            MediaPipe's landmarks), None for mask inputs (no landmarks).
    """

    image: np.ndarray
    mask: np.ndarray
    calibrated: Calibrated
    rendered: np.ndarray
    iou: float
    mirrored: bool
    warnings: tuple[str, ...] = ()
    parts: np.ndarray | None = None


@dataclass(frozen=True, eq=False)
class Prediction:
    """The result of one front/side pair.

    Attributes:
        coeffs: (K,) raw PCA coefficients of the network (before height scaling), meters.
        vertices: (V, 3) canonical A-pose mesh, meters, Z up, facing -Y (anny's axes).
        faces: (F, 3) template faces.
        measurements: ``measure.MEASUREMENT_NAMES`` -> centimeters.
        height_cm: the given height; sex: the given sex or None; weight_kg: the given
            weight or None (only weight-aware networks use it).
        scale: factor applied to the decoded mesh to reach the given height.
        front, side: the two views' fits.
        warnings: every warning, one line each.
        shape_model_hash: the shape model the coefficients belong to.
        pose_angles: (2, P) radians (``body.pose.POSE_NAMES``) of the front and side poses
            the fit check drew: fitted to the silhouettes (``fit_pose``/``refine``), else the
            network's own (pose heads), else None (the canonical A-pose).
        pose_source: where ``pose_angles`` came from: "fitted" (fit started from the
            network's poses or the rest pose), "fitted-keypoints" (fit started with the front
            arms from the photo's landmarks), "network" or None.
        errors_cm: measurement name -> the network's mean absolute error, cm, measured on
            held-out data (``accuracy.measured_errors``); empty when not measured for this
            network.
    """

    coeffs: np.ndarray
    vertices: np.ndarray
    faces: np.ndarray
    measurements: dict[str, float]
    height_cm: float
    sex: str | None
    scale: float
    front: ViewFit
    side: ViewFit
    warnings: tuple[str, ...] = field(default=())
    shape_model_hash: str = ""
    pose_angles: np.ndarray | None = None
    pose_source: str | None = None
    weight_kg: float | None = None
    errors_cm: dict[str, float] = field(default_factory=dict)

    def to_dict(self, units: str = "cm") -> dict:
        """The content of ``measurements.json``, in ``units`` ("cm" or "in").

        ``{"measurements": {name_<units>: value}, "errors": {name_<units>: mean absolute
        error}, "quality": {"iou_front", "iou_side", "warnings", "fit_pose"}, "height_cm",
        "sex", "units"}``: measurement names end in the unit (``chest_cm`` or ``chest_in``),
        values are rounded to 0.1; ``errors`` holds the network's measured error per
        measurement where one is known (``accuracy.measured_errors``), else it is empty.
        """
        check_units(units)
        return {
            "measurements": convert_names(self.measurements, units),
            "errors": convert_names(self.errors_cm, units, digits=2),
            "quality": {"iou_front": round(self.front.iou, 4),
                        "iou_side": round(self.side.iou, 4), "warnings": list(self.warnings),
                        "fit_pose": {"fitted": "fitted", "fitted-keypoints": "fitted",
                                     "network": "network's pose",
                                     None: "canonical A-pose"}[self.pose_source]},
            "height_cm": self.height_cm,
            "sex": self.sex,
            "weight_kg": self.weight_kg,
            "units": units,
        }


@dataclass(frozen=True, eq=False)
class _Shape:
    """The network's body for one side-view facing (internal to ``Predictor``)."""

    coeffs: np.ndarray  # (K,) raw coefficients, meters
    vertices: np.ndarray  # (V, 3) canonical mesh at the given height
    scale: float
    side: Calibrated
    side_fit: Reprojection
    pose: np.ndarray | None  # (2, P) the network's poses, radians


class Predictor:
    """A loaded network + body model; call it on a photo pair (module docs).

    Args:
        checkpoint: a loaded checkpoint (front/side fusion or two-channel network).
        body: the body model whose shape model the network was trained for (hash checked).
        device: where the network runs (``device.resolve_device``); the rest is numpy.
    """

    def __init__(self, checkpoint: Checkpoint, body: BodyModel,
                 device: torch.device | str = "cpu"):
        if checkpoint.shape_model_hash != body.shape.model_hash:
            raise InputError(f"the network was trained for shape model "
                             f"{checkpoint.shape_model_hash}, not {body.shape.model_hash}")
        if checkpoint.spec.kind == "view":
            raise InputError("a single-view checkpoint cannot predict from two photos; use a "
                             "fusion (or two-channel) checkpoint")
        self.ckpt, self.body = checkpoint, body
        self.device = torch.device(device)
        self.ckpt.model.to(self.device)
        self.spec = CalibrationSpec(**checkpoint.calibration)
        self.k = checkpoint.spec.n_components  # coefficients the network predicts
        self._segmenter: Segmenter | None = None
        self.errors_cm = measured_errors(checkpoint)

    @classmethod
    def load(cls, checkpoint: str | os.PathLike = DEFAULT_CHECKPOINT,
             shape_model: str | os.PathLike = DEFAULT_SHAPE_MODEL,
             device: torch.device | str = "cpu") -> Predictor:
        return cls(load_checkpoint(checkpoint), BodyModel.load(shape_model), device)

    def close(self) -> None:
        """Release the segmentation model (the predictor loads it again if called)."""
        if self._segmenter is not None:
            self._segmenter.close()
            self._segmenter = None

    def __enter__(self) -> Predictor:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @torch.no_grad()
    def __call__(self, front, side, height_cm, sex: str | None = None,
                 masks: bool | None = None, refine_masks: bool = False,
                 fit_pose: bool = False, refine: bool = False,
                 weight_kg: float | None = None) -> Prediction:
        """Predict one pair.

        Args:
            front, side: image paths or (H, W, 3) uint8 RGB arrays (photos or masks).
            height_cm: the person's height, 50-250 cm.
            sex: "female", "male" or None.
            masks: True: inputs are masks; False: photos; None: detect (two-valued image).
            refine_masks: refine photo segmentations with GrabCut (slower).
            fit_pose: fit the body's pose (and small camera corrections) to the
                silhouettes, so that the fit check (IoU, overlay) shows the posed body
                instead of the canonical A-pose; the shape and measurements are unchanged
                (``bodyshape.refine``).
            refine: fit the pose, then also the shape coefficients (changes the mesh and
                measurements).
            weight_kg: the person's weight, 20-300 kg, or None; used by weight-aware
                networks, ignored (with a log line) by others.

        Raises:
            InputError / segment.PhotoError (both ``ValueError``): one line for the user.
        """
        height, sex_code = check_height(height_cm), check_sex(sex)
        weight = None if weight_kg is None else check_weight(weight_kg)
        if weight is not None and not self.ckpt.spec.inputs.weight:
            logger.info("this network does not take the weight; it is not used")
        views = [read_view(x, v, self._segmenter_once, masks, refine_masks)
                 for v, x in (("front", front), ("side", side))]
        check_pair(*views)
        front_cal = calibrate(views[0].mask, self.spec)
        shape = max(self._shapes(front_cal, views, height, sex_code, weight),
                    key=lambda s: s.side_fit.iou)
        cals = (front_cal, shape.side)
        fits = (fit_view(self.body, shape.vertices, "front", front_cal.image, self.spec,
                         None if shape.pose is None else shape.pose[0]),
                shape.side_fit)
        pose_angles, pose_source = shape.pose, None if shape.pose is None else "network"
        if fit_pose or refine:
            start = shape.pose if shape.pose is not None else self._keypoint_start(
                views[0], front_cal)
            pose_source = "fitted"
            if shape.pose is None and start is not None:
                # Frame the camera on the body in that pose: calibration centres the
                # silhouette's box, which the raised arms move.
                pose_source = "fitted-keypoints"
                fits = (fit_view(self.body, shape.vertices, "front", front_cal.image,
                                 self.spec, start[0]), fits[1])
            shape, fits, pose_angles = self._fit_pose(shape, cals, fits, height, refine, start)
        measurements = measure_bodies(shape.vertices[None], self.body.template).as_dicts()[0]
        view_fits = tuple(self._view_fit(v, c, f) for v, c, f in zip(views, cals, fits))
        return Prediction(
            coeffs=shape.coeffs, vertices=shape.vertices, faces=self.body.faces,
            measurements=measurements, height_cm=height, sex=sex, scale=shape.scale,
            front=view_fits[0], side=view_fits[1],
            warnings=self._shape_warnings(shape.coeffs) + view_fits[0].warnings
            + view_fits[1].warnings,
            shape_model_hash=self.body.shape.model_hash, pose_angles=pose_angles,
            pose_source=pose_source, weight_kg=weight, errors_cm=dict(self.errors_cm))

    def _segmenter_once(self) -> Segmenter:
        """The segmenter, loaded on first use (mask-only callers never load it)."""
        if self._segmenter is None:
            self._segmenter = Segmenter()
        return self._segmenter

    def _body(self, coeffs: np.ndarray, height_cm: float) -> tuple[np.ndarray, float]:
        """Raw coefficients (K,) -> (canonical mesh (V, 3) scaled to the height, scale)."""
        rest = self.body.shape.decode(coeffs[None])[0].astype(np.float64)
        return self.body.to_height(rest, height_cm / 100.0)

    def _shapes(self, front: Calibrated, views: list[ViewInput], height: float,
                sex_code: int, weight: float | None) -> list[_Shape]:
        """The network's body for each side-view facing the side input allows
        (``ViewInput.facings``), the side view calibrated for that facing. One batched
        forward pass: a mask pair has two facings, and two single passes took 1.15-1.3x as
        long as one pass of two (ad-hoc A/B). Running the two fit checks in two threads
        gained nothing: 54.0 against 53.8 ms a mask pair sequentially (ad-hoc A/B)."""
        side_cals = [calibrate(views[1].mask, self.spec, mirror=facing == "left")
                     for facing in views[1].facings]
        n = len(side_cals)
        x_front = torch.from_numpy(front.image[None, None].copy()).expand(n, -1, -1, -1)
        x_side = torch.from_numpy(np.stack([c.image for c in side_cals])[:, None].copy())
        parts = [None, None]
        if self.ckpt.spec.inputs.parts and views[0].landmarks is not None:
            parts[0] = torch.from_numpy(parts_from_landmarks(front, views[0].landmarks)[None]
                                        ).expand(n, -1, -1, -1)
        if self.ckpt.spec.inputs.parts and views[1].landmarks is not None:
            parts[1] = torch.from_numpy(np.stack([parts_from_landmarks(c, views[1].landmarks)
                                                  for c in side_cals]))
        net_in = NetInput(x_front, x_side, torch.full((n,), height / 100.0),
                          torch.full((n,), sex_code),
                          torch.full((n,), np.nan if weight is None else weight,
                                     dtype=torch.float32), parts[0], parts[1])
        out = run_network(self.ckpt.model, self.ckpt.spec.kind, self.ckpt.spec.view,
                          to_device(net_in, self.device))
        z = out.z.float().cpu().numpy().astype(np.float64)
        poses = (None if out.pose is None else
                 out.pose.float().cpu().numpy().astype(np.float64))
        shapes = []
        for i, side_cal in enumerate(side_cals):
            pose = None if poses is None else poses[i]
            coeffs = z[i] * self.body.shape.std[: self.k]
            verts, scale = self._body(coeffs, height)
            shapes.append(_Shape(coeffs, verts, scale, side_cal,
                                 fit_view(self.body, verts, "side", side_cal.image,
                                          self.spec, None if pose is None else pose[1]),
                                 pose))
        return shapes

    def _keypoint_start(self, front: ViewInput, cal: Calibrated) -> np.ndarray | None:
        """(2, P) radians: the rest pose with the front arms' abduction from the front
        photo's landmarks (``arm_abduction_from_keypoints``); None without landmarks."""
        if front.landmarks is None:
            return None
        abduction = arm_abduction_from_keypoints(
            keypoints_on_canvas(landmark_keypoints(front.landmarks), cal))
        angles = self.body.rest_pose(2).angles.copy()
        found = np.isfinite(abduction)
        if not found.any():
            return None
        angles[0, :2][found] = abduction[found]
        logger.info("pose fit starts with the front arms at %s deg (landmarks)",
                    "/".join(f"{np.degrees(a):.0f}" for a in angles[0, :2]))
        return angles

    def _fit_pose(self, shape: _Shape, cals: tuple[Calibrated, ...],
                  fits: tuple[Reprojection, ...], height: float, refine: bool,
                  start: np.ndarray | None):
        """Fit the pose (and with ``refine`` the shape) to the silhouettes, from ``start``
        ((2, P) radians, None: the rest pose) -> (shape, fits in the fitted pose, pose
        angles)."""
        from bodyshape.refine import fit_silhouettes, render_fit

        fit = fit_silhouettes(self.body, shape.coeffs, height / 100.0,
                              [(c.image, f.camera, f.yaw) for c, f in zip(cals, fits)],
                              shape=refine, init_angles=start)
        if refine:
            verts, scale = self._body(fit.coeffs, height)
            shape = _Shape(fit.coeffs, verts, scale, shape.side, shape.side_fit, shape.pose)
        posed = []
        for i, (c, f) in enumerate(zip(cals, fits)):
            canvas, iou = render_fit(self.body, shape.vertices, fit, i, f.yaw, c.image)
            posed.append(Reprojection(canvas, iou, fit.cameras[i], f.yaw))
        return shape, tuple(posed), fit.pose_angles

    def _shape_warnings(self, coeffs: np.ndarray) -> tuple[str, ...]:
        z = coeffs / self.body.shape.std[: self.k]  # whitened
        if float(z @ z) > OUTSIDE_SHAPE_SPACE:
            return ("the silhouettes are far outside the body shape space (loose clothing, "
                    "hair or a bag?); measurements may be off",)
        return ()

    @staticmethod
    def _view_fit(view: ViewInput, cal: Calibrated, fit: Reprojection) -> ViewFit:
        warnings = list(view.warnings)
        if fit.iou < LOW_IOU:
            warnings.append(f"{view.view} view: the body explains the silhouette poorly (IoU "
                            f"{fit.iou:.2f}); loose clothing, an unusual pose or a poor "
                            "segmentation?")
        parts = None if view.landmarks is None else parts_from_landmarks(cal, view.landmarks)
        return ViewFit(image=view.image, mask=view.mask, calibrated=cal, rendered=fit.canvas,
                       iou=fit.iou, mirrored=cal.mirrored, warnings=tuple(warnings),
                       parts=parts)
