"""Ablations of the training techniques, same seeds and budgets -> docs/ABLATIONS.md.

Every variant trains with the same seed and step budget on the same data (except variant
1, whose data is the point) and is evaluated on the same held-out test set:

0. reference: distinct bodies, front + side + fusion, PCA init, scheduled PCA/mesh loss
   weights, silhouette IoU loss, fusion branches at 0.1x the learning rate;
1. data: the same number of samples but ~7k distinct bodies (several poses each) instead of
   one body per sample: the article's "7k registered meshes vs + PCA-sampled bodies",
   approximated with Gaussian-sampled shapes (our 7k source meshes are not kept per
   sample);
2. a single two-channel model instead of front/side/fusion (front vs side IoU exposes a
   front bias);
3. no PCA initialization of the last layer: PyTorch's default initialization instead of
   bias = mean training coefficients and zero weights (the mesh-decoding layer is the PCA
   basis in every variant: the mesh loss is defined through it);
4. PCA loss only, and fixed 0.5/0.5 PCA/mesh weights, instead of the schedule;
5. no silhouette IoU loss;
6. fusion with frozen branches, and with branches at the same learning rate;
7. the height-only baseline (the mean body scaled to the true height).

Runs and reports are cached in ``--work`` (rerun to resume; delete a run folder to redo
it). Usage: python benchmarks/ablations.py [--n 20000] [--epochs-view 2]
[--epochs-fusion 1] [--test-n 1000]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import time
from pathlib import Path

import numpy as np
from report import ROOT, machine, table

from bodyshape.body import BodyModel
from bodyshape.checkpoint import load_checkpoint
from bodyshape.evaluate import evaluate
from bodyshape.fileio import write_json
from bodyshape.nets.losses import WeightSchedule
from bodyshape.synth.generate import SynthSpec
from bodyshape.synth.shards import write_dataset
from bodyshape.train import StageData, TrainConfig, train_stage

DOC = ROOT / "docs" / "ABLATIONS.md"
METRICS = ("vertex_mm", "chest_mm", "waist_mm", "hip_mm", "stature_mm", "iou_front",
           "iou_side")


@dataclasses.dataclass(frozen=True)
class Variant:
    name: str
    label: str
    data: str = "distinct"  # or "7k"
    overrides: dict = dataclasses.field(default_factory=dict)
    fusion: dict = dataclasses.field(default_factory=dict)  # fusion-only overrides
    kind: str = "pipeline"  # "pipeline", "two-channel", "fusion-only"
    seed: int = 0
    reference: str = "reference"  # fusion-only: whose front and side networks to reuse


BASE_VARIANTS = (
    Variant("reference", "0. reference (distinct bodies, all techniques)"),
    Variant("data-7k", "1. ~7k distinct bodies, several poses each", data="7k"),
    Variant("two-channel", "2. one two-channel model", kind="two-channel"),
    Variant("no-pca-init", "3. no PCA initialization", overrides={"pca_init": False}),
    Variant("pca-only", "4a. PCA loss only", overrides={"schedule": WeightSchedule.fixed(1, 0)}),
    Variant("fixed-weights", "4b. fixed 0.5/0.5 PCA/mesh weights",
            overrides={"schedule": WeightSchedule.fixed(0.5, 0.5)}),
    Variant("no-iou", "5. no silhouette IoU loss", overrides={"iou_weight": 0.0}),
    Variant("fusion-frozen", "6a. fusion, branches frozen", kind="fusion-only",
            fusion={"branch_mode": "frozen"}),
    Variant("fusion-same-lr", "6b. fusion, branches at the same learning rate",
            kind="fusion-only", fusion={"branch_mode": "same"}),
)
# Repeated with other training seeds: the reference (for the run-to-run spread) and the
# variants whose first run contradicted the article's claim.
REPEATS = {"reference": (1, 2), "no-pca-init": (1,), "fusion-same-lr": (1,)}


def seeded(name: str, seed: int) -> str:
    return name if seed == 0 else f"{name}-seed{seed}"


VARIANTS = BASE_VARIANTS + tuple(
    dataclasses.replace(v, name=seeded(v.name, s), label=f"{v.label}, seed {s}", seed=s)
    for v in BASE_VARIANTS if v.name in REPEATS for s in REPEATS[v.name])


def make_data(model_path: Path, work: Path, n: int, test_n: int) -> dict[str, Path]:
    """The two training sets and the test set (resumable, deterministic)."""
    paths = {"distinct": work / "data-distinct", "7k": work / "data-7k",
             "test": work / "data-test"}
    k = max(1, round(n / 7000))
    # The clean data these ablations were run on (realistic data: bench_realism.py).
    write_dataset(model_path, paths["distinct"], n, 0, SynthSpec.clean(sampling="per-sex"),
                  workers=2)
    write_dataset(model_path, paths["7k"], n, 0, SynthSpec.clean(sampling="per-sex",
                                                                  poses_per_shape=k), workers=2)
    write_dataset(model_path, paths["test"], test_n, 999, SynthSpec.clean(sampling="per-sex"),
                  workers=2)
    return paths


#: The reference recipe every variant changes one thing of: the article's settings, pinned
#: here so that the ablations keep measuring the same thing when ``TrainConfig``'s defaults
#: move to what they found (docs/TRAINING.md).
RECIPE = {"pca_init": True, "branch_mode": "lower", "parts": False, "weight_input": False,
          "pose_weight": 0.0, "girth_weight": 0.0}


def run_variant(v: Variant, paths: dict, body: BodyModel, work: Path, base: dict) -> Path:
    """Train a variant; returns its final checkpoint."""
    out = work / "runs" / v.name
    data = paths[v.data]
    cfg = {**base, **v.overrides, "seed": v.seed}
    ev, ef = cfg.pop("epochs_view"), cfg.pop("epochs_fusion")
    if v.kind == "two-channel":
        return train_stage(TrainConfig(stage="two-channel", epochs=ev, **cfg),
                           StageData(data, None, body), out / "two-channel")
    # Fusion-only variants reuse the reference's front and side networks (same seed).
    src = work / "runs" / (seeded(v.reference, v.seed) if v.kind == "fusion-only" else v.name)
    ckpts = {}
    for stage in ("front", "side"):
        ckpts[stage] = train_stage(TrainConfig(stage=stage, epochs=ev, **cfg),
                                   StageData(data, None, body), src / stage)
    return train_stage(TrainConfig(stage="fusion", epochs=ef, **{**cfg, **v.fusion}),
                       StageData(data, None, body, ckpts["front"], ckpts["side"]),
                       out / "fusion")


def budget_arguments(work: str) -> argparse.ArgumentParser:
    """The options every training-budget benchmark shares (shape model, work folder, data
    size, epochs); ``work`` is its default work folder under the repository."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--shape-model", default=str(ROOT / "src/bodyshape/data/shape_model.npz"))
    ap.add_argument("--work", default=str(ROOT / work))
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--test-n", type=int, default=1000)
    ap.add_argument("--epochs-view", type=int, default=2)
    ap.add_argument("--epochs-fusion", type=int, default=1)
    return ap


def budget_setup(a: argparse.Namespace) -> tuple[Path, Path, BodyModel, dict]:
    """From ``budget_arguments``' parsed options: (work folder, shape model path, body model,
    the base training overrides every variant starts from); also sets up logging."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    model_path = Path(a.shape_model)
    base = {"epochs_view": a.epochs_view, "epochs_fusion": a.epochs_fusion, "seed": 0,
            "val_samples": 0, **RECIPE}
    return Path(a.work), model_path, BodyModel.load(model_path), base


def main() -> None:
    ap = budget_arguments("work/ablations")
    ap.add_argument("--only", nargs="*", default=None, help="variant names to run")
    ap.add_argument("--report-only", action="store_true",
                    help="write docs/ABLATIONS.md from the cached reports; train nothing")
    a = ap.parse_args()
    work, model_path, body, base = budget_setup(a)
    paths = make_data(model_path, work, a.n, a.test_n)
    results = {}
    for v in VARIANTS:
        if a.only and v.name not in a.only:
            continue
        rep_path = work / "reports" / f"{v.name}.json"
        if not rep_path.is_file() and a.report_only:
            continue
        if not rep_path.is_file():
            t0 = time.perf_counter()
            ckpt = run_variant(v, paths, body, work, dict(base))
            rep = evaluate(load_checkpoint(ckpt), paths["test"], body,
                           baseline=v.name == "reference")
            rep["train_minutes"] = (time.perf_counter() - t0) / 60
            write_json(rep_path, rep)
        results[v.name] = json.loads(rep_path.read_text())
    write_doc(results, a, work)


# What the article claims for each technique; the variant is the run *without* it.
CLAIMS = (
    ("data-7k", "more distinct bodies (here n distinct vs ~7k x n/7k poses) cut loss ~20 %"),
    ("two-channel", "front/side/fusion instead of one two-channel model removes a front bias"),
    ("no-pca-init", "PCA initialization of the last layer gave ~5 % lower loss"),
    ("pca-only", "the mesh loss (scheduled) was among the most influential techniques"),
    ("fixed-weights", "scheduled PCA/mesh weights beat fixed 0.5/0.5"),
    ("no-iou", "the silhouette IoU loss was among the most influential techniques"),
    ("fusion-frozen", "fine-tuning the branches (at a lower LR) beats freezing them"),
    ("fusion-same-lr", "a lower LR for the pretrained branches gave +4 %"),
)


def _girths(d: dict) -> float:
    return (d["chest_mm"] + d["waist_mm"] + d["hip_mm"]) / 3


def _row(label: str, d: dict, ref: dict | None) -> list[str]:
    cells = [label] + [f"{d[m]:.1f}" for m in METRICS[:5]] + [f"{d[m]:.3f}" for m in METRICS[5:]]
    if ref is not None:
        cells.append(f"{100 * (d['vertex_mm'] / ref['vertex_mm'] - 1):+.1f} %")
    else:
        cells.append("")
    return cells


def _noise(results: dict, metric) -> float | None:
    """Run-to-run spread of ``metric(all-block)``: (max - min) / mean over the reference
    seeds; None with fewer than two."""
    refs = [results[k]["all"] for k in results if k.split("-seed")[0] == "reference"]
    if len(refs) < 2:
        return None
    values = np.array([metric(d) for d in refs])
    return float(np.ptp(values) / values.mean())


def _changes(results: dict, name: str, metric) -> list[float]:
    """Relative change of ``metric`` of variant ``name`` against the reference of the same
    seed, one per seed run."""
    out = []
    for s in (0, *REPEATS.get(name, ())):
        v, r = seeded(name, s), seeded("reference", s)
        if v in results and r in results:
            out.append(metric(results[v]["all"]) / metric(results[r]["all"]) - 1)
    return out


def _vertex(d: dict) -> float:
    return d["vertex_mm"]


def _verdict(change: float, threshold: float) -> str:
    if abs(change) <= threshold:
        return "within noise"
    return "helps" if change > 0 else "hurts"


def claims_table(results: dict) -> tuple[str, dict]:
    """Markdown rows comparing each variant (a technique removed) with the reference, and
    the relative thresholds under which a difference is called noise (per metric)."""
    ref = results["reference"]["all"]
    thresholds = {}
    for name, metric in (("vertex", _vertex), ("girth", _girths)):
        noise = _noise(results, metric)
        thresholds[name] = (max(noise, 0.01) if noise is not None else 0.05, noise)
    rows = []

    def cell(changes: list[float]) -> str:
        text = f"{100 * np.mean(changes):+.1f} %"
        if len(changes) > 1:
            text += " (" + ", ".join(f"{100 * c:+.1f}" for c in changes) + ")"
        return text

    for name, claim in CLAIMS:
        dv, dg = _changes(results, name, _vertex), _changes(results, name, _girths)
        if not dv:
            continue
        rows.append([claim, name, cell(dv), _verdict(float(np.mean(dv)), thresholds["vertex"][0]),
                     cell(dg), _verdict(float(np.mean(dg)), thresholds["girth"][0])])
    head = ["claim", "variant without it", "vertex error vs ref", "vertex verdict",
            "mean girth error vs ref", "girth verdict"]
    return table(head, rows), thresholds


def write_doc(results: dict, a, work: Path) -> None:
    ref = results.get("reference", {}).get("all")
    rows = []
    for v in VARIANTS:
        if v.name in results:
            rows.append(_row(v.label, results[v.name]["all"], ref))
    if "reference" in results and "height_only" in results["reference"]:
        rows.append(_row("7. height-only baseline", results["reference"]["height_only"]["all"],
                         ref))
    head = ["variant", "vertex mm", "chest mm", "waist mm", "hip mm", "stature mm",
            "IoU front", "IoU side", "vertex vs ref (seed 0)"]
    minutes = ", ".join(f"{k} {r['train_minutes']:.0f}" for k, r in results.items()
                        if "train_minutes" in r)
    claims = ""
    if ref is not None:
        text, th = claims_table(results)
        n_ref = sum(k.split("-seed")[0] == "reference" for k in results)
        if th["vertex"][1] is not None:
            spread = (f"the {n_ref} reference runs (training seeds 0-{n_ref - 1}) span "
                      f"{100 * th['vertex'][1]:.1f} % in vertex error and "
                      f"{100 * th['girth'][1]:.1f} % in mean chest/waist/hip error (max - min "
                      "over mean), so smaller differences (at least 1 %) are called noise. "
                      "Where a variant was run with several seeds, each is compared with the "
                      "reference of the same seed and the table gives the mean change (each "
                      "seed's in brackets)")
        else:
            spread = "only one reference run, so differences under 5 % are called noise"
        bias = ""
        if "two-channel" in results:
            tc, rf = results["two-channel"]["all"], ref
            bias = (f"\n\nFront bias: the two-channel model's front-minus-side IoU gap is "
                    f"{tc['iou_front'] - tc['iou_side']:+.3f}, the reference's "
                    f"{rf['iou_front'] - rf['iou_side']:+.3f} (a larger gap means the side "
                    "view is explained worse than the front).")
        claims = f"""
## The claims, measured

Each row removes one technique from the reference. Positive percentages mean the variant
without the technique is worse, i.e. the technique helps ("helps"); negative ones mean it
did better without it ("hurts"). "Mean girth" is the mean of the chest, waist and hip
errors. Run-to-run spread: {spread}.
A few seeds give a rough estimate of that spread; treat verdicts near the threshold as
unsettled.

{text}{bias}
"""
    text = f"""# Ablations

Produced by `python benchmarks/ablations.py --n {a.n} --epochs-view {a.epochs_view}
--epochs-fusion {a.epochs_fusion} --test-n {a.test_n}` on {machine()}, {time.strftime('%Y-%m-%d')}.
Every variant: training seed 0 unless its row names another, {a.n} training pairs, {a.epochs_view} epochs per view
network and {a.epochs_fusion} for fusion (the two-channel model: {a.epochs_view} epochs),
evaluated on the same {a.test_n} held-out pairs (seed 999) with the true height and sex given.
Errors are mean absolute errors in mm on the canonical mesh; IoU is the exact re-projection
IoU. These budgets are far smaller than the default model's, so absolute figures are worse
than docs/BENCHMARKS.md; the comparison between rows is the point. Variant 3 changes only
the coefficient layer's initialization (bias = mean, weights = 0 vs PyTorch's default); the
mesh-decoding layer is the PCA basis in every variant. Variant 1 keeps the sample count and
draws ~7k distinct bodies, each in several poses and camera set-ups, instead of one body per
sample.

{table(head, rows)}

Training minutes per variant (all its stages; fusion-only variants reuse the reference's
branches): {minutes}.
{claims}"""
    DOC.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
