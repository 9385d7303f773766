"""Evidence for the realistic synthetic data: train on clean and on realistic data, test on both.

Three training sets of the same size and seed, the ablation budget and the reference recipe
(front + side + fusion, ``benchmarks/ablations.py``):

- clean: ``SynthSpec.clean()``, one near-A pose for both views, naked bodies (the data the
  shipped model was trained on);
- per-view poses: ``SynthSpec(garments=None)``, each view its own photo pose, naked;
- realistic: ``SynthSpec()``, each view its own photo pose, clothing, hair and shoes.

Each model is evaluated on two held-out sets of 1000 pairs (seed 999): the clean one, and
the realistic one with MediaPipe's measured segmentation errors (``Augment.measured()``,
fixed per sample). The shipped model is evaluated on both too. ``--seeds`` repeats the
training with other seeds. The table goes into ``docs/ABLATIONS.md`` (section "Realistic
data").

Runs and reports are cached in ``--work`` (rerun to resume). Usage:
python benchmarks/bench_realism.py [--n 20000] [--epochs-view 2] [--epochs-fusion 1]
[--seeds 0 1 2] [--train-only]
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from ablations import Variant, budget_arguments, budget_setup, run_variant
from report import ROOT, machine, table

from bodyshape.assets import DEFAULT_CHECKPOINT
from bodyshape.checkpoint import load_checkpoint
from bodyshape.dataset.stream import Augment
from bodyshape.evaluate import evaluate
from bodyshape.fileio import write_json
from bodyshape.synth.generate import SynthSpec
from bodyshape.synth.shards import write_dataset

DOC = ROOT / "docs" / "ABLATIONS.md"
START, END = "<!-- realism -->", "<!-- /realism -->"
TEST_SEED = 999


TRAIN_SPECS = {"clean": SynthSpec.clean(sampling="per-sex"),
               "per-view poses": SynthSpec(sampling="per-sex", garments=None),
               "realistic": SynthSpec(sampling="per-sex")}


def make_data(model_path: Path, work: Path, n: int, test_n: int) -> dict[str, Path]:
    paths = {}
    for name, spec in TRAIN_SPECS.items():
        paths[name] = work / f"data-{name}"
        write_dataset(model_path, paths[name], n, 0, spec, workers=2)
        if name in ("clean", "realistic"):
            paths[f"test-{name}"] = work / f"test-{name}"
            write_dataset(model_path, paths[f"test-{name}"], test_n, TEST_SEED, spec, workers=2)
    return paths


def test_sets(paths: dict) -> dict[str, tuple[Path, Augment | None]]:
    """Test set name -> (folder, augmentation applied at evaluation)."""
    return {"clean": (paths["test-clean"], None),
            "realistic": (paths["test-realistic"], Augment.measured())}


def main() -> None:
    ap = budget_arguments("work/realism")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0], help="training seeds")
    ap.add_argument("--train-only", action="store_true", help="train, evaluate nothing")
    a = ap.parse_args()
    work, model_path, body, base = budget_setup(a)
    paths = make_data(model_path, work, a.n, a.test_n)
    models = {("shipped", 0): DEFAULT_CHECKPOINT}
    for seed in a.seeds:
        for data in TRAIN_SPECS:
            name = f"trained-on-{data.replace(' ', '-')}" + ("" if seed == 0 else f"-seed{seed}")
            models[(f"trained on {data}", seed)] = run_variant(
                Variant(name, data, data=data, seed=seed), paths, body, work, dict(base))
    if a.train_only:
        return
    results: dict = {}
    outfits: dict = {}
    for (model_name, seed), ckpt in models.items():
        for test_name, (folder, augment) in test_sets(paths).items():
            tag = model_name.replace(" ", "-") + ("" if seed == 0 else f"-seed{seed}")
            rep_path = work / "reports" / f"{tag}--{test_name}.json"
            if not rep_path.is_file():
                rep = evaluate(load_checkpoint(ckpt), folder, body, augment=augment)
                write_json(rep_path, rep)
            rep = json.loads(rep_path.read_text())
            results.setdefault((model_name, test_name), []).append(rep["all"])
            if test_name == "realistic" and seed == a.seeds[0]:
                outfits[model_name] = rep.get("by_outfit", {})
    write_doc(results, outfits, a)


METRIC_COLUMNS = (("vertex_mm", 1), ("chest_mm", 1), ("waist_mm", 1), ("hip_mm", 1),
                  ("iou_front", 3), ("iou_side", 3))


def mean_std(runs: list[dict], key: str, digits: int) -> str:
    """A table cell: ``key`` of one run, or mean ± std over several."""
    values = np.array([r[key] for r in runs])
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{values.mean():.{digits}f} ± {values.std():.{digits}f}"


def write_doc(results: dict, outfits: dict, a) -> None:
    rows = [[model, test, str(len(runs))] + [mean_std(runs, k, d) for k, d in METRIC_COLUMNS]
            for (model, test), runs in results.items()]
    groups = next(iter(outfits.values()), {})
    outfit_rows = [[g, str(groups[g]["n"])] + [
        "/".join(f"{outfits[m][g][k]:.0f}" for k in ("chest_mm", "waist_mm", "hip_mm"))
        for m in outfits] for g in groups]
    seeds = ", ".join(str(x) for x in a.seeds)
    body = (
        f"{START}\n## Realistic data: per-view poses, garments, measured segmentation errors\n\n"
        f"Produced by `python benchmarks/bench_realism.py --n {a.n} --epochs-view "
        f"{a.epochs_view} --epochs-fusion {a.epochs_fusion} --test-n {a.test_n} --seeds "
        f"{' '.join(str(x) for x in a.seeds)}` on {machine()}. The reference recipe "
        f"(training seeds {seeds}) trained on {a.n} clean pairs (`SynthSpec.clean()`: one "
        "near-A pose for both views, naked), on as many with per-view photo poses but naked "
        "bodies (`SynthSpec(garments=None)`) and on as many realistic ones (`SynthSpec()`: "
        "per-view photo poses, clothing, hair, shoes), and the shipped model, each evaluated "
        f"on two held-out sets of {a.test_n} pairs (seed {TEST_SEED}): clean, and realistic "
        "with MediaPipe's measured segmentation errors (`Augment.measured()`). Height and "
        "sex given; MAE in mm on the canonical mesh; IoU of the naked body against the "
        "(dressed) test mask. Cells are the mean ± std over the training seeds (`runs`).\n\n"
        + table(["model", "test set", "runs", "vertex mm", "chest mm", "waist mm", "hip mm",
                 "IoU front", "IoU side"], rows)
        + f"\n\nThe realistic test set by kind of top and of bottom (training seed {a.seeds[0]}), "
        "chest/waist/hip MAE in mm:\n\n"
        + table(["outfit", "pairs"] + list(outfits), outfit_rows)
        + f"\n{END}")
    replace_block(DOC, START, END, body)


def replace_block(doc: Path, start: str, end: str, body: str) -> None:
    """Put ``body`` (which starts with ``start`` and ends with ``end``) in place of the
    block between those markers in ``doc``, or append it."""
    text = doc.read_text()
    if start in text:
        text = text[:text.index(start)] + body + text[text.index(end) + len(end):]
    else:
        text = text.rstrip() + "\n\n" + body + "\n"
    doc.write_text(text)


if __name__ == "__main__":
    main()
