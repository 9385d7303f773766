"""Canvas resolution: the 128 px network canvas against 192 px at equal training time.

The reference recipe (front + side + fusion, ``ablations.py``) on realistic data
(``SynthSpec()``), once on the 128 px canvas (``bench_realism.py``'s "trained on realistic"
runs, reused from ``--work``) and once on a 192 px canvas: the same bodies, poses, cameras
and garments (same data seeds) calibrated onto the larger canvas (``bodyshape synth
--canvas 192``). A 192 px canvas has 2.25x the pixels, so a batch costs more; for equal
training time the 192 px run stops every epoch after ``steps x t128 / t192`` batches
(``TrainConfig.max_steps``), where ``t128 / t192`` is measured here first by training the
front network for ``--calib-steps`` batches on each canvas, twice each in alternating order
after an untimed warm-up. Both are evaluated
with the height given and the sex not given on the realistic (MediaPipe's measured errors)
and clean test sets made at their own canvas.

256 px is not run: at equal time a larger canvas sees fewer batches, and 192 px was
already worse than 128 px in every seed (docs/ABLATIONS.md).

Writes the section between ``<!-- resolution -->`` and ``<!-- /resolution -->`` of
docs/ABLATIONS.md. Runs resume from ``--work``. Usage:
python benchmarks/bench_resolution.py [--seeds 0 1 2] [--canvas 192] [--workers 2]
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import tempfile
from pathlib import Path

import numpy as np
from ablations import Variant, budget_arguments, budget_setup, run_variant, seeded
from bench_netv2 import girth_change, verdict
from bench_realism import TEST_SEED, mean_std, replace_block
from bench_realism import make_data as make_data_128
from report import ROOT, machine, table

from bodyshape.calibrate import CalibrationSpec
from bodyshape.checkpoint import load_checkpoint
from bodyshape.dataset.stream import Augment
from bodyshape.evaluate import evaluate
from bodyshape.fileio import write_json
from bodyshape.synth.generate import SynthSpec
from bodyshape.synth.shards import write_dataset
from bodyshape.train import StageData, TrainConfig, train_stage

DOC = ROOT / "docs" / "ABLATIONS.md"
START, END = "<!-- resolution -->", "<!-- /resolution -->"
COLUMNS = (("vertex_mm", 1), ("chest_mm", 1), ("waist_mm", 1), ("hip_mm", 1),
           ("iou_front", 3), ("iou_side", 3))
BATCH = TrainConfig(stage="front").batch_size
logger = logging.getLogger("bench_resolution")


def make_data(model_path: Path, work: Path, n: int, test_n: int, canvas: int,
              workers: int = 2) -> dict:
    """The realistic training set and both test sets on a ``canvas`` px canvas (same seeds
    as the 128 px sets, so the same bodies, poses, cameras and garments; the same bytes
    for any number of ``workers``)."""
    realistic = dataclasses.replace(SynthSpec(sampling="per-sex"),
                                    calibration=CalibrationSpec(canvas, canvas))
    clean = dataclasses.replace(SynthSpec.clean(sampling="per-sex"),
                                calibration=CalibrationSpec(canvas, canvas))
    paths = {"realistic": work / f"data-realistic-{canvas}",
             "test-realistic": work / f"test-realistic-{canvas}",
             "test-clean": work / f"test-clean-{canvas}"}
    write_dataset(model_path, paths["realistic"], n, 0, realistic, workers=workers)
    write_dataset(model_path, paths["test-realistic"], test_n, TEST_SEED, realistic,
                  workers=workers)
    write_dataset(model_path, paths["test-clean"], test_n, TEST_SEED, clean, workers=workers)
    return paths


def time_ratio(paths128: dict, paths_big: dict, body, steps: int, work: Path) -> float:
    """Seconds per front-network batch on the big canvas over the 128 px one, measured by
    training each for ``steps`` batches, twice in alternating order after a warm-up (cached
    in ``work``)."""
    cache = work / "reports" / f"resolution-time-ratio-{steps}.json"
    if cache.is_file():
        return json.loads(cache.read_text())["ratio"]
    with tempfile.TemporaryDirectory() as tmp:
        # An untimed warm-up first (numba compilation, allocator, page cache), then the two
        # canvases twice in alternating order, so a one-time cost favours neither.
        order = ("warm-up", "128", "big", "big", "128")
        times = {"128": [], "big": []}
        for i, which in enumerate(order):
            p = paths_big["realistic"] if which == "big" else paths128["realistic"]
            cfg = TrainConfig(stage="front", epochs=1, max_steps=steps, val_samples=0)
            ckpt = train_stage(cfg, StageData(p, None, body), Path(tmp) / str(i))
            if which != "warm-up":
                times[which].append(load_checkpoint(ckpt).train["history"][-1]["seconds"])
        seconds = [sum(times["128"]), sum(times["big"])]
    ratio = seconds[1] / seconds[0]
    write_json(cache, {"ratio": ratio, "seconds": seconds, "steps": steps})
    return ratio


def _minutes(ckpt: Path) -> float:
    total = 0.0
    for stage in ("front", "side", "fusion"):
        hist = ckpt.parent.parent / stage / "checkpoint.pt"
        total += sum(r["seconds"] for r in load_checkpoint(hist).train["history"])
    return total / 60


def main() -> None:
    ap = budget_arguments("work/realism")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0], help="training seeds")
    ap.add_argument("--canvas", type=int, default=192, help="the larger canvas, px")
    ap.add_argument("--calib-steps", type=int, default=60,
                    help="batches timed on each canvas for the time ratio")
    ap.add_argument("--workers", type=int, default=2, help="processes making the data")
    a = ap.parse_args()
    work, model_path, body, base = budget_setup(a)
    paths128 = make_data_128(model_path, work, a.n, a.test_n)
    big = make_data(model_path, work, a.n, a.test_n, a.canvas, a.workers)
    ratio = time_ratio(paths128, big, body, a.calib_steps, work)
    steps = max(1, math.floor(math.ceil(a.n / BATCH) / ratio))  # 0 would mean "all"
    logger.info("time ratio %.2f: %d batches per epoch on the %d px canvas", ratio, steps,
                a.canvas)
    results: dict = {}
    minutes: dict = {}
    for seed in a.seeds:
        runs = {
            "128 px": (Variant(seeded("trained-on-realistic", seed), "128",
                               data="realistic", seed=seed), paths128),
            f"{a.canvas} px": (Variant(seeded(f"resolution-{a.canvas}", seed), str(a.canvas),
                                       data="realistic", overrides={"max_steps": steps},
                                       seed=seed), big)}
        for label, (v, paths) in runs.items():
            ckpt = run_variant(v, paths, body, work, dict(base))
            minutes.setdefault(label, []).append(_minutes(ckpt))
            for test, augment in (("realistic", Augment.measured()), ("clean", None)):
                rep_path = work / "reports" / f"resolution--{v.name}--{test}.json"
                if not rep_path.is_file():
                    write_json(rep_path, evaluate(load_checkpoint(ckpt), paths[f"test-{test}"],
                                                  body, augment=augment, sex_known=False))
                rep = json.loads(rep_path.read_text())
                results.setdefault((label, test), []).append(rep["all"])
    write_doc(results, minutes, ratio, steps, a)


def write_doc(results: dict, minutes: dict, ratio: float, steps: int, a) -> None:
    rows = [[label, test, str(len(runs))] + [mean_std(runs, k, d) for k, d in COLUMNS]
            for (label, test), runs in results.items()]
    cost = [[label, f"{np.mean(m):.0f}"] for label, m in minutes.items()]
    # Seed-paired: both canvases' runs are listed in the same seed order.
    big, ref = f"{a.canvas} px", "128 px"
    paired = []
    for test in ("realistic", "clean"):
        d = [girth_change(r, q)
             for r, q in zip(results.get((big, test), []), results.get((ref, test), []))]
        if d:
            paired.append([test, str(len(d)), f"{np.mean(d):+.1f}",
                           " ".join(f"{x:+.1f}" for x in d), verdict(d)])
    body = (
        f"{START}\n## Canvas resolution at equal training time\n\n"
        f"Produced by `python benchmarks/bench_resolution.py --n {a.n} --epochs-view "
        f"{a.epochs_view} --epochs-fusion {a.epochs_fusion} --test-n {a.test_n} --seeds "
        f"{' '.join(str(s) for s in a.seeds)} --canvas {a.canvas}` on {machine()}. The "
        f"reference recipe on {a.n} realistic pairs calibrated onto a 128 px and a "
        f"{a.canvas} px canvas (same samples). A {a.canvas} px batch took {ratio:.2f}x the "
        f"time of a 128 px one (front network, {a.calib_steps} batches each, back to back), "
        f"so the {a.canvas} px run stops each epoch after {steps} of "
        f"{math.ceil(a.n / BATCH)} batches. Evaluated with the height given and the sex not "
        f"given on {a.test_n} held-out pairs (seed {TEST_SEED}) at each canvas; MAE in mm. "
        "Cells: mean ± std over training seeds (`runs`).\n\n"
        + table(["canvas", "test set", "runs", "vertex mm", "chest mm", "waist mm", "hip mm",
                 "IoU front", "IoU side"], rows)
        + f"\n\nThe {a.canvas} px runs against the 128 px ones of the same training seed: the "
        "change in the mean of the chest, waist and hip MAE (mm, negative = "
        f"{a.canvas} px better), per seed and its mean; the verdict is \"better\" or "
        "\"worse\" when every seed agrees, else \"mixed\".\n\n"
        + table(["test set", "seeds", "mean change mm", "per seed", "verdict"], paired)
        + "\n\nTraining minutes of front + side + fusion (mean over seeds; the load of the "
        "machine differed between runs, so these are indicative):\n\n"
        + table(["canvas", "minutes"], cost) + f"\n{END}")
    replace_block(DOC, START, END, body)
    print(body)


if __name__ == "__main__":
    main()
