"""Network v2's goals (issue 13): the default network against the shipped v1 network and the
height-only baseline, on the held-out sets the goals name.

Each network sees the height and not the sex, as a user who gives only the height:

- realistic: ``SynthSpec()`` test pairs (per-view photo poses, garments, hair, shoes) with
  MediaPipe's measured segmentation errors (``Augment.measured()``), weight not given;
- realistic, weight given: the same pairs with each body's weight plus self-report noise
  (``evaluate.predict_dataset``; a network without a weight input ignores it);
- clean: ``SynthSpec.clean()`` test pairs (one near-A pose, naked), exact masks.

The predicted canonical mesh is scaled to the given height as ``Predictor`` does; girths are
``measure.py``'s (the reported measurements), MAE in mm; the mean surface error is the mean
distance of the predicted vertices to the true surface (first ``--n-surface`` pairs; a
proximity query per mesh is slow). Repeatability: ``bench_predict.repeatability`` on one
body shot ``--renders`` times, realistic shots (own poses, cameras and clothes each), sex not
given. The real-photo proxy's IoU comes from ``bench_photo.py``'s last run
(``benchmarks/results/photo_proxy.json``) when that run used the same network file.

The v1 network is the one shipped before issue 13, read from git (``V1_COMMIT``) unless
``--v1`` names a file.

Usage: python benchmarks/bench_goals.py [--model M] [--v1 PATH] [--n 1000] [--n-surface 200]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import subprocess
import tempfile
from pathlib import Path

import numpy as np
from bench_predict import TEST_SETS, repeatability, surface_error_mm
from report import ROOT, table, write_section

from bodyshape.assets import DEFAULT_CHECKPOINT, DEFAULT_SHAPE_MODEL
from bodyshape.body import BodyModel
from bodyshape.checkpoint import load_checkpoint
from bodyshape.dataset.stream import Augment
from bodyshape.evaluate import height_only, predict_dataset
from bodyshape.measure import measure_bodies
from bodyshape.predict import Predictor
from bodyshape.synth.shards import write_dataset

V1_COMMIT = "12c5403"  # the last commit whose src/bodyshape/data/model.pt is the v1 network
TEST_SEED = 999
TEST_N = 1000  # pairs per test set, as bench_realism.py makes them
GIRTHS = ("chest", "waist", "hip")
#: set -> (dataset, augmentation, weight given); goals: girth MAE mm, surface mm.
SETS = {"realistic": ("realistic", Augment.measured(), False),
        "realistic, weight given": ("realistic", Augment.measured(), True),
        "clean": ("clean", None, False)}
GOALS = {"realistic": (12.0, 5.0), "realistic, weight given": (8.0, 4.0), "clean": (10.0, 4.5)}
REPEAT_GOAL_MM = 8.0
IOU_GOAL = 0.90
logger = logging.getLogger("bench_goals")


def v1_checkpoint(path: Path | None, tmp: Path) -> Path:
    """The v1 network file: ``path``, else extracted from git at ``V1_COMMIT``."""
    if path is not None:
        return path
    out = tmp / "model-v1.pt"
    blob = subprocess.run(["git", "show", f"{V1_COMMIT}:src/bodyshape/data/model.pt"],
                          cwd=ROOT, capture_output=True, check=True).stdout
    out.write_bytes(blob)
    return out


def girths_cm(body: BodyModel, meshes: np.ndarray) -> dict[str, np.ndarray]:
    """(N, V, 3) canonical meshes -> girth -> (N,) ``measure.py`` value, cm."""
    rows = measure_bodies(meshes, body.template).as_dicts()
    return {g: np.array([r[f"{g}_cm"] for r in rows]) for g in GIRTHS}


def score(body: BodyModel, pred: np.ndarray, true: np.ndarray, true_cm: dict,
          n_surface: int) -> dict:
    """Girth MAE and mean surface error (mm) of predicted against true meshes
    (``true_cm``: ``girths_cm`` of ``true``, measured once per set)."""
    got = girths_cm(body, pred)
    surf = [surface_error_mm(p, t, body.faces) for p, t in zip(pred[:n_surface],
                                                                 true[:n_surface])]
    return {**{f"{g}_mm": float(np.abs(got[g] - true_cm[g]).mean() * 10) for g in GIRTHS},
            "surface_mm": float(np.mean(surf))}


def evaluate_sets(ckpt_path: Path, body: BodyModel, data: dict[str, Path], a) -> dict:
    """Set name -> score of one network (``SETS``); also the height-only baseline's."""
    ckpt = load_checkpoint(ckpt_path)
    out = {}
    for name, (dataset, augment, weight) in SETS.items():
        p = predict_dataset(ckpt, data[dataset], body.shape, a.n, sex_known=False,
                            augment=augment, weight_known=weight, faces=body.faces)
        rest = body.shape.decode(p.coeffs_pred.astype(np.float64))
        pred = np.stack([body.to_height(v, s)[0] for v, s in zip(rest, p.stature)])
        true = body.shape.decode(p.coeffs_true.astype(np.float64))
        true_cm = girths_cm(body, true)
        out[name] = score(body, pred, true, true_cm, a.n_surface)
        if not weight:
            out[f"{name}: height only"] = score(
                body, height_only(body.shape, p.stature), true, true_cm, a.n_surface)
        logger.info("%s on %s: %s", ckpt_path.name, name, out[name])
    return out


def spread(ckpt_path: Path, body: BodyModel, renders: int, tmp: Path) -> dict:
    """Std (mm) of each girth over ``renders`` realistic shots of one body, sex not given."""
    with Predictor(load_checkpoint(ckpt_path), body) as predictor:
        rep = repeatability(predictor, body, renders, tmp, TEST_SETS["realistic"],
                            f"goals-{ckpt_path.stem}", sex_given=False)
    return {g: 10 * rep[f"{g}_cm"]["std_cm"] for g in GIRTHS}


def photo_iou(ckpt_path: Path) -> dict | None:
    """The real-photo proxy's mean IoUs with ``--fit-pose`` from bench_photo's last run, when
    it ran this network file; else None."""
    path = ROOT / "benchmarks" / "results" / "photo_proxy.json"
    if not path.is_file():
        return None
    res = json.loads(path.read_text())
    if res["model"]["sha256_12"] != hashlib.sha256(ckpt_path.read_bytes()).hexdigest()[:12]:
        return None
    fit = res["summary"]["photo/fit"]
    return {"front": fit["iou_front"]["mean"], "side": fit["iou_side"]["mean"],
            "pairs_both": fit["pairs_goal"], "n": res["n"]}


def verdict(value: float | None, goal: float, higher: bool = False) -> str:
    if value is None:
        return "not measured"
    return "met" if (value >= goal if higher else value <= goal) else "missed"


def write_report(res: dict, ident: dict, a) -> None:
    names = ("default", "v1")
    rows, goals = [], []
    for name, (girth_goal, surf_goal) in GOALS.items():
        for who in names + ("height only",):
            key = (who, name) if who != "height only" else ("default", f"{name}: height only")
            if key[1] not in res[key[0]]["sets"]:
                continue
            s = res[key[0]]["sets"][key[1]]
            rows.append([name, who] + [f"{s[f'{g}_mm']:.1f}" for g in GIRTHS]
                        + [f"{s['surface_mm']:.1f}"])
        d = res["default"]["sets"][name]
        for g in GIRTHS:
            goals.append([f"{name}: {g} MAE <= {girth_goal:.0f} mm", f"{d[f'{g}_mm']:.1f}",
                          verdict(d[f"{g}_mm"], girth_goal)])
        goals.append([f"{name}: surface error <= {surf_goal} mm", f"{d['surface_mm']:.1f}",
                      verdict(d["surface_mm"], surf_goal)])
    rep_rows = [[who] + [f"{res[who]['spread'][g]:.1f}" for g in GIRTHS] for who in names]
    for g in GIRTHS:
        std = res["default"]["spread"][g]
        goals.append([f"repeatability: {g} std <= {REPEAT_GOAL_MM:.0f} mm", f"{std:.1f}",
                      verdict(std, REPEAT_GOAL_MM)])
    iou = res["default"]["photo"]
    for view in ("front", "side"):
        goals.append([f"real-photo proxy: mean IoU {view} >= {IOU_GOAL}",
                      "" if iou is None else f"{iou[view]:.3f}",
                      verdict(None if iou is None else iou[view], IOU_GOAL, True)])
    if iou is not None:
        goals.append([f"real-photo proxy: pairs >= {IOU_GOAL} in both views",
                      f"{100 * iou['pairs_both']:.0f} % of {iou['n']}", ""])
    body = (
        f"Networks: default `{ident['default']['path']}` (sha256 "
        f"{ident['default']['sha256']}), v1 = the network shipped before issue 13 (git "
        f"{V1_COMMIT}, sha256 {ident['v1']['sha256']}). Height given, sex not given; "
        f"{a.n} held-out pairs per set (seed {TEST_SEED}), surface error on the first "
        f"{a.n_surface}. Girths by `measure.py` on the canonical mesh scaled to the height, "
        "MAE in mm; realistic pairs carry MediaPipe's measured segmentation errors.\n\n"
        + table(["set", "network", "chest mm", "waist mm", "hip mm", "surface mm"], rows)
        + f"\n\nRepeatability: std of each girth over {a.renders} realistic shots of one "
        "body (own poses, phone cameras and clothes each; sex not given), mm:\n\n"
        + table(["network", "chest", "waist", "hip"], rep_rows)
        + "\n\nGoals (default network):\n\n" + table(["goal", "measured", ""], goals)
        + "\n\nThe real-photo proxy's IoU is read from `bench_photo.py`'s last run when it "
        "ran the same network file (`--fit-pose`, mean over its pairs); \"not measured\" "
        "means it has not been rerun since the network changed.")
    write_section("goals_v2", "Network v2 goals: default against v1 and the height-only "
                  "baseline", body, {"results": res, "networks": ident, "n": a.n,
                                     "n_surface": a.n_surface, "renders": a.renders})


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", type=Path, default=DEFAULT_CHECKPOINT)
    ap.add_argument("--v1", type=Path, default=None, help="v1 network (default: from git)")
    ap.add_argument("--work", type=Path, default=ROOT / "work" / "realism",
                    help="holds (or gets) the test sets test-clean and test-realistic")
    ap.add_argument("--n", type=int, default=TEST_N, help="pairs per test set")
    ap.add_argument("--n-surface", type=int, default=200)
    ap.add_argument("--renders", type=int, default=10)
    a = ap.parse_args()
    if not 1 <= a.n_surface <= a.n <= TEST_N:
        ap.error(f"need 1 <= --n-surface <= --n <= {TEST_N}")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    body = BodyModel.load(DEFAULT_SHAPE_MODEL)
    data = {}
    for name, spec in TEST_SETS.items():
        data[name] = a.work / f"test-{name}"
        write_dataset(DEFAULT_SHAPE_MODEL, data[name], TEST_N, TEST_SEED, spec, workers=2)
    with tempfile.TemporaryDirectory(prefix="bench_goals-") as tmp:
        paths = {"default": a.model, "v1": v1_checkpoint(a.v1, Path(tmp))}
        if paths["default"].read_bytes() == paths["v1"].read_bytes():
            raise SystemExit("the default network is the v1 network itself: export the new "
                             "one first (scripts/train_default.sh) or name it with --model")
        res, ident = {}, {}
        for who, path in paths.items():
            full = path.resolve()
            ident[who] = {"path": str(full.relative_to(ROOT)) if full.is_relative_to(ROOT)
                          else path.name,
                          "sha256": hashlib.sha256(path.read_bytes()).hexdigest()[:12]}
            res[who] = {"sets": evaluate_sets(path, body, data, a),
                        "spread": spread(path, body, a.renders, Path(tmp)),
                        "photo": photo_iou(path)}
            if who == "v1":  # its height-only rows repeat the default's
                res[who]["sets"] = {k: v for k, v in res[who]["sets"].items()
                                    if "height only" not in k}
    write_report(res, ident, a)


if __name__ == "__main__":
    main()
