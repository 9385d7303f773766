"""The fit check: how well a predicted body explains an input silhouette.

The canonical mesh, turned for the view (side views face image right, the canonical facing
of calibrated side canvases), is rendered by phone cameras over a small grid of heights and
distances; each render is calibrated exactly like the input (``calibrate.calibrate``), and
the camera with the best IoU against the input canvas is kept. Its IoU is the fit quality
reported with a prediction, and the camera is where ``refine.fit_silhouettes`` starts.

The grid is searched with the coarse mesh (``shape.coarse``, ~1,200 vertices lying on the
body's surface), and only its best ``N_FULL_RENDERS`` cameras render the full mesh, whose
canvas and IoU are returned: projecting and rasterizing the full mesh for all six cameras
was a third of a mask pair's prediction time (cProfile on ``Predictor``). The coarse
silhouette ranks near-tied cameras differently at times, so the IoU found can fall short of
a full search's by up to ~0.01 (tests/test_fitcheck.py allows 0.02).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bodyshape.body import BodyModel
from bodyshape.calibrate import Calibrated, CalibrationSpec, calibrate
from bodyshape.render.camera import Camera, intrinsics, look_at, vertex_bounds
from bodyshape.render.raster import mask_iou, silhouette
from bodyshape.shape.coarse import to_coarse

CAMERA_HEIGHTS = (0.9, 1.3, 1.7)  # m above the floor
CAMERA_DISTANCES = (2.5, 4.0)  # m from the body
N_FULL_RENDERS = 2  # cameras of the coarse search rendered with the full mesh
VIEW_YAW = {"front": 0.0, "side": np.pi / 2}  # radians: side views face image right


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


def fit_view(body: BodyModel, vertices: np.ndarray, view: str, target: np.ndarray,
             spec: CalibrationSpec, pose_angles: np.ndarray | None = None) -> Reprojection:
    """Best re-projection of a canonical mesh onto a calibrated input canvas (module docs).

    Args:
        body: the body model (faces, kinematics).
        vertices: (V, 3) canonical mesh, meters.
        view: "front" or "side".
        target: (h, w) input canvas in [0, 1] (thresholded at 0.5).
        spec: the calibration the input canvas was made with.
        pose_angles: (P,) radians: pose the mesh so first (the network's pose for this
            view); None: the canonical A-pose.
    Raises:
        RuntimeError: no camera of the grid could render and calibrate the mesh.
    """
    yaw = VIEW_YAW[view]
    if pose_angles is not None:
        vertices = body.pose(vertices, pose_angles)
    v = body.turn(vertices, yaw)
    coarse = to_coarse(v, body.coarse)
    target = target >= 0.5
    scored = []  # (coarse IoU, camera), in grid order
    for cam in grid_cameras(v):
        cal = _calibrated(coarse, body.coarse.faces, cam, spec)
        if cal is not None:
            scored.append((mask_iou(cal.image >= 0.5, target), cam))
    best = None
    # The full mesh through the coarse search's best two cameras (near ties between the
    # coarse and the full silhouette's choice are common), the better one kept; the stable
    # sort keeps grid order among equal IoUs.
    for _, cam in sorted(scored, key=lambda x: -x[0])[:N_FULL_RENDERS]:
        cal = _calibrated(v, body.faces, cam, spec)
        if cal is None:
            continue
        canvas = cal.image >= 0.5
        iou = mask_iou(canvas, target)
        if best is None or iou > best.iou:
            best = Reprojection(canvas, iou, cal.canvas_camera(cam), yaw)
    if best is None:
        raise RuntimeError("the predicted mesh could not be rendered")
    return best


def grid_cameras(vertices: np.ndarray) -> list[Camera]:
    """The search grid's phone cameras (384 x 512 px, 60° vertical field of view) for a
    view-turned mesh (V, 3): each height in ``CAMERA_HEIGHTS`` above its lowest point and
    distance in ``CAMERA_DISTANCES`` in front of it (-Y), looking at its box centre."""
    lo, hi = vertex_bounds(vertices)
    centre = 0.5 * (lo + hi)
    cams = []
    for cam_h in CAMERA_HEIGHTS:
        for dist in CAMERA_DISTANCES:
            R, t = look_at(np.array([centre[0], lo[1] - dist, lo[2] + cam_h]), centre)
            cams.append(Camera(intrinsics(np.deg2rad(60.0), 384, 512), R, t, 384, 512))
    return cams


def _calibrated(vertices: np.ndarray, faces: np.ndarray, cam: Camera, spec: CalibrationSpec
                ) -> Calibrated | None:
    """The closed mesh's silhouette through ``cam``, calibrated like an input, or None when
    nothing of it can be calibrated."""
    frame = silhouette(vertices, faces, cam, closed=True)
    if not frame.any():
        return None
    try:
        return calibrate(frame, spec)
    except ValueError:
        return None
