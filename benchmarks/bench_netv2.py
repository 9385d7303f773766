"""Network v2 ablations: part channels, pose heads, the girth loss, the weight input, and
the article's two techniques measured as harmful on clean data, all on realistic data.

Every variant trains the reference recipe (front + side + fusion, ``ablations.py``) at the
ablation budget on the realistic training set of ``bench_realism.py`` (``SynthSpec()``:
per-view photo poses, clothing, hair, shoes; made there, shared through ``--work``), with
one change:

- reference: the recipe as shipped (``bench_realism``'s "trained on realistic" run);
- parts: one input channel per body-part group per view (``--parts``);
- pose heads: each view's 16 pose angles as an auxiliary output (``--pose-weight 0.1``);
- girth loss: the differentiable tape girths (``--girth-weight 0.1`` from a quarter of
  training on);
- weight: the body weight as an input, hidden for half the samples (``--weight-input``);
- v2: all four;
- no PCA init, and fusion branches at the same learning rate (the article's techniques the
  clean-data ablations measured as harmful), on this data.

Each is evaluated with the height given and the sex not given, on the realistic test set
(MediaPipe's measured segmentation errors; part channels from the stored, noisy keypoints)
and on the clean one; weight-aware variants also with the weight given (true mesh volume x
density plus self-report noise). ``--seeds`` repeats everything with other training seeds;
cells are the mean ± std over seeds. Writes the section between ``<!-- netv2 -->`` and
``<!-- /netv2 -->`` of docs/ABLATIONS.md.

Usage: python benchmarks/bench_netv2.py [--seeds 0 1 2] [--only v2 parts] [--report-only]
(budget options as ``ablations.py``).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np
from ablations import Variant, budget_arguments, budget_setup, run_variant, seeded
from bench_realism import TEST_SEED, make_data, mean_std, replace_block
from report import ROOT, machine, table

from bodyshape.checkpoint import load_checkpoint
from bodyshape.dataset.stream import Augment
from bodyshape.evaluate import evaluate
from bodyshape.fileio import write_json

DOC = ROOT / "docs" / "ABLATIONS.md"
START, END = "<!-- netv2 -->", "<!-- /netv2 -->"
V2 = {"parts": True, "pose_weight": 0.1, "girth_weight": 0.1, "weight_input": True}
VARIANTS = (
    Variant("trained-on-realistic", "reference", data="realistic"),
    Variant("netv2-all", "v2: parts + pose heads + girth loss + weight", data="realistic",
            overrides=V2),
    Variant("netv2-parts", "parts", data="realistic", overrides={"parts": True}),
    Variant("netv2-pose", "pose heads", data="realistic", overrides={"pose_weight": 0.1}),
    Variant("netv2-girth", "girth loss", data="realistic", overrides={"girth_weight": 0.1}),
    Variant("netv2-weight", "weight input", data="realistic", overrides={"weight_input": True}),
    Variant("netv2-no-pca-init", "no PCA init", data="realistic",
            overrides={"pca_init": False}),
    Variant("netv2-fusion-same-lr", "fusion branches at the same learning rate",
            data="realistic", kind="fusion-only", fusion={"branch_mode": "same"},
            reference="trained-on-realistic"),
)
COLUMNS = (("vertex_mm", 1), ("chest_mm", 1), ("waist_mm", 1), ("hip_mm", 1),
           ("iou_front", 3), ("iou_side", 3))


def test_sets(paths: dict, weight: bool) -> dict[str, tuple[Path, Augment | None, bool]]:
    """Name -> (folder, augmentation, weight given)."""
    out = {"realistic": (paths["test-realistic"], Augment.measured(), False),
           "clean": (paths["test-clean"], None, False)}
    if weight:
        out["realistic, weight given"] = (paths["test-realistic"], Augment.measured(), True)
    return out


GIRTHS = ("chest_mm", "waist_mm", "hip_mm")


def paired(results: dict, label: str, test: str, ref_test: str) -> list[float]:
    """Per training seed: mean chest/waist/hip MAE of variant ``label`` on ``test`` minus
    the reference's on ``ref_test`` with the same seed (mm; negative = variant better)."""
    ref = dict(results.get((VARIANTS[0].label, ref_test), {}))
    return [girth_change(run, ref[seed])
            for seed, run in results.get((label, test), {}).items() if seed in ref]


def girth_change(run: dict, ref: dict) -> float:
    """Mean chest/waist/hip MAE of report ``run`` minus that of ``ref`` (mm)."""
    return float(np.mean([run[g] for g in GIRTHS]) - np.mean([ref[g] for g in GIRTHS]))


def verdict(diffs: list[float]) -> str:
    """"better" / "worse" when every seed's paired difference has that sign, else "mixed"
    (under no effect, all of 3 seeds share a sign 1 time in 4)."""
    if not diffs:
        return ""
    if all(d < 0 for d in diffs):
        return "better"
    return "worse" if all(d > 0 for d in diffs) else "mixed"


def decision_rows(results: dict) -> list[list[str]]:
    """One row per variant and test set: the seed-paired differences against the reference
    and their verdict."""
    rows = []
    for v in VARIANTS[1:]:
        tests = ["realistic", "clean"] + (["realistic, weight given"]
                                          if v.overrides.get("weight_input") else [])
        for test in tests:
            d = paired(results, v.label, test, "realistic" if "weight" in test else test)
            if d:
                rows.append([v.label, test, str(len(d)), f"{np.mean(d):+.1f}",
                             " ".join(f"{x:+.1f}" for x in d), verdict(d)])
    return rows


def write_doc(results: dict, minutes: dict, a) -> None:
    """``results``: (label, test) -> {seed: report["all"]}."""
    rows = [[label, test, str(len(runs))]
            + [mean_std(list(runs.values()), k, d) for k, d in COLUMNS]
            for (label, test), runs in results.items()]
    cost = [[label, f"{np.mean(m):.0f}"] for label, m in minutes.items()]
    seeds = " ".join(str(s) for s in a.seeds)
    body = (
        f"{START}\n## Network v2: parts, pose heads, girth loss, weight (realistic data)\n\n"
        f"Produced by `python benchmarks/bench_netv2.py --n {a.n} --epochs-view "
        f"{a.epochs_view} --epochs-fusion {a.epochs_fusion} --test-n {a.test_n} --seeds "
        f"{seeds}` on {machine()}. The reference recipe trained on {a.n} realistic pairs "
        "(`SynthSpec()`) with one change each (module docs of the script); evaluated with "
        "the height given and the sex not given on the realistic test set (MediaPipe's "
        "measured segmentation errors) and the clean one, "
        f"{a.test_n} pairs each (seed {TEST_SEED}). MAE in mm on the canonical mesh; IoU of "
        "the naked body in the sample's true pose against the test mask. Cells: mean ± std "
        "over the training seeds (`runs`).\n\n"
        + table(["variant", "test set", "runs", "vertex mm", "chest mm", "waist mm", "hip mm",
                 "IoU front", "IoU side"], rows)
        + "\n\nEach variant against the reference trained with the same seed: the change "
        "in the mean of the chest, waist and hip MAE (mm, negative = better; the weight-given "
        "rows against the reference without weight), per seed and its mean. The verdict is "
        "\"better\" or \"worse\" when every seed agrees, else \"mixed\".\n\n"
        + table(["variant", "test set", "seeds", "mean change mm", "per seed", "verdict"],
                decision_rows(results))
        + "\n\nTraining time of front + side + fusion, minutes (mean over seeds; runs reused "
        "from `bench_realism.py` keep their time):\n\n" + table(["variant", "minutes"], cost)
        + f"\n{END}")
    replace_block(DOC, START, END, body)
    print(body)


def _minutes(ckpt: Path) -> float:
    """Training minutes of a variant from its stages' histories."""
    total = 0.0
    for stage in ("front", "side", "fusion"):
        hist = ckpt.parent.parent / stage / "checkpoint.pt"
        if hist.is_file():
            total += sum(r["seconds"] for r in load_checkpoint(hist).train["history"])
    return total / 60


def main() -> None:
    ap = budget_arguments("work/realism")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0], help="training seeds")
    ap.add_argument("--only", nargs="*", default=None, help="variant names to run")
    ap.add_argument("--report-only", action="store_true",
                    help="write the doc from cached reports; train nothing")
    a = ap.parse_args()
    work, model_path, body, base = budget_setup(a)
    paths = make_data(model_path, work, a.n, a.test_n)
    results: dict = {}
    minutes: dict = {}
    for seed in a.seeds:
        for v in VARIANTS:
            if a.only and v.name not in a.only:
                continue
            name = seeded(v.name, seed)
            fusion = work / "runs" / name / "fusion" / "checkpoint.pt"
            if a.report_only and not fusion.is_file():
                continue
            t0 = time.perf_counter()
            ckpt = run_variant(Variant(name, v.label, v.data, v.overrides, v.fusion, v.kind,
                                       seed, v.reference), paths, body, work, dict(base))
            logging.info("%s: %.0f s", name, time.perf_counter() - t0)
            minutes.setdefault(v.label, []).append(_minutes(ckpt))
            weight = bool(v.overrides.get("weight_input"))
            for test, (folder, augment, weight_known) in test_sets(paths, weight).items():
                rep_path = work / "reports" / f"netv2--{name}--{test.replace(', ', '-')}.json"
                if not rep_path.is_file():
                    rep = evaluate(load_checkpoint(ckpt), folder, body, augment=augment,
                                   sex_known=False, weight_known=weight_known)
                    write_json(rep_path, rep)
                rep = json.loads(rep_path.read_text())
                results.setdefault((v.label, test), {})[seed] = rep["all"]
    write_doc(results, minutes, a)


if __name__ == "__main__":
    main()
