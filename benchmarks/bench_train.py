"""The default network: training cost and held-out accuracy against the height-only baseline.

1. Training time and throughput of each stage, read from the run folders that
   ``scripts/train_default.sh`` leaves (every checkpoint records seconds per epoch).
2. Accuracy of the shipped model (``src/bodyshape/data/model.pt``) on the held-out synthetic
   test set (2,000 pairs, seed 999, pose and camera variation, true height given), with
   the sex given and hidden, next to the height-only baseline (the mean body scaled to the
   true height), split by sex and BMI band; and the issue's goals checked.

The test set is made if missing (``bodyshape synth --n 2000 --seed 999 --sampling per-sex``);
a realistic one (garments) is evaluated with MediaPipe's measured segmentation errors.

Usage: python benchmarks/bench_train.py [--runs work/train] [--limit N]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from report import table, write_section

from bodyshape.body import BodyModel
from bodyshape.checkpoint import load_checkpoint
from bodyshape.dataset.stream import Augment
from bodyshape.evaluate import evaluate, markdown

ROOT = Path(__file__).resolve().parents[1]
GIRTHS = ("chest_mm", "waist_mm", "hip_mm")


def stage_rows(runs: Path) -> tuple[list[list], dict]:
    rows, res = [], {}
    for stage in ("front", "side", "fusion"):
        path = runs / stage / "checkpoint.pt"
        if not path.is_file():
            rows.append([stage, "not found", "", "", ""])
            continue
        ck = load_checkpoint(path)
        hist = ck.train["history"]
        seconds = sum(h["seconds"] for h in hist)
        n_train = None
        try:
            data = Path(ck.train["data"])
            data = data if data.is_absolute() else ROOT / data  # recorded relative to the repo
            n_train = json.loads((data / "config.json").read_text())["n"]
        except (OSError, KeyError, ValueError):
            pass
        rate = n_train * len(hist) / seconds if n_train else float("nan")
        res[stage] = {"epochs": len(hist), "seconds": seconds, "samples_per_s": rate,
                      "val_vertex_mm": hist[-1].get("val_vertex_mm"),
                      "val_iou": hist[-1].get("val_iou")}
        rows.append([stage, len(hist), f"{seconds / 60:.1f}", f"{rate:.0f}",
                     f"{hist[-1].get('val_vertex_mm', float('nan')):.2f}"])
    return rows, res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=str(ROOT / "src/bodyshape/data/model.pt"))
    ap.add_argument("--shape-model", default=str(ROOT / "src/bodyshape/data/shape_model.npz"))
    ap.add_argument("--runs", default=str(ROOT / "work/train"))
    ap.add_argument("--test", default=None, help="test set [default: RUNS/data-test]")
    ap.add_argument("--limit", type=int, default=None)
    a = ap.parse_args()
    runs = Path(a.runs)
    test = Path(a.test) if a.test else runs / "data-test"
    if not (test / "manifest.json").is_file():
        subprocess.run([sys.executable, "-m", "bodyshape.cli", "synth", "--n", "2000",
                        "--seed", "999", "--sampling", "per-sex", "--workers", "2",
                        "--out", str(test), "--no-progress"], check=True)
    body_model = BodyModel.load(a.shape_model)
    ck = load_checkpoint(a.model)
    # A realistic test set (garments) is evaluated as `train_default.sh` does: with
    # MediaPipe's measured segmentation errors on its masks.
    spec = json.loads((test / "config.json").read_text())["spec"]
    realistic = spec.get("garments") is not None
    augment = Augment.measured() if realistic else None
    rep = evaluate(ck, test, body_model, limit=a.limit, baseline=True, augment=augment)
    rep_nosex = evaluate(ck, test, body_model, limit=a.limit, sex_known=False,
                         augment=augment)
    rows, train_res = stage_rows(runs)

    al, base = rep["all"], rep["height_only"]["all"]
    ratios = {g: base[g] / al[g] for g in GIRTHS}
    goals = [
        ["mean vertex error <= 6 mm", f"{al['vertex_mm']:.2f} mm",
         "met" if al["vertex_mm"] <= 6 else "not met"],
        *[[f"{g[:-3]} MAE <= 15 mm", f"{al[g]:.1f} mm", "met" if al[g] <= 15 else "not met"]
          for g in GIRTHS],
        *[[f"{g[:-3]} >= 3x better than height-only", f"{ratios[g]:.1f}x",
           "met" if ratios[g] >= 3 else "not met"] for g in GIRTHS],
    ]
    data_note = (": realistic, per-view photo poses, garments, and MediaPipe's measured "
                 "segmentation errors on the masks" if realistic else ": clean")
    body = f"""Model `{Path(a.model).relative_to(ROOT) if Path(a.model).is_relative_to(ROOT)
else a.model}` ({ck.spec.kind}), trained by `bash scripts/train_default.sh`; test set
`{test.name}`: {al['n']} held-out pairs (seed 999, per-sex shapes, random poses and
phone cameras{data_note}), true height given.

Training (2 cores, CPU; `samples/s` counts training samples through the stage; minutes
are the wall-clock time each checkpoint recorded per epoch, so a run that shared the machine
with other work, or spanned several sittings, shows slower than a quiet one would):

{table(["stage", "epochs", "minutes", "samples / s", "val vertex mm (last)"], rows)}

Accuracy, sex given:

{markdown(rep)}

Sex hidden from the network:

{markdown(rep_nosex)}

Height-only baseline (the mean body scaled to the true height):

{markdown(rep["height_only"])}

Goals of the first default network (the network v2 goals are in *Network v2 goals*,
`benchmarks/bench_goals.py`):

{table(["goal", "measured", ""], goals)}
"""
    write_section("train", "Default network: training and held-out accuracy", body,
                  {"report": rep, "report_sex_hidden": rep_nosex, "train": train_res,
                   "girth_ratio_vs_height_only": ratios})
    print(body)


if __name__ == "__main__":
    main()
