"""MediaPipe's segmentation errors and landmarks on photos of synthetic bodies, measured.

Photos of dressed synthetic bodies (realistic per-view poses and garments of
``SynthSpec()``; the garment surface is rendered, the attached pieces such as buns are not)
are rendered by ``render/photo.py`` with random skin, clothing and wall colours, and
segmented by the same ``Segmenter`` that ``predict`` uses. Against the exact mask of the
rendered surface, per photo, in pixels of the 128-px network canvas (the person 115 px tall):

- IoU; boundary offset: mean signed distance of the segmenter's boundary from the exact one
  (positive = too wide) and its std along the boundary (raggedness);
- lost hands and feet: the fraction of the exact hand (foot) pixels the mask misses;
- blobs: area outside the exact mask not within 2 px of it, and missing chunks: area of the
  exact mask missing deeper than 2 px, both in % of the body area.

The same photos give MediaPipe's landmarks, from which ``--write`` fits the
keypoint regressor of synthesis (``body/keypoints.py``: template vertices -> MediaPipe's
landmark positions, non-negative weights on the vertices near each joint summing to one,
fitted on the even bodies) and measures its error on the odd bodies: the keypoint noise that
synthesis adds. ``--write`` also stores the augmentation fitted to the errors
(``Augment.measured()``).

Usage: python benchmarks/bench_segmentation.py [--n 40] [--write]
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import time

import cv2
import numpy as np
from report import ROOT, table, write_section
from scipy.optimize import nnls

from bodyshape.body import BodyModel
from bodyshape.fileio import write_json
from bodyshape.calibrate import CalibrationSpec, calibrate
from bodyshape.body.keypoints import KEYPOINT_CANDIDATES, KEYPOINT_NAMES, MEDIAPIPE_INDEX, PAIRS
from bodyshape.body.keypoints import save_keypoint_regressor
from bodyshape.body.pose import FRONT_PHOTO_POSE, SIDE_PHOTO_POSE
from bodyshape.dataset.stream import MEASURED_NAME, Augment
from bodyshape.render.photo import PhotoStyle, photo_camera, render_photo
from bodyshape.render.raster import silhouette
from bodyshape.segment import Segmenter
from bodyshape.synth.garments import GarmentSpec, draw_outfit, dress, regions
from bodyshape.synth.poses import sample_poses

logger = logging.getLogger("bench_segmentation")
ERROR_KEYS = ("iou", "offset_px", "rough_px", "lost_hands", "lost_feet", "blobs_pct",
              "chunks_pct")
CANVAS_BODY_PX = CalibrationSpec().body_height_px  # the person's height on the canvas


def random_style(rng: np.random.Generator) -> PhotoStyle:
    """Skin from light to dark, any clothing colour, a light wall."""
    skin = np.array([0.62, 0.36, 0.25]) * rng.uniform(0.25, 1.25)
    wall = rng.uniform(0.55, 0.9) * np.array([1.0, 1.0, 1.0]) - rng.uniform(0, 0.08, 3)
    return PhotoStyle(skin=tuple(np.clip(skin, 0, 1)), top=tuple(rng.uniform(0.02, 0.8, 3)),
                      shorts=tuple(rng.uniform(0.02, 0.6, 3)), wall=tuple(wall),
                      hair=tuple(rng.uniform(0.02, 0.3) * np.array([1.0, 0.8, 0.6])),
                      light_dir=(rng.uniform(-0.6, 0.6), -1.0, rng.uniform(0.3, 1.0)))


def signed_distance(mask: np.ndarray) -> np.ndarray:
    """Distance from each pixel centre to the mask boundary, positive outside, negative
    inside: the distance to the nearest pixel of the other set minus half a pixel, so that
    the boundary pixels of a perfect mask sit at +-0.5, not at a one-sided 1."""
    m = mask.astype(np.uint8)
    out = cv2.distanceTransform(1 - m, cv2.DIST_L2, 5) - 0.5
    inside = cv2.distanceTransform(m, cv2.DIST_L2, 5) - 0.5
    return np.where(mask, -inside, out)


def mask_errors(exact: np.ndarray, got: np.ndarray, hands: np.ndarray, feet: np.ndarray,
                scale: float) -> dict:
    """Error figures of one mask against the exact one, in canvas pixels (module docs);
    ``scale``: canvas pixels per pixel of these masks."""
    sd = signed_distance(exact)
    inner = cv2.erode(got.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    edge = got & ~inner
    contours, _ = cv2.findContours(exact.astype(np.uint8), cv2.RETR_EXTERNAL,
                                   cv2.CHAIN_APPROX_NONE)
    perimeter = sum(cv2.arcLength(c, True) for c in contours)
    area = exact.sum()
    far = np.abs(sd) * scale > 2.0
    return {"iou": float((exact & got).sum() / max((exact | got).sum(), 1)),
            # a uniform offset d changes the area by d x perimeter
            "offset_px": float((got.sum() - area) / max(perimeter, 1) * scale),
            "rough_px": float(sd[edge].std() * scale),
            "lost_hands": float((hands & ~got).sum() / max(hands.sum(), 1)),
            "lost_feet": float((feet & ~got).sum() / max(feet.sum(), 1)),
            "blobs_pct": float(100 * (got & ~exact & far).sum() / area),
            "chunks_pct": float(100 * (exact & ~got & far).sum() / area)}


def on_canvas(mask: np.ndarray, exact: np.ndarray, mirror: bool) -> np.ndarray:
    """A full-frame bool mask moved onto the canvas the way ``calibrate`` moves ``exact``:
    two corner pixels of ``exact``'s box are added so the crop and scale are the same (they
    cover 1 % of a canvas pixel each and vanish at the 0.5 threshold)."""
    rows, cols = np.flatnonzero(exact.any(1)), np.flatnonzero(exact.any(0))
    m = mask.copy()
    m[rows[0], cols[0]] = m[rows[-1], cols[-1]] = True
    return calibrate(m, CalibrationSpec(), mirror=mirror).image >= 0.5


def part_faces(body: BodyModel, joints: tuple[str, ...]) -> np.ndarray:
    """Template faces whose three vertices belong to these joints."""
    reg = regions(body)
    ids = [body.rig.joint_names.index(j) for j in joints]
    return body.faces[np.isin(reg.part, ids)[body.faces].all(1)]


def measure(body: BodyModel, n: int, seed: int, size: tuple[int, int]) -> dict:
    """Render, segment and compare ``n`` bodies x (front, side)."""
    rng = np.random.default_rng(seed)
    hands = part_faces(body, ("wrist_l", "wrist_r"))
    feet = part_faces(body, ("ankle_l", "ankle_r"))
    rec = {k: [] for k in ("errors", "view", "body", "landmarks", "naked_px", "scale",
                           "canvas")}
    spec = GarmentSpec()
    seg = Segmenter(find_others=False)
    t0 = time.perf_counter()
    for i in range(n):
        method = "per-sex" if body.shape.coeff_stats is not None else "gaussian"
        drawn = body.shape.sample(1, rng, method)
        rest = drawn.vertices[0].astype(np.float64)
        dressed = dress(body, rest, draw_outfit(rng, spec), rng)
        angles = np.concatenate([sample_poses(rng, 1, FRONT_PHOTO_POSE).angles,
                                 sample_poses(rng, 1, SIDE_PHOTO_POSE).angles])
        naked, surface, _ = body.pose_attached(rest, angles, dressed.dressed_rest(rest),
                                               np.zeros((0, 3)), np.zeros(0, int))
        for v, yaw in enumerate((rng.uniform(-0.09, 0.09),
                                 rng.choice([-1, 1]) * np.pi / 2 + rng.uniform(-0.09, 0.09))):
            dressed_v = body.turn(surface[v], yaw, about=naked[v])
            naked_v = body.turn(naked[v], yaw)
            cam = photo_camera(dressed_v, *size, camera_height=rng.uniform(1.0, 1.5),
                               distance=rng.uniform(2.2, 3.5), fill=rng.uniform(0.7, 0.9))
            photo = render_photo(body, dressed_v, cam, rng, random_style(rng))
            exact = photo.coverage >= 0.5
            got = seg.segment(photo.image)
            if got.landmarks is None:
                logger.warning("body %d view %d: nobody found", i, v)
                continue
            hand_m, foot_m = silhouette(dressed_v, hands, cam), silhouette(dressed_v, feet, cam)
            rows = np.flatnonzero(exact.any(1))
            scale = CANVAS_BODY_PX / (rows[-1] - rows[0] + 1)  # canvas px per frame px
            rec["errors"].append(mask_errors(exact, got.mask, hand_m, foot_m, scale))
            mirror = bool(v == 1 and yaw < 0)
            rec["canvas"].append(np.stack([on_canvas(m, exact, mirror)
                                           for m in (exact, hand_m, foot_m)]))
            rec["view"].append(v)
            rec["body"].append(i)
            rec["landmarks"].append(got.landmarks)
            rec["naked_px"].append(cam.project(naked_v)[0])
            rec["scale"].append(scale)
        logger.info("body %d/%d (%.1f s)", i + 1, n, time.perf_counter() - t0)
    seg.close()
    return {k: (v if k == "errors" else np.asarray(v)) for k, v in rec.items()}


def _nnls_fit(pts: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Convex weights (C,) with ``weights @ pts[n] ~ target[n]``: pts (N, C, 2), target
    (N, 2), canvas px; non-negative least squares with a heavy sum-to-one row."""
    a = np.concatenate([pts[:, :, 0], pts[:, :, 1]]).astype(np.float64)
    b = np.concatenate([target[:, 0], target[:, 1]])
    big = 1e3
    w, _ = nnls(np.vstack([a, big * np.ones(pts.shape[1])]), np.append(b, big),
                maxiter=50 * pts.shape[1])
    return w / w.sum()


def fit_keypoints(body: BodyModel, rec: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                        dict]:
    """Fit the keypoint regressor on even bodies, measure it on odd ones.

    MediaPipe sometimes swaps the left and right landmarks of a limb, mostly in side views
    where one limb hides the other. The fit therefore runs twice: on front views first, then
    on every training photo with each left/right pair swapped back where that brings it
    closer to the first fit, dropping residuals over 4x the median. The swap rate per view
    and pair is measured and stored; the noise is the held-out RMS after swapping back.

    Returns:
        (K, V) weights, (K,) held-out RMS error per keypoint in canvas px, (2, n_pairs)
        swap rate per view (front, side), and a summary.
    """
    n_k = len(KEYPOINT_NAMES)
    s = rec["scale"][:, None, None]
    lm = rec["landmarks"][:, list(MEDIAPIPE_INDEX)]  # (N, K, 4)
    target = lm[..., :2] * s
    vis = lm[..., 3] > 0.5
    px = rec["naked_px"] * s  # (N, V, 2) canvas px
    train = rec["body"] % 2 == 0
    views = rec["view"]
    cands = KEYPOINT_CANDIDATES(body)
    w = np.zeros((n_k, px.shape[1]))

    def predict() -> np.ndarray:
        return np.einsum("kv,nvd->nkd", w, px)

    for k in range(n_k):  # pass 1: front views
        sel = train & vis[:, k] & (views == 0)
        w[k, cands[k]] = _nnls_fit(px[sel][:, cands[k]], target[sel, k])
    pred = predict()
    swapped = np.zeros((len(target), len(PAIRS)), bool)
    for j, (a, b) in enumerate(PAIRS):
        keep = np.linalg.norm(target[:, a] - pred[:, a], axis=1) + np.linalg.norm(
            target[:, b] - pred[:, b], axis=1)
        swap = np.linalg.norm(target[:, a] - pred[:, b], axis=1) + np.linalg.norm(
            target[:, b] - pred[:, a], axis=1)
        swapped[:, j] = swap + 1.0 < keep
        target[swapped[:, j], a], target[swapped[:, j], b] = (
            target[swapped[:, j], b].copy(), target[swapped[:, j], a].copy())
        vis[swapped[:, j], a], vis[swapped[:, j], b] = (
            vis[swapped[:, j], b].copy(), vis[swapped[:, j], a].copy())
    for k in range(n_k):  # pass 2: every view, swaps undone, outliers dropped
        err = np.linalg.norm(target[:, k] - pred[:, k], axis=1)
        sel = train & vis[:, k] & (err < 4 * np.median(err[train & vis[:, k]]) + 1.0)
        w[k, cands[k]] = _nnls_fit(px[sel][:, cands[k]], target[sel, k])
    err = np.linalg.norm(target - predict(), axis=2)  # (N, K)
    noise = np.array([np.sqrt(np.mean(err[~train & vis[:, k], k] ** 2)) for k in range(n_k)])
    summary = {name: {"held_out_rms_px": float(noise[k]),
                      "train_rms_px": float(np.sqrt(np.mean(err[train & vis[:, k], k] ** 2))),
                      "n_held_out": int((~train & vis[:, k]).sum()),
                      "vertices": int((w[k] > 1e-4).sum())}
               for k, name in enumerate(KEYPOINT_NAMES)}
    swap_rate = np.stack([swapped[views == v].mean(0) for v in (0, 1)])
    return w, noise, swap_rate, summary


def summarize(errors: list[dict], views: np.ndarray) -> dict:
    """Mean, std and 90th percentile of each error, per view."""
    out = {}
    for v, view in enumerate(("front", "side")):
        errs = [e for e, vv in zip(errors, views) if vv == v]
        out[view] = {k: {"mean": float(np.mean([e[k] for e in errs])),
                         "std": float(np.std([e[k] for e in errs])),
                         "p90": float(np.percentile([e[k] for e in errs], 90))}
                     for k in errs[0]}
        out[view]["n"] = len(errs)
    return out


def fit_augment(errors: list[dict], scales: np.ndarray) -> Augment:
    """The augmentation that reproduces the measured errors (both views pooled):

    - the boundary offset per mask ~ N(mean, std) of the measured offsets;
    - the boundary jitter's amplitude = the measured raggedness in excess of a perfect
      mask's (a perfect binary mask scores ~0.29 of its own pixels from quantization, i.e.
      0.29 x ``scales`` canvas px at photo resolution), always on;
    - holes and blobs as often as a mask had any missing chunk or blob, bulges off (the
      garments model clothing now), no erosion or dilation (the offset replaces them).
    """
    off = np.array([e["offset_px"] for e in errors])
    rough = np.array([e["rough_px"] for e in errors])
    quant = 0.29 * float(np.mean(scales))
    return Augment(p_jitter=1.0, jitter_px=float(np.sqrt(max(np.mean(rough) ** 2 - quant ** 2,
                                                             0.0))),
                   p_morph=0.0, p_holes=float(np.mean([e["chunks_pct"] > 0 for e in errors])),
                   p_blobs=float(np.mean([e["blobs_pct"] > 0 for e in errors])), p_bulge=0.0,
                   offset_px=(float(off.mean()), float(off.std())))


def augmented_errors(rec: dict, aug: Augment, seed: int) -> list[dict]:
    """The same error figures for the exact canvas masks corrupted by ``aug``."""
    out = []
    for i, (exact, hands, feet) in enumerate(rec["canvas"]):
        got = aug(exact.astype(np.float32), np.random.default_rng([seed, i])) >= 0.5
        out.append(mask_errors(exact, got, hands, feet, 1.0))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=40, help="bodies (two photos each)")
    ap.add_argument("--seed", type=int, default=12)
    ap.add_argument("--size", type=int, nargs=2, default=(960, 1280), help="photo W H")
    ap.add_argument("--write", action="store_true",
                    help="write the fitted keypoint regressor and augmentation into the package")
    a = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    body = BodyModel.load()
    # The photos' measurements are cached: refitting and reporting take seconds.
    cache = ROOT / "work" / "segmentation" / f"n{a.n}-seed{a.seed}-{a.size[0]}x{a.size[1]}.npz"
    if cache.is_file():
        with np.load(cache, allow_pickle=False) as z:
            rec = {k: z[k] for k in z.files}
        seconds = float(rec.pop("seconds"))
        rec["errors"] = [dict(zip(ERROR_KEYS, row)) for row in rec["errors"]]
    else:
        t0 = time.perf_counter()
        rec = measure(body, a.n, a.seed, tuple(a.size))
        seconds = time.perf_counter() - t0
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, seconds=seconds, **{k: v for k, v in rec.items() if k != "errors"},
                 errors=np.array([[e[k] for k in ERROR_KEYS] for e in rec["errors"]]))
    views = rec["view"]
    fitted = fit_augment(rec["errors"], rec["scale"])
    stats = {"MediaPipe": summarize(rec["errors"], views),
             "Augment()": summarize(augmented_errors(rec, Augment(), a.seed), views),
             "Augment.measured()": summarize(augmented_errors(rec, fitted, a.seed), views)}
    w, noise, swap_rate, kp = fit_keypoints(body, rec)
    if a.write:
        logger.info("wrote %s", save_keypoint_regressor(w, noise, swap_rate))
        path = ROOT / "src" / "bodyshape" / "dataset" / "data" / MEASURED_NAME
        write_json(path, {"augment": dataclasses.asdict(fitted),
                          "source": "benchmarks/bench_segmentation.py " + " ".join(
                              f"--{k} {v}" for k, v in (("n", a.n), ("seed", a.seed)))})
        logger.info("wrote %s", path)
    labels = {"iou": "IoU", "offset_px": "boundary offset, px (+ = too wide)",
              "rough_px": "boundary raggedness (std), px", "lost_hands": "hand pixels lost",
              "lost_feet": "foot pixels lost", "blobs_pct": "blobs, % of body area",
              "chunks_pct": "missing chunks, % of body area"}
    rows = []
    for key, label in labels.items():
        row = [label]
        for name in stats:
            for view in ("front", "side"):
                d = stats[name][view][key]
                row.append(f"{d['mean']:.3f} ± {d['std']:.3f}")
        rows.append(row)
    kp_rows = [[name, f"{v['held_out_rms_px']:.2f}", f"{v['train_rms_px']:.2f}",
                str(v["vertices"]), str(v["n_held_out"])] for name, v in kp.items()]
    f = fitted
    body_md = (
        f"{a.n} dressed synthetic bodies (realistic per-view poses and garments), one front "
        f"and one side photo each ({a.size[0]}x{a.size[1]}, random skin, clothing, wall and "
        f"light), segmented by `Segmenter` as in `predict`; "
        f"{stats['MediaPipe']['front']['n']} front and {stats['MediaPipe']['side']['n']} "
        "side photos had a person found. Errors against the exact mask of the rendered "
        "surface, in pixels of the 128-px canvas (the person "
        f"{CANVAS_BODY_PX:.0f} px tall), mean ± std over photos; next to them the same "
        "figures for the exact canvas masks corrupted by the generic augmentation "
        "(`Augment()`) and by the one fitted to these measurements "
        "(`Augment.measured()`). The boundary offset is the area change over the perimeter; "
        "the raggedness is the std of the boundary's signed distance (a perfect binary mask "
        "scores ~0.29 of its own pixels from quantization: ~0.03 canvas px at photo "
        f"resolution, ~0.29 px on the canvas). {seconds / max(2 * a.n, 1):.2f} s per "
        "photo (render + segmentation).\n\n"
        + table(["error"] + [f"{n} {v}" for n in stats for v in ("front", "side")], rows)
        + f"\n\nFitted (`Augment.measured()`): boundary offset N({f.offset_px[0]:.3f}, "
        f"{f.offset_px[1]:.3f}) px, jitter {f.jitter_px:.3f} px, holes p={f.p_holes:.2f}, "
        f"blobs p={f.p_blobs:.2f}, no erosion/dilation, no bulges.\n\n"
        "These renders are easy for MediaPipe (plain wall, even light, tight colours), so the "
        "errors are a lower bound of those on real photos.\n\n"
        "Keypoint regressor (template vertices -> MediaPipe landmark, fitted on the even "
        "bodies): RMS distance to MediaPipe's landmark on the odd bodies (held out) and on "
        "the fitted ones, canvas px, after undoing MediaPipe's left/right swaps. The "
        "held-out RMS is the keypoint noise synthesis adds.\n\n"
        + table(["keypoint", "held-out RMS px", "fit RMS px", "vertices", "photos"], kp_rows)
        + "\n\nLeft/right swaps by MediaPipe (share of photos; synthesis swaps as often):\n\n"
        + table(["view"] + [KEYPOINT_NAMES[i][:-2] for i, _ in PAIRS],
                [[view] + [f"{r:.2f}" for r in swap_rate[v]]
                 for v, view in enumerate(("front", "side"))]))
    write_section("segmentation", "Segmentation errors of MediaPipe on synthetic photos",
                  body_md, {"stats": stats, "keypoints": kp, "n": a.n,
                            "swap_rate": swap_rate.tolist(),
                            "fitted_augment": dataclasses.asdict(fitted),
                            "s_per_photo": seconds / max(2 * a.n, 1)})


if __name__ == "__main__":
    main()
