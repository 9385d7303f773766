"""Prediction: latency, end-to-end accuracy through the predict CLI, repeatability.

1. Latency (2 cores): loading the shipped network, and per pair after loading, for
   full-frame masks and for the 1536x2048 example photos (segmentation included).
2. End-to-end accuracy: held-out synthetic test pairs (seed 999) are re-rendered as
   full-frame masks from their shard rows (the exact frames the shards were calibrated
   from), fed to ``bodyshape predict --batch`` with their true heights and sexes, and the
   written ``body.obj`` and ``measurements.json`` are compared with the ground truth:
   mean surface error (mean distance of predicted vertices to the true surface) and
   per-vertex error, chest/waist/hip MAE; next to the height-only baseline.
3. Repeatability: one body photographed by several random phone cameras and poses; the
   spread (std and max - min) of each measurement over the renders.

Usage: python benchmarks/bench_predict.py [--n 200] [--renders 10]
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import trimesh
from report import table, write_section

from bodyshape.assets import DEFAULT_CHECKPOINT, DEFAULT_SHAPE_MODEL
from bodyshape.body import BodyModel
from bodyshape.checkpoint import load_checkpoint
from bodyshape.dataset.shard_format import read_shard
from bodyshape.measure import MEASUREMENT_NAMES, measure_bodies
from bodyshape.predict import Predictor
from bodyshape.render.camera import CameraSpec, sample_camera, vertex_bounds
from bodyshape.render.raster import silhouette
from bodyshape.synth.generate import SynthSpec
from bodyshape.synth.poses import sample_poses
from bodyshape.synth.shards import write_dataset

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE_HEIGHT_CM = 171.3
SEX_NAMES = {0: "female", 1: "male"}


def frames_from_shards(test: Path, n: int, folder: Path, body: BodyModel) -> list[dict]:
    """Write the first ``n`` test pairs as full-frame mask PNGs; returns their rows."""
    rows = []
    for shard in sorted(test.glob("shard-*.npz")):
        d = read_shard(shard)
        for r in range(len(d)):
            if len(rows) >= n:
                return rows
            rest = body.shape.decode(d.coeffs[r][None].astype(np.float64))[0]
            posed = body.pose(rest, d.pose_angles[r].astype(np.float64))
            names = {}
            for v, view in enumerate(("front", "side")):
                mask = silhouette(body.turn(posed, float(d.yaw[r, v])), body.faces,
                                  d.camera(r, view), closed=True)
                names[view] = f"{int(d.index[r])}_{view}.png"
                cv2.imwrite(str(folder / names[view]), mask.astype(np.uint8) * 255)
            rows.append({"id": str(int(d.index[r])), "front": names["front"],
                         "side": names["side"], "height_cm": f"{100 * np.ptp(rest[:, 2]):.2f}",
                         "sex": SEX_NAMES.get(int(d.sex[r]), ""), "coeffs": d.coeffs[r],
                         "pose": d.pose_angles[r].astype(np.float64)})
    return rows


def surface_error_mm(pred: np.ndarray, true: np.ndarray, faces: np.ndarray) -> float:
    """Mean distance (mm) of predicted vertices to the true surface."""
    mesh = trimesh.Trimesh(true, faces, process=False)
    _, dist, _ = trimesh.proximity.closest_point(mesh, pred)
    return float(dist.mean() * 1e3)


def latency(predictor: Predictor, masks: tuple[Path, Path], photos: tuple[Path, Path],
            repeats: int) -> dict:
    predictor(*masks, 170.0)  # warm-up (numba, torch)
    t0 = time.perf_counter()
    for _ in range(repeats):
        predictor(*masks, 170.0)
    mask_ms = (time.perf_counter() - t0) / repeats * 1e3
    predictor(*photos, EXAMPLE_HEIGHT_CM)
    t0 = time.perf_counter()
    for _ in range(repeats):
        predictor(*photos, EXAMPLE_HEIGHT_CM)
    photo_ms = (time.perf_counter() - t0) / repeats * 1e3
    return {"mask_pair_ms": mask_ms, "photo_pair_ms": photo_ms}


def repeatability(predictor: Predictor, body: BodyModel, renders: int, folder: Path
                  ) -> dict:
    """Measurement spread over random cameras and poses of one body (seeded)."""
    rng = np.random.default_rng(2026)
    drawn = body.shape.sample(1, rng, "per-sex")
    rest = drawn.vertices[0].astype(np.float64)
    height = 100 * float(np.ptp(rest[:, 2]))
    spec = SynthSpec(camera=CameraSpec(long_side=1024))
    values = {k: [] for k in MEASUREMENT_NAMES}
    for i in range(renders):
        pose = sample_poses(rng, 1, spec.pose)
        posed = body.pose(rest, pose.angles[0])
        paths = []
        for view, yaw in (("front", rng.uniform(-0.087, 0.087)),
                          ("side", np.pi / 2 * rng.choice([-1, 1]) + rng.uniform(-0.087, 0.087))):
            v = body.turn(posed, yaw)
            b = vertex_bounds(v)
            cam = sample_camera(rng, spec.camera, b, float(b[0, 2]))
            p = folder / f"rep{i}_{view}.png"
            cv2.imwrite(str(p), silhouette(v, body.faces, cam, closed=True).astype(np.uint8) * 255)
            paths.append(p)
        pred = predictor(paths[0], paths[1], height, drawn.sex[0] if drawn.sex is not None else None)
        for k, val in pred.measurements.items():
            values[k].append(val)
    truth = measure_bodies(rest[None], body.template).as_dicts()[0]
    return {k: {"std_cm": float(np.std(v)), "range_cm": float(np.ptp(v)),
                "mean_cm": float(np.mean(v)), "true_cm": truth[k]} for k, v in values.items()}


FIT_MODES = {"network only": {}, "--fit-pose": {"fit_pose": True},
             "--refine (pose + shape)": {"refine": True}}


def refine_effect(predictor: Predictor, rows: list[dict], folder: Path, body: BodyModel,
                  n: int) -> dict:
    """Errors, fit IoU and fitted-pose error of the first ``n`` pairs in each of
    ``FIT_MODES``."""
    out = {}
    for mode, kwargs in FIT_MODES.items():
        errs = {k: [] for k in ("vertex_mm", "chest_mm", "waist_mm", "hip_mm", "iou_front",
                                "iou_side", "arm_deg", "pose_deg")}
        t0 = time.perf_counter()
        for r in rows[:n]:
            pred = predictor(folder / r["front"], folder / r["side"], float(r["height_cm"]),
                             r["sex"] or None, **kwargs)
            true = body.shape.decode(r["coeffs"][None].astype(np.float64))[0]
            tm = measure_bodies(true[None], body.template).as_dicts()[0]
            errs["vertex_mm"].append(float(np.linalg.norm(pred.vertices - true, axis=1)
                                           .mean() * 1e3))
            for g in ("chest", "waist", "hip"):
                errs[f"{g}_mm"].append(abs(pred.measurements[f"{g}_cm"] - tm[f"{g}_cm"]) * 10)
            errs["iou_front"].append(pred.front.iou)
            errs["iou_side"].append(pred.side.iou)
            if pred.pose_angles is not None:
                d = np.degrees(np.abs(pred.pose_angles - r["pose"]))
                errs["arm_deg"].append(float(d[:2].mean()))
                errs["pose_deg"].append(float(d.mean()))
        out[mode] = {**{k: float(np.mean(v)) if v else None for k, v in errs.items()},
                     "s_per_pair": (time.perf_counter() - t0) / n}
    return out


def _deg(x: float | None) -> str:
    return "" if x is None else f"{x:.1f}"


def _num(x: float | None, digits: int) -> str:
    return "" if x is None else f"{x:.{digits}f}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=str(DEFAULT_CHECKPOINT))
    ap.add_argument("--shape-model", default=str(DEFAULT_SHAPE_MODEL))
    ap.add_argument("--test", default=str(ROOT / "work/train/data-test"))
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--renders", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--n-refine", type=int, default=30, help="pairs for the --refine test")
    a = ap.parse_args()
    test = Path(a.test)
    if not (test / "manifest.json").is_file():
        write_dataset(a.shape_model, test, 2000, 999, SynthSpec(sampling="per-sex"), workers=2)
    tmp = Path(tempfile.mkdtemp(prefix="bench_predict-"))
    t0 = time.perf_counter()
    body_model = BodyModel.load(a.shape_model)
    predictor = Predictor(load_checkpoint(a.model), body_model)
    load_s = time.perf_counter() - t0
    model = body_model.shape

    rows = frames_from_shards(test, a.n, tmp, body_model)
    lat = latency(predictor, (tmp / rows[0]["front"], tmp / rows[0]["side"]),
                  (ROOT / "examples/front.jpg", ROOT / "examples/side.jpg"), a.repeats)
    rep = repeatability(predictor, body_model, a.renders, tmp)
    ref = refine_effect(predictor, rows, tmp, body_model, min(a.n_refine, len(rows)))
    # The shipped example photos: their body is the shape model's first sample (seed 0,
    # examples/README.md).
    example = model.sample(1, np.random.default_rng(0)).vertices[0].astype(np.float64)
    example_m = measure_bodies(example[None], body_model.template).as_dicts()[0]
    photo_fit = {"truth": {**{k: None for k in ("iou_front", "iou_side", "s")},
                           **{f"{g}_cm": example_m[f"{g}_cm"] for g in ("chest", "waist", "hip")}}}
    for mode, kwargs in FIT_MODES.items():  # IoU on the shipped example photos
        t0 = time.perf_counter()
        pred = predictor(ROOT / "examples/front.jpg", ROOT / "examples/side.jpg", 171.3, **kwargs)
        photo_fit[mode] = {"iou_front": pred.front.iou, "iou_side": pred.side.iou,
                           "s": time.perf_counter() - t0,
                           "chest_cm": pred.measurements["chest_cm"],
                           "waist_cm": pred.measurements["waist_cm"],
                           "hip_cm": pred.measurements["hip_cm"]}
    predictor.close()

    with (tmp / "pairs.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["id", "front", "side", "height_cm", "sex"])
        w.writeheader()
        for r in rows:
            w.writerow({k: r[k] for k in ("id", "front", "side", "height_cm", "sex")})
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "bodyshape.cli", "predict", "--model", a.model,
                    "--shape-model", a.shape_model, "--batch", str(tmp / "pairs.csv"),
                    "--out", str(tmp / "out")], check=False, capture_output=True)
    cli_s = time.perf_counter() - t0
    errs = {k: [] for k in ("surface_mm", "vertex_mm", "chest_mm", "waist_mm", "hip_mm")}
    base = {k: [] for k in ("chest_mm", "waist_mm", "hip_mm")}
    failed = 0
    mean = model.mean.astype(np.float64)
    for r in rows:
        out = tmp / "out" / r["id"]
        if not (out / "measurements.json").is_file():
            failed += 1
            continue
        true = model.decode(r["coeffs"][None].astype(np.float64))[0]
        pred = np.asarray(trimesh.load(out / "body.obj", process=False).vertices)
        got = json.loads((out / "measurements.json").read_text())["measurements"]
        tm = measure_bodies(true[None], body_model.template).as_dicts()[0]
        errs["surface_mm"].append(surface_error_mm(pred, true, model.faces))
        errs["vertex_mm"].append(float(np.linalg.norm(pred - true, axis=1).mean() * 1e3))
        s = float(r["height_cm"]) / 100 / np.ptp(mean[:, 2])
        c = mean.mean(0)
        bm = measure_bodies((c + s * (mean - c))[None], body_model.template).as_dicts()[0]
        for g in ("chest", "waist", "hip"):
            errs[f"{g}_mm"].append(abs(got[f"{g}_cm"] - tm[f"{g}_cm"]) * 10)
            base[f"{g}_mm"].append(abs(bm[f"{g}_cm"] - tm[f"{g}_cm"]) * 10)
    acc = {k: float(np.mean(v)) for k, v in errs.items()}
    acc_base = {k: float(np.mean(v)) for k, v in base.items()}
    res = {"load_s": load_s, **lat, "n": len(rows), "failed": failed, "cli_s": cli_s,
           "accuracy": acc, "height_only": acc_base, "repeatability": rep, "refine": ref,
           "photo_fit": photo_fit}
    body = f"""Latency after loading (2 cores): **{lat['mask_pair_ms']:.0f} ms per mask pair**,
**{lat['photo_pair_ms']:.0f} ms per 1536x2048 photo pair** (segmentation included); loading
the network and shape model: {load_s:.2f} s.

End to end through `bodyshape predict --batch` on {len(rows)} held-out synthetic pairs
(full-frame masks re-rendered from the test shards, true height and sex given;
{failed} failed; {cli_s:.0f} s for the whole batch including start-up):

{table(["", "surface mm", "vertex mm", "chest mm", "waist mm", "hip mm"], [
        ["predict", f"{acc['surface_mm']:.1f}", f"{acc['vertex_mm']:.1f}",
         f"{acc['chest_mm']:.1f}", f"{acc['waist_mm']:.1f}", f"{acc['hip_mm']:.1f}"],
        ["height-only baseline", "", "", f"{acc_base['chest_mm']:.1f}",
         f"{acc_base['waist_mm']:.1f}", f"{acc_base['hip_mm']:.1f}"]])}

Fitting the pose (`--fit-pose`) and then the shape (`--refine`) to the silhouettes, on the
first {min(a.n_refine, len(rows))} of those pairs (Predictor API, same inputs). The pose
errors compare the fitted angles with the angles the pair was rendered with (arm: mean of
the two arm abductions; all: mean over the 16 angles):

{table(["", "vertex mm", "chest mm", "waist mm", "hip mm", "IoU front", "IoU side",
        "arm error deg", "all-angle error deg", "s / pair"], [
        [k, f"{v['vertex_mm']:.1f}", f"{v['chest_mm']:.1f}", f"{v['waist_mm']:.1f}",
         f"{v['hip_mm']:.1f}", f"{v['iou_front']:.3f}", f"{v['iou_side']:.3f}",
         _deg(v['arm_deg']), _deg(v['pose_deg']), f"{v['s_per_pair']:.2f}"]
        for k, v in ref.items()])}

On the shipped example photos (`examples/`, 1536x2048, segmentation included; "truth" is
the rendered body's own measurements):

{table(["", "IoU front", "IoU side", "chest cm", "waist cm", "hip cm", "s"], [
        [k, _num(v['iou_front'], 3), _num(v['iou_side'], 3), f"{v['chest_cm']:.1f}",
         f"{v['waist_cm']:.1f}", f"{v['hip_cm']:.1f}", _num(v['s'], 2)]
        for k, v in photo_fit.items()])}

Repeatability: one sampled body, {a.renders} renders with random poses and phone cameras
(1024 px frames), measurement spread:

{table(["measurement", "true cm", "mean cm", "std cm", "max - min cm"], [
        [k[:-3], f"{v['true_cm']:.1f}", f"{v['mean_cm']:.1f}", f"{v['std_cm']:.2f}",
         f"{v['range_cm']:.2f}"] for k, v in rep.items()])}
"""
    write_section("predict", "Prediction: latency, accuracy through the CLI, repeatability",
                  body, res)
    print(body)


if __name__ == "__main__":
    main()
