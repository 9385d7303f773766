"""The fit check: how well a predicted body explains an input silhouette.

The canonical mesh, turned for the view (side views face image right, the canonical facing
of calibrated side canvases), is rendered by phone cameras over a small grid of heights and
distances; each render is calibrated exactly like the input (``calibrate.calibrate``), and
the camera with the best IoU against the input canvas is kept. Its IoU is the fit quality
reported with a prediction, and the camera is where ``refine.fit_silhouettes`` starts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bodyshape.body import BodyModel
from bodyshape.calibrate import CalibrationSpec, calibrate
from bodyshape.render.camera import Camera, intrinsics, look_at, vertex_bounds
from bodyshape.render.raster import mask_iou, silhouette

CAMERA_HEIGHTS = (0.9, 1.3, 1.7)  # m above the floor
CAMERA_DISTANCES = (2.5, 4.0)  # m from the body
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
    lo, hi = vertex_bounds(v)
    centre = 0.5 * (lo + hi)
    target = target >= 0.5
    best = None
    for cam_h in CAMERA_HEIGHTS:
        for dist in CAMERA_DISTANCES:
            pos = np.array([centre[0], lo[1] - dist, lo[2] + cam_h])
            R, t = look_at(pos, [centre[0], centre[1], centre[2]])
            cam = Camera(intrinsics(np.deg2rad(60.0), 384, 512), R, t, 384, 512)
            frame = silhouette(v, body.faces, cam, closed=True)
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
