"""Photos (or masks) + height -> body mesh, tape measurements and a fit-quality report.

``Predictor.load()`` reads the checkpoint and shape model once; ``predictor(front, side,
height_cm, sex)`` runs one pair:

1. read each photo (EXIF orientation honoured) or person mask (a two-valued image);
2. photos: segment the person (``bodyshape.segment``) and reject unusable photos; the side
   view's facing comes from the pose landmarks. Masks: the facing comes from the feet (toes
   reach further forward than heels), and a front/side swap from the silhouettes' widths;
3. calibrate each mask with ``bodyshape.calibrate.calibrate`` and the checkpoint's own
   calibration spec: exactly the routine that made the training data;
4. the network predicts the shape coefficients; the canonical A-pose mesh is decoded and
   scaled about its feet so its stature equals the given height (the network already sees
   the height; the scaling removes its residual stature error);
5. tape measurements (``bodyshape.measure``), and a re-projection of the mesh into each
   view: the mesh, turned like the view, is rendered through a small grid of phone
   cameras, each calibrated like the input, and the best-matching one is kept (the fitted
   camera); its IoU with the input is the fit quality.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from bodyshape.calibrate import Calibrated, CalibrationSpec, calibrate
from bodyshape.checkpoint import Checkpoint, load_checkpoint
from bodyshape.measure import measure_bodies
from bodyshape.render.camera import Camera, intrinsics, look_at
from bodyshape.render.raster import mask_iou, silhouette
from bodyshape.segment import PhotoError, Segmenter, check_photo, facing_of, warnings_for
from bodyshape.shape.pca import ShapeModel
from bodyshape.shape.rig import vertex_bounds, yaw_about_centre

logger = logging.getLogger(__name__)

PACKAGE_DATA = Path(__file__).resolve().parent / "data"
DEFAULT_CHECKPOINT = PACKAGE_DATA / "model.pt"
DEFAULT_SHAPE_MODEL = PACKAGE_DATA / "shape_model.npz"
HEIGHT_RANGE_CM = (50.0, 250.0)
LOW_IOU = 0.85  # below this a view is flagged as poorly explained by the mesh
# Squared norm of the whitened coefficients above which the silhouette is "far outside the
# shape space" (chi-square with 50 degrees of freedom: 99.9 % quantile ~86.7).
OUTSIDE_SHAPE_SPACE = 86.7
_FIT_CAMERA_HEIGHTS = (0.9, 1.3, 1.7)  # m above the floor
_FIT_DISTANCES = (2.5, 4.0)  # m from the body


class InputError(ValueError):
    """An unusable input (file, image, height, sex); ``str(err)`` is one line for the user."""


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
    """

    image: np.ndarray
    mask: np.ndarray
    calibrated: Calibrated
    rendered: np.ndarray
    iou: float
    mirrored: bool
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True, eq=False)
class Prediction:
    """The result of one front/side pair.

    Attributes:
        coeffs: (K,) raw PCA coefficients of the network (before height scaling), meters.
        vertices: (V, 3) canonical A-pose mesh, meters, Z up, facing -Y (anny's axes).
        faces: (F, 3) template faces.
        measurements: ``measure.MEASUREMENT_NAMES`` -> centimeters.
        height_cm: the given height; sex: the given sex or None.
        scale: factor applied to the decoded mesh to reach the given height.
        front, side: the two views' fits.
        warnings: every warning, one line each.
        shape_model_hash: the shape model the coefficients belong to.
        pose_angles: (P,) radians (``synth.poses.POSE_NAMES``) of the pose fitted to the
            silhouettes, or None when the fit check drew the canonical A-pose.
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


# --------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------


def load_image(path: str | os.PathLike) -> np.ndarray:
    """Read a JPEG/PNG file as (H, W, 3) uint8 RGB (see :func:`decode_image`).

    Raises:
        InputError: missing file, or any refusal of :func:`decode_image`.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    return decode_image(path, str(path))


def decode_image(source, label: str) -> np.ndarray:
    """Decode an image as (H, W, 3) uint8 RGB, honouring EXIF orientation.

    Args:
        source: a path or a binary file object (e.g. ``io.BytesIO`` of an upload).
        label: how messages name the image ("front photo", a path).
    Raises:
        InputError: unreadable, truncated, empty or one-colour image.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(source) as im:
            im = ImageOps.exif_transpose(im)
            im.load()  # truncated files fail here, not later
            rgb = np.asarray(im.convert("RGB"))
    except UnidentifiedImageError:  # PIL's message names the source: not for the user
        raise InputError(f"{label}: not a readable image (not a JPEG or PNG?)") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise InputError(f"{label}: not a readable image ({exc})") from exc
    if rgb.size == 0 or min(rgb.shape[:2]) < 16:
        raise InputError(f"{label}: the image is empty or tiny ({rgb.shape[1]}x{rgb.shape[0]})")
    if int(rgb.max()) == int(rgb.min()):
        raise InputError(f"{label}: the image is a single colour; no person in it")
    return rgb


def is_mask(image: np.ndarray) -> bool:
    """True for a two-valued image (a person mask): at most two distinct RGB colours."""
    # A photo almost always shows three colours within a sparse sample: answer from that
    # before scanning every pixel of a multi-megapixel image.
    if len(np.unique(image[::17, ::13].reshape(-1, image.shape[-1]), axis=0)) > 2:
        return False
    px = image.reshape(-1, image.shape[-1]).astype(np.int32)
    code = (px[:, 0] << 16) | (px[:, 1] << 8) | px[:, 2]
    others = code[code != code[0]]
    return others.size == 0 or bool(np.all(others == others[0]))


def mask_from_image(image: np.ndarray) -> np.ndarray:
    """(H, W) bool person mask of a two-valued image: the brighter value is the person."""
    grey = image.astype(np.float32).mean(axis=-1)
    mask = grey > 0.5 * (grey.min() + grey.max())
    if not mask.any() or mask.all():
        raise InputError("the mask is empty (white person on black expected)")
    return mask


def _aspect(mask: np.ndarray) -> float:
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return (cols[-1] - cols[0] + 1) / (rows[-1] - rows[0] + 1)


# |toe cue| below this (fraction of body height) is too weak to decide a mask's facing. On
# 2,000 held-out synthetic side views it was decisive in 99.6 % and never wrong
# (benchmarks/bench_facing.py, docs/BENCHMARKS.md).
TOE_CUE_MIN = 0.006


def toe_cue(mask: np.ndarray) -> float:
    """Signed forward reach of the feet in a side-view silhouette, in units of its height.

    The feet reach forward of the shins (toes ahead, the heel only slightly behind), so the
    centroid of the lowest 2.5 % of the silhouette lies ahead of that of the lower shins.

    Args:
        mask: (H, W) bool side-view silhouette (full frame or canvas).
    Returns:
        (feet - shins) centroid x offset / silhouette height: > 0 when the person faces +x
        (image right), < 0 when facing left; 0 for an empty mask.
    """
    rows = np.flatnonzero(mask.any(axis=1))
    if len(rows) == 0:
        return 0.0
    top, n = rows[0], rows[-1] - rows[0] + 1

    def centre(a: float, b: float) -> float:
        cols = np.nonzero(mask[top + int(a * n): top + max(int(b * n), int(a * n) + 1)])[1]
        return float(cols.mean()) if len(cols) else np.nan

    cue = (centre(0.975, 1.0) - centre(0.86, 0.93)) / n
    return 0.0 if np.isnan(cue) else cue


def check_height(height_cm) -> float:
    """The height as a float in ``HEIGHT_RANGE_CM``, else ``InputError``."""
    try:
        h = float(height_cm)
    except (TypeError, ValueError):
        raise InputError(f"height must be a number of centimeters, got {height_cm!r}") from None
    lo, hi = HEIGHT_RANGE_CM
    if not lo <= h <= hi:
        raise InputError(f"height {h:g} cm is outside {lo:g}-{hi:g} cm (give it in cm)")
    return h


SEX_CODES = {None: -1, "female": 0, "male": 1}


# --------------------------------------------------------------------------------------------
# Re-projection
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Reprojection:
    """The mesh's best re-projection onto one input canvas.

    Attributes:
        canvas: (h, w) bool silhouette on the canvas.
        iou: its IoU with the input canvas.
        camera: the fitted camera composed with its calibration: it projects the
            view-turned mesh straight onto the canvas.
        yaw: the view turn (radians about the vertical through the mesh's box centre).
    """

    canvas: np.ndarray
    iou: float
    camera: Camera
    yaw: float


def fit_view(vertices: np.ndarray, faces: np.ndarray, view: str, target: np.ndarray,
             spec: CalibrationSpec) -> Reprojection:
    """Best re-projection of a canonical mesh onto a calibrated input canvas.

    The mesh is turned for the view (side views face image right, the canonical facing of
    calibrated side canvases), rendered by phone cameras over a small grid of heights and
    distances, and each render is calibrated like the input; the best IoU wins.
    """
    yaw = 0.0 if view == "front" else np.pi / 2
    v = yaw_about_centre(vertices, yaw)
    lo, hi = vertex_bounds(v)
    centre = 0.5 * (lo + hi)
    target = target >= 0.5
    best = None
    for cam_h in _FIT_CAMERA_HEIGHTS:
        for dist in _FIT_DISTANCES:
            pos = np.array([centre[0], lo[1] - dist, lo[2] + cam_h])
            R, t = look_at(pos, [centre[0], centre[1], centre[2]])
            cam = Camera(intrinsics(np.deg2rad(60.0), 384, 512), R, t, 384, 512)
            frame = silhouette(v, faces, cam, closed=True)
            if not frame.any():
                continue
            try:
                cal = calibrate(frame, spec)
            except ValueError:
                continue
            canvas = cal.image >= 0.5
            iou = mask_iou(canvas, target)
            if best is None or iou > best.iou:
                a = np.array([[cal.scale, 0.0, cal.offset[0]], [0.0, cal.scale, cal.offset[1]],
                              [0.0, 0.0, 1.0]])
                on_canvas = Camera(a @ cam.K, R, t, spec.canvas_width, spec.canvas_height)
                best = Reprojection(canvas, iou, on_canvas, yaw)
    if best is None:
        raise RuntimeError("the predicted mesh could not be rendered")
    return best


def scale_to_height(rest: np.ndarray, height_m: float) -> tuple[np.ndarray, float]:
    """Scale a (V, 3) mesh about its feet (box centre in x, y; lowest point in z) so that its
    stature is ``height_m``; returns (mesh, scale)."""
    lo, hi = vertex_bounds(rest)
    floor = lo[2]
    scale = height_m / (hi[2] - lo[2])
    centre = 0.5 * (lo + hi)
    out = rest.copy()
    out[:, 2] = floor + (rest[:, 2] - floor) * scale
    out[:, :2] = centre[:2] + (rest[:, :2] - centre[:2]) * scale
    return out, float(scale)


# --------------------------------------------------------------------------------------------
# Predictor
# --------------------------------------------------------------------------------------------


class Predictor:
    """A loaded network + shape model; call it on a photo pair (module docs).

    Args:
        checkpoint: a loaded checkpoint (front/side fusion or two-channel network).
        model: the shape model it was trained for (hash checked).
    """

    def __init__(self, checkpoint: Checkpoint, model: ShapeModel):
        if checkpoint.shape_model_hash != model.model_hash:
            raise InputError(f"the network was trained for shape model "
                             f"{checkpoint.shape_model_hash}, not {model.model_hash}")
        if checkpoint.spec.kind == "view":
            raise InputError("a single-view checkpoint cannot predict from two photos; use a "
                             "fusion (or two-channel) checkpoint")
        self.ckpt, self.model = checkpoint, model
        self.spec = CalibrationSpec(**checkpoint.calibration)
        self.k = checkpoint.spec.n_components  # coefficients the network predicts
        self._segmenter: Segmenter | None = None

    @classmethod
    def load(cls, checkpoint: str | os.PathLike = DEFAULT_CHECKPOINT,
             shape_model: str | os.PathLike = DEFAULT_SHAPE_MODEL) -> "Predictor":
        return cls(load_checkpoint(checkpoint), ShapeModel.load(shape_model))

    def close(self) -> None:
        if self._segmenter is not None:
            self._segmenter.close()
            self._segmenter = None

    def _mask(self, image: np.ndarray, view: str, masks: bool | None, refine: bool
              ) -> tuple[np.ndarray, str | None, list[str]]:
        """-> (mask, facing from landmarks (None for mask inputs), warnings)."""
        if masks or (masks is None and is_mask(image)):
            return mask_from_image(image), None, []
        if self._segmenter is None:
            self._segmenter = Segmenter()
        seg = self._segmenter.segment(image, refine=refine)
        check_photo(seg, view)
        facing = facing_of(seg.landmarks) if view == "side" else None
        return seg.mask, facing, warnings_for(seg, view)

    def _body(self, coeffs: np.ndarray, height_cm: float) -> tuple[np.ndarray, float]:
        """Raw coefficients (K,) -> (canonical mesh (V, 3) scaled to the height, scale)."""
        rest = self.model.decode(coeffs[None])[0].astype(np.float64)
        return scale_to_height(rest, height_cm / 100.0)

    def _network(self, front: Calibrated, side: Calibrated, h: torch.Tensor, s: torch.Tensor
                 ) -> np.ndarray:
        """(K,) whitened coefficients for two calibrated views."""
        x = [torch.from_numpy(c.image[None, None].copy()) for c in (front, side)]
        return self.ckpt.model(x[0], x[1], h, s).z[0].numpy().astype(np.float64)

    @torch.no_grad()
    def __call__(self, front, side, height_cm, sex: str | None = None,
                 masks: bool | None = None, refine_masks: bool = False,
                 fit_pose: bool = False, refine: bool = False) -> Prediction:
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
                (``bodyshape.refine``; ~1 s).
            refine: fit the pose, then also the shape coefficients (changes the mesh and
                measurements; ~2 s).

        Raises:
            InputError / segment.PhotoError (both ``ValueError``): one line for the user.
        """
        height = check_height(height_cm)
        if sex not in SEX_CODES:
            raise InputError(f"sex must be 'female', 'male' or omitted, got {sex!r}")
        images = {v: load_image(x) if not isinstance(x, np.ndarray) else x
                  for v, x in (("front", front), ("side", side))}
        found = {v: self._mask(images[v], v, masks, refine_masks) for v in images}
        fm, sm = found["front"][0], found["side"][0]
        from_masks = found["side"][1] is None  # photos are checked by their landmarks
        if from_masks and _aspect(fm) < _aspect(sm):
            raise PhotoError("the front and side inputs look swapped (the front silhouette is "
                             "narrower than the side one)")
        h = torch.tensor([height / 100.0])
        s = torch.tensor([SEX_CODES[sex]])
        front_cal = calibrate(fm, self.spec)
        if found["side"][1] is not None:
            facings = [found["side"][1]]  # from the pose landmarks
        else:
            # A mask has no face to look at: the feet tell which way it faces; when they are
            # ambiguous, try both facings and keep the one whose predicted body re-projects
            # best onto the side view.
            cue = toe_cue(sm)
            facings = (["right"] if cue > TOE_CUE_MIN else ["left"] if cue < -TOE_CUE_MIN
                       else ["right", "left"])
        best = None
        for facing in facings:
            side_cal = calibrate(sm, self.spec, mirror=facing == "left")
            coeffs = self._network(front_cal, side_cal, h, s) * self.model.std[: self.k]
            verts, scale = self._body(coeffs, height)
            side_fit = fit_view(verts, self.model.faces, "side", side_cal.image, self.spec)
            if best is None or side_fit.iou > best[0]:
                best = (side_fit.iou, side_cal, coeffs, verts, scale, side_fit)
        _, side_cal, coeffs, verts, scale, side_fit = best
        cal = {"front": front_cal, "side": side_cal}
        fits0 = {"front": fit_view(verts, self.model.faces, "front", front_cal.image,
                                   self.spec), "side": side_fit}
        pose_angles = None
        if fit_pose or refine:
            from bodyshape.refine import fit_silhouettes, render_fit

            fit = fit_silhouettes(self.model, coeffs, height / 100.0, [
                (cal[v].image, fits0[v].camera, fits0[v].yaw) for v in ("front", "side")],
                shape=refine)
            if refine:
                coeffs = fit.coeffs
                verts, scale = self._body(coeffs, height)
            pose_angles = fit.pose_angles
            for i, v in enumerate(("front", "side")):
                canvas, iou = render_fit(verts, self.model.faces, fit, i, fits0[v].yaw,
                                         cal[v].image)
                fits0[v] = Reprojection(canvas, iou, fit.cameras[i], fits0[v].yaw)
        meas = measure_bodies(verts[None]).as_dicts()[0]
        warnings = []
        z = coeffs / self.model.std[: self.k]  # whitened
        if float(z @ z) > OUTSIDE_SHAPE_SPACE:
            warnings.append("the silhouettes are far outside the body shape space (loose "
                            "clothing, hair or a bag?); measurements may be off")
        fits = {}
        for v in ("front", "side"):
            rendered, iou = fits0[v].canvas, fits0[v].iou
            w = list(found[v][2])
            if iou < LOW_IOU:
                w.append(f"{v} view: the body explains the silhouette poorly (IoU {iou:.2f}); "
                         "loose clothing, an unusual pose or a poor segmentation?")
            img = images[v]
            fits[v] = ViewFit(image=img, mask=found[v][0], calibrated=cal[v], rendered=rendered,
                              iou=iou, mirrored=cal[v].mirrored, warnings=tuple(w))
            warnings += w
        return Prediction(coeffs=coeffs, vertices=verts, faces=self.model.faces,
                          measurements=meas, height_cm=height, sex=sex, scale=float(scale),
                          front=fits["front"], side=fits["side"], warnings=tuple(warnings),
                          shape_model_hash=self.model.model_hash, pose_angles=pose_angles)
