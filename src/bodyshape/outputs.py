"""Writing a prediction to a folder: mesh, measurements, shape, overlay.

``write_prediction(pred, out)`` builds everything in a temporary folder beside ``out`` and
renames it into place, so a failed or killed run leaves nothing partial:

- ``body.obj`` and ``body.glb``: the canonical A-pose mesh in the template topology, meters.
  The GLB uses glTF's axes (Y up, facing +Z). The OBJ format has no axis convention, and
  common viewers (Blender's and three.js's OBJ importers, MeshLab, Windows 3D Viewer) take Y
  as up, so by default the OBJ is written like the GLB (``obj_up="y"``); ``obj_up="z"``
  keeps anny's axes (Z up, facing -Y).
- ``measurements.json``: ``Prediction.to_dict(units)`` plus ``"sizes"`` (the size
  recommendations, ``sizing.SizeRecommendation.to_dict``) when any are given.
- ``shape.json``: the PCA coefficients, their count, the shape-model hash and the height
  scaling.
- ``overlay.png``: each input with its person mask (blue tint) and the mesh's re-projected
  outline (red) from the fitted camera, with the IoU per view; for photos, the
  part-coloured canvas (``parts.part_labels`` from MediaPipe's landmarks) inset top right.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import numpy as np
import trimesh

from bodyshape.body.pose import POSE_NAMES
from bodyshape.parts import colour_labels
from bodyshape.fileio import atomic_dir
from bodyshape.predict import Prediction, ViewFit
from bodyshape.sizing import SizeRecommendation

OVERLAY_HEIGHT = 640  # px of each panel in overlay.png
OBJ_UP_AXES = ("y", "z")


def measurements_json(pred: Prediction, units: str = "cm",
                      sizes: tuple[SizeRecommendation, ...] = ()) -> dict:
    """The content of ``measurements.json`` (module docs)."""
    content = pred.to_dict(units)
    if sizes:
        content["sizes"] = [s.to_dict(units) for s in sizes]
    return content


def shape_json(pred: Prediction) -> dict:
    """The content of ``shape.json``."""
    return {"coefficients": [float(c) for c in pred.coeffs],
            "n_components": int(len(pred.coeffs)),
            "shape_model_hash": pred.shape_model_hash,
            "height_scale": pred.scale,
            "pose_source": pred.pose_source,
            "pose_deg": None if pred.pose_angles is None else {
                view: {name: round(float(np.degrees(a)), 2)
                       for name, a in zip(POSE_NAMES, angles)}
                for view, angles in zip(("front", "side"), pred.pose_angles)}}


def overlay_panel(fit: ViewFit, title: str) -> np.ndarray:
    """One view: the input (scaled to ``OVERLAY_HEIGHT``) with mask tint and mesh outline,
    (OVERLAY_HEIGHT, w, 3) uint8 RGB."""
    img = fit.image.astype(np.float32)
    tint = np.zeros_like(img)
    tint[fit.mask] = (40, 90, 255)
    img = np.where(fit.mask[..., None], 0.7 * img + 0.3 * tint, img)
    # The rendered canvas back into the frame: invert the calibration's similarity map.
    cal = fit.calibrated
    sx = -cal.scale if cal.mirrored else cal.scale
    to_canvas = np.array([[sx, 0.0, cal.offset[0]], [0.0, cal.scale, cal.offset[1]]])
    h, w = fit.mask.shape
    # Pixel-centre conventions: warpAffine maps pixel centres at integers, calibrate at +0.5.
    shift = np.array([[1.0, 0.0, 0.5], [0.0, 1.0, 0.5], [0.0, 0.0, 1.0]])
    m = np.linalg.inv(shift) @ np.vstack([to_canvas, [0, 0, 1]]) @ shift
    back = cv2.warpAffine(fit.rendered.astype(np.uint8) * 255, m[:2], (w, h),
                          flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
    contours, _ = cv2.findContours((back >= 128).astype(np.uint8), cv2.RETR_EXTERNAL,
                                   cv2.CHAIN_APPROX_NONE)
    scale = OVERLAY_HEIGHT / h
    out = cv2.resize(np.clip(img, 0, 255).astype(np.uint8), (max(1, round(w * scale)),
                     OVERLAY_HEIGHT), interpolation=cv2.INTER_AREA)
    contours = [np.round(c * scale).astype(np.int32) for c in contours]
    cv2.drawContours(out, contours, -1, (230, 30, 30), 2, lineType=cv2.LINE_AA)
    cv2.putText(out, f"{title}  IoU {fit.iou:.3f}", (10, 28), cv2.FONT_HERSHEY_SIMPLEX, 0.8,
                (20, 20, 20), 2, cv2.LINE_AA)
    if fit.parts is not None:  # the part-coloured canvas as an inset, top right
        size = OVERLAY_HEIGHT // 4
        inset = cv2.resize(colour_labels(fit.parts), (size, size),
                           interpolation=cv2.INTER_NEAREST)
        if out.shape[1] >= size + 8:
            out[40:40 + size, -size - 4:-4] = inset
            cv2.rectangle(out, (out.shape[1] - size - 5, 39), (out.shape[1] - 4, 40 + size),
                          (120, 120, 120), 1)
    return out


def overlay_image(pred: Prediction) -> np.ndarray:
    """Both panels side by side, (OVERLAY_HEIGHT, W, 3) uint8 RGB."""
    return np.hstack([overlay_panel(pred.front, "front"),
                      np.full((OVERLAY_HEIGHT, 8, 3), 255, np.uint8),
                      overlay_panel(pred.side, "side")])


def y_up(vertices: np.ndarray) -> np.ndarray:
    """(V, 3) meters in anny's axes (Z up, facing -Y) -> Y up, facing +Z (glTF's axes):
    (x, y, z) -> (x, z, -y), a rotation (no mirroring)."""
    v = np.asarray(vertices, np.float64)
    return np.stack([v[:, 0], v[:, 2], -v[:, 1]], axis=1)


def glb_bytes(vertices: np.ndarray, faces: np.ndarray) -> bytes:
    """The mesh as binary glTF, turned from Z up to glTF's Y up (facing +Z, the viewer)."""
    mesh = trimesh.Trimesh(y_up(vertices), faces, process=False)
    return trimesh.exchange.gltf.export_glb(trimesh.Scene(mesh))


def write_prediction(pred: Prediction, out: str | os.PathLike, *, units: str = "cm",
                     obj_up: str = "y", sizes: tuple[SizeRecommendation, ...] = ()) -> Path:
    """Write every output file into ``out`` atomically (module docs); returns ``out``.

    Args:
        units: "cm" or "in" for measurements.json.
        obj_up: "y" (default; Y up, facing +Z, as most viewers expect) or "z" (anny's axes)
            for body.obj.
        sizes: size recommendations to add to measurements.json.
    """
    if obj_up not in OBJ_UP_AXES:
        raise ValueError(f"obj_up must be 'y' or 'z', got {obj_up!r}")
    out = Path(out)
    content = measurements_json(pred, units, sizes)  # checks the units before writing
    with atomic_dir(out) as tmp:
        obj_vertices = y_up(pred.vertices) if obj_up == "y" else pred.vertices
        trimesh.Trimesh(obj_vertices, pred.faces, process=False).export(tmp / "body.obj")
        (tmp / "body.glb").write_bytes(glb_bytes(pred.vertices, pred.faces))
        (tmp / "measurements.json").write_text(json.dumps(content, indent=2) + "\n")
        (tmp / "shape.json").write_text(json.dumps(shape_json(pred), indent=2) + "\n")
        if not cv2.imwrite(str(tmp / "overlay.png"),
                           cv2.cvtColor(overlay_image(pred), cv2.COLOR_RGB2BGR)):
            raise OSError(f"cannot write {out / 'overlay.png'}")
    return out
