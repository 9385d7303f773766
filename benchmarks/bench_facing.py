"""How well the feet tell a side-view mask's facing (``inputs.toe_cue``).

Renders the held-out test pairs' side views as full-frame masks (the frames prediction
sees, facing left or right as drawn) and compares the sign of the toe cue with the facing
each was rendered with (``side_mirrored``: the frame faced left and its canvas was
mirrored). Reports how often the cue points the right way, how often it is decisive
(``|cue| > TOE_CUE_MIN``, where prediction trusts it) and how often a decisive cue is wrong.

Usage: python benchmarks/bench_facing.py [--test work/train/data-test] [--n 2000]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import cv2
import numpy as np
from bench_predict import frames_from_shards
from report import ROOT, table, write_section

from bodyshape.assets import DEFAULT_SHAPE_MODEL
from bodyshape.body import BodyModel
from bodyshape.dataset.shard_format import read_shard
from bodyshape.inputs import TOE_CUE_MIN, toe_cue
from bodyshape.synth.generate import SynthSpec
from bodyshape.synth.shards import write_dataset


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shape-model", default=str(DEFAULT_SHAPE_MODEL))
    ap.add_argument("--test", default=str(ROOT / "work/train/data-test"))
    ap.add_argument("--n", type=int, default=2000)
    a = ap.parse_args()
    test = Path(a.test)
    if not (test / "manifest.json").is_file():
        write_dataset(a.shape_model, test, 2000, 999, SynthSpec(sampling="per-sex"), workers=2)
    body_model = BodyModel.load(a.shape_model)
    mirrored = {}
    for shard in sorted(test.glob("shard-*.npz")):
        d = read_shard(shard)
        mirrored.update({int(i): bool(m) for i, m in zip(d.index, d.side_mirrored)})
    with tempfile.TemporaryDirectory(prefix="bench_facing-") as tmp:
        rows = frames_from_shards(test, a.n, Path(tmp), body_model)
        cues, truth = [], []
        for r in rows:
            mask = cv2.imread(str(Path(tmp) / r["side"]), cv2.IMREAD_GRAYSCALE) > 0
            cues.append(toe_cue(mask))
            truth.append(-1.0 if mirrored[int(r["id"])] else 1.0)  # mirrored: faced left
    cue, sign = np.array(cues), np.array(truth)
    right_way = float(np.mean(np.sign(cue) == sign))
    decisive = np.abs(cue) > TOE_CUE_MIN
    wrong_decisive = int(np.sum(decisive & (np.sign(cue) != sign)))
    res = {"n": len(cue), "right_way": right_way, "decisive": float(decisive.mean()),
           "wrong_decisive": wrong_decisive, "facing_left": float(np.mean(sign < 0)),
           "cue_percentiles": np.percentile(cue * sign, [0, 1, 5, 50]).tolist()}
    body = f"""The toe cue (`inputs.toe_cue`) on the side views of {len(cue)} held-out test pairs,
rendered as full-frame masks ({100 * res['facing_left']:.0f} % facing left). Prediction
trusts the cue when |cue| > {TOE_CUE_MIN} (a fraction of the silhouette height) and
otherwise runs the network for both facings.

{table(["pairs", "cue points the right way", "decisive", "decisive and wrong"], [
        [str(len(cue)), f"{100 * right_way:.2f} %", f"{100 * res['decisive']:.1f} %",
         str(wrong_decisive)]])}

Cue in the true facing direction, percentiles 0/1/5/50:
{', '.join(f'{p:.4f}' for p in res['cue_percentiles'])}.
"""
    write_section("facing", "Side-mask facing from the feet", body, res)
    print(body)


if __name__ == "__main__":
    main()
