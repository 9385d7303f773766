"""Render the example front and side photos in ``examples/`` from the shipped shape model.

A body drawn from the shipped PCA shape model (A-pose) is rendered by
``bodyshape.render.photo`` as a 1536x2048 (3:4 portrait) phone photo: camera 1.3 m above the
floor and 2.8 m in front of the body, aimed at its centre, field of view chosen so the body
spans 80 % of the frame height. The side view turns the body by +90 degrees about the vertical
axis, so it faces image right. The photos are written as JPEG (quality 92) with a README that
records how they were made and the body's height.

With mediapipe installed the tool also segments the written JPEGs and logs (and records) the
IoU of the person mask against the exact silhouette and the segmentation time.

Usage:
    .venv/bin/python tools/make_examples.py [--seed 0] [--mean] [--out examples]
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import cv2
import numpy as np

from bodyshape.body import BodyModel
from bodyshape.render.photo import photo_camera, render_photo
from bodyshape.render.raster import silhouette

logger = logging.getLogger("make_examples")

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "src" / "bodyshape" / "data" / "shape_model.npz"
WIDTH, HEIGHT = 1536, 2048
CAMERA_HEIGHT, DISTANCE, FILL = 1.3, 2.8, 0.8
JPEG_QUALITY = 92


def _segmentation_report(path: Path, exact: np.ndarray, view: str) -> str | None:
    """Segment a written JPEG; one README line with IoU and time, or None without mediapipe."""
    try:
        from bodyshape.segment import Segmenter, check_photo, view_of
    except ImportError:
        return None
    try:
        seg_obj = Segmenter()
    except ImportError:
        logger.warning("mediapipe is not installed; skipping the segmentation check")
        return None
    with seg_obj as segmenter:
        image = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
        segmenter.segment(image)  # warm-up (graph initialisation)
        t0 = time.perf_counter()
        seg = segmenter.segment(image)
        dt = time.perf_counter() - t0
        t0 = time.perf_counter()
        refined = segmenter.segment(image, refine=True)
        dt_ref = time.perf_counter() - t0
    check_photo(seg, view)  # raises if the example is not a valid photo
    iou = float((seg.mask & exact).sum() / (seg.mask | exact).sum())
    iou_ref = float((refined.mask & exact).sum() / (refined.mask | exact).sum())
    got, conf = view_of(seg.landmarks)
    logger.info("%s: IoU %.4f (%.2f s), with GrabCut %.4f (%.2f s), view %s (%.2f)",
                path.name, iou, dt, iou_ref, dt_ref, got, conf)
    return (f"- `{path.name}`: mask IoU vs exact silhouette {iou:.3f} ({dt:.2f} s), "
            f"{iou_ref:.3f} with `refine=True` ({dt_ref:.2f} s); detected view {got} "
            f"(confidence {conf:.2f})")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0, help="body sample seed (and noise seed)")
    ap.add_argument("--mean", action="store_true", help="render the model mean instead")
    ap.add_argument("--out", type=Path, default=ROOT / "examples")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    body_model = BodyModel.load(MODEL)
    model = body_model.shape
    if args.mean:
        body = model.mean.astype(np.float64)
        what = "the mean body of the shipped shape model"
    else:
        body = model.sample(1, np.random.default_rng(args.seed)).vertices[0].astype(np.float64)
        what = (f"a body sampled from the shipped shape model "
                f"(`ShapeModel.sample(1, np.random.default_rng({args.seed}))`)")
    stature = float(np.ptp(body[:, 2]))
    args.out.mkdir(parents=True, exist_ok=True)
    noise_rng = np.random.default_rng(args.seed)
    lines = []
    for view, verts in (("front", body), ("side", body_model.turn(body, np.pi / 2))):
        camera = photo_camera(verts, WIDTH, HEIGHT, CAMERA_HEIGHT, DISTANCE, FILL)
        photo = render_photo(body_model, verts, camera, noise_rng)
        path = args.out / f"{view}.jpg"
        ok = cv2.imwrite(str(path), cv2.cvtColor(photo.image, cv2.COLOR_RGB2BGR),
                         [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        if not ok:
            raise OSError(f"could not write {path}")
        logger.info("wrote %s", path)
        line = _segmentation_report(path, silhouette(verts, body_model.faces, camera), view)
        if line:
            lines.append(line)

    seg_text = ("\n\nSegmentation check (`bodyshape.segment`, MediaPipe Pose complexity 1, "
                "measured when the photos were made):\n\n" + "\n".join(lines)) if lines else ""
    cmd = "--mean" if args.mean else f"--seed {args.seed}"
    (args.out / "README.md").write_text(f"""# Example photos

`front.jpg` and `side.jpg` are **synthetic**: rendered by the project, not photographs of a
real person. They exist so that the photo -> segmentation -> measurement path can be run and
tested without anybody's pictures.

- Body: {what}, in the model's A-pose; height (stature, sole to crown) **{stature * 100:.1f} cm**.
- Renderer: `bodyshape.render.photo.render_photo` (z-buffer rasterizer, Lambert shading with
  one directional light and ambient, tight clothing, plain wall and floor, contact shadow,
  Gaussian noise with sigma 2 grey levels), 2x supersampled.
- Camera: {WIDTH}x{HEIGHT} portrait (3:4), {CAMERA_HEIGHT} m above the floor, {DISTANCE} m in
  front of the body, aimed at its centre; vertical field of view chosen so the body spans
  {FILL:.0%} of the frame height.
- Side view: the body turned by +90 degrees about the vertical axis (it faces image right).
- Written with OpenCV as JPEG, quality {JPEG_QUALITY}.

Regenerate with:

    .venv/bin/python tools/make_examples.py {cmd}{seg_text}
""")
    logger.info("wrote %s (height %.1f cm)", args.out / "README.md", stature * 100)


if __name__ == "__main__":
    main()
