"""Prediction: latency, end-to-end accuracy through the predict CLI, repeatability.

1. Latency (2 cores): loading the shipped network, and per pair after loading, for
   full-frame masks and for the 1536x2048 example photos (segmentation included).
2. End-to-end accuracy on two held-out synthetic test sets (seed 999, ``--n`` pairs each):
   clean (``SynthSpec.clean()``: one near-A pose, naked) and realistic (``SynthSpec()``:
   per-view photo poses, clothing, hair, shoes). The full-frame masks the samples were
   calibrated from (``make_sample_frames``) are fed to ``bodyshape predict --batch`` with
   their true heights and sexes, and the written ``body.obj`` and ``measurements.json`` are
   compared with the ground truth: mean surface error (mean distance of predicted vertices
   to the true surface) and per-vertex error, chest/waist/hip MAE; next to the height-only
   baseline. MediaPipe's measured segmentation errors (``bench_segmentation.py``: under
   0.2 canvas px) are not added to these frames.
3. Repeatability: one body (shape 0 of seed 2026) shot ``--renders`` times, each shot its
   own poses, cameras and, for the realistic set, clothes; the spread (std and max - min)
   of each measurement.

Usage: python benchmarks/bench_predict.py [--n 200] [--renders 10]
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
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
from bodyshape.measure import MEASUREMENT_NAMES, measure_bodies
from bodyshape.predict import Predictor
from bodyshape.synth.generate import SynthSpec, make_sample_frames

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE_HEIGHT_CM = 171.3


TEST_SETS = {"clean": SynthSpec.clean(sampling="per-sex"),
             "realistic": SynthSpec(sampling="per-sex")}


def frames(spec: SynthSpec, seed: int, indices, folder: Path, body: BodyModel, prefix: str
           ) -> list[dict]:
    """Write the full-frame masks of samples ``indices`` as PNGs; returns their rows."""
    rows = []
    for i in indices:
        sf = make_sample_frames(body, i, seed, spec)
        s = sf.sample
        names = {}
        for view, mask in (("front", sf.front), ("side", sf.side)):
            names[view] = f"{prefix}{i}_{view}.png"
            cv2.imwrite(str(folder / names[view]), mask.astype(np.uint8) * 255)
        rest = body.shape.decode(s.coeffs[None].astype(np.float64))[0]
        rows.append({"id": f"{prefix}{i}", "front": names["front"], "side": names["side"],
                     "height_cm": f"{100 * np.ptp(rest[:, 2]):.2f}", "sex": s.sex or "",
                     "coeffs": s.coeffs, "pose": s.pose_angles.astype(np.float64)})
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


def repeatability(predictor: Predictor, body: BodyModel, renders: int, folder: Path,
                  spec: SynthSpec, name: str, sex_given: bool = True) -> dict:
    """Measurement spread over ``renders`` shots of one body (shape 0 of seed 2026): each
    its own poses, cameras and (realistic spec) clothes; the sex is passed when
    ``sex_given``."""
    spec = dataclasses.replace(spec, poses_per_shape=renders)
    rows = frames(spec, 2026, range(renders), folder, body, f"rep-{name}-")
    values = {k: [] for k in MEASUREMENT_NAMES}
    for r in rows:
        pred = predictor(folder / r["front"], folder / r["side"], float(r["height_cm"]),
                         (r["sex"] or None) if sex_given else None)
        for k, val in pred.measurements.items():
            values[k].append(val)
    rest = body.shape.decode(rows[0]["coeffs"][None].astype(np.float64))[0]
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
                d = np.degrees(np.abs(pred.pose_angles - r["pose"]))  # (2, P): per view
                errs["arm_deg"].append(float(d[:, :2].mean()))
                errs["pose_deg"].append(float(d.mean()))
        out[mode] = {**{k: float(np.mean(v)) if v else None for k, v in errs.items()},
                     "s_per_pair": (time.perf_counter() - t0) / n}
    return out


def _deg(x: float | None) -> str:
    return "" if x is None else f"{x:.1f}"


def _num(x: float | None, digits: int) -> str:
    return "" if x is None else f"{x:.{digits}f}"


def cli_accuracy(a, rows: list[dict], tmp: Path, body_model: BodyModel, name: str) -> dict:
    """Run ``bodyshape predict --batch`` on ``rows`` and compare with the ground truth."""
    model = body_model.shape
    with (tmp / f"pairs-{name}.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["id", "front", "side", "height_cm", "sex"])
        w.writeheader()
        for r in rows:
            w.writerow({k: r[k] for k in ("id", "front", "side", "height_cm", "sex")})
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "bodyshape.cli", "predict", "--model", a.model,
                    "--shape-model", a.shape_model, "--batch", str(tmp / f"pairs-{name}.csv"),
                    "--out", str(tmp / f"out-{name}"), "--obj-up", "z"], check=False,
                   capture_output=True)
    cli_s = time.perf_counter() - t0
    errs = {k: [] for k in ("surface_mm", "vertex_mm", "chest_mm", "waist_mm", "hip_mm")}
    base = {k: [] for k in ("chest_mm", "waist_mm", "hip_mm")}
    failed = 0
    mean = model.mean.astype(np.float64)
    for r in rows:
        out = tmp / f"out-{name}" / r["id"]
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
    return {"accuracy": {k: float(np.mean(v)) for k, v in errs.items()},
            "height_only": {k: float(np.mean(v)) for k, v in base.items()},
            "n": len(rows), "failed": failed, "cli_s": cli_s}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=str(DEFAULT_CHECKPOINT))
    ap.add_argument("--shape-model", default=str(DEFAULT_SHAPE_MODEL))
    ap.add_argument("--n", type=int, default=200, help="pairs per test set")
    ap.add_argument("--renders", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--n-refine", type=int, default=30, help="pairs for the --refine test")
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench_predict-"))
    t0 = time.perf_counter()
    body_model = BodyModel.load(a.shape_model)
    predictor = Predictor(load_checkpoint(a.model), body_model)
    load_s = time.perf_counter() - t0
    model = body_model.shape

    rows = {name: frames(spec, 999, range(a.n), tmp, body_model, f"{name}-")
            for name, spec in TEST_SETS.items()}
    lat = latency(predictor, (tmp / rows["clean"][0]["front"], tmp / rows["clean"][0]["side"]),
                  (ROOT / "examples/front.jpg", ROOT / "examples/side.jpg"), a.repeats)
    rep = {name: repeatability(predictor, body_model, a.renders, tmp, spec, name)
           for name, spec in TEST_SETS.items()}
    ref = {name: refine_effect(predictor, r, tmp, body_model, min(a.n_refine, len(r)))
           for name, r in rows.items()}
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
    acc = {name: cli_accuracy(a, r, tmp, body_model, name) for name, r in rows.items()}

    res = {"load_s": load_s, **lat, "test_sets": acc, "repeatability": rep, "refine": ref,
           "photo_fit": photo_fit}
    acc_rows = []
    for name, d in acc.items():
        e, b = d["accuracy"], d["height_only"]
        acc_rows.append([f"{name}: predict", f"{e['surface_mm']:.1f}", f"{e['vertex_mm']:.1f}",
                         f"{e['chest_mm']:.1f}", f"{e['waist_mm']:.1f}", f"{e['hip_mm']:.1f}",
                         f"{d['failed']}/{d['n']}", f"{d['cli_s']:.0f}"])
        acc_rows.append([f"{name}: height-only baseline", "", "", f"{b['chest_mm']:.1f}",
                         f"{b['waist_mm']:.1f}", f"{b['hip_mm']:.1f}", "", ""])
    rep_rows = []
    for k in MEASUREMENT_NAMES:
        c, r = rep["clean"][k], rep["realistic"][k]
        rep_rows.append([k[:-3], f"{c['true_cm']:.1f}", f"{c['std_cm']:.2f}",
                         f"{c['range_cm']:.2f}",
                         f"{r['mean_cm']:.1f}", f"{r['std_cm']:.2f}", f"{r['range_cm']:.2f}"])
    body = f"""Latency after loading (2 cores): **{lat['mask_pair_ms']:.0f} ms per mask pair**,
**{lat['photo_pair_ms']:.0f} ms per 1536x2048 photo pair** (segmentation included); loading
the network and shape model: {load_s:.2f} s.

End to end through `bodyshape predict --batch` on {a.n} held-out synthetic pairs of each
test set (seed 999; the full-frame masks the samples were calibrated from; true height and
sex given). Clean: `SynthSpec.clean()` (one near-A pose, naked); realistic: `SynthSpec()`
(per-view photo poses, clothing, hair, shoes):

{table(["", "surface mm", "vertex mm", "chest mm", "waist mm", "hip mm", "failed",
        "batch s"], acc_rows)}

Fitting the pose (`--fit-pose`, one pose per view) and then the shape (`--refine`) to the
silhouettes, on the first {min(a.n_refine, a.n)} pairs of each test set (Predictor API, same
inputs). The
pose errors compare each view's fitted angles with the angles it was rendered with (arm:
mean of the arm abductions; all: mean over the 16 angles of both views):

{table(["test set", "", "vertex mm", "chest mm", "waist mm", "hip mm", "IoU front",
        "IoU side", "arm error deg", "all-angle error deg", "s / pair"], [
        [name, k, f"{v['vertex_mm']:.1f}", f"{v['chest_mm']:.1f}", f"{v['waist_mm']:.1f}",
         f"{v['hip_mm']:.1f}", f"{v['iou_front']:.3f}", f"{v['iou_side']:.3f}",
         _deg(v['arm_deg']), _deg(v['pose_deg']), f"{v['s_per_pair']:.2f}"]
        for name, modes in ref.items() for k, v in modes.items()])}

On the shipped example photos (`examples/`, 1536x2048, segmentation included; "truth" is
the rendered body's own measurements):

{table(["", "IoU front", "IoU side", "chest cm", "waist cm", "hip cm", "s"], [
        [k, _num(v['iou_front'], 3), _num(v['iou_side'], 3), f"{v['chest_cm']:.1f}",
         f"{v['waist_cm']:.1f}", f"{v['hip_cm']:.1f}", _num(v['s'], 2)]
        for k, v in photo_fit.items()])}

Repeatability: one body, {a.renders} shots, each with its own poses and phone cameras
(clean) and also its own clothes (realistic); spread of each measurement:

{table(["measurement", "true cm", "clean std cm", "clean max - min cm", "realistic mean cm",
        "realistic std cm", "realistic max - min cm"], rep_rows)}
"""
    write_section("predict", "Prediction: latency, accuracy through the CLI, repeatability",
                  body, res)
    print(body)


if __name__ == "__main__":
    main()
